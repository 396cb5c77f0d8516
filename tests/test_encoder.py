"""SplareEncoder: the pooled vectors equal backbone -> SAE -> log1p(relu) -> masked max -> top-k,
computed here step by step; model directories round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from splare_lucene.config import SplareConfig, TextSide
from splare_lucene.encoder import SplareEncoder, length_sorted_batches, resolve_model_dir
from splare_lucene.errors import CheckpointError

from conftest import make_sae_dir

TEXTS = ["the moon drives the ocean tides", "bees pollinate flowers and crops",
         "how to make bread with wild yeast", "chess"]


@pytest.fixture(scope="module")
def encoder(tiny_model):
    return SplareEncoder.from_pretrained(tiny_model, device="cpu")


def _reference(encoder, text: str, kind: str) -> dict[int, float]:
    """The SPLARE formula, spelled out without the toolkit's pooling code."""
    from transformers import AutoModel, AutoTokenizer

    cfg = encoder.config
    side = cfg.side(kind)
    path = cfg.backbone
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    enc = tok([text], truncation=True, max_length=side.max_length, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc, output_hidden_states=True).hidden_states[cfg.layer + 1][0]  # (T, d)
    sae = encoder.sae
    x = h * sae.config.input_scale - sae.b_dec
    pre = x @ sae.W_enc + sae.b_enc
    vals, idx = pre.topk(sae.config.k, dim=-1)
    lat = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    w = torch.log1p(lat.relu())[1:]  # drop BOS (special token)
    pooled = w.max(dim=0).values
    top = pooled.topk(side.top_k)
    return {int(i): float(v) for i, v in zip(top.indices, top.values) if v > 0}


@pytest.mark.parametrize("kind", ["query", "document"])
def test_encode_matches_reference_formula(encoder, kind):
    for text, vec in zip(TEXTS, encoder.encode(TEXTS, kind)):  # batched, padded
        ref = _reference(encoder, text, kind)
        got = vec.to_dict()
        assert set(got) == set(ref)
        np.testing.assert_allclose([got[i] for i in ref], list(ref.values()), rtol=1e-4, atol=1e-5)
        assert vec.nnz <= encoder.config.side(kind).top_k
        assert np.all(np.diff(vec.values) <= 0) and np.all(vec.values > 0)


def test_encode_stream_keeps_input_order(encoder):
    items = [f"{t} {i}" for i, t in enumerate(TEXTS * 5)]
    streamed = list(encoder.encode_stream(items, batch_size=3, progress=False))
    assert [item for item, _ in streamed] == items
    direct = encoder.encode(items[:4])
    for (_, a), b in zip(streamed[:4], direct):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)


def test_length_sorted_batches_cover_every_item_once():
    items = ["a" * n for n in [5, 1, 9, 3, 7, 2, 8]]
    seen = []
    for batch in length_sorted_batches(items, lambda s: s, batch_size=2, window=4):
        seen += [item for _, item in batch]
        lengths = [len(item) for _, item in batch]
        assert lengths == sorted(lengths)
    assert sorted(seen) == sorted(items)


def test_terms_are_quantized_pseudo_tokens(encoder):
    vec = encoder.encode(["bees pollinate flowers"], "query")[0]
    terms = encoder.terms(vec)
    assert terms and all(t.startswith("f") and isinstance(w, int) and w > 0 for t, w in terms.items())
    for i, v in zip(vec.indices, vec.values):
        w = int(np.floor(v * 100 + 0.5))
        assert terms.get(f"f{i}", 0) == w


def test_save_and_load_round_trip(encoder, tmp_path):
    out = encoder.save_pretrained(tmp_path / "copy")
    cfg = json.loads((out / "splare_config.json").read_text())
    assert cfg["architecture"] == "splare" and cfg["layer"] == encoder.config.layer
    assert not (out / "sae" / "W_dec").exists()
    again = SplareEncoder.from_pretrained(out, device="cpu")
    assert again.config == encoder.config
    assert again.fingerprint == encoder.fingerprint
    for a, b in zip(encoder.encode(TEXTS), again.encode(TEXTS)):
        np.testing.assert_array_equal(a.indices, b.indices)
    with pytest.raises(CheckpointError, match="overwrite"):
        encoder.save_pretrained(out)


