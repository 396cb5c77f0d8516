"""Why a document scores what it does: per-latent breakdown of a Lucene impact score.

Lucene's impact search (Anserini's ``ImpactSimilarity`` over a ``BooleanQuery`` of
``BoostQuery(TermQuery(f<j>), q_j)`` clauses, :class:`splare_lucene.search.ImpactSearcher`) scores
a document ``sum over shared latents j of q_j * d_j``, with ``q_j`` the query's integer impact (the
boost) and ``d_j`` the document's (its term frequency). Both are integers, so the products add up
exactly to Lucene's score (float32 is exact below 2**24). :func:`explain` lists them, with the
float weights they were quantized from, labels (:mod:`.labels`, when the model has them) and the
tokens of each text that activated each latent (:mod:`.activations`).

Reads encoder outputs and index records; nothing here is imported by the search path.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError, InputError
from .records import Explanation, QueryLatent, SharedLatent, TokenHit

logger = logging.getLogger(__name__)

_AUTO = "auto"


def _labels_of(encoder, labels):
    """``labels`` as given, or (``"auto"``) the model's own (None when it has none)."""
    if labels != _AUTO:
        return labels
    from .labels import load_latent_labels
    from .records import LABELS_NAME

    model_dir = getattr(encoder, "model_dir", None)
    path = Path(model_dir) / LABELS_NAME if model_dir is not None else None
    # one read per file version: `search --explain` explains every printed hit
    key = (str(path), path.stat().st_mtime_ns if path is not None and path.is_file() else None)
    if key not in _LABELS_CACHE:
        _LABELS_CACHE.clear()
        _LABELS_CACHE[key] = load_latent_labels(model_dir, fingerprint=encoder.fingerprint, d_sae=encoder.d_sae)
    return _LABELS_CACHE[key]


_LABELS_CACHE: dict = {}


def _hits(acts, latent: int, limit: int) -> tuple[TokenHit, ...]:
    """The (at most ``limit``) tokens of one text with a positive activation of ``latent``,
    largest first (ties: earlier token first)."""
    import torch

    if acts is None or acts.values.shape[0] == 0:
        return ()
    column = acts.values[:, latent]  # (n_tokens,)
    positive = (column > 0).nonzero().squeeze(-1)
    if positive.numel() == 0:
        return ()
    order = torch.sort(column[positive], descending=True, stable=True).indices[:limit]
    out = []
    for p in positive[order].tolist():
        start, end = acts.tokens.spans[p]
        out.append(TokenHit(p, acts.tokens.tokens[p], start, end, float(column[p])))
    return tuple(out)


def _impacts(encoder, vector) -> dict[int, int]:
    """``{latent: integer impact}`` of a float vector, quantized as indexing and search do."""
    return dict(zip(*(a.tolist() for a in encoder.quantize(vector))))


