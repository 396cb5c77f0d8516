"""Interpretable latents: labels stored with a model, and per-latent score explanations.

- :mod:`.labels`: top activating contexts of every latent over a corpus (bounded memory), the
  Neuronpedia import, ``latent_labels.json`` in the model directory (optional everywhere).
- :mod:`.explain`: a query's latents, and the shared latents of a query and a document whose
  integer products add up to the document's Lucene score.
- :mod:`.render` / :mod:`.html`: text, JSON and a self-contained HTML report.
- :mod:`.records`: the typed records.

Reads encoder outputs and index records; the search and index paths never import it. Nothing
heavy is imported with the package (torch and the JVM load inside the functions that need them).
"""

from __future__ import annotations

from .records import (LABELS_NAME, Explanation, LatentContext, LatentLabel, LatentLabels, QueryLatent,
                      SharedLatent, TextTokens, TokenHit)

_LAZY = {
    "load_latent_labels": ("labels", "load_latent_labels"),
    "build_labels": ("labels", "build_labels"),
    "import_neuronpedia": ("labels", "import_neuronpedia"),
    "explain": ("explain", "explain"),
    "explain_indexed": ("explain", "explain_indexed"),
    "render": ("render", "render"),
    "token_activations": ("activations", "token_activations"),
}

__all__ = ["LABELS_NAME", "Explanation", "LatentContext", "LatentLabel", "LatentLabels", "QueryLatent",
           "SharedLatent", "TextTokens", "TokenHit", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
