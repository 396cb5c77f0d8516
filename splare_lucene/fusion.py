"""Fusion of ranked runs (hybrid retrieval): several runs of the same queries in, one run out.

Two methods, both computed by Pyserini's own fusion module (``pyserini.fusion``, Pyserini 1.x,
``fusion/_base.py`` and ``trectools/_base.py``), which is pure Python (pandas): importing it
starts no JVM, so fusion needs no Java.

``rrf``: reciprocal rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009, "Reciprocal Rank
    Fusion outperforms Condorcet and individual Rank Learning Methods")::

        score(d) = sum over runs r that hold d of  1 / (rrf_k + rank_r(d))

    ``rrf_k = 60`` is the constant fixed in that paper (and Pyserini's default). ``rank_r(d)`` is
    the rank (1, 2, ...) of ``d`` in run ``r`` after the run is put in the toolkit's order
    (:mod:`splare_lucene.ranking`), so tied input scores get ranks by document id ascending.
    A run that does not hold ``d`` adds nothing. Pyserini's ``reciprocal_rank_fusion``.

``interpolation``: weighted sum of min-max normalised scores of exactly two runs::

        score(d) = alpha * norm_0(d) + (1 - alpha) * norm_1(d)
        norm_r(d) = (s_r(d) - min_r) / (max_r - min_r)   per query, over the hits of run r
                                                         considered (its top ``depth``)

    ``alpha`` weights the FIRST run: in ``search``/``evaluate --hybrid bm25`` the first run is
    SPLARE and the second BM25, so ``alpha = 1`` is SPLARE alone and ``alpha = 0`` BM25 alone.
    The normalisation is Pyserini's ``RescoreMethod.NORMALIZE`` (``trectools/_base.py``): per
    query, min-max to [0, 1]; a query whose hits all have one score (or a single hit) gets 1.0 for
    each. A document missing from a run gets 0 from it (the same as that run's lowest hit).
    Pyserini's ``interpolation`` itself sums *raw* scores (``alpha * s_0 + (1 - alpha) * s_1``),
    which mixes scales (SPLARE's integer impact sums are in the hundreds to thousands, BM25 scores
    about 5-40), so each run is normalised first and then given to it. Two deliberate
    differences from calling Pyserini's functions on whole runs:

    - ``depth`` cuts each run *before* normalising (Pyserini's ``normalize`` normalises the whole
      run and its merge cuts at ``depth`` afterwards), so the scores depend only on the hits fused;
    - ``alpha`` of exactly 1 or 0 leaves the zero-weight run out entirely, so the result is the
      other run, in its order, with its documents only. (Pyserini would add the zero-weight run's
      documents at score 0, where they tie with the other run's lowest hit and are interleaved
      with it by document id.)

Output: ``{query id: [ScoredDoc]}`` in the toolkit's order (:func:`~splare_lucene.ranking.rank_hits`:
score descending, then document id ascending, ties spread to strictly decreasing scores), ranks
1..n, at most ``k`` hits per query; queries in the order they first appear in the runs (the first
run's first). A query that only some runs hold is fused from those runs.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from .errors import ConfigError, InputError

if TYPE_CHECKING:
    from .types import ScoredDoc

# ranking/types (numpy) and pyserini (pandas) are imported inside the functions: the CLI reads this
# module's constants while building its parser, and `--help` stays fast.

logger = logging.getLogger(__name__)

FUSION_METHODS: tuple[str, ...] = ("rrf", "interpolation")
DEFAULT_FUSION = "rrf"
DEFAULT_RRF_K = 60  # Cormack et al. (SIGIR 2009); Pyserini's default
DEFAULT_ALPHA = 0.5  # Pyserini's default for interpolation
DEFAULT_DEPTH = 1000  # hits per run that search fuses by default (Pyserini's fusion CLI --depth)

Run = Mapping[str, Iterable["ScoredDoc"]]


def run_tag(method: str | None) -> str:
    """The TREC run tag of a fused run: ``hybrid-rrf`` or ``hybrid-interpolation`` (None: the
    default method), written by ``evaluate --hybrid`` and ``search --hybrid`` alike."""
    return f"hybrid-{method or DEFAULT_FUSION}"


def check_fusion_parameters(method: str, *, n_runs: int, alpha: float | None = None, rrf_k: int | None = None,
                            depth: int | None = None, k: int | None = None) -> None:
    """Raise ConfigError naming the parameter, its allowed values and the value given, for any
    parameter that :func:`fuse` cannot use (before any run is read)."""
    if method not in FUSION_METHODS:
        raise ConfigError(f"fusion method must be one of {list(FUSION_METHODS)}; got {method!r}")
    if method == "interpolation":
        if n_runs != 2:
            raise ConfigError(f"interpolation fuses exactly two runs (alpha weights the first, 1 - alpha the "
                              f"second); got {n_runs}. Use method='rrf' for more")
        if rrf_k is not None:
            raise ConfigError("rrf_k applies to method='rrf'; interpolation takes alpha")
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                                  or not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0):
            raise ConfigError(f"alpha must be a number in [0, 1] (the weight of the first run); got {alpha!r}")
    else:
        if n_runs < 2:
            raise ConfigError(f"reciprocal rank fusion needs at least two runs; got {n_runs}")
        if alpha is not None:
            raise ConfigError("alpha applies to method='interpolation'; reciprocal rank fusion takes rrf_k")
        if rrf_k is not None and (isinstance(rrf_k, bool) or not isinstance(rrf_k, int) or rrf_k < 0):
            raise ConfigError(f"rrf_k must be a non-negative integer (Cormack et al. use 60); got {rrf_k!r}")
    for name, value in (("depth", depth), ("k", k)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer or None (no limit); got {value!r}")


Ranked = dict[str, list[tuple[str, float]]]  # {qid: [(doc id, the run's own score), ...]} in rank order


def _ranked(run: Run, which: int, depth: int | None) -> Ranked:
    """One input run in the toolkit's order (ranks 1..n by position), cut at ``depth``, with its
    own scores; a hit that is no ScoredDoc, a non-finite score and a duplicate document are refused
    (Pyserini's merge would add a document's two scores together silently).

    The order is :data:`~splare_lucene.ranking.TIE_RULE` (score descending, then doc id
    ascending), the order :func:`~splare_lucene.ranking.rank_hits` gives; its tie spreading is
    not applied: min-max normalisation would blow such a tiny step up to the whole [0, 1] range
    when all hits are tied, so the scores normalised are the run's own. Plain tuples, not
    ScoredDoc records: fusing 1,000 queries x 1,000 hits spent most of its time creating them.
    """
    from .types import ScoredDoc

    if not isinstance(run, Mapping):
        raise InputError(f"run {which} is a {type(run).__name__}; give a mapping {{query id: [ScoredDoc, ...]}}")
    out: Ranked = {}
    for qid, hits in run.items():
        pairs: list[tuple[str, float]] = []
        for h in hits:
            if not isinstance(h, ScoredDoc):
                raise InputError(f"run {which}, query {qid!r}: a hit is a {type(h).__name__} ({h!r}), not a "
                                 "ScoredDoc; convert (doc id, score) pairs with splare_lucene.fusion.pairs_to_run")
            score = float(h.score)
            if not math.isfinite(score):
                raise InputError(f"run {which}, query {qid!r}: document {h.doc_id!r} has score {h.score!r}; "
                                 "scores must be finite numbers (fix the system or run that produced it)")
            pairs.append((h.doc_id, score))
        if len({d for d, _ in pairs}) != len(pairs):
            seen: set[str] = set()
            twice = next(d for d, _ in pairs if d in seen or seen.add(d))
            raise InputError(f"run {which}, query {qid!r}: document {twice!r} appears twice; a run holds each "
                             "document once per query (deduplicate the run that produced it)")
        pairs.sort(key=lambda p: (-p[1], p[0]))
        out[str(qid)] = pairs[:depth] if depth is not None else pairs
    return out


def _trec_run(run: Ranked):
    """{qid: ranked (doc id, score)} -> pyserini.trectools.TrecRun (topic q0 docid rank score tag)."""
    import pandas as pd
    from pyserini.trectools import TrecRun

    rows = [(q, "Q0", d, r, s, "fusion-input") for q, pairs in run.items() for r, (d, s) in enumerate(pairs, 1)]
    trec = TrecRun()
    frame = pd.DataFrame(rows, columns=TrecRun.columns)
    trec.run_data = frame.astype({"topic": object, "docid": object, "rank": "int64", "score": "float64"})
    return trec


def fuse(runs: Sequence[Run], *, method: str = DEFAULT_FUSION, alpha: float | None = None,
         rrf_k: int | None = None, depth: int | None = None, k: int | None = None) -> dict[str, list[ScoredDoc]]:
    """Fuse ``runs`` (each ``{query id: [ScoredDoc]}``, hits in any order; the query id is the
    key, the records' own ``query_id`` and ``rank`` are not read) into one run (see the module
    docstring for the formulas).

    ``method``: ``"rrf"`` (two or more runs; ``rrf_k``, default 60) or ``"interpolation"``
    (exactly two runs; ``alpha`` in [0, 1], default 0.5, weights ``runs[0]``). ``depth``: hits of
    each run fused (its top ``depth`` in the toolkit's order; None: all). ``k``: hits kept per
    query (None: the union of the hits fused).

    Returns ``{query id: [ScoredDoc]}``, each list ranked by :func:`~splare_lucene.ranking.rank_hits`.
    Raises ConfigError for a bad parameter (naming it and the value) and InputError for a run
    that is not a mapping, a hit that is not a ScoredDoc, a document held twice for one query, or
    a non-finite score.
    """
    from .ranking import rank_hits
    from .types import ScoredDoc

    runs = list(runs)
    check_fusion_parameters(method, n_runs=len(runs), alpha=alpha, rrf_k=rrf_k, depth=depth, k=k)
    ranked = [_ranked(run, i, depth) for i, run in enumerate(runs)]
    if method == "interpolation":
        alpha = DEFAULT_ALPHA if alpha is None else float(alpha)
        weighted = [r for r, w in zip(ranked, (alpha, 1.0 - alpha)) if w > 0.0]
    else:
        weighted = ranked
    qids = list(dict.fromkeys(q for r in ranked for q in r))
    # Pyserini's merge sorts by (topic, score desc, docid asc), the toolkit's rule before tie
    # spreading, and keeps the first k per topic: the cut equals rank_hits(...)[:k] below.
    if not any(pairs for r in weighted for pairs in r.values()):
        fused_rows = []
    elif len(weighted) == 1:  # alpha 1 or 0: the other run alone, normalised (same order)
        from pyserini.trectools import RescoreMethod

        data = _trec_run(weighted[0]).rescore(method=RescoreMethod.NORMALIZE).run_data
        data = data.sort_values(["topic", "score", "docid"], ascending=[True, False, True])
        fused_rows = _rows(data.groupby("topic", sort=False).head(k) if k is not None else data)
    elif method == "rrf":
        from pyserini.fusion import reciprocal_rank_fusion

        merged = reciprocal_rank_fusion([_trec_run(r) for r in weighted],
                                        rrf_k=DEFAULT_RRF_K if rrf_k is None else rrf_k, k=k)
        fused_rows = _rows(merged.run_data)
    else:
        from pyserini.fusion import interpolation
        from pyserini.trectools import RescoreMethod

        normalised = [_trec_run(r).rescore(method=RescoreMethod.NORMALIZE) for r in weighted]
        fused_rows = _rows(interpolation(normalised, alpha=alpha, k=k).run_data)
    grouped: dict[str, list[ScoredDoc]] = {q: [] for q in qids}
    for qid, doc_id, score in fused_rows:
        grouped[qid].append(ScoredDoc(qid, doc_id, score, 0))
    return {q: (rank_hits(hits)[:k] if k is not None else rank_hits(hits)) for q, hits in grouped.items()}


def _rows(data) -> list[tuple[str, str, float]]:
    """(qid, doc id, score) of a Pyserini TrecRun's data frame."""
    return list(zip(data["topic"].astype(str), data["docid"].astype(str), data["score"].astype(float)))


def pairs_to_run(hits: Mapping[str, Sequence[tuple[str, float]]]) -> dict[str, list[ScoredDoc]]:
    """``{qid: [(doc id, score), ...]}`` (what :func:`splare_lucene.bm25.bm25_search` returns)
    -> ``{qid: [ScoredDoc]}`` ranked by :func:`~splare_lucene.ranking.rank_hits`."""
    from .ranking import rank_hits
    from .types import ScoredDoc

    return {q: rank_hits(ScoredDoc(q, d, float(s), 0) for d, s in h) for q, h in hits.items()}


__all__ = ["DEFAULT_ALPHA", "DEFAULT_DEPTH", "DEFAULT_FUSION", "DEFAULT_RRF_K", "FUSION_METHODS",
           "check_fusion_parameters", "fuse", "pairs_to_run"]