def explain(encoder, query: str, document: str | None = None, *, doc_id: str | None = None,
            doc_impacts: Mapping[int, int] | None = None, lucene_score: float | None = None,
            labels=_AUTO, max_tokens: int = 5, notes: tuple[str, ...] = (),
            query_vector=None) -> Explanation:
    """Explain ``query`` alone, or its score against ``document``.

    ``document``: the document's text. ``doc_impacts``: its integer impacts {latent: impact} as
    an index stores them (:func:`explain_indexed` passes them); without them the text is encoded
    here (document side) and quantized, which is what indexing it would store. ``labels``: a
    :class:`~.records.LatentLabels`, None (no labels), or "auto" (the model's
    ``latent_labels.json`` if any). ``max_tokens``: activating tokens listed per latent and text.
    ``query_vector``: ``query`` already encoded (query side, as ``encoder.encode`` gives it), so that
    a caller explaining several documents for one query encodes it once.

    Returns an :class:`~.records.Explanation` whose ``shared`` products sum to ``score``.
    Raises InputError for an empty query or document, ConfigError for ``max_tokens`` < 0.
    """
    from .activations import token_activations

    if not isinstance(query, str) or not query.strip():
        raise InputError(f"the query to explain is empty ({query!r}); give its text")
    if document is not None and not document.strip() and doc_impacts is None:
        raise InputError(f"the document to explain is empty ({document!r}); give its text")
    if max_tokens < 0:
        raise ConfigError(f"max_tokens must be >= 0; got {max_tokens}")
    labels = _labels_of(encoder, labels)
    label = labels.label if labels is not None else (lambda i: "")
    scale = encoder.config.quantization_scale
    vocab = encoder.vocab

    q_vec = query_vector if query_vector is not None else encoder.encode([query], kind="query")[0]
    q_imp = _impacts(encoder, q_vec)
    # max_tokens=0: no token attribution, one forward pass per text fewer
    q_acts = token_activations(encoder, [query], kind="query")[0] if max_tokens else None
    query_latents = tuple(
        QueryLatent(int(j), vocab.token(int(j)), float(w), int(q_imp.get(int(j), 0)), label(int(j)),
                    _hits(q_acts, int(j), max_tokens))
        for j, w in zip(q_vec.indices.tolist(), q_vec.values.tolist()))
    common = dict(query=query, query_latents=query_latents, query_tokens=q_acts.tokens if q_acts is not None else None,
                  quantization_scale=scale, model_fingerprint=encoder.fingerprint,
                  labels_source=_labels_source(labels))
    if document is None and doc_impacts is None:
        return Explanation(**common, notes=tuple(notes))

    notes = list(notes)
    text = document or ""
    # A query-only (int8) encoder refuses documents (encoder.pooled): an indexed document is then
    # explained from its stored vector alone, without its activating tokens.
    # With the indexed impacts and no token attribution (max_tokens=0: `search --explain`), the
    # text is not encoded again: a document forward pass per printed hit bought only float weights
    # (then impact / scale) and the stored-vs-encoded check.
    reencode = bool(text.strip()) and (doc_impacts is None or (
        max_tokens > 0 and getattr(encoder, "query_quantization", "none") == "none"))
    if text.strip() and not reencode and max_tokens > 0:
        notes.append(f"the encoder is quantized for queries ({encoder.query_quantization}) and does not encode "
                     "documents: the document's activating tokens are not shown")
    d_acts = token_activations(encoder, [text], kind="document")[0] if reencode and max_tokens else None
    d_weights: dict[int, float] = {}
    if reencode:
        d_vec = encoder.encode([text], kind="document")[0]
        d_weights = {int(j): float(w) for j, w in zip(d_vec.indices.tolist(), d_vec.values.tolist())}
        encoded = _impacts(encoder, d_vec)
    if doc_impacts is None:
        doc_impacts, source = encoded, "text"
    else:
        doc_impacts, source = {int(k): int(v) for k, v in doc_impacts.items()}, "index"
        if reencode and encoded != doc_impacts:
            differ = sorted(set(encoded.items()) ^ set(doc_impacts.items()))
            notes.append(f"the document's stored text, encoded now, differs from its indexed vector in "
                         f"{len({j for j, _ in differ})} latents (truncation, or another model built the "
                         "index); the indexed vector is used: it is what Lucene scores")
        for j, d in doc_impacts.items():  # weights as indexed where the re-encoding has none
            d_weights.setdefault(j, d / scale)
    q_weights = q_vec.to_dict()
    shared_ids = sorted(set(q_imp) & set(doc_impacts))
    products = {j: q_imp[j] * doc_impacts[j] for j in shared_ids}
    score = sum(products.values())
    shared = tuple(sorted(
        (SharedLatent(j, vocab.token(j), label(j), q_weights.get(j, 0.0), d_weights.get(j, 0.0),
                      q_imp[j], doc_impacts[j], products[j], products[j] / score if score else 0.0,
                      _hits(q_acts, j, max_tokens), _hits(d_acts, j, max_tokens))
         for j in shared_ids), key=lambda s: (-s.product, s.latent)))
    if lucene_score is not None and float(lucene_score) != float(score):
        notes.append(f"Lucene scored this document {lucene_score}, the latents add up to {score}: "
                     "the index and the model do not agree")
        logger.warning("document %s: Lucene's score %s != the sum of latent products %d", doc_id,
                       lucene_score, score)
    return Explanation(**common, document=text, doc_id=doc_id, doc_source=source,
                       doc_tokens=d_acts.tokens if d_acts is not None else None, doc_nnz=len(doc_impacts),
                       shared=shared, score=int(score), lucene_score=lucene_score, notes=tuple(notes))


def _labels_source(labels) -> str | None:
    if labels is None:
        return None
    return ", ".join(str(s.get("corpus") or s.get("sae_id") or s.get("kind")) for s in labels.sources) or "labels"


# -- documents from a Lucene index -------------------------------------------------------------

