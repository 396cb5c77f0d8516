"""`splare-lucene configure`: a copy of a model directory with other inference settings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.config import SplareConfig
from splare_lucene.errors import ConfigError
from splare_lucene.reconfigure import changed_config, reconfigure


def _labels(model_dir, fingerprint):
    from splare_lucene.explain.records import LABELS_NAME

    obj = {"format": "splare-latent-labels", "version": 1, "d_sae": 64, "model_fingerprint": fingerprint,
           "created": "2026-11-30T00:00:00+00:00", "sources": [], "latents": {}}
    (model_dir / LABELS_NAME).write_text(json.dumps(obj))


def test_changed_config_touches_only_what_is_given(tiny_model):
    old = SplareConfig.load(tiny_model)
    new = changed_config(old, query_top_k=7, text_normalization="lowercase", doc_top_k=None)
    assert new.query.top_k == 7 and new.text_normalization == "lowercase"
    assert new.document == old.document and new.query.max_length == old.query.max_length
    assert new.replace(query=old.query, text_normalization=old.text_normalization) == old
    with pytest.raises(ConfigError, match="top_k must be >= 0"):
        changed_config(old, doc_top_k=-1)
    with pytest.raises(ConfigError, match="text_normalization must be one of"):
        changed_config(old, text_normalization="upper")
    with pytest.raises(ConfigError, match="unknown settings"):
        changed_config(old, top_k=3)


def test_copy_encodes_with_the_new_cut_and_same_weights(tiny_model, tmp_path):
    from splare_lucene.encoder import SplareEncoder, model_fingerprint

    out = tmp_path / "cut"
    assert cli(["configure", "--model", str(tiny_model), "--output", str(out), "--query-top-k", "3",
                "--doc-top-k", "0"]) == 0
    original = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    copy = SplareEncoder.from_pretrained(out, device="cpu")
    assert copy.config.query.top_k == 3 and copy.config.document.top_k == 0
    assert copy.fingerprint == model_fingerprint(out, copy.config) != original.fingerprint
    text = ["the moon pulls the tides of the ocean"]
    q_old, q_new = original.encode(text, "query")[0], copy.encode(text, "query")[0]
    assert q_new.nnz == 3
    # same weights: the copy's three latents are the original's three strongest, same values
    np.testing.assert_array_equal(q_new.indices, q_old.indices[:3])
    np.testing.assert_allclose(q_new.values, q_old.values[:3])
    assert copy.encode(text, "document")[0].nnz >= original.encode(text, "document")[0].nnz
    # the original is untouched
    assert SplareConfig.load(tiny_model).query.top_k == original.config.query.top_k == 10


def test_text_normalization_copy_is_case_insensitive(tiny_model, tmp_path):
    from splare_lucene.encoder import SplareEncoder

    out = tmp_path / "lc"
    reconfigure(tiny_model, out, text_normalization="lowercase")
    enc = SplareEncoder.from_pretrained(out, device="cpu")
    assert enc.config.text_normalization == "lowercase"
    for kind in ("query", "document"):
        up, low = enc.encode(["The MOON Pulls"], kind)[0], enc.encode(["the moon pulls"], kind)[0]
        assert up.to_dict() == low.to_dict()


def test_labels_are_restamped_unless_the_text_changes(tiny_model, tmp_path):
    from splare_lucene.encoder import model_fingerprint
    from splare_lucene.explain.labels import load_latent_labels

    src = tmp_path / "src"
    reconfigure(tiny_model, src, query_top_k=5)
    fp_src = model_fingerprint(src, SplareConfig.load(src))
    _labels(src, fp_src)
    reconfigure(src, tmp_path / "cut", doc_top_k=7)
    cut_fp = model_fingerprint(tmp_path / "cut", SplareConfig.load(tmp_path / "cut"))
    assert load_latent_labels(tmp_path / "cut").model_fingerprint == cut_fp != fp_src
    reconfigure(src, tmp_path / "lc", text_normalization="lowercase")
    assert load_latent_labels(tmp_path / "lc").model_fingerprint == fp_src  # kept: stale, explain warns


def test_refusals_leave_nothing_behind(tiny_model, tmp_path, capsys):
    out = tmp_path / "m"
    assert cli(["configure", "--model", str(tiny_model), "--output", str(out)]) == 1
    assert "nothing to change" in capsys.readouterr().err and not out.exists()
    assert cli(["configure", "--model", str(tiny_model), "--output", str(out), "--query-top-k", "10"]) == 1
    assert "nothing to change" in capsys.readouterr().err  # 10 is the model's own
    assert cli(["configure", "--model", str(tiny_model), "--output", str(tiny_model), "--query-top-k", "3"]) == 1
    assert "is the same path as the input --model" in capsys.readouterr().err
    assert cli(["configure", "--model", str(tiny_model), "--output", str(tiny_model / "copy"), "--query-top-k", "3"]) == 1
    assert "lies inside the input --model" in capsys.readouterr().err and not (tiny_model / "copy").exists()
    assert SplareConfig.load(tiny_model).query.top_k == 10
    assert cli(["configure", "--model", str(tmp_path / "nope"), "--output", str(out), "--query-top-k", "3"]) == 1
    assert "neither a directory nor a hub id" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    assert cli(["configure", "--model", str(tiny_model), "--output", str(tmp_path / "user"), "--query-top-k", "3",
                "--overwrite"]) == 1
    assert "refusing to replace" in capsys.readouterr().err
    assert (tmp_path / "user" / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(SystemExit) as exc:
        cli(["configure", "--model", str(tiny_model), "--output", str(out), "--query-top-k", "-1"])
    assert exc.value.code == 2


def test_overwrite_replaces_a_model_directory(tiny_model, tmp_path):
    out = tmp_path / "m"
    reconfigure(tiny_model, out, query_top_k=3)
    with pytest.raises(ConfigError, match="already exists; pass --overwrite"):
        reconfigure(tiny_model, out, query_top_k=4)
    reconfigure(tiny_model, out, query_top_k=4, overwrite=True)
    assert SplareConfig.load(out).query.top_k == 4


@pytest.mark.parametrize("augmentation,warned", [(None, True), (0.0, True), (0.5, False)])
def test_lowercase_copy_warns_unless_the_adapter_saw_lower_case(tiny_model, tmp_path, caplog, augmentation,
                                                                 warned):
    """A lower-casing copy of a fine-tuned model warns (measure it first) unless train_report.json
    says the adapter was trained with case augmentation, which includes lower-cased text."""
    import logging

    src = tmp_path / "src"
    reconfigure(tiny_model, src, query_top_k=5)
    config = json.loads((src / "splare_config.json").read_text())
    config["adapter"] = "adapter"  # only the config is read by the check, not the adapter
    (src / "splare_config.json").write_text(json.dumps(config))
    if augmentation is not None:
        (src / "train_report.json").write_text(json.dumps({"config": {"case_augmentation": augmentation}}))
    with caplog.at_level(logging.INFO, logger="splare_lucene.reconfigure"):
        reconfigure(src, tmp_path / "lc", text_normalization="lowercase")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "measure the copy" in r.message]
    assert bool(warnings) == warned
    if not warned:
        assert any("case augmentation 0.5" in r.message for r in caplog.records)
        caplog.clear()  # and back to text as given: also within what the adapter saw
        with caplog.at_level(logging.INFO, logger="splare_lucene.reconfigure"):
            reconfigure(tmp_path / "lc", tmp_path / "none", text_normalization="none")
        assert not [r for r in caplog.records if r.levelno == logging.WARNING and "measure the copy" in r.message]


def test_configure_warns_about_the_query_top_k_as_assemble_does(tiny_backbone, tiny_model, tmp_path, caplog):
    """A copy whose query top-k is 0 (no cut) or above Lucene's 1,024 clauses, of a model wider
    than 1,024 latents, warns and says how to cut; 40, an untouched top-k and a 64-latent model
    (no query can exceed 64 terms) do not."""
    from conftest import make_sae_dir

    wide_sae = make_sae_dir(tmp_path / "wide-sae", d_in=32, d_sae=2048, k=8)
    wide = tmp_path / "wide"
    assert cli(["assemble", "--backbone", str(tiny_backbone), "--sae", str(wide_sae),
                "--output", str(wide)]) == 0
    cases = [(wide, ["--query-top-k", "0"], "0 (no cut)"),
             (wide, ["--query-top-k", "2000"], "2000, above Lucene's default limit"),
             (wide, ["--query-top-k", "40", "--doc-top-k", "7"], None), (wide, ["--doc-top-k", "7"], None),
             (tiny_model, ["--query-top-k", "0"], None)]
    for n, (model, options, warned) in enumerate(cases):
        caplog.clear()
        with caplog.at_level("WARNING", logger="splare_lucene.cli.common"):
            assert cli(["configure", "--model", str(model), "--output", str(tmp_path / f"c{n}")] + options) == 0
        messages = [r.getMessage() for r in caplog.records if r.name == "splare_lucene.cli.common"]
        if warned is None:
            assert messages == [], (model.name, options)
        else:
            assert len(messages) == 1 and f"query top-k is {warned}" in messages[0]
            assert "Pass --query-top-k to cut queries: 40 is the paper's" in messages[0]


def test_configure_a_vocabulary_twin(tiny_backbone, tmp_path, caplog):
    """A vocabulary-head model has no SAE folder: configure --query-top-k still works (the
    clause-limit warning cannot know the width before the model loads, so it speaks up)."""
    import logging

    from splare_lucene.encoder import SplareEncoder

    twin = tmp_path / "twin"
    SplareEncoder.vocabulary(str(tiny_backbone), device="cpu").save_pretrained(twin)
    with caplog.at_level(logging.WARNING):
        assert cli(["configure", "--model", str(twin), "--output", str(tmp_path / "q"), "--query-top-k", "2000"]) == 0
    assert SplareConfig.load(tmp_path / "q").query.top_k == 2000 and "above Lucene's default limit" in caplog.text
