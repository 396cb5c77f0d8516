"""SAE architectures (one per file) and the one registry that maps names to classes."""

from __future__ import annotations

ARCHITECTURES: dict[str, str] = {}  # name -> "module:Class" (imported lazily: no torch here)


def register(name: str, target: str) -> None:
    if name in ARCHITECTURES:
        raise ValueError(f"SAE architecture {name!r} is already registered to {ARCHITECTURES[name]}")
    ARCHITECTURES[name] = target


register("relu", "relu:ReLUSAE")
register("jumprelu", "jumprelu:JumpReLUSAE")
register("topk", "topk:TopKSAE")


def sae_class(name: str):
    import importlib

    from ..errors import ConfigError

    if name not in ARCHITECTURES:
        raise ConfigError(f"SAE architecture must be one of {sorted(ARCHITECTURES)}; got {name!r}")
    module, cls = ARCHITECTURES[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build_sae(config, tensors: dict):
    """A SparseAutoencoder of ``config.architecture`` from named tensors (W_enc, b_enc, ...)."""
    allowed = {"W_enc", "b_enc", "b_dec", "W_dec", "threshold"}
    return sae_class(config.architecture)(config, **{k: v for k, v in tensors.items() if k in allowed})


def load_sae(path, **kwargs):
    """Load an SAE from any supported checkpoint format (see ``formats``)."""
    from .formats import load_sae as _load

    return _load(path, **kwargs)
