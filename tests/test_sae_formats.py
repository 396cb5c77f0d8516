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
    with pytest.raises(CheckpointError, match=r"must be one of \['jumprelu', 'jumprelu_transcoder', "
                                              r"'skip_transcoder', 'standard', 'topk', "
                                              r"'transcoder'\]; got 'gated'"):
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


# --------------------------------------------------------------------------- hook sites
# Every loader records the site its SAE was trained on (SAEConfig.hook_site); check_site, run when
# a model is built, refuses anything but the residual stream unless allow_any_site.

from splare_lucene.errors import ConfigError  # noqa: E402
from splare_lucene.sae.formats import check_site, parse_hook  # noqa: E402


def _assert_refused(sae, site):
    """check_site refuses ``sae`` naming its site and the override; the override accepts it."""
    assert sae.config.hook_site == site
    with pytest.raises(CheckpointError, match=rf"trained on '{site}' .*--allow-any-site"):
        check_site(sae)
    check_site(sae, allow_any_site=True)


def _assert_accepted(sae, site, layer):
    assert (sae.config.hook_site, sae.config.layer) == (site, layer)
    check_site(sae)


@pytest.mark.parametrize("hook, site, layer", [
    ("blocks.4.hook_resid_post", "resid_post", 4),
    ("blocks.4.hook_resid_pre", "resid_pre", 3),  # the input of block 4 is the output of block 3
    ("blocks.0.hook_resid_pre", "embed", None),
    ("blocks.4.hook_resid_mid", "resid_mid", 4),
    ("blocks.4.hook_mlp_out", "mlp_out", 4),
    ("blocks.4.hook_attn_out", "attn_out", 4),
    ("blocks.4.attn.hook_z", "attn_z", 4),
    ("blocks.4.ln2.hook_normalized", "mlp_in", 4),
    ("blocks.4.mlp.hook_post", "other", 4),
    ("hook_embed", "embed", None),
    ("layers.6", "resid_post", 6),
    ("model.layers.17.output", "resid_post", 17),
    ("layers.6.mlp", "mlp_out", 6),
    ("layers.0.self_attn", "attn_out", 0),
    ("model.layers.17.post_feedforward_layernorm.output", "mlp_out", 17),
    ("model.layers.17.self_attn.o_proj.input", "attn_z", 17),
    ("embed_tokens", "embed", None),
])
def test_parse_hook(hook, site, layer):
    point = parse_hook(hook)
    assert (point.site, point.layer) == (site, layer)


@pytest.mark.parametrize("hook", [None, "", "resid_stream", "blocks.4"])
def test_parse_hook_unknown(hook):
    assert parse_hook(hook) is None


@pytest.mark.parametrize("hook, site", [
    ("blocks.4.hook_resid_post", "resid_post"), ("blocks.5.hook_resid_pre", "resid_pre")])
def test_saelens_residual_site_accepted(tmp_path, hook, site):
    _saelens_checkpoint(tmp_path, {"architecture": "standard", "metadata": {"hook_name": hook}})
    _assert_accepted(load_sae(tmp_path), site, 4)


@pytest.mark.parametrize("hook, site", [
    ("blocks.4.hook_mlp_out", "mlp_out"), ("blocks.4.hook_attn_out", "attn_out"),
    ("blocks.4.attn.hook_z", "attn_z"), ("blocks.4.hook_resid_mid", "resid_mid")])
def test_saelens_other_site_refused(tmp_path, hook, site):
    # SAELens < 6 keeps the hook at the top level (hook_name, or hook_point before 3.0)
    key = "hook_point" if site == "attn_z" else "hook_name"
    _saelens_checkpoint(tmp_path, {"architecture": "standard", "metadata": None, key: hook})
    _assert_refused(load_sae(tmp_path), site)


def test_saelens_transcoder(tmp_path):
    """A SAELens JumpReLU transcoder: its encoder does not subtract b_dec (the output bias)."""
    t = _saelens_checkpoint(tmp_path, {"architecture": "jumprelu_transcoder", "apply_b_dec_to_input": False,
                                       "metadata": {"hook_name": "blocks.4.ln2.hook_normalized",
                                                    "hook_name_out": "blocks.4.hook_mlp_out"}})
    sae = load_sae(tmp_path)
    x = _inputs()
    pre = x @ t["W_enc"] + t["b_enc"]
    torch.testing.assert_close(sae.encode(x), _jumprelu(pre, t["threshold"]))
    assert sae.config.layer == 4
    _assert_refused(sae, "transcoder")


