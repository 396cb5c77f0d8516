"""SAE checkpoint loaders, one per on-disk format, and format detection.

Every loader returns a :class:`SparseAutoencoder` whose ``encode`` reproduces the format's own
encoding formula; conversions (transposes, folded thresholds, input scaling) happen here once.
docs/sae-formats.md lists the files each format needs and the formula it uses.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import NamedTuple

from ..errors import CheckpointError, ConfigError
from . import build_sae
from .config import HOOK_SITES, RESIDUAL_SITES, SAEConfig

logger = logging.getLogger(__name__)

NATIVE_CONFIG = "sae_config.json"
NATIVE_WEIGHTS = "sae.safetensors"
SAELENS_CONFIG, SAELENS_WEIGHTS = "cfg.json", "sae_weights.safetensors"
GEMMASCOPE_WEIGHTS = "params.npz"
GEMMASCOPE2_WEIGHTS = "params.safetensors"
LLAMASCOPE_CONFIG, LLAMASCOPE_WEIGHTS = "hyperparams.json", "checkpoints/final.safetensors"
SPARSIFY_CONFIG, SPARSIFY_WEIGHTS = "cfg.json", "sae.safetensors"


def save_native(sae, directory: Path, include_decoder: bool = True, dtype: str | None = None) -> None:
    """Write the toolkit's format: ``sae_config.json`` + ``sae.safetensors``."""
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = sae.tensors(include_decoder=include_decoder)
    if dtype is not None:
        tensors = {k: v.to(getattr(torch, dtype)) for k, v in tensors.items()}
    save_file(tensors, str(directory / NATIVE_WEIGHTS))
    sae.config.save(directory / NATIVE_CONFIG)


# ---------------------------------------------------------------------------------------------
# Shared helpers: reading files, checking tensors, parsing layers, building the SAE.


def _read_safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"missing SAE weights file {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def _read_npz(path: Path) -> dict:
    import numpy as np
    import torch

    if not path.is_file():
        raise CheckpointError(f"missing SAE weights file {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: torch.from_numpy(np.array(data[key])) for key in data.files}
    except Exception as exc:  # numpy raises BadZipFile, OSError, ValueError, ...
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"missing SAE config file {path}") from exc
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        raise CheckpointError(f"cannot read SAE config {path}: {exc}") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"SAE config {path} must hold a JSON object; "
                              f"got {type(obj).__name__}")
    return obj


def _positive_int(cfg: dict, key: str, where: Path, default=None) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CheckpointError(f"{where}: {key!r} must be a positive integer; got {value!r}")
    return value


def _unsupported(where: Path, key: str, value, supported) -> CheckpointError:
    return CheckpointError(f"{where}: {key}={value!r} is unsupported; splare-lucene supports "
                           f"{list(supported)}")


def _take(tensors: dict, file: Path, name: str, dims: tuple, required: bool = True):
    """``tensors[name]`` checked against ``dims`` ((label, size), ...); None if optional, absent."""
    labels = "(" + ", ".join(label for label, _ in dims) + ")"
    shape = tuple(size for _, size in dims)
    if name not in tensors:
        if not required:
            return None
        raise CheckpointError(f"{file}: tensor {name!r} is missing; expected shape {labels} = "
                              f"{shape}. Tensors found: {sorted(tensors)}")
    tensor = tensors[name]
    if tuple(tensor.shape) != shape:
        raise CheckpointError(f"{file}: tensor {name!r} has shape {tuple(tensor.shape)}; "
                              f"expected {labels} = {shape}")
    return tensor


def _vector_len(tensors: dict, file: Path, name: str, label: str) -> int:
    """The length of a 1-D tensor that fixes a dimension (``label``) of the SAE."""
    if name not in tensors:
        raise CheckpointError(f"{file}: tensor {name!r} is missing; expected shape ({label},). "
                              f"Tensors found: {sorted(tensors)}")
    if tensors[name].dim() != 1:
        raise CheckpointError(f"{file}: tensor {name!r} has shape {tuple(tensors[name].shape)}; "
                              f"expected ({label},)")
    return len(tensors[name])


# ---------------------------------------------------------------------------------------------
# Hook sites: which activation an SAE was trained on (SAEConfig.hook_site) and its layer.


