"""splare-lucene: SPLARE retrieval (SAE-latent learned sparse retrieval) for Pyserini/Anserini.

Public API, imported lazily (no torch, transformers or JVM at ``import splare_lucene``)::

    from splare_lucene import SplareEncoder, SplareQueryEncoder
    from splare_lucene import fuse, hybrid_search   # hybrid retrieval with BM25
    from splare_lucene import start_jvm             # Java 21+ for Pyserini, before importing it
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "SplareEncoder": ("encoder", "SplareEncoder"),
    "SplareQueryEncoder": ("search", "SplareQueryEncoder"),  # starts the JVM on first use
    "SplareConfig": ("config", "SplareConfig"),
    "TextSide": ("config", "TextSide"),
    "load_sae": ("sae", "load_sae"),
    "fuse": ("fusion", "fuse"),  # hybrid: fuse runs (RRF, interpolation); no JVM
    "hybrid_search": ("pipeline", "hybrid_search"),  # SPLARE + BM25 fused; starts the JVM (BM25)
    "start_jvm": ("java", "start_jvm"),  # before a Pyserini import that comes before SplareQueryEncoder's
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