def _gemmascope_at(directory):
    directory.mkdir(parents=True)
    np.savez(directory / "params.npz", **_gemma_tensors())
    return directory


@pytest.mark.parametrize("repo, site", [
    ("gemma-scope-2b-pt-mlp", "mlp_out"), ("gemma-scope-9b-it-att", "attn_z"),
    ("gemma-scope-2b-pt-transcoders", "transcoder"),
    # the Hugging Face cache keeps the repository name: models--google--<repo>/snapshots/<hash>/
    ("models--google--gemma-scope-2b-pt-mlp/snapshots/0123abc", "mlp_out")])
def test_gemmascope_other_site_refused(tmp_path, repo, site):
    directory = _gemmascope_at(tmp_path / repo / "layer_5" / "width_16k" / "average_l0_10")
    _assert_refused(load_sae(directory / "params.npz"), site)


@pytest.mark.parametrize("repo", ["gemma-scope-2b-pt-res", "models--google--gemma-scope-27b-pt-res/snapshots/x"])
def test_gemmascope_residual_site_accepted(tmp_path, repo):
    directory = _gemmascope_at(tmp_path / repo / "layer_5" / "width_16k" / "average_l0_10")
    _assert_accepted(load_sae(directory), "resid_post", 5)


def test_gemmascope_embedding_sae_refused(tmp_path):
    directory = _gemmascope_at(tmp_path / "gemma-scope-2b-pt-res" / "embedding" / "width_4k" / "average_l0_6")
    sae = load_sae(directory)
    assert sae.config.layer is None
    _assert_refused(sae, "embed")


def test_unknown_site_warns_without_refusing(tmp_path, caplog):
    """--local-dir without the repository name: the site is unknown; a warning says how to keep it."""
    sae = load_sae(_gemmascope_at(tmp_path / "my-sae" / "layer_5" / "width_16k" / "average_l0_10"))
    assert (sae.config.hook_site, sae.config.layer) == (None, 5)
    with caplog.at_level("WARNING", logger="splare_lucene.sae.formats"):
        check_site(sae)
    assert "does not say which activation" in caplog.text and "gemma-scope-2b-pt-res" in caplog.text


def _gemmascope2_at(directory, config=None):
    p = {k: torch.from_numpy(v) for k, v in _gemma_tensors(seed=2).items()}
    _save(directory / "params.safetensors", {"w_enc": p["W_enc"], "b_enc": p["b_enc"],
                                             "threshold": p["threshold"], "b_dec": p["b_dec"]})
    if config is not None:
        _write_json(directory / "config.json", config)
    return directory


# Gemma Scope 2 config.json (google/gemma-scope-2-4b-pt <site>/layer_17_width_16k_l0_big/config.json)
_GS2 = {"width": N, "model_name": "google/gemma-3-4b-pt", "architecture": "jump_relu", "l0": 150,
        "affine_connection": False}


@pytest.mark.parametrize("folder, config, site", [
    ("mlp_out", None, "mlp_out"), ("attn_out_all", None, "attn_out"), ("transcoder_all", None, "transcoder"),
    ("mlp_out", {**_GS2, "type": "sae", "hf_hook_point_in": "model.layers.7.post_feedforward_layernorm.output",
                 "hf_hook_point_out": "model.layers.7.post_feedforward_layernorm.output"}, "mlp_out"),
    ("attn_out", {**_GS2, "type": "sae", "hf_hook_point_in": "model.layers.7.self_attn.o_proj.input",
                  "hf_hook_point_out": "model.layers.7.self_attn.o_proj.input"}, "attn_z"),
    # config.json decides when the folder was renamed
    ("renamed", {**_GS2, "type": "transcoder",
                 "hf_hook_point_in": "model.layers.7.pre_feedforward_layernorm.output",
                 "hf_hook_point_out": "model.layers.7.post_feedforward_layernorm.output"}, "transcoder"),
])
def test_gemmascope2_other_site_refused(tmp_path, folder, config, site):
    directory = _gemmascope2_at(tmp_path / folder / "layer_7_width_16k_l0_big", config)
    sae = load_sae(directory)
    assert sae.config.layer == 7
    _assert_refused(sae, site)


@pytest.mark.parametrize("folder, config", [
    ("resid_post", None), ("resid_post_all", None),
    ("renamed", {**_GS2, "type": "sae", "hf_hook_point_in": "model.layers.7.output",
                 "hf_hook_point_out": "model.layers.7.output"})])