class HookPoint(NamedTuple):
    """A parsed hook name: the site (a ``HOOK_SITES`` key) and the block index in the name."""

    site: str
    block: int | None

    @property
    def layer(self) -> int | None:
        """The toolkit's layer (the residual stream after block ``layer``, hidden_states[L+1]).

        ``resid_pre`` of block L is the output of block L-1. For other sites, the block itself:
        with ``--allow-any-site`` the SAE then reads the residual stream after that block."""
        if self.block is None:
            return None
        layer = self.block - 1 if self.site == "resid_pre" else self.block
        return layer if layer >= 0 else None


# TransformerLens hook names (SAELens cfg.json hook_name, Llama Scope hook_point_in): suffix -> site
_TL_HOOK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_TL_SITES = {
    "hook_resid_post": "resid_post", "hook_resid_pre": "resid_pre", "hook_resid_mid": "resid_mid",
    "hook_mlp_out": "mlp_out", "hook_attn_out": "attn_out", "attn.hook_z": "attn_z",
    "ln2.hook_normalized": "mlp_in", "hook_mlp_in": "mlp_in", "mlp.hook_in": "mlp_in",
}
# transformers module names (sparsify hookpoint folders, Gemma Scope 2 hf_hook_point_in):
# [model.|transformer.|gpt_neox.|language_model.]*(layers|h).L[.submodule][.output|.input]
_HF_HOOK = re.compile(r"^(?:(?:model|transformer|gpt_neox|language_model)\.)*(?:layers|h)\.(\d+)"
                      r"((?:\.[A-Za-z_][\w]*)*)$")
_HF_SITES = {
    "": "resid_post", ".output": "resid_post",
    ".mlp": "mlp_out", ".mlp.output": "mlp_out",
    ".post_feedforward_layernorm": "mlp_out", ".post_feedforward_layernorm.output": "mlp_out",
    ".self_attn": "attn_out", ".self_attn.output": "attn_out", ".attention": "attn_out",
    ".attn": "attn_out", ".self_attn.o_proj.input": "attn_z",
    ".pre_feedforward_layernorm": "mlp_in", ".pre_feedforward_layernorm.output": "mlp_in",
}
_EMBED_HOOKS = {"hook_embed", "embed_tokens", "model.embed_tokens", "embedding"}


def parse_hook(hook: str | None) -> HookPoint | None:
    """A hook name -> its :class:`HookPoint`; None when empty or not recognised.

    ``blocks.12.hook_resid_post`` -> (resid_post, 12); ``blocks.12.hook_mlp_out`` -> (mlp_out, 12);
    ``layers.6`` / ``model.layers.6.output`` -> (resid_post, 6); ``layers.6.mlp`` -> (mlp_out, 6);
    ``hook_embed`` -> (embed, None).
    """
    if not hook:
        return None
    hook = hook.strip()
    if hook in _EMBED_HOOKS:
        return HookPoint("embed", None)
    match = _TL_HOOK.match(hook)
    if match:
        site, block = _TL_SITES.get(match.group(2), "other"), int(match.group(1))
        if site == "resid_pre" and block == 0:  # the input of block 0: the token embeddings
            return HookPoint("embed", None)
        return HookPoint(site, block)
    match = _HF_HOOK.match(hook)
    if match:
        return HookPoint(_HF_SITES.get(match.group(2), "other"), int(match.group(1)))
    return None


def layer_from_hook(hook: str | None) -> int | None:
    """``blocks.L.hook_resid_post`` / ``layers.L`` -> L; None (with a warning) when unknown."""
    point = parse_hook(hook)
    if point is None:
        if hook:
            logger.warning("cannot tell the site or the layer of SAE hook %r (expected names like "
                           "blocks.L.hook_resid_post or layers.L): the SAE may not read the residual "
                           "stream, and its layer is not checked against the model's", hook)
        return None
    return point.layer


def _site_from_hook(hook: str | None, where) -> tuple[str | None, int | None]:
    """(hook_site, layer) read from a hook name; (None, None) with a warning when unknown."""
    point = parse_hook(hook)
    if point is None:
        layer_from_hook(hook)  # the warning
        return None, None
    logger.debug("%s: hook %r is site %s, layer %s", where, hook, point.site, point.layer)
    return point.site, point.layer


def _path_parts(path: Path) -> list[str]:
    """The components of ``path``, innermost first, names kept.

    abspath, not resolve: the Hugging Face cache links files to blobs/<hash>, losing the names."""
    return list(reversed(Path(os.path.abspath(path)).parts))


