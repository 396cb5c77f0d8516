"""Runs + qrels -> metrics, with ir_measures. The last step of the pipeline."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError
from .types import ScoredDoc

DEFAULT_MEASURES = ("nDCG@10", "R@100", "R@1000", "RR@10")


def read_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (header ``query-id corpus-id score``) or TREC qrels -> {qid: {docid: rel}}."""
    path = Path(path)
    out: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.split()
            if not parts or (line_no == 1 and not parts[-1].lstrip("-").isdigit()):
                continue  # blank or header
            if len(parts) == 3:
                q, d, rel = parts
            elif len(parts) == 4:
                q, _, d, rel = parts
            else:
                raise InputError("expected `query-id corpus-id score` or TREC `qid 0 docid rel`", str(path), line_no)
            try:
                out.setdefault(q, {})[d] = int(rel)
            except ValueError:
                raise InputError(f"relevance {rel!r} is not an integer", str(path), line_no) from None
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
    """
    import ir_measures

    parsed = parse_measures(measures)
    qrel_list = [ir_measures.Qrel(q, d, r) for q, docs in qrels.items() for d, r in docs.items()]
    scored = [ir_measures.ScoredDoc(h.query_id, h.doc_id, h.score) for hits in run.values() for h in hits]
    aggregate = {str(m): float(v) for m, v in ir_measures.calc_aggregate(parsed, qrel_list, scored).items()}
    per_query = [(m.query_id, str(m.measure), float(m.value))
                 for m in ir_measures.iter_calc(parsed, qrel_list, scored)]
    return aggregate, per_query
