"""Typed, frozen records of the explain room: latent labels and score explanations.

Nothing heavy is imported here (no torch, no JVM): the records are plain data that round-trip
through JSON (``to_dict`` / ``from_dict``), so a report can be written, read back and rendered
without loading a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from ..errors import CheckpointError

LABELS_NAME = "latent_labels.json"  # in the model directory, beside splare_config.json
LABELS_FORMAT = "splare-latent-labels"
LABELS_VERSION = 1


@dataclass(frozen=True)
class LatentContext:
    """One occurrence of a token that activated a latent: ``left + token + right`` is a window of
    the text (``context_words`` words either side), ``activation`` the per-token value
    ``log(1 + ReLU(latent))`` (the quantity max-pooled into a document's weight)."""

    activation: float
    token: str
    left: str
    right: str
    doc_id: str

    def to_list(self) -> list:
        return [round(self.activation, 5), self.token, self.left, self.right, self.doc_id]

    @classmethod
    def from_list(cls, row: list, where: str) -> "LatentContext":
        if not isinstance(row, list) or len(row) != 5:
            raise CheckpointError(f"{where}: a top context must be [activation, token, left, right, doc_id]; "
                                  f"got {row!r:.80}")
        return cls(float(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]))


@dataclass(frozen=True)
class LatentLabel:
    """What is known about one latent: an imported ``description`` (Neuronpedia) and/or the
    ``top`` contexts that activate it most over a corpus (activation-descending)."""

    index: int
    description: str | None = None
    top: tuple[LatentContext, ...] = ()

    def summary(self, max_tokens: int = 3) -> str:
        """A short label: the description, else the distinct top tokens (most frequent first,
        then by activation) joined by ``/``; "" when nothing is known."""
        if self.description:
            return self.description
        counts: dict[str, list[float]] = {}
        for ctx in self.top:
            key = ctx.token.strip().lower()
            if key:
                counts.setdefault(key, []).append(ctx.activation)
        ranked = sorted(counts, key=lambda k: (-len(counts[k]), -max(counts[k]), k))
        return " / ".join(ranked[:max_tokens])


@dataclass(frozen=True)
class LatentLabels:
    """The labels stored with a model (``latent_labels.json``): ``latents`` maps a latent id to
    its :class:`LatentLabel`; ``sources`` says where they came from (a corpus and the settings,
    or an imported file); ``model_fingerprint`` is the model they were built for."""

    d_sae: int
    model_fingerprint: str | None
    created: str
    sources: tuple[dict, ...]
    latents: Mapping[int, LatentLabel]

    def label(self, latent: int) -> str:
        """The latent's short label ("" when it has none)."""
        entry = self.latents.get(int(latent))
        return entry.summary() if entry is not None else ""

    def get(self, latent: int) -> LatentLabel | None:
        return self.latents.get(int(latent))

    def to_dict(self) -> dict:
        latents = {}
        for i in sorted(self.latents):
            entry = self.latents[i]
            obj: dict[str, Any] = {}
            if entry.description:
                obj["description"] = entry.description
            if entry.top:
                obj["top"] = [c.to_list() for c in entry.top]
            latents[str(i)] = obj
        return {"format": LABELS_FORMAT, "version": LABELS_VERSION, "d_sae": self.d_sae,
                "model_fingerprint": self.model_fingerprint, "created": self.created,
                "sources": list(self.sources), "latents": latents}

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> "LatentLabels":
        """Raises CheckpointError naming ``where`` for anything but a labels file of this format."""
        if not isinstance(obj, dict) or obj.get("format") != LABELS_FORMAT:
            raise CheckpointError(f"{where}: not a latent labels file (no \"format\": {LABELS_FORMAT!r}); "
                                  "rebuild it with `splare-lucene label-latents`")
        version = obj.get("version")
        if not isinstance(version, int) or version > LABELS_VERSION:
            raise CheckpointError(f"{where}: labels format version {version!r} is not readable by this "
                                  f"splare-lucene (reads <= {LABELS_VERSION}); upgrade splare-lucene")
        d_sae = obj.get("d_sae")
        raw = obj.get("latents")
        if not isinstance(d_sae, int) or d_sae < 1 or not isinstance(raw, dict):
            raise CheckpointError(f"{where}: needs an integer \"d_sae\" and a \"latents\" object; rebuild it "
                                  "with `splare-lucene label-latents`")
        latents: dict[int, LatentLabel] = {}
        for key, entry in raw.items():
            if not key.isdigit() or int(key) >= d_sae or not isinstance(entry, dict):
                raise CheckpointError(f"{where}: latent {key!r} is not an id in 0..{d_sae - 1} with an object")
            top = tuple(LatentContext.from_list(r, f"{where}: latent {key}") for r in entry.get("top", []))
            latents[int(key)] = LatentLabel(int(key), entry.get("description") or None, top)
        return cls(d_sae, obj.get("model_fingerprint"), str(obj.get("created", "")),
                   tuple(obj.get("sources", ())), latents)


@dataclass(frozen=True)
class TokenHit:
    """A token of a text that activated a latent: its position among the text's tokens, its
    string, its character span in the text (``start = end = -1``: a token of the side's prefix
    or a special token, not in the text) and its activation ``log(1 + ReLU(latent))``."""

    position: int
    token: str
    start: int
    end: int
    activation: float


@dataclass(frozen=True)
class TextTokens:
    """The tokens of one text as the encoder saw them (pooled ones only): strings and
    character spans into the text (-1 when not in it)."""

    text: str
    tokens: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class QueryLatent:
    """One latent of a query: pooled float ``weight``, integer ``impact`` (as searched:
    ``round(weight * scale)``; 0 when the latent rounds away and is not searched), label."""

    latent: int
    term: str
    weight: float
    impact: int
    label: str
    tokens: tuple[TokenHit, ...] = ()


@dataclass(frozen=True)
class SharedLatent:
    """A latent in both the query and the document: ``product = query_impact * doc_impact`` is
    its contribution to the Lucene score, ``share = product / score``."""

    latent: int
    term: str
    label: str
    query_weight: float
    doc_weight: float
    query_impact: int
    doc_impact: int
    product: int
    share: float
    query_tokens: tuple[TokenHit, ...] = ()
    doc_tokens: tuple[TokenHit, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """Why a document scores what it does for a query (or, without a document, the query alone).

    ``score`` = sum of ``shared[i].product``: exactly the score Lucene's impact search gives the
    document (an integer dot product of quantized vectors). ``lucene_score``: the score Lucene
    itself computed for it when the document came from an index (None otherwise).
    ``doc_source``: "index" (the vector stored in the index), "text" (encoded here) or None.
    """

    query: str
    query_latents: tuple[QueryLatent, ...]
    query_tokens: TextTokens | None
    quantization_scale: float
    model_fingerprint: str | None
    document: str | None = None
    doc_id: str | None = None
    doc_source: str | None = None
    doc_tokens: TextTokens | None = None
    doc_nnz: int = 0
    shared: tuple[SharedLatent, ...] = ()
    score: int = 0
    lucene_score: float | None = None
    labels_source: str | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        """A JSON-ready dict (every field; nested records as dicts)."""
        return asdict(self)