def _layer_from_path(path: Path) -> int | None:
    """Gemma Scope keeps the layer in the path: ``layer_12/width_16k/...`` (Gemma Scope) or
    ``layer_12_width_16k_l0_medium`` (Gemma Scope 2)."""
    for part in _path_parts(path):
        match = re.match(r"^layer_(\d+)(?:_|$)", part)
        if match:
            return int(match.group(1))
    return None


# Gemma Scope 1 repositories name the site: google/gemma-scope-2b-pt-res, -mlp, -att, -transcoders
# (the Hugging Face cache keeps it as models--google--gemma-scope-2b-pt-res). SAELens maps -att to
# blocks.L.attn.hook_z and -transcoders to ln2.hook_normalized -> hook_mlp_out
# (sae_lens/loading/pretrained_sae_loaders.py, get_gemma_2_config_from_hf).
_GEMMASCOPE_REPO = re.compile(r"gemma-scope-\d+b-(?:pt|it)-(res|mlp|att|transcoders)(?![a-z])")
_GEMMASCOPE_SITES = {"res": "resid_post", "mlp": "mlp_out", "att": "attn_z", "transcoders": "transcoder"}


def _gemmascope_site(path: Path) -> str | None:
    parts = _path_parts(path)
    if "embedding" in parts:  # gemma-scope-*-res/embedding/width_4k/...: the token embeddings
        return "embed"
    for part in parts:
        match = _GEMMASCOPE_REPO.search(part)
        if match:
            return _GEMMASCOPE_SITES[match.group(1)]
    return None


# Gemma Scope 2 (google/gemma-scope-2-*) keeps one folder per site: resid_post/, mlp_out/,
# attn_out/, transcoder/ (and *_all/ for every layer), clt/, crosscoder/; each SAE folder also holds
# a config.json with "type" (sae, transcoder, clt, crosscoder) and "hf_hook_point_in"
# (model.layers.L.output, ...post_feedforward_layernorm.output, ...self_attn.o_proj.input).
_GEMMASCOPE2_FOLDERS = {"resid_post": "resid_post", "mlp_out": "mlp_out", "attn_out": "attn_out",
                        "transcoder": "transcoder", "clt": "transcoder", "crosscoder": "crosscoder"}
_GEMMASCOPE2_TYPES = {"transcoder": "transcoder", "clt": "transcoder", "crosscoder": "crosscoder"}


def _gemmascope2_site(path: Path, folder: Path) -> tuple[str | None, int | None]:
    """(site, layer) from the SAE folder's config.json, else from the site folder's name."""
    config = folder / "config.json"
    if config.is_file():
        cfg = _read_json(config)
        kind = cfg.get("type")
        if kind in _GEMMASCOPE2_TYPES:
            return _GEMMASCOPE2_TYPES[kind], _layer_from_path(path)
        site, layer = _site_from_hook(cfg.get("hf_hook_point_in"), config)
        if site is not None:
            return site, layer if layer is not None else _layer_from_path(path)
    for part in _path_parts(path):
        site = _GEMMASCOPE2_FOLDERS.get(part.removesuffix("_all"))
        if site is not None:
            return site, _layer_from_path(path)
    return None, _layer_from_path(path)


# Llama Scope folders end in L<layer><site>: Llama3_1-8B-Base-L26R-32x (R residual, A attention
# output, M MLP output, TC transcoder), as in fnlp/Llama3_1-8B-Base-LX{R,A,M,TC}-{8x,32x}.
_LLAMASCOPE_FOLDER = re.compile(r"(?:^|[-_])L(\d+)(TC|R|A|M)(?:[-_]|$)")
_LLAMASCOPE_SITES = {"R": "resid_post", "A": "attn_out", "M": "mlp_out", "TC": "transcoder"}


def _llamascope_site(hp: dict, directory: Path, where: Path) -> tuple[str | None, int | None]:
    """(site, layer): hook_point_in (and hook_point_out: a transcoder maps one to another), else
    the folder name."""
    hook_in, hook_out = hp.get("hook_point_in"), hp.get("hook_point_out")
    point = parse_hook(hook_in)
    if hook_in and hook_out and hook_out != hook_in:
        return "transcoder", point.block if point else None
    if point is not None:
        return point.site, point.layer
    match = _LLAMASCOPE_FOLDER.search(Path(os.path.abspath(directory)).name)
    if match:
        return _LLAMASCOPE_SITES[match.group(2)], int(match.group(1))
    return _site_from_hook(hook_in, where)


def _has(path: Path, filename: str) -> bool:
    """``path`` is the file ``filename`` or a directory holding it."""
    return (path.is_file() and path.name == filename) or (path / filename).is_file()


