"""The one ordering of hits: every run the toolkit writes, returns or scores goes through here.

Rule: **score descending, then document id ascending** (plain Python ``str`` order, i.e. Unicode
code point order, the same as the order of the ids' UTF-8 bytes), ranks ``1..n``, and the scores
of tied hits made **strictly decreasing** by tiny amounts so that the order is carried by the
scores themselves.

Why the scores are changed: evaluation tools do not agree on ties. trec_eval and pytrec_eval
(which ir_measures uses for P, nDCG, R, AP) sort by score and break ties by document id
*descending*, ignoring the rank column and file order; ir_measures' ``msmarco`` provider (which
ir_measures 0.4 picks for ``RR@k``) breaks them by document id *ascending*. Lucene itself orders
tied hits by internal docid (indexing order); Anserini's searchers re-sort them by document id
ascending and subtract 1e-6 steps (``ScoreTiesAdjusterReranker``), but in float32 that step is
lost once scores exceed about 32, and SPLARE's integer scores are in the hundreds to thousands:
two documents with one vector came back from Pyserini with equal scores. With only the first
judged relevant, one results row showed ``RR@10 = 1.0`` and ``P@1 = 0.0``. With strictly
decreasing scores every tool reads the same order.

How ties are spread: a group of ``m`` hits tied at score ``s`` keeps ``s`` for its first hit and
gives the ``i``-th ``s - i * eps``, where ``eps = min(s_scale * TIE_STEP, (s - s_next) / (m + 1))``
(``s_scale = max(|s|, 1)``, ``s_next`` the next lower distinct score), so every adjusted score stays
above ``s_next`` and below ``s``. Where float64 cannot hold that many distinct values in the gap
(never seen in practice), the next representable float below the previous score is used, which
keeps the order and may lower the following scores by as little.
"""

from __future__ import annotations

import math
import os
from operator import attrgetter
from typing import Iterable, Mapping

from .errors import InputError
from .types import ScoredDoc

TIE_RULE = "score descending, then document id ascending (Unicode code point order)"
TIE_STEP = 1e-6  # relative size of the step between tied scores (of max(|score|, 1))


_DOC_ID = attrgetter("doc_id")
_SCORE = attrgetter("score")


def rank_hits(hits: Iterable[ScoredDoc]) -> list[ScoredDoc]:
    """One query's hits in the toolkit's order (:data:`TIE_RULE`), ranks 1..n, strictly
    decreasing scores (tied scores lowered by tiny amounts; distinct scores unchanged).

    Idempotent: ranking an already ranked list gives it back unchanged. Raises InputError for a
    score that is NaN or infinite (it has no place in a ranking), naming the query and document.
    """
    ordered = list(hits)
    scores = [h.score for h in ordered]
    if not all(map(math.isfinite, scores)):
        bad = next(h for h in ordered if not math.isfinite(h.score))
        raise InputError(f"query {bad.query_id!r}: document {bad.doc_id!r} has score {bad.score!r}; "
                         "scores must be finite numbers (fix the system or run that produced it)")
    # Two stable sorts with C key functions equal one sort on (-score, doc_id) (reverse=True keeps
    # equal scores in their id order), about 2.5x faster than a Python key per hit.
    ordered.sort(key=_DOC_ID)
    ordered.sort(key=_SCORE, reverse=True)
    scores = [h.score for h in ordered]
    n = len(scores)
    # Per hit, only list indexing and one tuple constructor: k=1000 queries from the Seismic
    # backend spent most of their time here when this used attribute access and _replace.
    if len(set(scores)) < n:  # ties to spread (distinct sorted scores are already decreasing)
        values: list[float] = []
        previous = math.inf
        i = 0
        while i < n:
            s = scores[i]
            j = i + 1
            while j < n and scores[j] == s:
                j += 1
            m = j - i
            eps = 0.0
            if m > 1:
                eps = max(abs(s), 1.0) * TIE_STEP
                if j < n:
                    eps = min(eps, (s - scores[j]) / (m + 1))
            for t in range(m):
                value = s - t * eps
                if not value < previous:  # eps below float64 resolution here: next float down
                    value = math.nextafter(previous, -math.inf)
                values.append(value)
                previous = value
            i = j
        scores = values
    new = tuple.__new__  # ScoredDoc(...) goes through a Python-level __new__ per hit
    return [new(ScoredDoc, (h.query_id, h.doc_id, v, r)) for r, (h, v) in enumerate(zip(ordered, scores), 1)]


def rank_run(run: Mapping[str, Iterable[ScoredDoc]]) -> dict[str, list[ScoredDoc]]:
    """:func:`rank_hits` for every query of ``{query id: hits}`` (query order kept)."""
    return {qid: rank_hits(hits) for qid, hits in run.items()}


def format_score(score: float) -> str:
    """The score column of a TREC run: six decimals when they give the float back exactly, else
    the shortest text that does (``repr``), so that distinct scores (tied hits spread by
    :func:`rank_hits`, or floats closer than 1e-6) never print as one value or out of order."""
    text = f"{score:.6f}"
    return text if float(text) == score else repr(float(score))


def write_trec_run(results: dict[str, list[ScoredDoc]], path: str | os.PathLike, tag: str = "splare") -> None:
    """Write a TREC run file atomically, every query's hits in the toolkit's order
    (:func:`splare_lucene.ranking.rank_hits`: score descending, then doc id ascending, tied scores
    made strictly decreasing) with ranks 1..n, and scores printed with the digits that keep them
    distinct (:func:`~splare_lucene.ranking.format_score`), so trec_eval and every ir_measures
    provider read the order written. It lives here, not in :mod:`splare_lucene.search` (which
    starts the JVM on import), so that any backend's runs are written without Java."""
    from .outputs import check_output_file, temp_path_beside

    path = check_output_file(path, what="run file")  # names the path given, not a temp file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(path)
    try:
        with tmp.open("w") as f:
            for hits in results.values():
                for h in rank_hits(hits):
                    f.write(f"{h.query_id} Q0 {h.doc_id} {h.rank} {format_score(h.score)} {tag}\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # never leave the temp file behind
        raise
