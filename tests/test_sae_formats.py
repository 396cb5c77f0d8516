"""Each SAE checkpoint format: write a tiny checkpoint in its on-disk layout, load it with
auto-detection, and check ``encode`` against that format's own formula computed here from the
raw tensors (not through toolkit code)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from splare_lucene.errors import CheckpointError
from splare_lucene.sae import build_sae, load_sae
from splare_lucene.sae.config import SAEConfig
from splare_lucene.sae.formats import check_compatible, load_native, save_native

D, N, K = 12, 48, 5  # d_in, d_sae, top-k


def _write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _save(path, tensors):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))


def _inputs(seed=1, scale=1.0):
    torch.manual_seed(seed)
    return torch.randn(6, D) * scale  # (B, d_in)


def _jumprelu(pre, threshold):
    return torch.relu(pre) * (pre > threshold)


def _topk_relu(pre, k):
    """Keep each row's k largest of relu(pre) (EleutherAI/OpenAI TopK), written with argsort."""
    z = torch.relu(pre)
    out = torch.zeros_like(z)
    idx = torch.argsort(z, dim=-1, descending=True)[:, :k]
    return out.scatter(-1, idx, z.gather(-1, idx))


def _assert_some_between(pre, threshold):
    """The data must exercise the jump: some latents in (0, threshold], some above it."""
    assert ((pre > 0) & (pre <= threshold)).sum() > 0
    assert (pre > threshold).sum() > 0


# --------------------------------------------------------------------------- SAELens

def _saelens_checkpoint(directory, cfg, **overrides):
    torch.manual_seed(0)
    tensors = {
        "W_enc": torch.randn(D, N) * 0.5,
        "b_enc": torch.randn(N) * 0.2,
        "W_dec": torch.randn(N, D),
        "b_dec": torch.randn(D) * 0.5,
        "threshold": torch.rand(N) * 1.5,
    }
    tensors.update(overrides)
    tensors = {k: v for k, v in tensors.items() if v is not None}
    base = {"d_in": D, "d_sae": N, "apply_b_dec_to_input": True, "normalize_activations": "none",
            "metadata": {"hook_name": "blocks.4.hook_resid_post"}}
    _write_json(directory / "cfg.json", {**base, **cfg})
    _save(directory / "sae_weights.safetensors", tensors)
    return tensors


@pytest.mark.parametrize("cfg, kind", [
    ({"architecture": "standard"}, "relu"),
    ({"architecture": "jumprelu", "apply_b_dec_to_input": False}, "jumprelu"),
    ({"architecture": "topk", "k": K}, "topk"),
    # SAELens < 6.0: no architecture for TopK, activation_fn_str + kwargs, top-level hook_name
    ({"activation_fn_str": "topk", "activation_fn_kwargs": {"k": K}, "metadata": None,
      "hook_name": "blocks.4.hook_resid_post"}, "topk"),
])
def test_saelens(tmp_path, cfg, kind):
    t = _saelens_checkpoint(tmp_path, cfg)
    sae = load_sae(tmp_path)
    x = _inputs()
    apply_b_dec = cfg.get("apply_b_dec_to_input", True)
    pre = (x - t["b_dec"] * apply_b_dec) @ t["W_enc"] + t["b_enc"]
    if kind == "relu":
        expected = torch.relu(pre)
    elif kind == "jumprelu":
        _assert_some_between(pre, t["threshold"])
        expected = _jumprelu(pre, t["threshold"])
    else:
        expected = _topk_relu(pre, K)
        assert (expected > 0).sum(-1).max() == K < N
    torch.testing.assert_close(sae.encode(x), expected)
    assert (sae.config.source, sae.config.layer, sae.config.architecture) == ("saelens", 4, kind)


def test_saelens_log_threshold(tmp_path):
    torch.manual_seed(3)
    log_threshold = torch.randn(N) * 0.5 - 0.5
    t = _saelens_checkpoint(tmp_path, {"architecture": "jumprelu"}, threshold=None,
                            log_threshold=log_threshold)
    x = _inputs()
    pre = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    _assert_some_between(pre, log_threshold.exp())
    torch.testing.assert_close(load_sae(tmp_path).encode(x), _jumprelu(pre, log_threshold.exp()))