def _locate(path: Path, filename: str) -> Path:
    path = Path(path)
    return path if path.is_file() else path / filename


def _build(where: Path, tensors: dict, dtype, **config):
    """SAEConfig(**config) and the SAE, tensors cast to ``dtype`` (float32 by default)."""
    import torch

    try:
        sae_config = SAEConfig(**config)
    except ConfigError as exc:
        raise CheckpointError(f"{where}: {exc}") from exc
    target = dtype if dtype is not None else torch.float32
    tensors = {k: v.to(target).contiguous() for k, v in tensors.items() if v is not None}
    return build_sae(sae_config, tensors)


# ---------------------------------------------------------------------------------------------
# Loaders, one per format.


def load_native(directory: Path, dtype=None):
    directory = Path(directory)
    config = SAEConfig.load(directory / NATIVE_CONFIG)
    tensors = _read_safetensors(directory / NATIVE_WEIGHTS)
    missing = {"W_enc", "b_enc"} - set(tensors)
    if missing:
        raise CheckpointError(f"{directory / NATIVE_WEIGHTS} lacks tensors {sorted(missing)}")
    stored = str(tensors["W_enc"].dtype).removeprefix("torch.")
    if dtype is not None:
        tensors = {k: v.to(dtype) for k, v in tensors.items()}
    else:
        tensors = {k: v.float() for k, v in tensors.items()}
    sae = build_sae(config, tensors)
    sae.storage_dtype = stored  # what the file held (float16 halves a shipped model's size)
    return sae


# SAELens transcoders (sae_lens/saes/transcoder.py) encode like their SAE counterparts but never
# subtract b_dec (it has the output's size): architecture -> ours.
_SAELENS_TRANSCODERS = {"transcoder": "relu", "skip_transcoder": "relu", "jumprelu_transcoder": "jumprelu"}


def _saelens_activation(cfg: dict, where: Path) -> tuple[str, int | None]:
    """SAELens architecture (+ pre-6.0 activation_fn_str) -> (our architecture, k)."""
    kwargs = cfg.get("activation_fn_kwargs") or {}
    architecture = cfg.get("architecture", "standard")  # pre-6.0 configs may lack it
    if architecture in _SAELENS_TRANSCODERS:
        return _SAELENS_TRANSCODERS[architecture], None
    if architecture == "standard":
        # Before SAELens 6.0, TopK SAEs were "standard" with activation_fn_str "topk".
        activation = cfg.get("activation_fn", cfg.get("activation_fn_str", "relu"))
        if activation == "topk":
            return "topk", kwargs.get("k")
        if activation in (None, "relu"):
            return "relu", None
        raise _unsupported(where, "activation_fn", activation, ["relu", "topk"])
    if architecture == "jumprelu":
        return "jumprelu", None
    if architecture == "topk":
        if cfg.get("rescale_acts_by_decoder_norm"):
            raise _unsupported(where, "rescale_acts_by_decoder_norm", True, [False])
        return "topk", cfg.get("k", kwargs.get("k"))
    raise CheckpointError(f"{where}: SAELens architecture must be one of "
                          f"{sorted(['jumprelu', 'standard', 'topk', *_SAELENS_TRANSCODERS])}; "
                          f"got {architecture!r}")


def load_saelens(directory: Path, dtype=None):
    directory = Path(directory)
    where, file = directory / SAELENS_CONFIG, directory / SAELENS_WEIGHTS
    cfg = _read_json(where)
    architecture, k = _saelens_activation(cfg, where)
    normalize = cfg.get("normalize_activations")
    if normalize not in (None, "none", False):  # pre-6.0 configs used a bool
        raise _unsupported(where, "normalize_activations", normalize, ["none", None])
    d_in, d_sae = _positive_int(cfg, "d_in", where), _positive_int(cfg, "d_sae", where)
    # SAELens >= 6 keeps the hooks under metadata; older configs at the top (hook_point before 3.0)
    meta = cfg.get("metadata") or {}
    hook = meta.get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point")
    hook_out = meta.get("hook_name_out") or cfg.get("hook_name_out")
    site, layer = _site_from_hook(hook, where)
    transcoder = cfg.get("architecture") in _SAELENS_TRANSCODERS or bool(hook_out and hook_out != hook)
    if transcoder:
        site = "transcoder"
    # SAELens's default is True; its transcoders refuse it (b_dec has the output's size)
    apply_b_dec = not transcoder and bool(cfg.get("apply_b_dec_to_input", True))
    t = _read_safetensors(file)
    din, dsae = ("d_in", d_in), ("d_sae", d_sae)
    tensors = {
        "W_enc": _take(t, file, "W_enc", (din, dsae)),
        "b_enc": _take(t, file, "b_enc", (dsae,)),
        # a transcoder's decoder maps to the output (d_out): not needed, not kept
        "b_dec": None if transcoder else _take(t, file, "b_dec", (din,), required=apply_b_dec),
        "W_dec": None if transcoder else _take(t, file, "W_dec", (dsae, din), required=False),
    }
    if architecture == "jumprelu":
        if "threshold" not in t and "log_threshold" in t:  # SAELens training checkpoints
            tensors["threshold"] = _take(t, file, "log_threshold", (dsae,)).float().exp()
        else:
            tensors["threshold"] = _take(t, file, "threshold", (dsae,))
    return _build(where, tensors, dtype, architecture=architecture, d_in=d_in, d_sae=d_sae, k=k,
                  apply_b_dec_to_input=apply_b_dec, layer=layer, source="saelens", hook_site=site)


