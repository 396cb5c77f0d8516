"""The toolkit's Lucene search path (:class:`splare_lucene.search.ImpactSearcher`) against the
reference it replaces, Pyserini's ``LuceneImpactSearcher(min_idf=-1)``: the same documents with
the same (float32, tie-adjusted) scores in the same order, for k=1, k above the number of
documents, ties (inside the top k and cut by it), empty queries and queries over Lucene's default
clause limit."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DEMO_DIR, read_jsonl

pytestmark = pytest.mark.java  # splare_lucene.search starts the JVM on import

SIGNATURE = {"representation": "sae", "token_prefix": "f", "quantization_scale": 100.0}


# -- Anserini's ScoreTiesAdjusterReranker, reproduced (no Java) --------------------------------------

def _java_tie_adjust(scores):
    """Anserini 1.7.1's loop, line by line in float32 (the reference the vectorised version must equal)."""
    out = [np.float32(s) for s in scores]
    dup = 0
    for i in range(len(out)):
        x = float(out[i]) * 1e4
        r = np.floor(x) + (1.0 if x - np.floor(x) >= 0.5 else 0.0)
        out[i] = np.float32(r / 1e4)
        if i == 0 or np.float32(out[i - 1] - out[i]) > np.float32(1e-4):
            dup = 0
        else:
            dup += 1
            out[i] = np.float32(out[i] - np.float32(np.float32(1e-6) * np.float32(dup)))
    return [float(s) for s in out]


def test_tie_scores_match_anserinis_example():
    """The example in ScoreTiesAdjusterReranker's comment: round to 1e-4, a tie loses 1e-6."""
    from splare_lucene.search import anserini_tie_scores

    got = anserini_tie_scores([23.439316, 22.087432, 22.087432, 21.602508])
    f32 = lambda x: float(np.float32(x))  # noqa: E731
    assert got == [f32(23.4393), f32(22.0874), f32(np.float32(22.0874) - np.float32(1e-6)), f32(21.6025)]


def test_tie_step_vanishes_for_large_scores():
    """In float32 the 1e-6 step is lost above ~32: SPLARE's integer scores come back tied."""
    from splare_lucene.search import anserini_tie_scores

    assert anserini_tie_scores([12000.0, 12000.0, 4000.0]) == [12000.0, 12000.0, 4000.0]
    assert anserini_tie_scores([]) == [] and anserini_tie_scores([7.0]) == [7.0]


@pytest.mark.parametrize("seed", range(20))
def test_tie_scores_equal_the_java_loop(seed):
    """Random descending float32 scores with runs of ties, near-ties within 1e-4 and small
    values: the vectorised adjustment equals the sequential Java loop exactly."""
    from splare_lucene.search import anserini_tie_scores

    rng = np.random.default_rng(seed)
    base = np.sort(rng.choice([rng.uniform(0, 40), rng.integers(1, 5000)], size=60)
                   + rng.choice([0.0, 0.0, 5e-5, 1e-3, 1.0], size=60))[::-1]
    scores = [float(np.float32(s)) for s in np.repeat(base, rng.integers(1, 4, size=60))]
    scores.sort(reverse=True)
    assert anserini_tie_scores(scores) == _java_tie_adjust(scores)


# -- against Pyserini, on real indexes ---------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_index(tiny_demo_index):
    return tiny_demo_index


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from splare_lucene.search import SplareQueryEncoder

    return SplareQueryEncoder.from_pretrained(tiny_model, device="cpu")


def _pairs(hits):
    return [(h.docid, h.score) for h in hits]


