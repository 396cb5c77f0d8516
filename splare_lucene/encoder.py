"""Backbone + frozen SAE + pooling: texts -> sparse vectors over SAE latents.

A model directory holds ``splare_config.json``, the SAE (``sae/``, toolkit format) and optionally
a LoRA adapter (``adapter/``, peft). ``SplareEncoder.from_pretrained`` accepts such a directory,
a Hugging Face hub id of one, or ``"default"`` (the built-in model shipped in the package).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from .config import CONFIG_NAME, QUERY_SIDE_FIELDS, SplareConfig
from .errors import CheckpointError, ConfigError, InputError
from .outputs import temp_dir_beside
from .types import ImpactVector, SparseVector

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).parent / "assets" / "default"
T = TypeVar("T")


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """'default', a local model directory, or a hub id (downloaded with huggingface_hub)."""
    name = str(name_or_path)
    if name == "default":
        if not (DEFAULT_MODEL_DIR / CONFIG_NAME).is_file():
            raise CheckpointError(f"the built-in default model is missing from {DEFAULT_MODEL_DIR}; "
                                  "rebuild it with `make default-model`")
        return DEFAULT_MODEL_DIR
    path = Path(name)
    if path.exists():
        if not (path / CONFIG_NAME).is_file():
            raise CheckpointError(f"{path} is not a SPLARE model directory (no {CONFIG_NAME}); "
                                  "build one with `splare-lucene assemble`")
        return path
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise CheckpointError(f"model {name!r} is neither a directory nor a hub id (org/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=name))
    except Exception as exc:  # offline, gated, or missing repos raise various hub errors
        raise CheckpointError(f"cannot fetch model {name!r} from the Hugging Face hub ({exc}); "
                              "check the id and your network, or pass a local model directory") from exc


def model_fingerprints(model_dir: Path, config: SplareConfig) -> tuple[str, str]:
    """(model fingerprint, document fingerprint): short hashes of the config and weight files.

    The model fingerprint says which model encoded an index or a run; the config enters as
    :meth:`SplareConfig.fingerprint_dict`: every setting, except fields newer than the model format
    that hold their legacy value (``text_normalization="none"``), so models saved before those
    fields existed keep their fingerprint; with ``query_idf_power`` > 0 the idf counts enter too.
    The document fingerprint hashes what makes the document vectors only: the same weights and
    config without :data:`splare_lucene.config.QUERY_SIDE_FIELDS` (query top-k, length and
    prefix, idf weighting and its counts). Two models with the same document fingerprint write the same index, so a copy that
    differs only on the query side (``configure --query-top-k``, ``--query-idf-power``) searches
    an index the other built. Each weight file is read once for both."""
    config_dict = config.fingerprint_dict()
    h = hashlib.sha256(json.dumps(config_dict, sort_keys=True).encode())
    d = hashlib.sha256(json.dumps({k: v for k, v in config_dict.items() if k not in QUERY_SIDE_FIELDS},
                                  sort_keys=True).encode())
    for sub in (config.sae, config.mntp_adapter, config.adapter):
        if sub and (model_dir / sub).is_dir():
            for f in sorted((model_dir / sub).rglob("*")):
                if f.is_file():
                    data = f.read_bytes()
                    for digest in (h, d):
                        digest.update(f.name.encode())
                        digest.update(data)
    if config.query_idf_power:  # the query weights come from these counts
        from .latent_idf import LATENT_DF_NAME, fingerprint_bytes

        f = model_dir / LATENT_DF_NAME
        if f.is_file():
            h.update(f.name.encode())
            h.update(fingerprint_bytes(f))
    return h.hexdigest()[:16], d.hexdigest()[:16]


def model_fingerprint(model_dir: Path, config: SplareConfig) -> str:
    """The model fingerprint of :func:`model_fingerprints`: which model encoded an index."""
    return model_fingerprints(model_dir, config)[0]


def length_sorted_batches(items: Iterable[T], text_of: Callable[[T], str], batch_size: int,
                          window: int) -> Iterator[list[tuple[int, T]]]:
    """Group a stream into windows, then into batches of similar length (less padding).

    Yields lists of (position in window, item); a window is fully yielded before the next is read.
    Raises ConfigError (on first use) when ``batch_size`` or ``window`` is below 1.
    """
    if batch_size < 1 or window < 1:
        raise ConfigError(f"batch_size and window must be >= 1 (texts per forward pass / sorting "
                          f"window); got batch_size={batch_size}, window={window}")
    buffer: list[T] = []

    def flush():
        order = sorted(range(len(buffer)), key=lambda i: len(text_of(buffer[i])))
        for s in range(0, len(order), batch_size):
            yield [(i, buffer[i]) for i in order[s:s + batch_size]]

    for item in items:
        buffer.append(item)
        if len(buffer) >= window:
            yield from flush()
            yield []  # window boundary marker
            buffer = []
    if buffer:
        yield from flush()
        yield []


class SplareEncoder:
    """Encode queries and documents into sparse vectors over SAE latents."""

    def __init__(self, config: SplareConfig, backbone, head, device: str,
                 model_dir: Path | None = None):
        from .vocab import LatentVocab, TokenVocab

        self.config = config
        self.backbone = backbone
        self.head = head  # a SparseAutoencoder ("sae") or a VocabHead ("vocab")
        self.device = device
        self.model_dir = model_dir
        self.peft_model = None  # set by the trainer; its adapter is saved with the model
        # "none" (the float reference) or a lossy query-only speed-up (speed.QUERY_QUANTIZATIONS)
        self.query_quantization = "none"
        self.sae_storage_dtype: str | None = None
        if config.representation == "vocab":
            self.vocab = TokenVocab(backbone.tokenizer, head.width)
        else:
            self.vocab = LatentVocab(config.token_prefix)
        # model_fingerprints(): the whole model's, and its document side's (what indexes record)
        self.fingerprint, self.document_fingerprint = (model_fingerprints(model_dir, config) if model_dir
                                                       else (None, None))
        # (d_sae,) float32 idf ** query_idf_power on the device, or None (config.query_idf_power 0)
        self.query_latent_weights = None

    @property
    def sae(self):
        if self.config.representation != "sae":
            raise AttributeError("this model has a vocabulary head, not an SAE")
        return self.head

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "default", *, device: str = "auto",
                        dtype: str = "auto", without_adapter: bool = False,
                        quantize: str = "none") -> "SplareEncoder":
        """Load a model directory; ``without_adapter`` leaves out its retrieval LoRA adapter (the
        untrained model it was fine-tuned from: backbone + SAE + MNTP adapter if any) and its query
        idf weighting (the latent counts were made with the adapter).

        ``dtype`` is the backbone's: "auto" is bfloat16 on CUDA GPUs that support it and float32
        elsewhere (``backbone.resolve_dtype``). The SAE always runs in float32.

        ``quantize``: "none" (the reference) or "int8": the backbone's linear layers in int8
        (``speed.quantize_backbone_int8``): faster query encoding on one CPU thread (p50
        1.96x with the default model on cranfield; 1.45x with the first, 8,192-latent default on
        an AVX2 core without VNNI), but different vectors (cranfield: 0.77 top-10 agreement with
        the reference, same nDCG@10; benchmarks/results/query_encode.md); CPU only, queries only
        (``encode(kind="document")`` then raises ConfigError: an index must come from the reference). Raises ConfigError for
        another value or another device, before the model is loaded."""
        from .backbone import pick_device
        from .speed import check_query_quantization

        check_query_quantization(quantize, pick_device(device) if quantize != "none" else "cpu")
        model_dir = resolve_model_dir(name_or_path)
        config = SplareConfig.load(model_dir)
        if without_adapter and config.adapter:
            logger.info("%s: leaving out its retrieval adapter %r%s", model_dir, config.adapter,
                        " and its query idf weighting (counted with the adapter)" if config.query_idf_power else "")
            config = config.replace(adapter=None, query_idf_power=0.0)
        encoder = cls._load(config, model_dir, device=device, dtype=dtype)
        if quantize != "none":
            encoder.quantize_for_queries(quantize)
        return encoder

    def quantize_for_queries(self, quantize: str = "int8", *, smooth: bool = True) -> "SplareEncoder":
        """Make this (float32, CPU) encoder a query-only int8 one, in place; returns it.
        ``smooth=False`` leaves out the SmoothQuant rescaling (for comparisons: less faithful).

        Raises ConfigError for an unknown value, a non-CPU device, a backbone that is not
        float32, or an encoder already quantized."""
        from .speed import check_query_quantization, quantize_backbone_int8

        check_query_quantization(quantize, self.device)
        if quantize == "none":
            return self
        if self.query_quantization != "none":
            raise ConfigError(f"this encoder is already quantized ({self.query_quantization}); load the "
                              "model again for another setting")
        dtype = str(getattr(self.backbone.model, "dtype", "torch.float32"))
        if dtype != "torch.float32":
            raise ConfigError(f"query quantization {quantize!r} starts from a float32 backbone; this one is "
                              f"{dtype.removeprefix('torch.')}: load with dtype='float32' (--dtype float32)")
        quantize_backbone_int8(self, smooth=smooth)
        self.query_quantization = quantize
        return self

    @classmethod
    def from_components(cls, backbone: str, sae_path: str | os.PathLike, layer: int | None = None,
                        *, device: str = "auto", dtype: str = "auto", allow_any_site: bool = False,
                        **config_fields) -> "SplareEncoder":
        """A new (untrained) model: backbone cut at ``layer`` + an SAE in any supported format.

        The SAE must have been trained on the residual stream (what it is fed here): one that
        records another site (MLP/attention output, transcoder, ...) raises CheckpointError unless
        ``allow_any_site`` (``assemble --allow-any-site``); an unknown site is warned about."""
        from .sae import load_sae
        from .sae.formats import check_site

        sae = load_sae(sae_path)
        check_site(sae, allow_any_site=allow_any_site)
        if layer is None:
            if sae.config.layer is None:
                raise CheckpointError(f"{sae_path} does not record its layer; pass --layer")
            layer = sae.config.layer
        config = SplareConfig(backbone=backbone, layer=layer, **config_fields)
        return cls._load(config, None, device=device, dtype=dtype, sae=sae)

    @classmethod
    def vocabulary(cls, backbone: str, layer: int | None = None, *, device: str = "auto",
                   dtype: str = "auto", **config_fields) -> "SplareEncoder":
        """A SPLADE model on ``backbone``: its own LM head's logits at ``layer`` (default: the last)."""
        if layer is None:
            from .backbone import last_layer

            layer = last_layer(backbone)
        config = SplareConfig(backbone=backbone, layer=layer, representation="vocab", **config_fields)
        return cls._load(config, None, device=device, dtype=dtype)

    @classmethod
    def _load(cls, config: SplareConfig, model_dir: Path | None, *, device: str, dtype: str, sae=None):
        import torch

        from .backbone import load_backbone, pick_device, resolve_dtype

        device = pick_device(device)
        dtype = resolve_dtype(dtype, device)
        vocab = config.representation == "vocab"
        backbone = load_backbone(config.backbone, config.layer, dtype=dtype, device=device,
                                 base_dir=model_dir, with_lm_head=vocab)
        if vocab:
            from .vocab_head import VocabHead

            if backbone.lm_head is None:
                raise CheckpointError(f"backbone {config.backbone} has no LM head for the vocabulary representation")
            head = VocabHead(backbone.final_norm, backbone.lm_head, backbone.logit_softcap)
        else:
            from .sae.formats import RESIDUAL_SITES, check_compatible, load_native

            head = sae if sae is not None else load_native(model_dir / config.sae)
            site = head.config.hook_site
            if sae is None and site is not None and site not in RESIDUAL_SITES:
                # assembled with --allow-any-site: say so at every load, not only at assembly
                logger.warning("%s: its SAE was trained on %r, not on the residual stream it is fed "
                               "(assembled with --allow-any-site)", model_dir, site)
            storage_dtype = getattr(head, "storage_dtype", None)
            check_compatible(head, backbone.hidden_size, config.layer)
            # The SAE runs in float32 on every device, whatever the backbone dtype (its input is
            # cast up in pre_activation): the pre-activations are compared with thresholds
            # (JumpReLU) or ranked (TopK), and bf16 keeps 8 significant bits, so near-threshold
            # latents flip on or off. The cost: on GPUs the SAE matmul (4096 x 131k) is about 9% of
            # the FLOPs of Llama-3.1-8B cut at layer 26, and float32 runs it slower than bfloat16
            # (see docs/training.md, "Precision").
            head = head.to(device=device, dtype=torch.float32)
        for adapter in (config.mntp_adapter, config.adapter):  # MNTP first: retrieval LoRA was trained on top
            if adapter:
                backbone.model = _merge_adapter(backbone.model, model_dir / adapter)
        encoder = cls(config, backbone, head.eval(), device, model_dir)
        if not vocab:
            encoder.sae_storage_dtype = storage_dtype  # saved back in the dtype it was stored in
        if config.query_idf_power:
            encoder._load_query_weights()
        return encoder

    def _load_query_weights(self) -> None:
        """``query_latent_weights`` from the model directory's ``latent_df.json`` (query_idf_power > 0).

        Raises CheckpointError when the file is missing or malformed, or was counted with another
        width, document top-k, quantization scale or normalisation than the config's."""
        import torch

        from .latent_idf import LatentDocumentFrequency

        if self.model_dir is None:
            raise ConfigError("query_idf_power > 0 needs latent document frequencies from a model directory; "
                              "build the model, then `splare-lucene configure --query-idf-corpus DIR`")
        counts = LatentDocumentFrequency.load(self.model_dir)
        counts.check_fits(self.config, int(self.d_sae), str(self.model_dir))
        self.query_latent_weights = torch.from_numpy(counts.query_weights(self.config.query_idf_power)).to(self.device)

    def save_pretrained(self, directory: str | os.PathLike, *, sae_dtype: str | None = None,
                        overwrite: bool = False) -> Path:
        """Write config + SAE encoder (+ adapter) atomically to ``directory``."""
        from .sae.formats import save_native

        directory = Path(directory)
        if directory.exists() and not overwrite:
            raise CheckpointError(f"{directory} exists; pass overwrite=True (--overwrite) to replace it")
        tmp = temp_dir_beside(directory)
        try:
            config = self.config
            if config.representation == "sae":
                save_native(self.head, tmp / config.sae, include_decoder=False,
                            dtype=sae_dtype or self.sae_storage_dtype)
                report = self.model_dir / config.sae / "train_report.json" if self.model_dir else None
                if report is not None and report.is_file():  # how the SAE was trained travels with it
                    shutil.copy2(report, tmp / config.sae / "train_report.json")
            if config.mntp_adapter and self.model_dir and (self.model_dir / config.mntp_adapter).is_dir():
                shutil.copytree(self.model_dir / config.mntp_adapter, tmp / config.mntp_adapter)
            if config.adapter and self.peft_model is not None:
                self.peft_model.save_pretrained(str(tmp / config.adapter))
                _portable_adapter(tmp / config.adapter, config.backbone)
            elif config.adapter and self.model_dir and (self.model_dir / config.adapter).is_dir():
                shutil.copytree(self.model_dir / config.adapter, tmp / config.adapter)
            if config.query_idf_power and self.model_dir:
                from .latent_idf import LATENT_DF_NAME

                if (self.model_dir / LATENT_DF_NAME).is_file():  # the counts the query weights come from
                    shutil.copy2(self.model_dir / LATENT_DF_NAME, tmp / LATENT_DF_NAME)
            config.save(tmp)
            from .outputs import install_dir

            # overwrite replaces only a model directory (or an empty one), never other files
            install_dir(tmp, directory, ["model"], what="model directory")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.model_dir = directory
        self.fingerprint, self.document_fingerprint = model_fingerprints(directory, self.config)
        return directory

    # -- encoding -----------------------------------------------------------------------------

    @property
    def d_sae(self) -> int:
        """Width of the sparse vectors: SAE latents, or vocabulary size for the vocab head."""
        return self.head.config.d_sae if self.config.representation == "sae" else self.head.width

    def prepare_texts(self, texts: Sequence[str], kind: str) -> list[str]:
        """Texts as the tokenizer gets them on the ``kind`` side: each one normalised by the
        model's ``text_normalization`` (``SplareConfig.normalize``), then the side's prefix in
        front (the prefix is the model's own text and is not normalised).

        The one place where texts enter the model: :meth:`pooled` (encoding, search, training)
        and ``explain.activations`` both call it, so queries, documents, training batches and
        explanations are always normalised alike. Raises ConfigError for an unknown ``kind``."""
        side = self.config.side(kind)
        return [side.prefix + self.config.normalize(t) for t in texts]

    def pooled(self, texts: Sequence[str], kind: str, apply_top_k: bool = True):
        """Texts -> (B, d_sae) pooled weights after the side's top-k (a torch tensor, with grad
        if grad is enabled: the training path uses this too)."""
        from .backbone import hidden_states, tokenize
        from .pooling import top_k

        side = self.config.side(kind)
        if kind != "query" and self.query_quantization != "none":
            # A lossy query-side speed-up must never reach an index: documents (and training)
            # go through the float reference, so index and fingerprint stay what the model says.
            raise ConfigError(f"this encoder's backbone is quantized for queries only "
                              f"(quantize={self.query_quantization!r}) and does not encode {kind}s: an "
                              "index built from it would differ from the model's. Encode documents with "
                              "the reference (SplareEncoder.from_pretrained(..., quantize='none'); "
                              "`splare-lucene encode/index` always do)")
        ids, attn, pool_mask = tokenize(self.backbone, self.prepare_texts(texts, kind), side.max_length,
                                        self.device, self.config.pool_special_tokens)
        hidden = hidden_states(self.backbone, ids, attn, self.config.bidirectional)  # (B, T, d)
        pooled = self.head.pool(hidden, pool_mask)  # (B, d_sae): SAE latents or vocabulary
        return top_k(pooled, side.top_k) if apply_top_k else pooled

    def encode(self, texts: Sequence[str], kind: str = "document") -> list[SparseVector]:
        """Encode a small list of texts (one forward pass). Raises InputError when an item is not
        a ``str`` (the tokenizer's own error would not say which)."""
        import torch

        if not texts:
            return []
        if isinstance(texts, str):
            raise InputError(f"encode() takes a list of texts, not one str ({texts[:40]!r}...); pass [text]")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"texts[{i}] is a {type(text).__name__} ({text!r:.60}), not a str; "
                                 "every text to encode must be a string")
        with torch.inference_mode():
            pooled = self.pooled(texts, kind).float()
            if kind == "query" and self.query_latent_weights is not None:
                pooled = pooled * self.query_latent_weights  # after the top-k (splare_lucene.latent_idf)
        return [_to_sparse(row) for row in pooled]

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> list[SparseVector]:
        return [v for _, v in self.encode_stream(texts, kind="query", batch_size=batch_size, progress=False)]

    def encode_stream(self, items: Iterable[T], *, kind: str = "document", batch_size: int = 16,
                      text_of: Callable[[T], str] | None = None, progress: bool = True,
                      total: int | None = None) -> Iterator[tuple[T, SparseVector]]:
        """Stream (item, vector) in input order; batches are formed by length within windows."""
        from tqdm.auto import tqdm

        text_of = text_of or (lambda x: x if isinstance(x, str) else x.text)
        unit, plural = ("doc", "documents") if kind == "document" else ("query", "queries")
        bar = tqdm(total=total, unit=unit, desc=f"encode {plural}", disable=not progress,
                   dynamic_ncols=True, smoothing=0.05)
        results: dict[int, tuple[T, SparseVector]] = {}
        for batch in length_sorted_batches(items, text_of, batch_size, window=batch_size * 64):
            if not batch:  # end of a window: emit in input order
                for i in sorted(results):
                    yield results[i]
                results = {}
                continue
            vectors = self.encode([text_of(item) for _, item in batch], kind)
            for (i, item), vec in zip(batch, vectors):
                results[i] = (item, vec)
            bar.update(len(batch))
        bar.close()

    def explain(self, query: str, document: str | None = None, **options):
        """Why ``document`` scores what it does for ``query`` (or, without one, the query's
        latents): an :class:`splare_lucene.explain.Explanation` whose per-latent integer products
        add up to the Lucene score. ``options``: see :func:`splare_lucene.explain.explain.explain`
        (``labels``, ``max_tokens``, ``doc_impacts``...)."""
        from .explain.explain import explain

        return explain(self, query, document, **options)

    def quantize(self, vector: SparseVector) -> ImpactVector:
        from .quantize import quantize

        return quantize(vector, self.config.quantization_scale)

    def terms(self, vector: SparseVector) -> dict[str, int]:
        """A float vector -> {pseudo-token: integer impact}, as indexed and searched."""
        q = self.quantize(vector)
        return self.vocab.to_terms(q.indices, q.weights)