def _matrix(tensors: dict, file: Path, name: str, rows: tuple, cols: tuple, required: bool,
            transposable: bool):
    """``tensors[name]`` as (rows, cols); Gemma Scope 2 files may store it the other way round."""
    tensor = tensors.get(name)
    if (transposable and tensor is not None and rows[1] != cols[1]
            and tuple(tensor.shape) == (cols[1], rows[1])):
        return tensor.T
    return _take(tensors, file, name, (rows, cols), required=required)


def _gemma(path: Path, file: Path, t: dict, enc: str, dec: str, source: str, dtype,
           site: str | None, layer: int | None, transposable: bool = False):
    """Gemma Scope 1 and 2: JumpReLU on x @ W_enc + b_enc; b_dec is not subtracted."""
    d_sae, d_in = _vector_len(t, file, "b_enc", "d_sae"), _vector_len(t, file, "b_dec", "d_in")
    din, dsae = ("d_in", d_in), ("d_sae", d_sae)
    tensors = {
        "W_enc": _matrix(t, file, enc, din, dsae, True, transposable),
        "b_enc": t["b_enc"],
        "b_dec": t["b_dec"],
        "threshold": _take(t, file, "threshold", (dsae,)),
        "W_dec": _matrix(t, file, dec, dsae, din, False, transposable),
    }
    return _build(file, tensors, dtype, architecture="jumprelu", d_in=d_in, d_sae=d_sae,
                  apply_b_dec_to_input=False, layer=layer, source=source, hook_site=site)


def load_gemmascope(path: Path, dtype=None):
    file = _locate(path, GEMMASCOPE_WEIGHTS)
    site = _gemmascope_site(file)
    layer = _layer_from_path(file) if site != "embed" else None
    return _gemma(path, file, _read_npz(file), "W_enc", "W_dec", "gemmascope", dtype, site, layer)


def load_gemmascope2(path: Path, dtype=None):
    file = _locate(path, GEMMASCOPE2_WEIGHTS)
    site, layer = _gemmascope2_site(file, file.parent)
    return _gemma(path, file, _read_safetensors(file), "w_enc", "w_dec", "gemmascope2", dtype,
                  site, layer, transposable=True)


def _llamascope_scale(hp: dict, where: Path, d_in: int) -> float:
    """norm_activation "dataset-wise": inputs are scaled by sqrt(d_model) / mean ||x||."""
    mode = hp.get("norm_activation", "none")
    if mode in (None, "none"):
        return 1.0
    if mode != "dataset-wise":
        raise _unsupported(where, "norm_activation", mode, ["dataset-wise", "none"])
    norm_in = (hp.get("dataset_average_activation_norm") or {}).get("in")
    if isinstance(norm_in, bool) or not isinstance(norm_in, (int, float)) or not norm_in > 0:
        raise CheckpointError(f"{where}: norm_activation is 'dataset-wise' but "
                              f"dataset_average_activation_norm.in is {norm_in!r}; expected the "
                              "positive mean L2 norm of the layer's activations")
    return math.sqrt(d_in) / norm_in