@pytest.mark.parametrize("k", [1, 10, 35, 1000])  # 35: every document; 1000: more than there are
def test_same_hits_and_scores_as_pyserini(demo_index, encoder, k):
    from pyserini.search.lucene import LuceneImpactSearcher

    from splare_lucene.search import batch_search, open_searcher
    from splare_lucene.types import Query

    queries = [Query(q["_id"], q["text"]) for q in read_jsonl(DEMO_DIR / "queries.jsonl")]
    reference = LuceneImpactSearcher(str(demo_index), encoder, min_idf=-1)
    searcher = open_searcher(demo_index, encoder)
    try:
        for q in queries:
            expected = _pairs(reference.search(q.text, k=k))
            assert expected and len(expected) <= k
            assert _pairs(searcher.search(q.text, k=k)) == expected, q.id
        ours = batch_search(searcher, queries, k=k, threads=2, progress=False)
        theirs = batch_search(reference, queries, k=k, threads=2, progress=False)
        assert ours == theirs
    finally:
        searcher.close()
        reference.close()


@pytest.fixture(scope="module")
def tie_index(tmp_path_factory):
    """Documents with tied scores, small (where Anserini's 1e-6 step shows) and large (where it
    vanishes), indexed out of id order, and one document per term f100..f2099."""
    from splare_lucene.index import build_index
    from splare_lucene.jsonl import JsonVectorWriter

    root = tmp_path_factory.mktemp("ties")
    with JsonVectorWriter(root / "jsonl", shards=1) as w:
        for did in ("e", "b", "d", "a", "c"):  # internal docid order differs from id order
            w.write(did, "tied", {"f1": 3, "f2": 300})
        w.write("z", "lower", {"f1": 1, "f2": 100})
        for i in range(2000):
            w.write(f"t{i:04d}", "wide", {f"f{100 + i}": 1 + i % 7})
    build_index(root / "jsonl", root / "index", meta={"signature": SIGNATURE}, progress=False)
    return root / "index"


@pytest.fixture
def memo_encoder(encoder):
    """The encoder with fixed query vectors (by query text), forgotten afterwards."""
    yield encoder
    encoder.clear()


@pytest.mark.parametrize("vector", [{"f1": 2}, {"f2": 40}, {"f1": 1, "f2": 1}])
@pytest.mark.parametrize("k", [1, 2, 5, 6, 100])
def test_ties_and_cuts_through_ties_as_pyserini(tie_index, memo_encoder, vector, k):
    """Five documents tie: which of them make a top k that cuts the tie (Lucene's id sort: the
    smallest ids), their order and their scores (small: 6.0, 5.999999, ...; large: 12000.0 x5)
    are Pyserini's."""
    from pyserini.search.lucene import LuceneImpactSearcher

    from splare_lucene.search import open_searcher

    memo_encoder._memo["q"] = vector
    reference = LuceneImpactSearcher(str(tie_index), memo_encoder, min_idf=-1)
    searcher = open_searcher(tie_index, memo_encoder)
    try:
        expected = _pairs(reference.search("q", k=k))
        got = _pairs(searcher.search("q", k=k))
        assert got == expected
        assert [d for d, _ in got] == ["a", "b", "c", "d", "e", "z"][:k]
        assert _pairs(searcher.search_vector(vector, k=k)) == expected
    finally:
        searcher.close()
        reference.close()


def test_empty_query_and_unknown_terms_have_no_hits(tie_index, memo_encoder):
    from pyserini.search.lucene import LuceneImpactSearcher

    from splare_lucene.search import batch_search, open_searcher
    from splare_lucene.types import Query

    memo_encoder._memo.update({"empty": {}, "unknown": {"f99999": 5}, "some": {"f1": 1}})
    reference = LuceneImpactSearcher(str(tie_index), memo_encoder, min_idf=-1)
    searcher = open_searcher(tie_index, memo_encoder)
    try:
        for text in ("empty", "unknown"):
            assert searcher.search(text, k=10) == [] == list(reference.search(text, k=10))
        run = batch_search(searcher, [Query("e", "empty"), Query("u", "unknown"), Query("s", "some")], k=3,
                           progress=False)
        assert run["e"] == [] and run["u"] == [] and [h.doc_id for h in run["s"]] == ["a", "b", "c"]
    finally:
        searcher.close()
        reference.close()


