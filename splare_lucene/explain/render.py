"""An :class:`~.records.Explanation` as text (for a terminal), JSON or HTML (:mod:`.html`)."""

from __future__ import annotations

import json

from ..errors import ConfigError
from .records import Explanation, TokenHit

FORMATS = ("text", "json", "html")


def score_text(score: float) -> str:
    """A Lucene score as written: an integer-valued one (impact scores below 2**24, exact in
    float32) in full, e.g. 1752640, where ``:g`` would round it to 1.75264e+06; else ``repr``."""
    score = float(score)
    return str(int(score)) if score.is_integer() else repr(score)


def render(explanation: Explanation, fmt: str) -> str:
    """``fmt``: one of :data:`FORMATS`; raises ConfigError for another."""
    if fmt == "text":
        return render_text(explanation)
    if fmt == "json":
        return json.dumps(explanation.to_dict(), ensure_ascii=False, indent=1) + "\n"
    if fmt == "html":
        from .html import render_html

        return render_html(explanation)
    raise ConfigError(f"format must be one of {list(FORMATS)}; got {fmt!r}")


def _tokens(hits: tuple[TokenHit, ...], limit: int = 3) -> str:
    return ", ".join(f"{h.token.strip() or repr(h.token)}({h.activation:.2f})" for h in hits[:limit]) or "-"


def render_text(e: Explanation, max_query_latents: int = 20) -> str:
    """A plain-text report: the query's latents (weight, impact, label, tokens), then, with a
    document, the shared latents with impacts, products and shares, and the score."""
    lines = [f"query: {e.query}"]
    searched = [q for q in e.query_latents if q.impact > 0]
    lines.append(f"query latents: {len(e.query_latents)} ({len(searched)} searched with impact >= 1; "
                 f"scale {e.quantization_scale:g})" + (f"; labels: {e.labels_source}" if e.labels_source else
                                                       "; no labels (splare-lucene label-latents)"))
    lines.append(f"  {'latent':<8} {'weight':>7} {'impact':>6}  {'label':<32} tokens")
    for q in e.query_latents[:max_query_latents]:
        lines.append(f"  {q.term:<8} {q.weight:7.3f} {q.impact:6d}  {q.label[:32]:<32} {_tokens(q.tokens)}")
    if len(e.query_latents) > max_query_latents:
        lines.append(f"  ... {len(e.query_latents) - max_query_latents} more")
    if e.document is None and e.doc_source is None:
        return "\n".join(lines) + "\n"
    doc = " ".join((e.document or "").split())
    where = f"{e.doc_id} ({'from the index' if e.doc_source == 'index' else 'encoded here'})" \
        if e.doc_id else ("given text" if e.doc_source == "text" else e.doc_source)
    lines += ["", f"document: {where}: {doc[:200]}{'...' if len(doc) > 200 else ''}"]
    lucene = f"; Lucene's score: {score_text(e.lucene_score)}" if e.lucene_score is not None else ""
    lines.append(f"score = sum of q_impact x d_impact over {len(e.shared)} shared latents = {e.score}{lucene}")
    lines.append(f"  {'latent':<8} {'q_imp':>6} {'d_imp':>6} {'product':>8} {'share':>6}  {'label':<28} "
                 "query tokens | document tokens")
    for s in e.shared:
        lines.append(f"  {s.term:<8} {s.query_impact:6d} {s.doc_impact:6d} {s.product:8d} {s.share:6.1%}  "
                     f"{s.label[:28]:<28} {_tokens(s.query_tokens, 2)} | {_tokens(s.doc_tokens, 3)}")
    for note in e.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"
