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

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise ConfigError(f"representation must be one of {list(REPRESENTATIONS)}; got {self.representation!r}")
        if self.layer < 0:
            raise ConfigError(f"layer must be >= 0; got {self.layer}")
        if not (self.quantization_scale > 0 and math.isfinite(self.quantization_scale)):
            raise ConfigError(f"quantization_scale must be a finite number > 0; got {self.quantization_scale}")

    def side(self, kind: str) -> TextSide:
        if kind not in ("query", "document"):
            raise ConfigError(f"kind must be one of ['query', 'document']; got {kind!r}")
        return self.query if kind == "query" else self.document

    def replace(self, **changes) -> "SplareConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {"architecture": ARCHITECTURE, "format_version": FORMAT_VERSION, **asdict(self)}

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
