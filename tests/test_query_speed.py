"""Query encoding speed-ups (splare_lucene/speed.py): the exact SmoothQuant rescaling, the int8
query path's closeness to the float reference, and its refusals (documents, GPUs, bad values)."""

from __future__ import annotations

import pytest
import torch

from conftest import make_backbone, make_sae_dir
from splare_lucene.config import TextSide
from splare_lucene.encoder import SplareEncoder
from splare_lucene.errors import ConfigError

QUERIES = ["why does the ocean have tides", "how to make bread with wild yeast",
           "protecting online accounts from hackers", "the moon and mars"]


@pytest.fixture(scope="module")
def gemma3_model(tmp_path_factory):
    """A tiny Gemma 3 model: its RMSNorms scale by 1 + weight, unlike Llama's."""
    root = tmp_path_factory.mktemp("gemma3")
    backbone = make_backbone(root / "backbone", "gemma3")
    sae = make_sae_dir(root / "sae", d_in=32)
    enc = SplareEncoder.from_components(str(backbone), sae, device="cpu", query=TextSide(32, 0),
                                        document=TextSide(64, 20), quantization_scale=100.0)
    return enc.save_pretrained(root / "model")


def _pooled(enc: SplareEncoder) -> torch.Tensor:
    with torch.inference_mode():
        return enc.pooled(QUERIES, "query", apply_top_k=False).float()  # (B, d_sae)


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_smoothing_is_exact_in_float(family, tiny_model, gemma3_model):
    """Folding the SmoothQuant scales into norms and weights leaves the float model's pooled
    latents unchanged (up to rounding), for both RMSNorm forms (w and 1 + w)."""
    from splare_lucene.speed import activation_maxima, calibration_texts, smooth_

    path = tiny_model if family == "llama" else gemma3_model
    enc = SplareEncoder.from_pretrained(path, device="cpu")
    before = _pooled(enc)
    groups = smooth_(enc.backbone.model, activation_maxima(enc, calibration_texts()))
    assert groups == 3 * len(enc.backbone.model.layers)  # q/k/v, gate/up, down in every block
    norm = enc.backbone.model.layers[0].input_layernorm.weight
    assert not torch.allclose(norm, SplareEncoder.from_pretrained(path, device="cpu")
                              .backbone.model.layers[0].input_layernorm.weight)  # it did rescale
    torch.testing.assert_close(_pooled(enc), before, rtol=1e-4, atol=1e-4)


def test_int8_queries_close_to_reference(tiny_model):
    ref = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    fast = SplareEncoder.from_pretrained(tiny_model, device="cpu", quantize="int8")
    assert fast.query_quantization == "int8" and ref.query_quantization == "none"
    from splare_lucene.speed import Int8DynamicLinear

    kinds = {type(m) for m in fast.backbone.model.modules()}
    assert Int8DynamicLinear in kinds and torch.nn.Linear not in kinds  # every linear layer is int8
    a, b = _pooled(ref), _pooled(fast)
    assert not torch.equal(a, b)  # it is the int8 path, not the reference again
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    assert cosine.min() > 0.95, cosine
    # the sparse vectors keep most of their terms
    for va, vb in zip(ref.encode(QUERIES, "query"), fast.encode(QUERIES, "query")):
        shared = len(set(va.indices.tolist()) & set(vb.indices.tolist()))
        assert shared >= 0.7 * len(va.indices)


def test_int8_refuses_documents(tiny_model):
    fast = SplareEncoder.from_pretrained(tiny_model, device="cpu", quantize="int8")
    with pytest.raises(ConfigError, match="quantized for queries only.*quantize='none'"):
        fast.encode(["a document"], kind="document")
    with pytest.raises(ConfigError, match="queries only"):
        list(fast.encode_stream(["a document"], progress=False))  # kind defaults to document
    assert len(fast.encode(["a query"], kind="query")) == 1


def test_option_validation(tiny_model, tmp_path):
    from splare_lucene.speed import check_query_quantization

    # refused before anything loads: the path does not even exist
    with pytest.raises(ConfigError, match=r"must be one of \['none', 'int8'\]; got 'int4'"):
        SplareEncoder.from_pretrained(tmp_path / "missing", device="cpu", quantize="int4")
    with pytest.raises(ConfigError, match="CPU only.*--device cpu"):
        check_query_quantization("int8", "cuda")
    assert check_query_quantization("none", "cuda") == "none"
    bf16 = SplareEncoder.from_pretrained(tiny_model, device="cpu", dtype="bfloat16")
    with pytest.raises(ConfigError, match="float32 backbone.*bfloat16"):
        bf16.quantize_for_queries("int8")
    fast = SplareEncoder.from_pretrained(tiny_model, device="cpu").quantize_for_queries("int8")
    with pytest.raises(ConfigError, match="already quantized"):
        fast.quantize_for_queries("int8")


@pytest.mark.parametrize("command", [["search", "--index", "x", "--query", "y"],
                                     ["encode-queries", "--queries", "q.tsv", "--output", "o", "--format",
                                      "anserini-tsv"]])
def test_cli_refuses_unknown_query_quantization(command, capsys):
    from splare_lucene.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--query-quantization", "int4"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err
