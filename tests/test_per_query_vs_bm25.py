"""benchmarks/per_query_vs_bm25.py: wins, losses, ties, the oracle and the top-10 overlap of a
model's run against BM25's, on runs whose per-query nDCG@10 is known by construction."""

from __future__ import annotations

import pytest

from conftest import load_benchmark
from splare_lucene.types import ScoredDoc


@pytest.fixture(scope="module")
def per_query():
    return load_benchmark("per_query_vs_bm25")


def _run(ranked: dict[str, list[str]]) -> dict[str, list[ScoredDoc]]:
    return {q: [ScoredDoc(q, d, float(len(docs) - i), i + 1) for i, d in enumerate(docs)] for q, docs in ranked.items()}


def test_compare_counts_each_query_once(per_query):
    # one relevant document per query: nDCG@10 is 1 at rank 1, 0 when it is not in the top 10
    qrels = {"a": {"r": 1}, "b": {"r": 1}, "c": {"r": 1}, "d": {"r": 1}}
    filler = [f"x{i}" for i in range(10)]
    model = _run({"a": ["r"] + filler, "b": filler + ["r"], "c": ["r"], "d": filler})
    bm25 = _run({"a": filler + ["r"], "b": ["r"] + filler, "c": ["r"], "d": filler[::-1]})
    r = per_query.compare(model, bm25, qrels, {"a": "text a"}, show=1)
    assert (r["queries"], r["wins"], r["losses"], r["ties"], r["both_zero"]) == (4, 1, 1, 2, 1)
    assert r["model"] == r["bm25"] == 0.5 and r["oracle_max"] == 0.75
    assert (r["model_zero_bm25_not"], r["bm25_zero_model_not"]) == (1, 1)
    # top-10 overlap: a 9/10 (filler minus x9 vs r + x0..x8), b 9/10, c 1/1 -> 1/10, d 10/10
    assert r["top10_overlap"] == pytest.approx((0.9 + 0.9 + 0.1 + 1.0) / 4, abs=1e-4)
    assert r["largest_losses"][0]["query_id"] == "b" and r["largest_wins"][0]["query_id"] == "a"
    assert r["largest_wins"][0]["text"] == "text a" and r["largest_wins"][0]["difference"] == 1.0
