"""Runs + qrels -> metrics, with ir_measures. The last step of the pipeline.

Also what reports them: paired significance tests between systems, results tables (Markdown and
CSV), per-query files, and a bar plot (matplotlib, imported only when plotting).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import InputError
from .types import ScoredDoc

DEFAULT_MEASURES = ("nDCG@10", "R@100", "R@1000", "RR@10")


# last column of a qrels header line (BEIR writes `query-id corpus-id score`)
QRELS_HEADER_LAST = ("score", "relevance", "rel", "label", "grade")


def iter_qrels(path: str | os.PathLike) -> Iterator[tuple[int, str, str, int]]:
    """(line, query id, doc id, relevance) per judgement of a qrels file, read by
    :func:`splare_lucene.textio.iter_lines` (gzip, strict UTF-8, BOM and CR dropped).

    Formats: BEIR TSV ``query-id<TAB>corpus-id<TAB>score`` (a first line whose last column is a
    header name, ``score``, ``relevance``, ``rel``, ``label`` or ``grade``, is skipped; any other first
    line is a judgement, so a malformed one is an error rather than a silently skipped "header")
    or TREC ``qid 0 docid rel``. A line holding a TAB is split
    at TABs only, so an id with a space inside (``doc 1``) is refused by
    :func:`~splare_lucene.textio.check_id` instead of being split into another column layout.

    Raises:
        InputError: naming the file and line: wrong column count, an id with whitespace or control
            characters, a relevance that is not an integer, or the errors of ``iter_lines``.
    """
    from .textio import check_id, iter_lines

    first = True
    for line_no, line in iter_lines(path):
        if "\t" in line:
            parts = [p.strip() for p in line.split("\t")]
            parts = [p for p in parts if p]
        else:
            parts = line.split()
        if not parts:
            continue  # blank
        header, first = first and parts[-1].lower() in QRELS_HEADER_LAST, False
        if header:
            continue
        if len(parts) == 3:
            q, d, rel = parts
        elif len(parts) == 4:
            q, _, d, rel = parts
        else:
            raise InputError(f"expected `query-id<TAB>corpus-id<TAB>score` or TREC `qid 0 docid rel`; "
                             f"got {len(parts)} columns", str(path), line_no)
        try:
            relevance = int(rel)
        except ValueError:
            raise InputError(f"relevance {rel!r} is not an integer (BEIR qrels are `query-id<TAB>corpus-id"
                             f"<TAB>score`, TREC qrels `qid 0 docid rel`; this line has {len(parts)} "
                             "columns)", str(path), line_no) from None
        yield (line_no, check_id(q, path, line_no, what="query id"), check_id(d, path, line_no, what="doc id"),
               relevance)


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (header ``query-id corpus-id score``) or TREC qrels -> {qid: {docid: rel}}
    (see :func:`iter_qrels`; a later line for the same pair wins)."""
    out: dict[str, dict[str, int]] = {}
    for _, q, d, rel in iter_qrels(path):
        out.setdefault(q, {})[d] = rel
    return out


def parse_measures(names) -> list:
    import ir_measures

    out = []
    for name in names:
        try:
            out.append(ir_measures.parse_measure(name))
        except (ValueError, NameError, SyntaxError) as exc:
            raise InputError(f"unknown measure {name!r} ({exc}); examples: nDCG@10, R@100, RR@10, AP, P@5") from None
    return out


def evaluate(run: dict[str, list[ScoredDoc]], qrels: dict[str, dict[str, int]], measures=DEFAULT_MEASURES):
    """Returns (aggregate {measure name: value}, per-query [(qid, measure name, value)]).

    Queries without any relevance judgement are left out (ir_measures' convention); queries that
    have judgements but no hits count as 0.

    Every query's hits are first put in the toolkit's one order (:mod:`splare_lucene.ranking`:
    score descending, then doc id ascending, tied scores made strictly decreasing): ir_measures
    picks a provider per measure (msmarco for RR@k, pytrec_eval for P, nDCG, R, AP), and they
    break score ties differently, which gave RR@10 = 1 and P@1 = 0 for one query. Raises
    InputError for a NaN or infinite score.
    """
    import ir_measures

    from .ranking import rank_hits

    parsed = parse_measures(measures)
    qrel_list = [ir_measures.Qrel(q, d, r) for q, docs in qrels.items() for d, r in docs.items()]
    scored = [ir_measures.ScoredDoc(h.query_id, h.doc_id, h.score)
              for hits in run.values() for h in rank_hits(hits)]
    aggregate = {str(m): float(v) for m, v in ir_measures.calc_aggregate(parsed, qrel_list, scored).items()}
    per_query = [(m.query_id, str(m.measure), float(m.value))
                 for m in ir_measures.iter_calc(parsed, qrel_list, scored)]
    return aggregate, per_query