def _to_sparse(row) -> SparseVector:
    """(d,) non-negative tensor -> SparseVector of its non-zeros, weight-descending."""
    idx = row.nonzero().squeeze(-1)
    values = row[idx]
    order = values.argsort(descending=True, stable=True)
    idx, values = idx[order], values[order]
    return SparseVector(idx.cpu().numpy().astype(np.int64), values.cpu().numpy().astype(np.float32))


def _portable_adapter(adapter_dir: Path, backbone: str) -> None:
    """peft records the local path the base model was loaded from (a cache directory on this
    machine) and writes a model-card template; record the backbone spec and drop the template.

    peft also writes a list ``target_modules`` from a set, in an order that follows the process's
    string hashing (PYTHONHASHSEED); it is sorted here so that the same training run saves the
    same bytes, hence the same model fingerprint (a regex ``target_modules`` is kept as is)."""
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = backbone
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (adapter_dir / "README.md").unlink(missing_ok=True)


def _merge_adapter(model, adapter_dir: Path):
    """Load the LoRA adapter in ``adapter_dir`` onto ``model`` and merge it.

    No code from the directory runs: peft reads ``adapter_model.safetensors`` when present, and
    otherwise ``adapter_model.bin`` with ``torch.load(weights_only=True)`` (peft's default since
    0.13, ``peft.utils.save_and_load.torch_load``). Raises CheckpointError when the adapter is
    missing or its .bin holds anything but tensors (a planted pickle is refused, not run).
    """
    import pickle

    try:
        from peft import PeftModel
    except ImportError as exc:
        raise CheckpointError("this model has a LoRA adapter: `pip install peft`") from exc
    from .backbone import quiet_peft_wrapping

    try:
        with quiet_peft_wrapping():
            return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except pickle.UnpicklingError as exc:
        from .backbone import pickle_refusal_reason

        raise CheckpointError(
            f"{adapter_dir}: adapter_model.bin is a pickle holding more than tensors and was not loaded "
            f"(unpickling it could run code from the file): {pickle_refusal_reason(exc)}. Save the adapter as "
            "adapter_model.safetensors (peft's save_pretrained does by default)") from exc
