"""An :class:`~.records.Explanation` as one self-contained HTML page.

Inline CSS, a few lines of inline JavaScript (hover a latent to light up its tokens, hover a
token to light up its latents), no external resource of any kind (no fonts, scripts, images or
links), so the file opens offline and can be mailed. Structure, checked by
tests/test_explain_html.py:

- ``section#query`` / ``section#document``: the texts, each token that activated a shared latent
  (its top tokens, as listed) a ``span.tok`` with ``data-latents`` and a shade by activation;
- ``table#shared``: one ``tr.latent`` per shared latent (``data-latent``), with the label, a
  ``div.bar`` whose width is the latent's share of the score, the impacts and the product;
- without a document, ``table#query-latents``: one ``tr.latent`` per query latent.
"""

from __future__ import annotations

from html import escape

from .records import Explanation, TextTokens, TokenHit
from .render import score_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;max-width:1100px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:18px 0 6px;color:#3b4660}
.meta{color:#5b6578;font-size:13px} .score{font-size:16px;margin:8px 0}
.text{line-height:1.9;font-size:15px;background:#f7f8fb;border:1px solid #e1e5ee;border-radius:6px;padding:10px 14px}
.tok{border-radius:3px;padding:1px 1px;cursor:default}
.tok.on{outline:2px solid #d9480f;background:#ffd8a8 !important}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:6px}
th{text-align:left;color:#5b6578;font-weight:600;border-bottom:1px solid #d5dbe6;padding:4px 6px}
td{padding:4px 6px;border-bottom:1px solid #eef1f6;vertical-align:middle}
tr.latent:hover,tr.latent.on{background:#fff4e6}
.term{font-family:ui-monospace,Menlo,Consolas,monospace;color:#364fc7}
.label{color:#2b8a3e;max-width:260px} .nolabel{color:#9aa3b2;font-style:italic}
.barcell{width:28%} .bar{height:14px;background:#4c6ef5;border-radius:2px;min-width:2px}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.hits{color:#495057;font-size:12px} .note{color:#c92a2a;font-size:13px}
"""

_JS = """
(function(){
  function all(sel){return Array.prototype.slice.call(document.querySelectorAll(sel));}
  function light(ids,on){
    all('.tok').forEach(function(t){
      var ls=(t.getAttribute('data-latents')||'').split(' ');
      if(ids.some(function(i){return ls.indexOf(i)>=0;})){t.classList.toggle('on',on);}
    });
    all('tr.latent').forEach(function(r){
      if(ids.indexOf(r.getAttribute('data-latent'))>=0){r.classList.toggle('on',on);}
    });
  }
  all('tr.latent').forEach(function(r){
    var id=[r.getAttribute('data-latent')];
    r.addEventListener('mouseenter',function(){light(id,true);});
    r.addEventListener('mouseleave',function(){light(id,false);});
  });
  all('.tok').forEach(function(t){
    var ids=(t.getAttribute('data-latents')||'').split(' ');
    t.addEventListener('mouseenter',function(){light(ids,true);});
    t.addEventListener('mouseleave',function(){light(ids,false);});
  });
})();
"""


def _marked_text(tokens: TextTokens | None, hits: dict[int, list[tuple[int, float]]], label_of) -> str:
    """The text with every listed activating token wrapped in a ``span.tok``: ``hits`` maps a
    token position to its (latent, activation) pairs. Shade: the token's largest activation
    relative to the text's largest."""
    if tokens is None:
        return ""
    text = tokens.text
    peak = max((a for pairs in hits.values() for _, a in pairs), default=0.0) or 1.0
    marks = []
    for pos, pairs in hits.items():
        start, end = tokens.spans[pos]
        if start < 0:
            continue
        marks.append((start, end, pos, pairs))
    marks.sort()
    out, cursor = [], 0
    for start, end, pos, pairs in marks:
        if start < cursor:  # overlapping spans (byte-level pieces of one character): skip
            continue
        out.append(escape(text[cursor:start]))
        strength = max(a for _, a in pairs) / peak
        latents = " ".join(str(j) for j, _ in sorted(pairs, key=lambda p: -p[1]))
        title = "; ".join(f"f{j} {a:.2f}" + (f" {label_of(j)}" if label_of(j) else "") for j, a in pairs)
        out.append(f'<span class="tok" data-latents="{latents}" title="{escape(title)}" '
                   f'style="background:rgba(76,110,245,{0.15 + 0.6 * strength:.2f})">'
                   f"{escape(text[start:end])}</span>")
        cursor = end
    out.append(escape(text[cursor:]))
    return "".join(out)


def _positions(rows, which: str) -> dict[int, list[tuple[int, float]]]:
    out: dict[int, list[tuple[int, float]]] = {}
    for r in rows:
        for h in getattr(r, which):
            out.setdefault(h.position, []).append((r.latent, h.activation))
    return out


def _hits(hits: tuple[TokenHit, ...]) -> str:
    return escape(", ".join(f"{h.token.strip()} {h.activation:.2f}" for h in hits[:4])) or "&ndash;"


def _label_cell(label: str) -> str:
    return f'<td class="label">{escape(label)}</td>' if label else '<td class="nolabel">no label</td>'


def render_html(e: Explanation) -> str:
    """The page (a str): header, the two texts with highlighted tokens, the latents as bars."""
    label_of = {s.latent: s.label for s in e.shared} if e.shared else {q.latent: q.label for q in e.query_latents}
    has_doc = e.doc_source is not None
    rows = e.shared if has_doc else tuple(q for q in e.query_latents if q.impact > 0)
    q_hits = _positions(rows, "query_tokens" if has_doc else "tokens")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>SPLARE explanation: {escape(e.query[:60])}</title>",
             f"<style>{_CSS}</style></head><body>",
             "<h1>Why this document matches</h1>" if has_doc else "<h1>Query latents</h1>",
             f'<div class="meta">quantization scale {e.quantization_scale:g} &middot; model '
             f'{escape(str(e.model_fingerprint))} &middot; labels: '
             f'{escape(e.labels_source) if e.labels_source else "none (splare-lucene label-latents)"}</div>']
    if has_doc:
        lucene = (f" &middot; Lucene&rsquo;s score {score_text(e.lucene_score)}" if e.lucene_score is not None else "")
        parts.append(f'<div class="score" id="score">score <b>{e.score}</b> = sum of query impact &times; '
                     f"document impact over {len(e.shared)} shared latents{lucene}</div>")
    parts.append('<section id="query"><h2>Query</h2>'
                 f'<div class="text">{_marked_text(e.query_tokens, q_hits, label_of.get)}</div></section>')
    if has_doc:
        d_hits = _positions(rows, "doc_tokens")
        where = escape(e.doc_id) if e.doc_id else "given text"
        src = "vector from the index" if e.doc_source == "index" else "encoded here"
        parts.append(f'<section id="document"><h2>Document {where} <span class="meta">({src}, '
                     f'{e.doc_nnz} latents)</span></h2>'
                     f'<div class="text">{_marked_text(e.doc_tokens, d_hits, label_of.get)}</div></section>')
        parts.append('<h2>Shared latents</h2><table id="shared"><tr><th>latent</th><th>label</th>'
                     '<th class="barcell">share of score</th><th class="num">query &times; doc = product</th>'
                     '<th>query tokens</th><th>document tokens</th></tr>')
        top = max((s.share for s in e.shared), default=0.0) or 1.0
        for s in e.shared:
            parts.append(
                f'<tr class="latent" data-latent="{s.latent}"><td class="term">{escape(s.term)}</td>'
                f'{_label_cell(s.label)}<td class="barcell"><div class="bar" style="width:{100 * s.share / top:.1f}%" '
                f'title="{s.share:.1%}"></div><span class="meta">{s.share:.1%}</span></td>'
                f'<td class="num">{s.query_impact} &times; {s.doc_impact} = {s.product}</td>'
                f'<td class="hits">{_hits(s.query_tokens)}</td><td class="hits">{_hits(s.doc_tokens)}</td></tr>')
        parts.append("</table>")
    else:
        parts.append('<h2>Query latents</h2><table id="query-latents"><tr><th>latent</th><th>label</th>'
                     '<th class="barcell">impact</th><th class="num">weight</th><th>tokens</th></tr>')
        top = max((q.impact for q in rows), default=0) or 1
        for q in rows:
            parts.append(
                f'<tr class="latent" data-latent="{q.latent}"><td class="term">{escape(q.term)}</td>'
                f'{_label_cell(q.label)}<td class="barcell"><div class="bar" style="width:{100 * q.impact / top:.1f}%">'
                f'</div><span class="meta">{q.impact}</span></td><td class="num">{q.weight:.3f}</td>'
                f'<td class="hits">{_hits(q.tokens)}</td></tr>')
        parts.append("</table>")
    for note in e.notes:
        parts.append(f'<p class="note">{escape(note)}</p>')
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"
