"""Hybrid fusion (splare_lucene.fusion, `search/evaluate --hybrid bm25`): values worked out by hand,
the tie rule, parameter checks, and one round trip through the CLI with a real BM25 index."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splare_lucene.errors import ConfigError, InputError
from splare_lucene.fusion import fuse, pairs_to_run
from splare_lucene.types import ScoredDoc

from conftest import DEMO_DIR, REPO


def _run(spec: dict[str, dict[str, float]]) -> dict[str, list[ScoredDoc]]:
    return {q: [ScoredDoc(q, d, s, 0) for d, s in hits.items()] for q, hits in spec.items()}


# SPLARE-like (integer impact sums) and BM25-like scores of one query; b only in the first run,
# d only in the second.
SPLARE = _run({"q1": {"a": 30.0, "b": 20.0, "c": 10.0}, "q2": {"x": 7.0}})
BM25 = _run({"q1": {"c": 9.0, "d": 6.0, "a": 3.0}})


def _order(run, qid="q1"):
    return [h.doc_id for h in run[qid]]


def test_rrf_sums_reciprocal_ranks_and_breaks_ties_by_doc_id():
    fused = fuse([SPLARE, BM25], method="rrf")  # rrf_k = 60
    # a: ranks 1 and 3, c: ranks 3 and 1 -> equal sums; b and d: rank 2 in one run only -> 1/62 each
    assert _order(fused) == ["a", "c", "b", "d"]  # ties: doc id ascending
    assert fused["q1"][0].score == 1 / 61 + 1 / 63
    assert fused["q1"][1].score < fused["q1"][0].score  # the tie spread to strictly decreasing scores
    assert fused["q1"][1].score == pytest.approx(1 / 61 + 1 / 63, abs=2e-6)
    assert fused["q1"][2].score == 1 / 62 and fused["q1"][3].score == pytest.approx(1 / 62, abs=2e-6)
    assert [h.rank for h in fused["q1"]] == [1, 2, 3, 4]
    assert [h.query_id for h in fused["q1"]] == ["q1"] * 4
    # a query only one run holds is fused from that run
    assert [(h.doc_id, h.score) for h in fused["q2"]] == [("x", 1 / 61)]
    assert list(fused) == ["q1", "q2"]


def test_rrf_k_is_the_constant_in_the_denominator():
    fused = fuse([SPLARE, BM25], method="rrf", rrf_k=0)
    assert fused["q1"][0].score == 1 / 1 + 1 / 3 and fused["q1"][2].score == 1 / 2


def test_interpolation_weights_min_max_normalised_scores():
    fused = fuse([SPLARE, BM25], method="interpolation", alpha=0.25)
    # normalised first run: a 1, b 0.5, c 0; second: c 1, d 0.5, a 0; missing documents add 0
    expected = {"c": 0.75 * 1, "d": 0.75 * 0.5, "a": 0.25 * 1, "b": 0.25 * 0.5}
    assert _order(fused) == ["c", "d", "a", "b"]
    assert {h.doc_id: h.score for h in fused["q1"]} == pytest.approx(expected, abs=1e-12)
    assert fused["q2"][0].score == pytest.approx(0.25)  # one hit normalises to 1 (Pyserini's rule)


def test_alpha_one_and_zero_give_one_runs_order_and_documents():
    assert _order(fuse([SPLARE, BM25], method="interpolation", alpha=1.0)) == ["a", "b", "c"]
    assert _order(fuse([SPLARE, BM25], method="interpolation", alpha=0.0)) == ["c", "d", "a"]
    assert fuse([SPLARE, BM25], method="interpolation", alpha=0.0)["q2"] == []


def test_input_ties_are_ranked_by_the_rule_before_fusion():
    tied = _run({"q": {"y": 5.0, "x": 5.0, "z": 1.0}})
    other = _run({"q": {"z": 2.0}})
    fused = fuse([tied, other], method="rrf")
    # x before y (doc id ascending) -> ranks 1 and 2 -> 1/61 and 1/62; z: 1/63 + 1/61
    assert _order(fused, "q") == ["z", "x", "y"]
    assert [h.score for h in fused["q"]] == [1 / 63 + 1 / 61, 1 / 61, 1 / 62]


def test_depth_cuts_each_run_before_normalising_and_k_cuts_the_result():
    fused = fuse([SPLARE, BM25], method="rrf", depth=1)
    assert [(h.doc_id, h.score) for h in fused["q1"]][0] == ("a", 1 / 61) and _order(fused) == ["a", "c"]
    interp = fuse([SPLARE, BM25], method="interpolation", alpha=0.4, depth=2)
    # first run a 30, b 20 -> 1, 0; second c 9, d 6 -> 1, 0
    assert {h.doc_id: h.score for h in interp["q1"]} == pytest.approx({"a": 0.4, "b": 0.0, "c": 0.6, "d": 0.0},
                                                                      abs=1e-6)
    assert _order(fuse([SPLARE, BM25], method="rrf", k=2)) == ["a", "c"]


def test_equal_scores_normalise_to_one():
    flat = _run({"q": {"a": 4.0, "b": 4.0}})
    fused = fuse([flat, _run({"q": {}})], method="interpolation", alpha=0.5)
    assert _order(fused, "q") == ["a", "b"]
    assert fused["q"][0].score == 0.5 and fused["q"][1].score == pytest.approx(0.5, abs=2e-6)  # equal, then spread by the tie rule


def test_empty_runs_fuse_to_empty_queries():
    assert fuse([_run({"q": {}}), _run({"q": {}})]) == {"q": []}


def test_pairs_to_run_ranks_bm25_style_hits():
    run = pairs_to_run({"q": [("b", 1.0), ("a", 1.0), ("c", 2.0)]})
    assert [(h.doc_id, h.rank) for h in run["q"]] == [("c", 1), ("a", 2), ("b", 3)]


@pytest.mark.parametrize("kwargs, runs, message", [
    ({"method": "borda"}, 2, "fusion method must be one of ['rrf', 'interpolation']; got 'borda'"),
    ({"method": "interpolation", "alpha": 1.5}, 2, "alpha must be a number in [0, 1]"),
    ({"method": "interpolation", "alpha": math.nan}, 2, "alpha must be a number in [0, 1]"),
    ({"method": "interpolation", "alpha": True}, 2, "alpha must be a number in [0, 1]"),
    ({"method": "interpolation"}, 3, "interpolation fuses exactly two runs"),
    ({"method": "interpolation", "rrf_k": 60}, 2, "rrf_k applies to method='rrf'"),
    ({"method": "rrf"}, 1, "reciprocal rank fusion needs at least two runs; got 1"),
    ({"method": "rrf", "alpha": 0.5}, 2, "alpha applies to method='interpolation'"),
    ({"method": "rrf", "rrf_k": -1}, 2, "rrf_k must be a non-negative integer"),
    ({"method": "rrf", "rrf_k": 2.5}, 2, "rrf_k must be a non-negative integer"),
    ({"depth": 0}, 2, "depth must be a positive integer or None"),
    ({"k": -3}, 2, "k must be a positive integer or None"),
])
def test_bad_parameters_are_refused_naming_the_value(kwargs, runs, message):
    with pytest.raises(ConfigError) as info:
        fuse([SPLARE] * runs, **kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("runs, message", [
    ([_run({"q": {"a": 1.0}}), {"q": [ScoredDoc("q", "a", 1.0, 1), ScoredDoc("q", "a", 2.0, 2)]}],
     "run 1, query 'q': document 'a' appears twice"),
    ([_run({"q": {"a": math.nan}}), BM25], "document 'a' has score nan"),
    ([{"q": [("a", 1.0)]}, BM25], "not a ScoredDoc; convert (doc id, score) pairs"),
    ([[("q", "a", 1.0)], BM25], "run 0 is a list; give a mapping"),
])
def test_bad_runs_are_refused(runs, message):
    with pytest.raises(InputError) as info:
        fuse(runs)
    assert message in str(info.value)


def _reference_rrf(runs, rrf_k):
    """RRF written out from the formula, ranks by score desc then doc id asc."""
    scores: dict[str, dict[str, float]] = {}
    for run in runs:
        for q, hits in run.items():
            ranked = sorted(hits, key=lambda h: (-h.score, h.doc_id))
            for r, h in enumerate(ranked, start=1):
                scores.setdefault(q, {}).setdefault(h.doc_id, 0.0)
                scores[q][h.doc_id] += 1 / (rrf_k + r)
    return {q: [d for d, _ in sorted(s.items(), key=lambda x: (-x[1], x[0]))] for q, s in scores.items()}


_runs = st.dictionaries(st.sampled_from(["q1", "q2"]),
                        st.dictionaries(st.sampled_from(list("abcdefg")), st.integers(0, 5).map(float), max_size=6),
                        min_size=1)


@settings(max_examples=60, deadline=None)
@given(first=_runs, second=_runs, rrf_k=st.integers(0, 100))
def test_rrf_matches_the_formula(first, second, rrf_k):
    runs = [_run(first), _run(second)]
    fused = fuse(runs, method="rrf", rrf_k=rrf_k)
    reference = _reference_rrf(runs, rrf_k)
    assert {q: _order(fused, q) for q in fused if fused[q]} == {q: d for q, d in reference.items() if d}


@settings(max_examples=60, deadline=None)
@given(first=_runs, second=_runs, alpha=st.floats(0.0, 1.0))
def test_interpolation_output_is_ranked_and_bounded(first, second, alpha):
    fused = fuse([_run(first), _run(second)], method="interpolation", alpha=alpha)
    for q, hits in fused.items():
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
        assert all(-1e-5 <= s <= 1.0 + 1e-9 for s in scores)  # ties at 0 spread below it by 1e-6 steps
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


def test_fusion_starts_no_jvm():
    code = ("import sys\nfrom splare_lucene.fusion import fuse\nfrom splare_lucene.types import ScoredDoc as S\n"
            "r = {'q': [S('q', 'a', 1.0, 0), S('q', 'b', 2.0, 0)]}\n"
            "fuse([r, r]); fuse([r, r], method='interpolation')\n"
            "assert not [m for m in sys.modules if 'jnius' in m or m == 'torch'], 'JVM or torch loaded'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- command line -----------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["search", "--index", "i", "--query", "q", "--alpha", "0.5"],
     "argument --alpha: applies to hybrid retrieval; add --hybrid bm25"),
    (["search", "--index", "i", "--query", "q", "--corpus", "c"], "argument --corpus: applies to --hybrid bm25"),
    (["search", "--index", "i", "--query", "q", "--hybrid", "bm25"],
     "argument --hybrid: bm25 needs the documents' text: give --corpus C"),
    (["search", "--index", "i", "--query", "q", "--hybrid", "bm25", "--corpus", "c", "--bm25-index", "b"],
     "argument --hybrid: bm25 needs the documents' text"),
    (["search", "--index", "i", "--query", "q", "--hybrid", "bm25", "--corpus", "c", "--alpha", "0.3"],
     "argument --alpha: applies to --fusion interpolation"),
    (["evaluate", "--collection", "c", "--hybrid", "bm25", "--fusion", "interpolation", "--rrf-k", "5"],
     "argument --rrf-k: applies to --fusion rrf"),
    (["evaluate", "--collection", "c", "--fusion", "rrf"], "argument --fusion: applies to hybrid retrieval"),
])
def test_fusion_options_that_do_not_fit_are_refused_at_parse_time(argv, message, capsys):
    from splare_lucene.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.fixture(scope="module")
def demo_index(tiny_model, tmp_path_factory):
    from splare_lucene.cli.main import main

    root = tmp_path_factory.mktemp("hybrid")
    assert main(["index", "--model", str(tiny_model), "--corpus", str(DEMO_DIR), "--index", str(root / "index"),
                 "--device", "cpu"]) == 0
    return root


@pytest.mark.java
@pytest.mark.slow  # about a minute on 2 busy cores: two Anserini indexings, a model load per command
def test_cli_hybrid_search_and_evaluate_round_trip(demo_index, tiny_model, tmp_path, monkeypatch, capsys):
    from splare_lucene.backends import open_index
    from splare_lucene.bm25 import bm25_index, bm25_search
    from splare_lucene.cli.main import main
    from splare_lucene.corpus import read_queries
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.evaluate import evaluate, read_qrels, read_run

    monkeypatch.setenv("SPLARE_LUCENE_CACHE", str(tmp_path / "cache"))  # the BM25 index goes there
    run_file = tmp_path / "hybrid.trec"
    assert main(["search", "--model", str(tiny_model), "--index", str(demo_index / "index"), "--queries",
                 str(DEMO_DIR), "--output", str(run_file), "--k", "5", "--device", "cpu", "--hybrid", "bm25",
                 "--corpus", str(DEMO_DIR), "--fusion", "interpolation", "--alpha", "0.7"]) == 0
    queries = list(read_queries(str(DEMO_DIR)))
    splare = open_index(demo_index / "index", SplareEncoder.from_pretrained(tiny_model, device="cpu")).search(
        queries, k=1000, progress=False)
    bm25 = pairs_to_run(bm25_search(bm25_index(str(DEMO_DIR)), {q.id: q.text for q in queries}, k=1000))
    expected = fuse([splare, bm25], method="interpolation", alpha=0.7, k=5)
    got = read_run(run_file)
    assert {line.split()[5] for line in run_file.read_text().splitlines()} == {"hybrid-interpolation"}
    assert {q: [h.doc_id for h in hits] for q, hits in got.items()} == \
        {q: [h.doc_id for h in hits] for q, hits in expected.items() if hits}
    for q, hits in got.items():
        assert [h.score for h in hits] == pytest.approx([h.score for h in expected[q]], abs=1e-6)

    capsys.readouterr()
    assert main(["search", "--model", str(tiny_model), "--index", str(demo_index / "index"), "--query",
                 "bees pollinate flowers", "--k", "3", "--device", "cpu", "--hybrid", "bm25",
                 "--bm25-index", str(bm25_index(str(DEMO_DIR)))]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3

    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tiny_model), "--collection", str(DEMO_DIR), "--bm25", "--hybrid",
                 "bm25", "--k", "100", "--device", "cpu", "--output", str(out), "--measures", "nDCG@10"]) == 0
    md = (out / "results.md").read_text()
    assert "| tiny+BM25 rrf(k=60) |" in md and "| BM25 |" in md and "| tiny |" in md
    work = out / "demo"
    fused = fuse([read_run(work / "run.trec"), read_run(work / "bm25.trec")], method="rrf", k=100)
    assert [h.doc_id for hits in read_run(work / "hybrid.trec").values() for h in hits] == \
        [h.doc_id for hits in fused.values() for h in hits]
    value = evaluate(fused, read_qrels(DEMO_DIR / "qrels" / "test.tsv"), ["nDCG@10"])[0]["nDCG@10"]
    assert f"| {value:.4f} |" in md.split("tiny+BM25 rrf(k=60)")[1].splitlines()[0]