def test_saelens_wrong_shape_names_tensor(tmp_path):
    _saelens_checkpoint(tmp_path, {"architecture": "standard"}, W_enc=torch.randn(D + 1, N))
    with pytest.raises(CheckpointError, match=r"sae_weights.safetensors: tensor 'W_enc' has shape "
                                              r"\(13, 48\); expected \(d_in, d_sae\) = \(12, 48\)"):
        load_sae(tmp_path)


def test_saelens_missing_tensor(tmp_path):
    _saelens_checkpoint(tmp_path, {"architecture": "jumprelu"}, threshold=None)
    with pytest.raises(CheckpointError, match=r"tensor 'threshold' is missing; expected shape"):
        load_sae(tmp_path)


def test_saelens_unsupported_normalize_activations(tmp_path):
    _saelens_checkpoint(tmp_path, {"architecture": "standard",
                                   "normalize_activations": "expected_average_only_in"})
    with pytest.raises(CheckpointError, match=r"normalize_activations='expected_average_only_in' "
                                              r"is unsupported"):
        load_sae(tmp_path)


def test_saelens_unknown_architecture(tmp_path):
    _saelens_checkpoint(tmp_path, {"architecture": "gated"})
    with pytest.raises(CheckpointError, match=r"must be one of \['jumprelu', 'standard', 'topk'\]; "
                                              r"got 'gated'"):
        load_sae(tmp_path)


def test_saelens_missing_weights_file(tmp_path):
    _saelens_checkpoint(tmp_path, {"architecture": "standard"})
    (tmp_path / "sae_weights.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing SAE weights file .*sae_weights"):
        load_sae(tmp_path, format="saelens")
    # auto-detection cannot tell what it is, and says which files each format needs
    with pytest.raises(CheckpointError, match=r"not a recognised.*saelens: cfg.json \+ "
                                              r"sae_weights.safetensors"):
        load_sae(tmp_path)


# --------------------------------------------------------------------------- Gemma Scope

def _gemma_tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "W_enc": (rng.standard_normal((D, N)) * 0.5).astype(np.float32),
        "b_enc": (rng.standard_normal(N) * 0.2).astype(np.float32),
        "threshold": (rng.random(N) * 1.5).astype(np.float32),
        "W_dec": rng.standard_normal((N, D)).astype(np.float32),
        "b_dec": rng.standard_normal(D).astype(np.float32),
    }


def test_gemmascope(tmp_path):
    directory = tmp_path / "layer_5" / "width_16k" / "average_l0_10"
    directory.mkdir(parents=True)
    p = _gemma_tensors()
    np.savez(directory / "params.npz", **p)
    x = _inputs().numpy()
    pre = x @ p["W_enc"] + p["b_enc"]  # no b_dec subtraction, no input scaling
    expected = np.maximum(pre, 0) * (pre > p["threshold"])
    _assert_some_between(torch.from_numpy(pre), torch.from_numpy(p["threshold"]))
    for path in (directory, directory / "params.npz"):  # the directory or the file itself
        sae = load_sae(path)
        torch.testing.assert_close(sae.encode(torch.from_numpy(x)), torch.from_numpy(expected))
        assert (sae.config.source, sae.config.layer) == ("gemmascope", 5)
        assert not sae.config.apply_b_dec_to_input


def test_gemmascope_wrong_shape(tmp_path):
    p = _gemma_tensors()
    p["W_enc"] = p["W_enc"].T.copy()  # Gemma Scope 1 is always (d_in, d_sae)
    np.savez(tmp_path / "params.npz", **p)
    with pytest.raises(CheckpointError, match=r"params.npz: tensor 'W_enc' has shape \(48, 12\)"):
        load_sae(tmp_path)


