"""The shipped default model was trained with the recipe `make default-model` runs (TRAIN_RECIPE)
and carries the inference settings it applies (DEFAULT_SETTINGS), so that the Makefile really
reproduces it."""

from __future__ import annotations

import json
import re
import shlex

from conftest import REPO

FLAG_TO_CONFIG = {"--loss": "loss", "--temperature": "temperature", "--max-steps": "max_steps",
                  "--batch-size": "batch_size", "--negatives": "negatives", "--lr": "lr",
                  "--lora-rank": "lora_rank", "--lora-alpha": "lora_alpha",
                  "--query-max-length": "query_max_length", "--doc-max-length": "doc_max_length",
                  "--flops-query": "flops_query", "--flops-doc": "flops_doc", "--seed": "seed",
                  "--case-augmentation": "case_augmentation"}


def _train_recipe(variable: str = "TRAIN_RECIPE") -> dict[str, str]:
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    recipe = re.search(rf"^{variable}\s*=\s*(.+)$", text, re.M).group(1)
    words = shlex.split(recipe)
    return {w: words[i + 1] for i, w in enumerate(words) if w.startswith("--") and i + 1 < len(words)
            and not words[i + 1].startswith("--")}


def test_shipped_default_was_trained_with_the_makefile_recipe():
    report = json.loads((REPO / "splare_lucene/assets/default/train_report.json").read_text())
    config = report["config"]
    recipe = _train_recipe()
    assert set(FLAG_TO_CONFIG) <= set(recipe), "TRAIN_RECIPE lost a flag the default was trained with"
    for flag, key in FLAG_TO_CONFIG.items():
        want = recipe[flag]
        got = config[key]
        assert (str(got) == want if isinstance(got, str) else float(got) == float(want)), (flag, got, want)
    assert report["steps"] == int(recipe["--max-steps"])
    assert report["examples"] == int(recipe["--max-queries"])


def test_shipped_default_has_the_makefile_inference_settings():
    settings = _train_recipe("DEFAULT_SETTINGS")
    config = json.loads((REPO / "splare_lucene/assets/default/splare_config.json").read_text())
    assert settings == {"--query-top-k": str(config["query"]["top_k"]),
                        "--doc-top-k": str(config["document"]["top_k"]),
                        "--text-normalization": config["text_normalization"]}
