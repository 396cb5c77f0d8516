"""One tie-breaking rule for every run (issue 10, case 6): score descending, then doc id
ascending, tied scores made strictly decreasing, in runs written, returned and scored.

Before, two documents with one score and only the first judged relevant gave RR@10 = 1.0 (ir_measures'
msmarco provider: ties by doc id ascending) and P@1 = 0.0 (pytrec_eval: ties by doc id descending)
in one results row."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splare_lucene.errors import InputError
from splare_lucene.evaluate import evaluate, read_run
from splare_lucene.ranking import format_score, rank_hits
from splare_lucene.types import ScoredDoc

MEASURES = ["RR@10", "P@1", "nDCG@10", "R@1", "AP"]


def _consistent(metrics: dict) -> None:
    """One relevant document: every measure must see it at the same rank."""
    if metrics["P@1"] == 1.0:
        assert metrics["RR@10"] == metrics["R@1"] == metrics["AP"] == metrics["nDCG@10"] == 1.0
    else:
        assert metrics["RR@10"] < 1.0 and metrics["R@1"] == 0.0 and metrics["nDCG@10"] < 1.0


@pytest.mark.parametrize("relevant, expected_p1", [("a", 1.0), ("b", 0.0)])
@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")])
def test_issue_example_rr_and_p_agree_in_evaluate(relevant, expected_p1, order):
    """Two hits with the same integer score, in either input order: the rule puts "a" first."""
    run = {"q": [ScoredDoc("q", d, 12.0, r + 1) for r, d in enumerate(order)]}
    metrics, per_query = evaluate(run, {"q": {relevant: 1}}, MEASURES)
    assert metrics["P@1"] == expected_p1
    assert metrics["RR@10"] == (1.0 if expected_p1 else 0.5)
    _consistent(metrics)


def test_run_file_with_ties_scores_consistently(tmp_path):
    """A run file whose rank column and line order disagree with the rule (trec_eval ignores both)."""
    path = tmp_path / "run.trec"
    path.write_text("q Q0 b 1 7.000000 x\nq Q0 a 2 7.000000 x\nq Q0 c 3 3.5 x\n")
    run = read_run(path)
    assert [h.doc_id for h in run["q"]] == ["a", "b", "c"] and [h.rank for h in run["q"]] == [1, 2, 3]
    assert run["q"][0].score == 7.0 and 3.5 < run["q"][1].score < 7.0
    metrics, _ = evaluate(run, {"q": {"a": 1}}, MEASURES)
    assert metrics["RR@10"] == metrics["P@1"] == 1.0


def test_written_run_reads_back_in_the_same_order_for_every_tool(tmp_path):
    from splare_lucene.ranking import write_trec_run

    hits = [ScoredDoc("q", d, s, 0) for d, s in [("d3", 5.0), ("d1", 5.0), ("d2", 5.0), ("e", 1.0000001),
                                                  ("f", 1.0000002), ("g", 1.0)]]
    write_trec_run({"q": hits}, tmp_path / "run.trec")
    rows = [line.split() for line in (tmp_path / "run.trec").read_text().splitlines()]
    written = [(r[2], float(r[4])) for r in rows]
    assert [d for d, _ in written] == ["d1", "d2", "d3", "f", "e", "g"]
    assert [int(r[3]) for r in rows] == [1, 2, 3, 4, 5, 6]
    scores = [s for _, s in written]
    assert all(a > b for a, b in zip(scores, scores[1:]))  # %.6f wrote e and f as one value
    # trec_eval / pytrec_eval sort by score, ties by docno descending; msmarco by docno ascending:
    # with distinct scores both read the file's order
    assert sorted(written, key=lambda t: (-t[1], t[0])) == written
    assert sorted(written, key=lambda t: t[0], reverse=True) != written
    assert [h.doc_id for h in read_run(tmp_path / "run.trec")["q"]] == [d for d, _ in written]


def test_rank_hits_rule_and_bounds():
    hits = [ScoredDoc("q", d, s, 9) for d, s in [("b", 2.0), ("a", 2.0), ("c", 2.0), ("z", 1.0), ("y", 3.0)]]
    ranked = rank_hits(hits)
    assert [h.doc_id for h in ranked] == ["y", "a", "b", "c", "z"]
    assert [h.rank for h in ranked] == [1, 2, 3, 4, 5]
    assert ranked[0].score == 3.0 and ranked[1].score == 2.0 and ranked[4].score == 1.0  # untied: unchanged
    assert 2.0 > ranked[2].score > ranked[3].score > 1.0 and 2.0 - ranked[3].score < 1e-5  # tiny steps
    assert rank_hits(ranked) == ranked  # idempotent
    assert rank_hits([]) == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_refused(bad):
    with pytest.raises(InputError, match=r"query 'q': document 'd' has score .*must be finite"):
        rank_hits([ScoredDoc("q", "d", bad, 1)])


def test_run_file_with_nan_score_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("q Q0 a 1 nan x\n")
    with pytest.raises(InputError, match=rf"^{path}: query 'q': document 'a' has score nan"):
        read_run(path)


_ids = st.text(alphabet="abcdeXYZ019é", min_size=1, max_size=4)
# few distinct values, so that ties are frequent; some adjacent floats (no room between them)
_scores = st.sampled_from([0.0, 1.0, 2.0, -3.5, 7.25, 1e9, 1e-9, math.nextafter(1.0, 2.0), 1e-300])


def _reference_rank(hits):
    """The rule of splare_lucene/ranking.py written plainly (one key sort, _replace per hit): the
    optimised rank_hits must give exactly this, scores to the last bit."""
    ordered = sorted(hits, key=lambda h: (-h.score, h.doc_id))
    out, previous, i = [], math.inf, 0
    while i < len(ordered):
        s = ordered[i].score
        j = i + 1
        while j < len(ordered) and ordered[j].score == s:
            j += 1
        m, eps = j - i, 0.0
        if m > 1:
            eps = max(abs(s), 1.0) * 1e-6
            if j < len(ordered):
                eps = min(eps, (s - ordered[j].score) / (m + 1))
        for t in range(m):
            value = s - t * eps
            if not value < previous:
                value = math.nextafter(previous, -math.inf)
            out.append(ordered[i + t]._replace(score=value, rank=len(out) + 1))
            previous = value
        i = j
    return out


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_ids, _scores, max_size=40))
def test_rank_hits_properties(scores):
    hits = [ScoredDoc("q", d, s, 0) for d, s in scores.items()]
    ranked = rank_hits(hits)
    order = sorted(scores, key=lambda d: (-scores[d], d))
    assert [h.doc_id for h in ranked] == order
    values = [h.score for h in ranked]
    assert all(a > b for a, b in zip(values, values[1:]))  # strictly decreasing
    # written and read back: still distinct and in the same order (what every backend sees)
    assert [float(format_score(v)) for v in values] == values
    assert rank_hits(ranked) == ranked
    reference = _reference_rank(hits)
    assert [tuple(h) for h in ranked] == [tuple(h) for h in reference]
    assert all(type(h) is ScoredDoc for h in ranked) and [h.rank for h in ranked] == list(range(1, len(hits) + 1))


@pytest.mark.java
def test_lucene_run_with_tied_documents_scores_consistently(tmp_path, tiny_model):
    """Two documents with identical vectors and a score in the thousands (the SPLARE range: impacts
    of scale 100 multiplied): Anserini's own tie adjustment (a 1e-6 step) vanishes in float32 at
    that size, so Lucene returns two equal scores; batch_search makes them strictly decreasing by
    the rule, and the run scores the same through evaluate() and through a written run file."""
    from splare_lucene.index import build_index
    from splare_lucene.jsonl import JsonVectorWriter
    from splare_lucene.search import SplareQueryEncoder, batch_search, open_searcher, write_trec_run
    from splare_lucene.types import Query

    with JsonVectorWriter(tmp_path / "jsonl", shards=1) as w:
        for did in ("b", "a", "c"):  # "b" indexed first: Lucene's internal docid order is b, a
            w.write(did, "same text", {"f1": 300} if did != "c" else {"f1": 100})
    meta = {"signature": {"representation": "sae", "token_prefix": "f", "quantization_scale": 100.0}}
    build_index(tmp_path / "jsonl", tmp_path / "index", meta=meta, progress=False)
    qe = SplareQueryEncoder.from_pretrained(tiny_model, device="cpu")
    qe._memo["moon"] = {"f1": 40}
    searcher = open_searcher(tmp_path / "index", qe)
    try:
        raw = {h.docid: h.score for h in searcher.search("moon", k=3)}
        assert raw["a"] == raw["b"] == 12000.0  # the tie the issue met
        run = batch_search(searcher, [Query("q1", "moon")], k=3, progress=False)
    finally:
        searcher.close()
    assert [h.doc_id for h in run["q1"]] == ["a", "b", "c"]
    assert run["q1"][0].score == 12000.0 > run["q1"][1].score > run["q1"][2].score == 4000.0
    metrics, _ = evaluate(run, {"q1": {"a": 1}}, MEASURES)
    assert metrics["RR@10"] == metrics["P@1"] == 1.0
    _consistent(metrics)
    write_trec_run(run, tmp_path / "run.trec")
    again, _ = evaluate(read_run(tmp_path / "run.trec"), {"q1": {"a": 1}}, MEASURES)
    assert again == metrics