def _llamascope_activation(hp: dict, where: Path) -> tuple[str, int | None, float | None]:
    """-> (architecture, k, scalar threshold). A jump_relu_threshold makes it JumpReLU: Llama
    Scope trained TopK SAEs and converted them, so top_k is then only informational."""
    threshold = hp.get("jump_relu_threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
            raise CheckpointError(f"{where}: jump_relu_threshold must be a number >= 0; "
                                  f"got {threshold!r}")
        return "jumprelu", None, float(threshold)
    activation = hp.get("act_fn", "relu")
    if activation == "topk":
        if hp.get("sparsity_include_decoder_norm"):
            # top-k of pre * ||d_j|| with output pre is not a plain TopK of one pre-activation.
            raise CheckpointError(f"{where}: act_fn 'topk' with sparsity_include_decoder_norm is "
                                  "unsupported; use a checkpoint with jump_relu_threshold")
        return "topk", hp.get("top_k"), None
    if activation == "relu":
        return "relu", None, None
    raise _unsupported(where, "act_fn", activation, ["jumprelu", "topk", "relu"])


def _fold_decoder_norm(threshold: float, decoder, d_sae: int):
    """Per-latent threshold so that pre_j > t_j  <=>  pre_j * ||decoder[:, j]|| > threshold."""
    import torch

    if decoder is None:
        return torch.full((d_sae,), threshold)
    norm = decoder.float().norm(dim=0)  # (d_sae,): decoder.weight is (d_in, d_sae)
    # a latent with a zero decoder column can never pass: pre * 0 > threshold >= 0 is false
    return torch.where(norm > 0, threshold / norm, torch.full_like(norm, math.inf))


def load_llamascope(directory: Path, dtype=None):
    directory = Path(directory)
    where, file = directory / LLAMASCOPE_CONFIG, directory / LLAMASCOPE_WEIGHTS
    hp = _read_json(where)
    d_in = _positive_int(hp, "d_model", where)
    d_sae = _positive_int(hp, "d_sae", where, default=d_in * hp.get("expansion_factor", 0))
    architecture, k, threshold = _llamascope_activation(hp, where)
    scale = _llamascope_scale(hp, where, d_in)
    site, layer = _llamascope_site(hp, directory, where)
    apply_b_dec = bool(hp.get("apply_decoder_bias_to_pre_encoder", False))
    use_norm = architecture == "jumprelu" and bool(hp.get("sparsity_include_decoder_norm"))
    t = _read_safetensors(file)
    din, dsae = ("d_in", d_in), ("d_sae", d_sae)
    decoder = _take(t, file, "decoder.weight", (din, dsae), required=use_norm)
    tensors = {
        "W_enc": _take(t, file, "encoder.weight", (dsae, din)).T,
        "b_enc": _take(t, file, "encoder.bias", (dsae,)),
        "b_dec": _take(t, file, "decoder.bias", (din,), required=apply_b_dec),
        "W_dec": decoder.T if decoder is not None else None,
    }
    if architecture == "jumprelu":
        tensors["threshold"] = _fold_decoder_norm(threshold, decoder if use_norm else None, d_sae)
    return _build(where, tensors, dtype, architecture=architecture, d_in=d_in, d_sae=d_sae, k=k,
                  apply_b_dec_to_input=apply_b_dec, input_scale=scale, layer=layer,
                  source="llamascope", hook_site=site)


def load_sparsify(directory: Path, dtype=None):
    directory = Path(directory)
    where, file = directory / SPARSIFY_CONFIG, directory / SPARSIFY_WEIGHTS
    cfg = _read_json(where)
    activation = cfg.get("activation", "topk")  # older sparsify configs predate the key
    if activation != "topk":
        raise _unsupported(where, "activation", activation, ["topk"])
    # A transcoder (transcode: true) reads the MLP input and does not subtract b_dec
    # (sparsify/sparse_coder.py, SparseCoder.encode); it loads, and building a model refuses it.
    transcoder = bool(cfg.get("transcode"))
    t = _read_safetensors(file)
    d_in = _vector_len(t, file, "b_dec", "d_in")
    d_sae = _vector_len(t, file, "encoder.bias", "d_sae")
    declared = cfg.get("num_latents") or d_in * cfg.get("expansion_factor", 0)
    if declared and declared != d_sae:
        raise CheckpointError(f"{where} declares {declared} latents (num_latents, or d_in x "
                              f"expansion_factor) but {file} has encoder.bias of length {d_sae}")
    din, dsae = ("d_in", d_in), ("d_sae", d_sae)
    tensors = {
        "W_enc": _take(t, file, "encoder.weight", (dsae, din)).T,
        "b_enc": t["encoder.bias"],
        "b_dec": t["b_dec"],
        "W_dec": _take(t, file, "W_dec", (dsae, din), required=False),
    }
    # sparsify saves one directory per hookpoint, named after it: .../layers.6/cfg.json (the
    # residual stream after block 6), layers.6.mlp, layers.6.self_attn, embed_tokens, ...
    site, layer = _site_from_hook(Path(os.path.abspath(directory)).name, where)
    if transcoder:
        site = "transcoder"
    return _build(where, tensors, dtype, architecture="topk", d_in=d_in, d_sae=d_sae,
                  k=cfg.get("k"), apply_b_dec_to_input=not transcoder, layer=layer,
                  source="sparsify", hook_site=site)


# ---------------------------------------------------------------------------------------------
# Registry and detection.

# name -> (detector(path) -> bool, loader(path, dtype) -> SparseAutoencoder); first match wins.
FORMATS: dict[str, tuple] = {}
FORMAT_FILES: dict[str, str] = {}  # name -> the files it needs, for error messages


def register_format(name: str, detect, load, files: str = "") -> None:
    if name in FORMATS:
        raise ValueError(f"SAE format {name!r} is already registered")
    FORMATS[name] = (detect, load)
    FORMAT_FILES[name] = files


def _dir_with(*names: str):
    return lambda p: p.is_dir() and all((p / n).is_file() for n in names)


register_format("splare-lucene", lambda d: (d / NATIVE_CONFIG).is_file(), load_native,
                f"{NATIVE_CONFIG} + {NATIVE_WEIGHTS}")
register_format("saelens", _dir_with(SAELENS_CONFIG, SAELENS_WEIGHTS), load_saelens,
                f"{SAELENS_CONFIG} + {SAELENS_WEIGHTS}")
register_format("gemmascope", lambda p: _has(p, GEMMASCOPE_WEIGHTS), load_gemmascope,
                GEMMASCOPE_WEIGHTS)
register_format("gemmascope2", lambda p: _has(p, GEMMASCOPE2_WEIGHTS), load_gemmascope2,
                GEMMASCOPE2_WEIGHTS)
register_format("llamascope", _dir_with(LLAMASCOPE_CONFIG, LLAMASCOPE_WEIGHTS), load_llamascope,
                f"{LLAMASCOPE_CONFIG} + {LLAMASCOPE_WEIGHTS}")
register_format("sparsify", _dir_with(SPARSIFY_CONFIG, SPARSIFY_WEIGHTS), load_sparsify,
                f"{SPARSIFY_CONFIG} + {SPARSIFY_WEIGHTS}")


def _match(path: Path) -> str | None:
    for name, (detect, _) in FORMATS.items():
        if detect(path):
            return name
    return None


# Pickle-based checkpoint suffixes (torch.save, pickle): never loaded, since unpickling runs code
# named in the file. Every supported format reads safetensors or npz without pickle
# (``_read_safetensors``, ``_read_npz``); these only make the refusal say how to convert.
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle")


def _pickle_refusal(path: Path) -> CheckpointError | None:
    """The error for an SAE given only as pickle files (``path`` or the files directly in it)."""
    files = [path] if path.is_file() else sorted(path.iterdir()) if path.is_dir() else []
    pickles = [f for f in files if f.is_file() and f.suffix.lower() in PICKLE_SUFFIXES]
    if not pickles:
        return None
    names = ", ".join(f.name for f in pickles[:5])
    return CheckpointError(
        f"{path}: the SAE weights here are pickle files ({names}), which splare-lucene does not load: "
        "unpickling runs code named in the file. Convert a file you trust to safetensors and give it "
        "the file names of a supported format, e.g. for SAELens: `python -c \"import torch; "
        "from safetensors.torch import save_file; save_file(torch.load('sae_weights.pt', "
        "weights_only=True), 'sae_weights.safetensors')\"` beside cfg.json (docs/sae-formats.md "
        "lists the files each format needs)")


def detect_format(path: Path) -> str:
    """The name of the registered format ``path`` is in. Raises CheckpointError when none
    matches, saying which files each format needs, and refusing pickle-only checkpoints
    (``.pt``, ``.bin``, ...) with the command that converts them."""
    path = Path(path)
    name = _match(path)
    if name is not None:
        return name
    refusal = _pickle_refusal(path)
    if refusal is not None:
        raise refusal
    needs = "; ".join(f"{n}: {files}" for n, files in FORMAT_FILES.items())
    hint = ""
    if path.is_dir():  # e.g. a whole sparsify or Llama Scope repo, one SAE per sub-directory
        found = [f"{c.name} ({n})" for c in sorted(path.iterdir()) if c.is_dir()
                 for n in [_match(c)] if n]
        if found:
            hint = f". It holds SAEs in sub-directories, pass one of them: {', '.join(found[:5])}"
            hint += ", ..." if len(found) > 5 else ""
    raise CheckpointError(
        f"{path} is not a recognised SAE checkpoint; supported formats: {sorted(FORMATS)} "
        f"(files each needs: {needs}; see docs/sae-formats.md){hint}"
    )


def load_sae(path, *, format: str | None = None, dtype=None):
    """Load an SAE from ``path`` (a directory, or a file for single-file formats)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"SAE checkpoint not found: {path}")
    name = format or detect_format(path)
    if name not in FORMATS:
        raise CheckpointError(f"SAE format must be one of {sorted(FORMATS)}; got {name!r}")
    sae = FORMATS[name][1](path, dtype)
    logger.info("loaded %s SAE (%s, d_in=%d, d_sae=%d, layer=%s, site=%s) from %s", name,
                sae.config.architecture, sae.config.d_in, sae.config.d_sae, sae.config.layer,
                sae.config.hook_site or "unknown", path)
    return sae


# How each format tells its site, for the warning about an SAE whose site is unknown.
_SITE_HINTS = {
    "gemmascope": "Gemma Scope keeps it in the repository name: keep it in the path, e.g. "
                  "`--local-dir gemma-scope-2b-pt-res` (the -res repositories are the residual "
                  "stream; -mlp, -att and -transcoders are not)",
    "gemmascope2": "Gemma Scope 2 keeps it in the folder (resid_post/, mlp_out/, attn_out/, "
                   "transcoder/) and in config.json: download them with the weights",
    "llamascope": "Llama Scope keeps it in hyperparams.json (hook_point_in) and the folder name "
                  "(L26R: residual stream; L26A, L26M, L26TC are not)",
    "sparsify": "sparsify names the folder after the hookpoint (layers.6: residual stream; "
                "layers.6.mlp is not): keep the name",
    "saelens": "SAELens keeps it in cfg.json (metadata.hook_name)",
}


def check_site(sae, allow_any_site: bool = False) -> None:
    """Refuse an SAE that was not trained on the residual stream, which is what splare-lucene
    feeds it (the output of block L); an unknown site is only warned about.

    ``allow_any_site`` turns the refusal into a warning, for people who know what they are doing
    (an MLP-out SAE on the residual stream gives latents, but not the ones it was trained for).

    Raises:
        CheckpointError: the SAE records a non-residual ``hook_site`` (MLP or attention output,
            a transcoder, the embeddings, ...), naming it and the override.
    """
    config = sae.config
    site = config.hook_site
    if site in RESIDUAL_SITES:
        return
    if site is None:
        hint = _SITE_HINTS.get(config.source, "")
        logger.warning("the SAE (%s format) does not say which activation it was trained on; "
                       "splare-lucene feeds it the residual stream after layer %s. If it was trained "
                       "on another site, its latents are meaningless here.%s", config.source,
                       config.layer if config.layer is not None else "L", f" {hint}" if hint else "")
        return
    what = f"{site!r} ({HOOK_SITES.get(site, site)})"
    if allow_any_site:
        logger.warning("the SAE was trained on %s, not on the residual stream; using it on the "
                       "residual stream anyway, as asked (allow_any_site)", what)
        return
    raise CheckpointError(
        f"the SAE was trained on {what}, not on the residual stream after a block, which is what "
        f"splare-lucene feeds it (sites it accepts: {list(RESIDUAL_SITES)}). Use a residual-stream "
        "SAE (Gemma Scope -res or resid_post/, Llama Scope LXR, sparsify layers.L), or pass "
        "--allow-any-site to `splare-lucene assemble` (allow_any_site=True in "
        "SplareEncoder.from_components) to use it anyway")


def check_compatible(sae, d_model: int, layer: int | None) -> None:
    """Raise if ``sae`` cannot read the backbone's layer-``layer`` hidden states of size d_model."""
    config = sae.config
    if config.d_in != d_model:
        raise CheckpointError(f"SAE expects d_in={config.d_in} but the backbone's hidden size is "
                              f"{d_model}: this SAE was trained for another model")
    if config.layer is not None and layer is not None and config.layer != layer:
        raise CheckpointError(f"SAE was trained on layer {config.layer} but the model uses layer "
                              f"{layer}; pass --layer {config.layer}")