@pytest.mark.parametrize("transposed", [False, True])
def test_gemmascope2(tmp_path, transposed):
    directory = tmp_path / "resid_post" / "layer_7_width_16k_l0_medium"
    p = {k: torch.from_numpy(v) for k, v in _gemma_tensors(seed=2).items()}
    stored = {"w_enc": p["W_enc"].T if transposed else p["W_enc"], "b_enc": p["b_enc"],
              "threshold": p["threshold"], "w_dec": p["W_dec"].T if transposed else p["W_dec"],
              "b_dec": p["b_dec"]}
    _save(directory / "params.safetensors", stored)
    x = _inputs()
    pre = x @ p["W_enc"] + p["b_enc"]
    _assert_some_between(pre, p["threshold"])
    sae = load_sae(directory)
    torch.testing.assert_close(sae.encode(x), _jumprelu(pre, p["threshold"]))
    torch.testing.assert_close(sae.W_dec, p["W_dec"])
    assert (sae.config.source, sae.config.layer) == ("gemmascope2", 7)


def test_gemmascope2_bad_shape(tmp_path):
    p = {k: torch.from_numpy(v) for k, v in _gemma_tensors().items()}
    p["w_enc"] = torch.randn(D, N + 1)
    _save(tmp_path / "params.safetensors",
          {k: v for k, v in p.items() if k not in ("W_enc", "W_dec")})
    with pytest.raises(CheckpointError, match=r"tensor 'w_enc' has shape \(12, 49\); expected"):
        load_sae(tmp_path / "params.safetensors")


# --------------------------------------------------------------------------- Llama Scope

def _llamascope_checkpoint(directory, **hp):
    torch.manual_seed(4)
    tensors = {
        "encoder.weight": torch.randn(N, D) * 0.5,  # (d_sae, d_in)
        "encoder.bias": torch.randn(N) * 0.2,
        # decoder columns with norms from 0.2 to 3: the norm must matter for the threshold
        "decoder.weight": torch.nn.functional.normalize(torch.randn(D, N), dim=0)
        * torch.linspace(0.2, 3.0, N),
        "decoder.bias": torch.randn(D) * 0.5,
    }
    base = {"d_model": D, "d_sae": N, "hook_point_in": "blocks.3.hook_resid_post",
            "hook_point_out": "blocks.3.hook_resid_post", "act_fn": "jumprelu", "top_k": K,
            "jump_relu_threshold": 0.4, "norm_activation": "dataset-wise",
            "dataset_average_activation_norm": {"in": 7.0, "out": 9.0},
            "sparsity_include_decoder_norm": True, "apply_decoder_bias_to_pre_encoder": False}
    _write_json(directory / "hyperparams.json", {**base, **hp})
    _save(directory / "checkpoints" / "final.safetensors", tensors)
    return tensors


@pytest.mark.parametrize("include_norm, apply_bias", [(True, False), (False, True)])
def test_llamascope(tmp_path, include_norm, apply_bias):
    directory = tmp_path / "Llama3_1-8B-Base-L3R-8x"
    t = _llamascope_checkpoint(directory, sparsity_include_decoder_norm=include_norm,
                               apply_decoder_bias_to_pre_encoder=apply_bias)
    x = _inputs(scale=3.0)
    xs = x * math.sqrt(D) / 7.0  # dataset-wise normalisation
    if apply_bias:
        xs = xs - t["decoder.bias"]
    pre = xs @ t["encoder.weight"].T + t["encoder.bias"]
    norm = t["decoder.weight"].norm(dim=0)  # (d_sae,)
    active = pre * norm > 0.4 if include_norm else pre > 0.4
    expected = torch.where(active, pre, torch.zeros_like(pre))  # value is pre, not pre * norm
    if include_norm:  # the decoder norm changes which latents fire
        assert (active != (pre > 0.4)).sum() > 0
    sae = load_sae(directory)
    torch.testing.assert_close(sae.encode(x), expected)
    assert (sae.config.source, sae.config.layer) == ("llamascope", 3)
    assert sae.config.input_scale == pytest.approx(math.sqrt(D) / 7.0)
    assert sae.config.apply_b_dec_to_input is apply_bias