def test_query_over_the_default_clause_limit_equals_pyserini(tie_index, memo_encoder):
    """2,000 terms (Lucene's default limit: 1,024 clauses): searched, and equal to Pyserini's."""
    import splare_lucene.search as search  # first: it starts the JVM with Anserini's classpath

    from jnius import autoclass
    from pyserini.search.lucene import LuceneImpactSearcher

    index_searcher = autoclass("org.apache.lucene.search.IndexSearcher")
    before = index_searcher.getMaxClauseCount()
    index_searcher.setMaxClauseCount(1024)
    search._clause_limit = None
    vector = {f"f{100 + i}": 1 + i % 5 for i in range(2000)}
    memo_encoder._memo["long"] = vector
    searcher = search.open_searcher(tie_index, memo_encoder)
    try:
        got = _pairs(searcher.search_vector(vector, k=50))  # raises the limit itself
        assert index_searcher.getMaxClauseCount() >= 2000
        reference = LuceneImpactSearcher(str(tie_index), memo_encoder, min_idf=-1)
        assert got == _pairs(reference.search("long", k=50)) and len(got) == 50
        reference.close()
    finally:
        searcher.close()
        index_searcher.setMaxClauseCount(max(before, index_searcher.getMaxClauseCount()))
        search._clause_limit = None


def test_doc_lookup_and_bad_k(tie_index, memo_encoder):
    from splare_lucene.errors import ConfigError
    from splare_lucene.search import hit_text, open_searcher

    searcher = open_searcher(tie_index, memo_encoder)
    try:
        assert searcher.doc("nope") is None and searcher.doc(10**6) is None
        assert hit_text(searcher, "z") == "lower"
        assert searcher.num_docs == 2006
        with pytest.raises(ConfigError, match="k .* must be >= 1; got 0"):
            searcher.search_vector({"f1": 1}, k=0)
    finally:
        searcher.close()


def test_lucene_backend_searches_encoded_queries(demo_index, encoder):
    """LuceneIndex.search_terms (queries encoded beforehand, as the Seismic backend takes them)
    gives the run of LuceneIndex.search."""
    from splare_lucene.backends import open_index
    from splare_lucene.types import Query

    queries = [Query(q["_id"], q["text"]) for q in read_jsonl(DEMO_DIR / "queries.jsonl")]
    index = open_index(demo_index, encoder)
    try:
        run = index.search(queries, k=10, progress=False)
        terms = [encoder.encode(q.text) for q in queries]
        assert index.search_terms([q.id for q in queries], terms, k=10) == run and all(run.values())
    finally:
        index.searcher.close()


def test_query_is_the_one_anserinis_generator_builds(demo_index):
    """The array-built query has exactly the clauses that Anserini 1.7.1's
    BagOfWordsQueryGenerator.buildQuery(field, Map<String, Float>) adds (one
    BoostQuery(TermQuery(new Term(field, t)), weight) SHOULD clause per term), built here the
    same way through Lucene's classes; operators and query syntax are plain terms."""
    from splare_lucene.search import _reader  # first: it starts the JVM with Anserini's classpath

    from jnius import autoclass

    terms = {"f7": 3, "f12": 250, "AND": 1, "a:b(c)": 9, "f0": 1}
    builder = autoclass("org.apache.lucene.search.BooleanQuery$Builder")()
    term, term_query = autoclass("org.apache.lucene.index.Term"), autoclass("org.apache.lucene.search.TermQuery")
    boost_query = autoclass("org.apache.lucene.search.BoostQuery")
    should = autoclass("org.apache.lucene.search.BooleanClause$Occur").SHOULD
    for t, w in terms.items():
        builder.add(boost_query(term_query(term("contents", t)), float(w)), should)
    expected = builder.build()
    got = _reader().query(list(terms), [float(w) for w in terms.values()])
    assert got.equals(expected) and got.toString() == expected.toString()
    assert "(contents:f12)^250.0" in got.toString() and got.clauses().size() == 5