def test_float16_sae_storage_keeps_rankings_close(encoder, tmp_path):
    half = SplareEncoder.from_pretrained(encoder.save_pretrained(tmp_path / "half", sae_dtype="float16"),
                                         device="cpu")
    a, b = encoder.encode(TEXTS[:1])[0], half.encode(TEXTS[:1])[0]
    assert len(set(a.indices[:5]) & set(b.indices[:5])) >= 4


def test_sae_width_mismatch_is_refused(tiny_backbone, tmp_path):
    sae = make_sae_dir(tmp_path / "wide", d_in=48)
    with pytest.raises(CheckpointError, match="d_in=48"):
        SplareEncoder.from_components(str(tiny_backbone), sae, device="cpu")


def test_sae_layer_mismatch_is_refused(tiny_backbone, tiny_sae):
    with pytest.raises(CheckpointError, match="layer"):
        SplareEncoder.from_components(str(tiny_backbone), tiny_sae, layer=1, device="cpu")


def test_prefix_changes_the_encoding(tiny_backbone, tiny_sae):
    plain = SplareEncoder.from_components(str(tiny_backbone), tiny_sae, device="cpu")
    prefixed = SplareEncoder.from_components(str(tiny_backbone), tiny_sae, device="cpu",
                                             query=TextSide(32, 10, prefix="chess "))
    a = plain.encode(["bees"], "query")[0]
    b = prefixed.encode(["bees"], "query")[0]
    assert a.to_dict() != b.to_dict()


def test_resolve_model_dir_errors(tmp_path):
    with pytest.raises(CheckpointError, match="assemble"):
        resolve_model_dir(tmp_path)
    with pytest.raises(CheckpointError, match="neither a directory nor a hub id"):
        resolve_model_dir("no/such/path/here")


def test_config_in_model_dir_is_the_round_trip_of_the_object(tiny_model):
    cfg = SplareConfig.load(tiny_model)
    assert SplareConfig.from_dict(cfg.to_dict()) == cfg


def test_hub_id_is_fetched_with_huggingface_hub(tiny_model, monkeypatch):
    import huggingface_hub

    asked = []

    def fake_snapshot_download(repo_id, **kwargs):
        asked.append(repo_id)
        return str(tiny_model)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    enc = SplareEncoder.from_pretrained("someorg/splare-tiny", device="cpu")
    assert asked == ["someorg/splare-tiny"] and enc.config == SplareConfig.load(tiny_model)


def test_hub_errors_say_what_to_do(monkeypatch):
    import huggingface_hub

    def offline(repo_id, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError, match="local model directory"):
        resolve_model_dir("someorg/missing")


def test_bfloat16_backbone_runs_and_roughly_agrees(tiny_model, encoder):
    bf16 = SplareEncoder.from_pretrained(tiny_model, device="cpu", dtype="bfloat16")
    assert bf16.backbone.model.dtype == torch.bfloat16
    a, b = encoder.encode(TEXTS[:2]), bf16.encode(TEXTS[:2])
    for x, y in zip(a, b):
        assert len(set(x.indices[:5]) & set(y.indices[:5])) >= 3


def test_save_keeps_the_stored_sae_dtype(encoder, tmp_path):
    from safetensors import safe_open

    half_dir = encoder.save_pretrained(tmp_path / "half", sae_dtype="float16")
    again = SplareEncoder.from_pretrained(half_dir, device="cpu").save_pretrained(tmp_path / "again")
    with safe_open(str(again / "sae" / "sae.safetensors"), "pt") as f:
        assert str(f.get_slice("W_enc").get_dtype()).upper() in ("F16", "FLOAT16")