def test_llamascope_token_wise_unsupported(tmp_path):
    _llamascope_checkpoint(tmp_path, norm_activation="token-wise")
    with pytest.raises(CheckpointError, match=r"norm_activation='token-wise' is unsupported"):
        load_sae(tmp_path)


def test_llamascope_missing_weights_file(tmp_path):
    _llamascope_checkpoint(tmp_path)
    (tmp_path / "checkpoints" / "final.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing SAE weights file .*final.safetensors"):
        load_sae(tmp_path, format="llamascope")


# --------------------------------------------------------------------------- sparsify

def _sparsify_checkpoint(directory, **cfg):
    torch.manual_seed(5)
    tensors = {"encoder.weight": torch.randn(N, D) * 0.5, "encoder.bias": torch.randn(N) * 0.2,
               "W_dec": torch.randn(N, D), "b_dec": torch.randn(D) * 0.5}
    base = {"activation": "topk", "expansion_factor": N // D, "normalize_decoder": True,
            "num_latents": 0, "k": K, "multi_topk": False, "skip_connection": False}
    _write_json(directory / "cfg.json", {**base, **cfg})
    _save(directory / "sae.safetensors", tensors)
    return tensors


def test_sparsify(tmp_path):
    directory = tmp_path / "sae-llama-3.1-8b-32x" / "layers.6"
    t = _sparsify_checkpoint(directory)
    x = _inputs()
    pre = (x - t["b_dec"]) @ t["encoder.weight"].T + t["encoder.bias"]
    expected = _topk_relu(pre, K)
    assert (expected > 0).sum(-1).max() == K
    sae = load_sae(directory)
    torch.testing.assert_close(sae.encode(x), expected)
    assert (sae.config.source, sae.config.layer, sae.config.k) == ("sparsify", 6, K)
    # pointing at the repository root says which sub-directory to pass
    with pytest.raises(CheckpointError, match=r"pass one of them: layers.6 \(sparsify\)"):
        load_sae(directory.parent)


def test_sparsify_latent_count_mismatch(tmp_path):
    _sparsify_checkpoint(tmp_path, num_latents=N * 2)
    with pytest.raises(CheckpointError, match=r"declares 96 latents"):
        load_sae(tmp_path)


# --------------------------------------------------------------------------- native, checks

def _native_sae():
    torch.manual_seed(6)
    config = SAEConfig("jumprelu", d_in=D, d_sae=N, apply_b_dec_to_input=True, input_scale=0.5,
                       layer=2)
    return build_sae(config, {"W_enc": torch.randn(D, N), "b_enc": torch.randn(N) * 0.2,
                              "b_dec": torch.randn(D), "threshold": torch.rand(N),
                              "W_dec": torch.randn(N, D)})


def test_native_round_trip(tmp_path):
    sae = _native_sae()
    save_native(sae, tmp_path)
    x = _inputs()
    for loaded in (load_native(tmp_path), load_sae(tmp_path)):
        assert loaded.config == sae.config
        torch.testing.assert_close(loaded.encode(x), sae.encode(x))


def test_check_compatible():
    sae = _native_sae()
    check_compatible(sae, D, 2)
    check_compatible(sae, D, None)
    with pytest.raises(CheckpointError, match=r"SAE expects d_in=12 but the backbone's hidden size "
                                              r"is 16: this SAE was trained for another model"):
        check_compatible(sae, 16, 2)
    with pytest.raises(CheckpointError, match=r"SAE was trained on layer 2 but the model uses "
                                              r"layer 5; pass --layer 2"):
        check_compatible(sae, D, 5)


def test_detect_fails_on_empty_dir(tmp_path):
    with pytest.raises(CheckpointError, match=r"not a recognised SAE checkpoint; supported "
                                              r"formats: \['gemmascope', 'gemmascope2', "
                                              r"'llamascope', 'saelens', 'sparsify', "
                                              r"'splare-lucene'\]"):
        load_sae(tmp_path)
