"""The model's text normalisation (``SplareConfig.text_normalization``, issue 12): recorded in the
config, applied alike to queries, documents, training batches and explanations, part of the
fingerprint, and set by ``assemble`` / ``train``.

The conftest tokenizer lower-cases by itself (``normalizers.Lowercase``), which would hide every
difference here; these tests use a case-sensitive copy of it (upper-case words are unknown
tokens), as LLM tokenizers are case-sensitive.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.config import CONFIG_NAME, TEXT_NORMALIZATIONS, SplareConfig, TextSide, normalize_text
from splare_lucene.encoder import DEFAULT_MODEL_DIR, SplareEncoder, model_fingerprint
from splare_lucene.errors import CheckpointError, ConfigError

from conftest import make_backbone

UPPER, LOWER = "Tides OCEAN Bread", "tides ocean bread"  # words of the demo vocabulary


@pytest.fixture(scope="module")
def cased_backbone(tmp_path_factory) -> Path:
    """The tiny llama backbone with a case-sensitive tokenizer (its Lowercase normalizer removed)."""
    directory = make_backbone(tmp_path_factory.mktemp("cased") / "llama")
    path = directory / "tokenizer.json"
    spec = json.loads(path.read_text())
    spec["normalizer"] = None
    path.write_text(json.dumps(spec))
    return directory


def _encoder(backbone: Path, sae: Path, normalization: str) -> SplareEncoder:
    return SplareEncoder.from_components(str(backbone), sae, device="cpu", query=TextSide(32, 10),
                                         document=TextSide(64, 20), text_normalization=normalization)


@pytest.fixture(scope="module")
def cased_models(cased_backbone, tiny_sae, tmp_path_factory) -> dict[str, Path]:
    """One saved tiny model directory per normalisation, on the case-sensitive backbone."""
    root = tmp_path_factory.mktemp("norm-models")
    return {n: _encoder(cased_backbone, tiny_sae, n).save_pretrained(root / n) for n in TEXT_NORMALIZATIONS}


def _vec(encoder, text: str, kind: str) -> dict[int, float]:
    return encoder.encode([text], kind=kind)[0].to_dict()


# -- the config field -------------------------------------------------------------------------------


def test_normalize_text_values():
    assert normalize_text("Straße ΣΊΣΥΦΟΣ Hello", "none") == "Straße ΣΊΣΥΦΟΣ Hello"
    # str.lower, not casefold: "ß" stays (casefold would write "ss"), scripts without case unchanged
    assert normalize_text("Straße HELLO 北京", "lowercase") == "straße hello 北京"
    with pytest.raises(ConfigError, match=r"must be one of \['none', 'lowercase'\]; got 'upper'"):
        normalize_text("x", "upper")


@pytest.mark.parametrize("value", ["Lowercase", "casefold", "", None])
def test_unknown_value_is_refused_naming_the_allowed_ones(value):
    with pytest.raises(ConfigError, match=r"text_normalization must be one of \['none', 'lowercase'\]"):
        SplareConfig(backbone="b", layer=1, text_normalization=value)
    d = SplareConfig(backbone="b", layer=1).to_dict()
    d["text_normalization"] = value
    with pytest.raises(ConfigError, match="text_normalization"):  # a saved config with a bad value
        SplareConfig.from_dict(d)


def test_config_round_trips_through_json(tmp_path):
    cfg = SplareConfig(backbone="b", layer=1, text_normalization="lowercase")
    assert cfg.to_dict()["text_normalization"] == "lowercase"
    assert SplareConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    cfg.save(tmp_path)
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["text_normalization"] == "lowercase"
    assert SplareConfig.load(tmp_path) == cfg


def test_old_config_without_the_field_loads_as_none_and_keeps_its_fingerprint(tiny_model, tmp_path):
    old = json.loads((tiny_model / CONFIG_NAME).read_text())
    old.pop("text_normalization", None)  # a config written before the field existed
    old.pop("query_idf_power", None)  # (and before query idf weighting, added later)
    assert SplareConfig.from_dict(old).text_normalization == "none"
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for entry in tiny_model.iterdir():
        if entry.name != CONFIG_NAME:
            (legacy / entry.name).symlink_to(entry)
    (legacy / CONFIG_NAME).write_text(json.dumps(old))
    config = SplareConfig.load(legacy)
    # the same model saved now (with "none" written out) and before hash alike, so the
    # encoded outputs, indexes and latent labels of existing models stay valid
    assert config.fingerprint_dict() == old
    assert model_fingerprint(legacy, config) == model_fingerprint(tiny_model, SplareConfig.load(tiny_model))


def test_shipped_default_model_config_loads_as_written():
    raw = json.loads((DEFAULT_MODEL_DIR / CONFIG_NAME).read_text())
    config = SplareConfig.load(DEFAULT_MODEL_DIR)
    assert config.text_normalization == raw.get("text_normalization", "none")
    assert config.query_idf_power == raw.get("query_idf_power", 0.0)
    newer = ("text_normalization", "query_idf_power")  # fields a config may predate
    assert {k: v for k, v in config.to_dict().items() if k not in newer} == \
        {k: v for k, v in raw.items() if k not in newer}


def test_fingerprint_and_index_key_differ_between_normalizations(cased_models):
    from splare_lucene.pipeline import index_key

    none, lower = (SplareEncoder.from_pretrained(cased_models[n], device="cpu") for n in ("none", "lowercase"))
    assert none.fingerprint != lower.fingerprint
    # evaluate's index cache is keyed by fingerprint: the two never share an index or encoding
    assert index_key(none, "corpus") != index_key(lower, "corpus")


# -- applied alike at document, query and training time ----------------------------------------------


@pytest.mark.parametrize("kind", ["query", "document"])
def test_lowercase_makes_queries_and_documents_case_insensitive(cased_backbone, tiny_sae, kind):
    none = _encoder(cased_backbone, tiny_sae, "none")
    lower = _encoder(cased_backbone, tiny_sae, "lowercase")
    assert _vec(none, UPPER, kind) != _vec(none, LOWER, kind)  # the tokenizer is case-sensitive
    assert _vec(lower, UPPER, kind) == _vec(lower, LOWER, kind) == _vec(none, LOWER, kind)


def test_normalization_comes_before_the_side_prefix(cased_backbone, tiny_sae):
    enc = SplareEncoder.from_components(str(cased_backbone), tiny_sae, device="cpu",
                                        query=TextSide(32, 10, prefix="QUERY: "), text_normalization="lowercase")
    assert enc.prepare_texts(["Ocean TIDES"], "query") == ["QUERY: ocean tides"]  # the prefix is the model's own
    assert enc.prepare_texts(["Ocean TIDES"], "document") == ["ocean tides"]


def test_round_trip_through_save_and_from_pretrained(cased_models):
    loaded = SplareEncoder.from_pretrained(cased_models["lowercase"], device="cpu")
    assert loaded.config.text_normalization == "lowercase"
    assert json.loads((cased_models["lowercase"] / CONFIG_NAME).read_text())["text_normalization"] == "lowercase"
    for kind in ("query", "document"):
        assert _vec(loaded, UPPER, kind) == _vec(loaded, LOWER, kind)
    # saved again (as train does), the value survives
    again = loaded.save_pretrained(cased_models["lowercase"].parent / "again")
    assert SplareConfig.load(again).text_normalization == "lowercase"
    none = SplareEncoder.from_pretrained(cased_models["none"], device="cpu")
    assert _vec(none, UPPER, "query") != _vec(none, LOWER, "query")


def test_explanations_see_the_normalised_text(cased_models):
    from splare_lucene.explain.activations import token_activations

    enc = SplareEncoder.from_pretrained(cased_models["lowercase"], device="cpu")
    upper, lower = token_activations(enc, [UPPER, LOWER], kind="document")
    assert bool((upper.values == lower.values).all())  # the activations the index holds
    assert upper.tokens.text == UPPER and upper.tokens.tokens == ("Tides", "OCEAN", "Bread")  # shown as given
    pooled = enc.pooled([UPPER], "document", apply_top_k=False)[0]
    assert bool((upper.values.max(0).values - pooled).abs().max() < 1e-5)


def _examples(path: Path) -> Path:
    docs = ["The OCEAN has TIDES", "Bread needs YEAST", "Hackers steal ACCOUNTS", "Printing with TYPE"]
    with path.open("w") as f:
        for i in range(8):
            f.write(json.dumps({"query": docs[i % 4].upper(), "positive": docs[i % 4],
                                "negatives": [docs[(i + 1) % 4]], "scores": [5.0, 1.0]}) + "\n")
    return path


def test_training_batches_are_normalised_and_the_flag_sets_the_trained_model(cased_models, tmp_path, monkeypatch):
    import splare_lucene.backbone as backbone_mod

    seen: list[str] = []
    real = backbone_mod.tokenize

    def spy(backbone, texts, *args, **kwargs):
        seen.extend(texts)
        return real(backbone, texts, *args, **kwargs)

    monkeypatch.setattr(backbone_mod, "tokenize", spy)
    out = tmp_path / "trained"
    # the base model says "none"; --text-normalization overrides it for training and the result
    assert cli(["train", "--model", str(cased_models["none"]), "--data", str(_examples(tmp_path / "ex.jsonl")),
                "--output", str(out), "--batch-size", "2", "--max-steps", "2", "--lora-rank", "4",
                "--temperature", "10", "--device", "cpu", "--text-normalization", "lowercase"]) == 0
    assert seen and all(t == t.lower() for t in seen), [t for t in seen if t != t.lower()]
    assert SplareConfig.load(out).text_normalization == "lowercase"


def test_trained_model_inherits_the_base_models_normalization(cased_models, tmp_path):
    out = tmp_path / "trained"
    assert cli(["train", "--model", str(cased_models["lowercase"]), "--data", str(_examples(tmp_path / "ex.jsonl")),
                "--output", str(out), "--batch-size", "2", "--max-steps", "1", "--lora-rank", "4",
                "--temperature", "10", "--device", "cpu"]) == 0
    trained = SplareEncoder.from_pretrained(out, device="cpu")
    assert trained.config.text_normalization == "lowercase"
    assert _vec(trained, UPPER, "query") == _vec(trained, LOWER, "query")


def test_resuming_with_another_normalization_is_refused(cased_models, tmp_path, monkeypatch):
    from conftest import crash_after_checkpoint
    from splare_lucene.train.data import load_examples
    from splare_lucene.train.trainer import TrainConfig, train

    examples = load_examples(str(_examples(tmp_path / "ex.jsonl")), 1, seed=0)
    cfg = TrainConfig(batch_size=2, max_steps=2, save_every=1, lr=1e-2, lora_rank=4, temperature=10.0)
    with crash_after_checkpoint(monkeypatch):
        train(SplareEncoder.from_pretrained(cased_models["none"], device="cpu"), examples, cfg,
              tmp_path / "run", progress=False)
    encoder = SplareEncoder.from_pretrained(cased_models["none"], device="cpu")
    encoder.config = encoder.config.replace(text_normalization="lowercase")
    with pytest.raises(CheckpointError, match="started with text_normalization 'none'.*--text-normalization none"):
        train(encoder, examples, cfg, tmp_path / "run", progress=False)


# -- setting it ----------------------------------------------------------------------------------------


def test_assemble_records_the_flag(cased_backbone, tiny_sae, tmp_path):
    out = tmp_path / "m"
    assert cli(["assemble", "--backbone", str(cased_backbone), "--sae", str(tiny_sae), "--output", str(out),
                "--text-normalization", "lowercase"]) == 0
    assert SplareConfig.load(out).text_normalization == "lowercase"
    assert cli(["assemble", "--backbone", str(cased_backbone), "--sae", str(tiny_sae),
                "--output", str(tmp_path / "plain")]) == 0
    assert SplareConfig.load(tmp_path / "plain").text_normalization == "none"


@pytest.mark.parametrize("command", ["assemble", "train"])
def test_bad_flag_value_is_refused_before_loading(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli([command, "--text-normalization", "upper", "--help-not-reached"])
    assert exc.value.code == 2
    assert "--text-normalization: invalid choice: 'upper'" in capsys.readouterr().err