def stored_document(searcher, doc_id: str, encoder) -> tuple[str, dict[int, int]]:
    """(text, {latent: impact}) of ``doc_id`` as an Anserini impact index stores it.

    Indexes built by ``splare-lucene index`` keep each document's raw JSON (``-storeRaw``): its
    ``contents`` and its ``vector`` {pseudo-token: impact}, the very postings Lucene scores. Raises
    InputError for an id not in the index, and ConfigError for an index without raw documents
    (built with Anserini's IndexCollection without ``-storeRaw``: explain the text instead) or a
    vector term the model's vocabulary does not make.
    """
    doc = searcher.doc(doc_id)
    if doc is None:
        raise InputError(f"document id {doc_id!r} is not in index {searcher.index_dir}; check the id "
                         "(`splare-lucene search --query ...` prints the ids of hits)")
    raw = doc.raw()
    try:
        obj = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("vector"), dict):
        raise ConfigError(f"index {searcher.index_dir} does not store document {doc_id!r}'s vector (built "
                          "without -storeRaw?); explain its text instead: --doc-text TEXT")
    impacts = {}
    for term, weight in obj["vector"].items():
        try:
            impacts[encoder.vocab.latent(term)] = int(weight)
        except (KeyError, ValueError):
            raise ConfigError(f"index {searcher.index_dir}: document {doc_id!r} has the term {term!r}, which "
                              "this model never produces; explain with the model that built the index") from None
    return str(obj.get("contents", "")), impacts


def lucene_score(searcher, q_impacts: Mapping[int, int], doc_id: str, encoder) -> float:
    """The score Lucene computes for ``doc_id`` with the impact query ``q_impacts``: the query
    :class:`~splare_lucene.search.ImpactSearcher` searches with, scored by Lucene's own
    ``IndexSearcher.explain`` (the raw float32 score, before Anserini's tie adjustment of the
    printed hits, which lowers tied scores by 1e-6 steps)."""
    terms = {encoder.vocab.token(j): float(w) for j, w in q_impacts.items() if w > 0}
    score = searcher.score_document(terms, doc_id)
    if score is None:
        raise InputError(f"document id {doc_id!r} is not in index {searcher.index_dir}")
    return score


def explain_indexed(encoder, index_dir: str | os.PathLike, query: str, doc_id: str, *, labels=_AUTO,
                    max_tokens: int = 5) -> Explanation:
    """:func:`explain` for a document of a Lucene index (by collection id): its indexed vector,
    its stored text (re-encoded for the activating tokens, and compared with the index), and the
    score Lucene computes for it (``lucene_score``; equal to ``score``). Raises ConfigError for a
    missing index or a Seismic one, InputError for an id not in the index."""
    from ..backends import open_index, resolve_backend

    if resolve_backend(index_dir) != "lucene":  # ConfigError for a missing index
        raise ConfigError(f"explain --doc-id reads Lucene indexes; {index_dir} is a Seismic index: explain the "
                          "document's text instead (--doc-text TEXT)")
    index = open_index(index_dir, encoder)
    searcher = index.searcher
    text, impacts = stored_document(searcher, doc_id, encoder)
    q_vec = encoder.encode([query], kind="query")[0] if query.strip() else None
    score = lucene_score(searcher, _impacts(encoder, q_vec), doc_id, encoder) if q_vec is not None else None
    return explain(encoder, query, text, doc_id=doc_id, doc_impacts=impacts, lucene_score=score,
                   labels=labels, max_tokens=max_tokens, query_vector=q_vec)


def short_line(explanation: Explanation, top: int = 3) -> str:
    """One line for a printed hit: its ``top`` largest shared latents with their share and label,
    e.g. ``f12 38% (moon / lunar), f7 21%``."""
    parts = []
    for s in explanation.shared[:top]:
        lab = f" ({s.label})" if s.label else ""
        parts.append(f"{s.term} {s.share:.0%}{lab}")
    rest = len(explanation.shared) - top
    more = f", +{rest} more" if rest > 0 else ""
    return f"{len(explanation.shared)} shared latents: " + ", ".join(parts) + more if parts else "no shared latents"


def write_explanation(explanation: Explanation, fmt: str, output: str | os.PathLike | None = None) -> str:
    """Render as ``text``, ``json`` or ``html``; written to ``output`` (atomically) when given.
    Returns the rendered string. Raises ConfigError for another format."""
    from .render import render

    out = render(explanation, fmt)
    if output is not None:
        from .labels import write_text_atomic

        write_text_atomic(output, out)
    return out


def explain_hit(encoder, index, query: str, doc_id: str, top: int = 3, *, query_vector=None) -> str:
    """The ``search --explain`` line of one hit of ``index`` (an opened backend index): its
    indexed vector when the index is Lucene's, its stored text encoded otherwise.
    ``query_vector``: ``query`` encoded once for all the hits (see :func:`explain`)."""
    searcher = getattr(index, "searcher", None)
    if searcher is not None and hasattr(searcher, "doc"):
        text, impacts = stored_document(searcher, doc_id, encoder)
        e = explain(encoder, query, text, doc_id=doc_id, doc_impacts=impacts, max_tokens=0,
                    query_vector=query_vector)
    else:
        e = explain(encoder, query, index.hit_text(doc_id), doc_id=doc_id, max_tokens=0,
                    query_vector=query_vector)
    return short_line(e, top)