# -- measures, runs, per-query values ----------------------------------------------------------

SIGNIFICANCE_TESTS = ("t-test", "randomization")


def split_measures(text: str) -> list[str]:
    """``"nDCG@10,R@100,P(rel=2)@5"`` -> names; commas inside parentheses stay (measure parameters)."""
    names, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            names.append(current.strip())
            current = ""
        else:
            current += ch
    names.append(current.strip())
    return [n for n in names if n]


def measure_names(names) -> list[str]:
    """The canonical ir_measures names (``MRR@10`` -> ``RR@10``), validated, duplicates dropped."""
    return list(dict.fromkeys(str(m) for m in parse_measures(names)))


def read_run(path: str | os.PathLike) -> dict[str, list[ScoredDoc]]:
    """A TREC run (``qid Q0 docid rank score tag``) -> {qid: hits, best first}.

    Hits are ordered by :func:`splare_lucene.ranking.rank_hits` (score descending, then doc id
    ascending; ranks renumbered 1..n, tied scores made strictly decreasing), not by the file's
    rank column."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such run file; give a TREC run (qid Q0 docid rank score tag)", path=str(path))
    run: dict[str, list[ScoredDoc]] = {}
    from .textio import iter_lines

    for line_no, line in iter_lines(path):  # gzip, strict UTF-8, BOM and CR dropped
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise InputError(f"expected 6 columns `qid Q0 docid rank score tag`; got {len(parts)}",
                             str(path), line_no)
        try:
            hit = ScoredDoc(parts[0], parts[2], float(parts[4]), int(parts[3]))
        except ValueError:
            raise InputError("rank must be an integer and score a number", str(path), line_no) from None
        run.setdefault(hit.query_id, []).append(hit)
    if not run:
        raise InputError("the run file is empty", path=str(path))
    from .ranking import rank_hits

    # the file's rank column and line order are not trusted: one tie rule for every run (ranking.py)
    try:
        return {q: rank_hits(hits) for q, hits in run.items()}
    except InputError as exc:  # a NaN or infinite score: say which file
        raise InputError(str(exc), path=str(path)) from None


def values_of(per_query, measure: str, query_ids) -> list[float]:
    """Per-query values of ``measure`` in the order of ``query_ids`` (absent queries count 0)."""
    table = {q: v for q, m, v in per_query if m == measure}
    return [table.get(q, 0.0) for q in query_ids]


def paired_test(system, baseline, method: str = "t-test", trials: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of a paired test on per-query values of one measure.

    ``t-test``: Student's paired t-test (scipy.stats.ttest_rel). ``randomization``: approximate
    randomization (``trials`` random sign flips of the per-query differences; p = (hits+1)/(trials+1)).
    Identical systems give 1.0.
    """
    import numpy as np

    if method not in SIGNIFICANCE_TESTS:
        raise InputError(f"significance test must be one of {list(SIGNIFICANCE_TESTS)}; got {method!r}")
    a, b = np.asarray(system, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need the same queries; got {a.shape} and {b.shape}")
    diff = a - b
    if a.size < 2 or not np.any(diff):
        return 1.0
    if method == "t-test":
        import warnings

        from scipy.stats import ttest_rel

        with warnings.catch_warnings():  # equal non-zero differences: zero variance, t = inf, p = 0
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(ttest_rel(a, b).pvalue)
        return 1.0 if p != p else p
    rng = np.random.default_rng(seed)
    observed = abs(diff.mean())
    hits, chunk = 0, max(1, 2 ** 22 // diff.size)  # (chunk, queries) sign matrices of <= 32 MB
    for start in range(0, trials, chunk):
        signs = rng.choice((-1.0, 1.0), size=(min(chunk, trials - start), diff.size))
        hits += int(np.count_nonzero(np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12))
    return (hits + 1) / (trials + 1)


# -- results tables ----------------------------------------------------------------------------

@dataclass
class ResultRow:
    """One system on one collection (``collection == "mean"``: averaged over collections)."""

    collection: str
    system: str
    metrics: dict[str, float]
    queries: int
    p_value: float | None = None   # paired test of the main measure against the baseline
    baseline: bool = False


def mean_rows(rows: list[ResultRow]) -> list[ResultRow]:
    """Per system, the unweighted mean over collections (as BEIR reports), when there are several."""
    collections = list(dict.fromkeys(r.collection for r in rows))
    if len(collections) < 2:
        return []
    out = []
    for system in dict.fromkeys(r.system for r in rows):
        mine = [r for r in rows if r.system == system]
        if len(mine) != len(collections):
            continue  # a system missing on some collection has no comparable mean
        names = list(dict.fromkeys(m for r in mine for m in r.metrics))
        metrics = {m: sum(r.metrics.get(m, 0.0) for r in mine) / len(mine) for m in names}
        out.append(ResultRow("mean", system, metrics, sum(r.queries for r in mine),
                             baseline=any(r.baseline for r in mine)))
    return out


def _p(row: ResultRow) -> str:
    if row.baseline:
        return "baseline"
    if row.p_value is None:
        return ""
    return f"{row.p_value:.2e}" if row.p_value < 1e-3 else f"{row.p_value:.3f}"


def markdown_table(rows: list[ResultRow], measures, test: str | None = None) -> str:
    """A Markdown table; the p column (when ``test`` names it) is for the first measure."""
    measures = list(measures)
    head = ["collection", "system", "queries", *measures] + ([f"p ({measures[0]}, {test})"] if test else [])
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---", "---", "---:"] + ["---:"] * len(measures) + (["---:"] if test else [])) + "|"]
    for r in rows:
        cells = [r.collection, r.system, str(r.queries)] + [f"{r.metrics.get(m, float('nan')):.4f}" for m in measures]
        if test:
            cells.append(_p(r))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[ResultRow], measures, path: str | os.PathLike) -> None:
    import csv

    measures = list(measures)
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["collection", "system", "queries", *measures, "p_value", "baseline"])
        for r in rows:
            writer.writerow([r.collection, r.system, r.queries, *(f"{r.metrics.get(m, float('nan')):.6f}" for m in measures),
                             "" if r.p_value is None else f"{r.p_value:.6g}", int(r.baseline)])


