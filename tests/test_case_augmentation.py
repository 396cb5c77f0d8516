"""Case augmentation in training (issue 12): which texts are re-cased, into what, reproducibly,
and the settings it refuses."""

from __future__ import annotations

import json

import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.errors import ConfigError
from splare_lucene.train import trainer as trainer_mod
from splare_lucene.train.augment import CASE_VARIANTS, case_augment, title_case
from splare_lucene.train.data import TrainExample
from splare_lucene.train.trainer import TrainConfig

from test_train import _write_examples

BATCH = [TrainExample(f"what is query {i}?", (f"The positive {i}.", f"a Negative {i}"), (3.0, 1.0))
         for i in range(50)]


def _texts(batch):
    return [t for e in batch for t in (e.query, *e.docs)]


def test_title_case_capitalises_each_word_and_keeps_the_rest():
    assert title_case("what's the NASA boundary-layer") == "What's The NASA Boundary-layer"
    assert title_case("  two  spaces") == "  Two  Spaces"  # spacing kept


def test_probability_zero_changes_nothing_and_one_re_cases_every_text():
    assert case_augment(BATCH, 0.0, "k") is BATCH
    out = case_augment(BATCH, 1.0, "k")
    for before, after in zip(_texts(BATCH), _texts(out)):
        assert after in {f(before) for f in CASE_VARIANTS.values()}
    # all three variants occur, and the teacher scores stay with their documents
    assert any(t.isupper() for t in _texts(out)) and any(t.islower() for t in _texts(out))
    assert any(t == title_case(b) != b for b, t in zip(_texts(BATCH), _texts(out)))
    assert [e.scores for e in out] == [e.scores for e in BATCH]


def test_the_draw_depends_on_the_key_only():
    assert case_augment(BATCH, 0.5, "0:0:3") == case_augment(BATCH, 0.5, "0:0:3")
    assert case_augment(BATCH, 0.5, "0:0:3") != case_augment(BATCH, 0.5, "0:0:4")
    changed = sum(a != b for a, b in zip(_texts(BATCH), _texts(case_augment(BATCH, 0.5, "x"))))
    # 150 texts, p = 0.5, and a third of the hits draw a variant that may leave a text as it is
    assert 30 < changed < 110


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_a_probability_outside_0_1_is_refused(p):
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        TrainConfig(case_augmentation=p)
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        case_augment(BATCH, p, "k")


def test_training_sees_re_cased_texts_and_reports_the_setting(tiny_model, tmp_path, monkeypatch):
    seen = []
    forward = trainer_mod._Pooler.forward

    def spy(self, queries, docs):
        seen.extend(queries + docs)
        return forward(self, queries, docs)

    monkeypatch.setattr(trainer_mod._Pooler, "forward", spy)
    data = _write_examples(tmp_path / "ex.jsonl", with_scores=False)
    out = tmp_path / "cased"
    assert cli(["train", "--model", str(tiny_model), "--data", str(data), "--output", str(out),
                "--batch-size", "4", "--max-steps", "2", "--lora-rank", "4", "--temperature", "10",
                "--device", "cpu", "--case-augmentation", "1"]) == 0
    report = json.loads((out / "train_report.json").read_text())
    assert report["config"]["case_augmentation"] == 1.0
    assert seen and any(t.isupper() for t in seen)
    originals = {json.loads(line)["query"] for line in data.read_text().splitlines()}
    assert any(q not in originals for q in seen[:4])


def test_case_augmentation_with_a_lower_casing_model_is_refused_before_mining(tiny_model, tmp_path, capsys):
    data = _write_examples(tmp_path / "ex.jsonl", with_scores=False)
    args = ["train", "--model", str(tiny_model), "--data", str(data), "--output", str(tmp_path / "o"),
            "--case-augmentation", "0.5", "--device", "cpu"]
    assert cli([*args, "--text-normalization", "lowercase"]) == 1
    err = capsys.readouterr().err
    assert "--text-normalization none" in err and "would change nothing" in err
    # a model whose own normalisation lower-cases: the same refusal without the flag
    from splare_lucene.reconfigure import reconfigure

    lower = tmp_path / "lower"
    reconfigure(tiny_model, lower, text_normalization="lowercase")
    assert cli(["train", "--model", str(lower), "--data", str(data), "--output", str(tmp_path / "o2"),
                "--case-augmentation", "0.5", "--device", "cpu"]) == 1
    assert "would change nothing" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()


def test_train_itself_refuses_augmentation_on_a_lower_casing_encoder(tiny_model, tmp_path):
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.train.trainer import train

    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    encoder.config = encoder.config.replace(text_normalization="lowercase")
    with pytest.raises(ConfigError, match="would change nothing"):
        train(encoder, BATCH, TrainConfig(batch_size=4, max_steps=1, case_augmentation=0.5), tmp_path / "o",
              progress=False)
    assert not (tmp_path / "o").exists()


def _readme_command(program: str) -> list[str]:
    """The README's "Train your own" command line that runs ``splare-lucene <program>``, as argv
    (continuation lines joined)."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text[text.index("## Train your own"):]
    block = block[block.index("```bash"):block.index("```", block.index("```bash") + 7)]
    for line in re.sub(r"\\\n\s*", "", block).splitlines():
        if line.startswith(f".venv/bin/splare-lucene {program} "):
            return shlex.split(line)[1:]
    raise AssertionError(f"README's Train your own section has no `splare-lucene {program}` line")


def test_readme_train_command_passes_the_case_augmentation_check(tmp_path, capsys):
    """The README's train command starts from the built-in model (which reads text lower-cased) with
    --case-augmentation: it must pass the check that runs before any data is read. The data path is
    swapped for a missing one, so the run stops at the data, after the check."""
    args = _readme_command("train")
    assert "--case-augmentation" in args
    args[args.index("--data") + 1] = str(tmp_path / "no-such-data")
    args[args.index("--output") + 1] = str(tmp_path / "out")
    assert cli(args) == 1
    err = capsys.readouterr().err
    assert "would change nothing" not in err and "no-such-data" in err
    # and the model the README then searches with is read lower-cased, as the default is
    configure = _readme_command("configure")
    assert configure[configure.index("--text-normalization") + 1] == "lowercase"