def test_gemmascope2_residual_site_accepted(tmp_path, folder, config):
    directory = _gemmascope2_at(tmp_path / folder / "layer_7_width_16k_l0_big", config)
    _assert_accepted(load_sae(directory / "params.safetensors"), "resid_post", 7)


@pytest.mark.parametrize("folder, hp, site", [
    ("Llama3_1-8B-Base-L3A-8x", {"hook_point_in": "blocks.3.hook_attn_out",
                                 "hook_point_out": "blocks.3.hook_attn_out"}, "attn_out"),
    ("Llama3_1-8B-Base-L3M-8x", {"hook_point_in": "blocks.3.hook_mlp_out",
                                 "hook_point_out": "blocks.3.hook_mlp_out"}, "mlp_out"),
    ("Llama3_1-8B-Base-L3TC-8x", {"hook_point_in": "blocks.3.ln2.hook_normalized",
                                  "hook_point_out": "blocks.3.hook_mlp_out"}, "transcoder"),
    ("Llama3_1-8B-Base-L3M-8x", {"hook_point_in": None, "hook_point_out": None}, "mlp_out"),  # the folder says
])
def test_llamascope_other_site_refused(tmp_path, folder, hp, site):
    _llamascope_checkpoint(tmp_path / folder, **hp)
    sae = load_sae(tmp_path / folder)
    assert sae.config.layer == 3
    _assert_refused(sae, site)


@pytest.mark.parametrize("folder, hp", [
    ("Llama3_1-8B-Base-L3R-8x", {}),
    ("L3R", {"hook_point_in": None, "hook_point_out": None}),  # Llama-Scope-R1-Distill folders
])
def test_llamascope_residual_site_accepted(tmp_path, folder, hp):
    _llamascope_checkpoint(tmp_path / folder, **hp)
    _assert_accepted(load_sae(tmp_path / folder), "resid_post", 3)


@pytest.mark.parametrize("hookpoint, site", [
    ("layers.6.mlp", "mlp_out"), ("layers.6.self_attn", "attn_out"), ("embed_tokens", "embed")])
def test_sparsify_other_site_refused(tmp_path, hookpoint, site):
    _sparsify_checkpoint(tmp_path / hookpoint)
    _assert_refused(load_sae(tmp_path / hookpoint), site)


def test_sparsify_transcoder(tmp_path):
    """transcode: true loads (no b_dec subtraction, as sparsify's encode) and is refused."""
    t = _sparsify_checkpoint(tmp_path / "layers.6.mlp", transcode=True, skip_connection=True)
    sae = load_sae(tmp_path / "layers.6.mlp")
    x = _inputs()
    torch.testing.assert_close(sae.encode(x), _topk_relu(x @ t["encoder.weight"].T + t["encoder.bias"], K))
    assert sae.config.layer == 6
    _assert_refused(sae, "transcoder")


def test_sparsify_residual_site_accepted(tmp_path):
    _sparsify_checkpoint(tmp_path / "layers.6")
    _assert_accepted(load_sae(tmp_path / "layers.6"), "resid_post", 6)


def test_native_hook_site_round_trips(tmp_path):
    sae = _native_sae()
    config = SAEConfig.from_dict({**sae.config.to_dict(), "hook_site": "mlp_out"})
    assert SAEConfig.from_dict(config.to_dict()) == config and config.to_dict()["hook_site"] == "mlp_out"
    save_native(build_sae(config, sae.tensors()), tmp_path)
    _assert_refused(load_sae(tmp_path), "mlp_out")


def test_native_config_without_hook_site_reads_as_unknown(tmp_path):
    """sae_config.json files written before hook_site existed (the shipped default model's)."""
    save_native(_native_sae(), tmp_path)
    obj = json.loads((tmp_path / "sae_config.json").read_text())
    del obj["hook_site"]
    (tmp_path / "sae_config.json").write_text(json.dumps(obj))
    assert load_sae(tmp_path).config.hook_site is None


def test_hook_site_is_validated():
    with pytest.raises(ConfigError, match=r"hook_site must be one of \['resid_post', .*got 'residual'"):
        SAEConfig("relu", D, N, hook_site="residual")


def test_train_sae_output_records_resid_post():
    from splare_lucene.train.sae import TopKTrainingSAE

    sae = TopKTrainingSAE(D, N, K, 1.0, torch.zeros(D)).to_inference(layer=3)
    assert (sae.config.hook_site, sae.config.layer) == ("resid_post", 3)
    check_site(sae)