def write_per_query(path: str | os.PathLike, per_system: dict[str, list[tuple[str, str, float]]]) -> None:
    """``system query_id measure value`` rows (TSV with a header), one per system, query and measure."""
    with Path(path).open("w", encoding="utf-8") as f:
        f.write("system\tquery_id\tmeasure\tvalue\n")
        for system, per_query in per_system.items():
            for qid, measure, value in sorted(per_query, key=lambda t: (t[1], t[0])):
                f.write(f"{system}\t{qid}\t{measure}\t{value:.6f}\n")


def plot_results(rows: list[ResultRow], measure: str, path: str | os.PathLike) -> Path:
    """Grouped bars of ``measure``: one group per collection, one bar per system (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    collections = list(dict.fromkeys(r.collection for r in rows))
    systems = list(dict.fromkeys(r.system for r in rows))
    value = {(r.collection, r.system): r.metrics.get(measure, 0.0) for r in rows}
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(collections) * max(1, len(systems)) ** 0.5 + 2), 3.5))
    for i, system in enumerate(systems):
        xs = [c + (i - (len(systems) - 1) / 2) * width for c in range(len(collections))]
        bars = ax.bar(xs, [value.get((c, system), 0.0) for c in collections], width, label=system)
        ax.bar_label(bars, fmt="%.3f", fontsize=6)
    ax.set_xticks(range(len(collections)), collections, rotation=20 if len(collections) > 3 else 0, ha="right"
                  if len(collections) > 3 else "center")
    ax.set_ylabel(measure)
    ax.set_ylim(0, max([1e-6, *value.values()]) * 1.15)
    ax.legend(fontsize="small")
    ax.set_title(f"{measure} per collection")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
    return path
