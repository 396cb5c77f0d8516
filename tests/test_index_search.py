"""Real Lucene indexes built by Anserini (Java 21+), searched through Pyserini.

The central check: for every hit, Lucene's score equals the integer dot product of the query's and
the document's quantized vectors, computed here in Python from the JSONL that was indexed."""

from __future__ import annotations

import json
import shutil

import pytest

from splare_lucene.cli.main import main as cli
from splare_lucene.jsonl import JsonVectorWriter, read_summary, read_vectors

from conftest import DEMO_DIR, read_jsonl

pytestmark = pytest.mark.java


@pytest.fixture(scope="module")
def built(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("idx")
    rc = cli(["index", "--model", str(tiny_model), "--corpus", str(DEMO_DIR), "--index", str(root / "index"),
              "--keep-jsonl", str(root / "jsonl"), "--threads", "2", "--device", "cpu"])
    assert rc == 0
    return root


@pytest.fixture(scope="module")
def searcher(built, tiny_model):
    from splare_lucene.search import SplareQueryEncoder, open_searcher

    return open_searcher(built / "index", SplareQueryEncoder.from_pretrained(tiny_model, device="cpu"))


def _queries():
    return read_jsonl(DEMO_DIR / "queries.jsonl")


def test_index_records_model_and_counts(built):
    meta = json.loads((built / "index" / "splare_index.json").read_text())
    assert meta["signature"] == {"representation": "sae", "token_prefix": "f", "quantization_scale": 100.0}
    assert meta["counters"]["indexed"] == 35 and meta["encoding"]["documents"] == 35
    assert len(list((built / "jsonl").glob("shard-00000-of-00001.part-*.jsonl.gz"))) == 1  # 35 < --part-size
    assert read_summary(built / "jsonl")["documents"] == 35


def test_lucene_scores_equal_integer_dot_products(built, searcher):
    docs = dict(read_vectors(built / "jsonl"))
    for q in _queries():
        qv = searcher.query_encoder.encode(q["text"])
        expected = {d: sum(w * v.get(t, 0) for t, w in qv.items()) for d, v in docs.items()}
        expected = {d: s for d, s in expected.items() if s > 0}
        hits = searcher.search(q["text"], k=len(docs))
        assert {h.docid for h in hits} == set(expected)
        for h in hits:
            assert h.score == pytest.approx(expected[h.docid], abs=1e-3), (q["_id"], h.docid)
        ranked = [h.score for h in hits]
        assert ranked == sorted(ranked, reverse=True)


def test_drop_in_lucene_impact_searcher(built, tiny_model, searcher):
    from pyserini.search.lucene import LuceneImpactSearcher

    from splare_lucene import SplareQueryEncoder

    plain = LuceneImpactSearcher(str(built / "index"), SplareQueryEncoder.from_pretrained(tiny_model, device="cpu"),
                                 min_idf=-1)
    for q in _queries()[:3]:
        a = [(h.docid, h.score) for h in plain.search(q["text"], k=10)]
        b = [(h.docid, h.score) for h in searcher.search(q["text"], k=10)]
        assert a == b and a


def test_cli_search_writes_trec_run_matching_batch_search(built, tiny_model, searcher, tmp_path):
    from splare_lucene.corpus import read_queries
    from splare_lucene.search import batch_search

    run = tmp_path / "run.trec"
    assert cli(["search", "--model", str(tiny_model), "--index", str(built / "index"), "--queries",
                str(DEMO_DIR), "--output", str(run), "--k", "5", "--device", "cpu"]) == 0
    lines = [line.split() for line in run.read_text().splitlines()]
    assert all(len(parts) == 6 and parts[1] == "Q0" and parts[5] == "splare" for parts in lines)
    expected = batch_search(searcher, list(read_queries(str(DEMO_DIR))), k=5, threads=2, progress=False)
    got = {}
    for qid, _, did, rank, score, _ in lines:
        got.setdefault(qid, []).append((did, int(rank), float(score)))
    for qid, hits in expected.items():
        assert [(h.doc_id, h.rank) for h in hits] == [(d, r) for d, r, _ in got[qid]]
        assert [h.score for h in hits] == pytest.approx([s for _, _, s in got[qid]], abs=1e-3)


def test_cli_single_query_prints_ranked_hits_with_text(built, tiny_model, capsys):
    assert cli(["search", "--model", str(tiny_model), "--index", str(built / "index"),
                "--query", "bees pollinate flowers", "--k", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and out[0].split()[0] == "1"
    corpus_texts = [d["text"][:20] for d in read_jsonl(DEMO_DIR / "corpus.jsonl")]
    assert all(any(t in line for t in corpus_texts) for line in out)


def test_existing_index_is_refused_without_overwrite(built, tiny_model, capsys):
    rc = cli(["index", "--model", str(tiny_model), "--jsonl", str(built / "jsonl"),
              "--index", str(built / "index")])
    assert rc == 1 and "--overwrite" in capsys.readouterr().err


def test_index_from_jsonl_keeps_metadata(built, tmp_path):
    assert cli(["index", "--jsonl", str(built / "jsonl"), "--index", str(tmp_path / "again")]) == 0
    meta = json.loads((tmp_path / "again" / "splare_index.json").read_text())
    assert meta["signature"]["quantization_scale"] == 100.0 and meta["counters"]["indexed"] == 35


def test_mismatched_quantization_is_refused(built, tiny_model, tmp_path):
    from splare_lucene.errors import IndexMismatchError
    from splare_lucene.search import SplareQueryEncoder, open_searcher

    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    cfg = json.loads((other / "splare_config.json").read_text())
    cfg["quantization_scale"] = 50.0
    (other / "splare_config.json").write_text(json.dumps(cfg))
    with pytest.raises(IndexMismatchError, match="quantization_scale"):
        open_searcher(built / "index", SplareQueryEncoder.from_pretrained(other, device="cpu"))


def _synthetic_index(tmp_path, docs):
    from splare_lucene.index import build_index

    with JsonVectorWriter(tmp_path / "jsonl", shards=1) as w:
        for did, vec in docs.items():
            w.write(did, did, vec)
    meta = {"signature": {"representation": "sae", "token_prefix": "f", "quantization_scale": 100.0}}
    counters = build_index(tmp_path / "jsonl", tmp_path / "index", meta=meta)
    return w.summary, counters


def test_latent_present_in_every_document_is_kept(tmp_path, tiny_model):
    """LuceneImpactSearcher's default min_idf=0 silently drops such terms; open_searcher keeps them."""
    from pyserini.search.lucene import LuceneImpactSearcher

    from splare_lucene.search import SplareQueryEncoder, open_searcher

    _synthetic_index(tmp_path, {"a": {"f0": 10}, "b": {"f0": 2, "f1": 3}, "c": {"f0": 1, "f2": 4}})
    qe = SplareQueryEncoder.from_pretrained(tiny_model, device="cpu")
    qe._memo["q"] = {"f0": 5, "f1": 1}
    hits = {h.docid: h.score for h in open_searcher(tmp_path / "index", qe).search("q", k=10)}
    assert hits == {"a": 50.0, "b": 13.0, "c": 5.0}
    default = {h.docid: h.score for h in LuceneImpactSearcher(str(tmp_path / "index"), qe).search("q", k=10)}
    assert default == {"b": 3.0}  # the pitfall this toolkit avoids


def test_empty_vectors_are_counted_and_reported(tmp_path):
    summary, counters = _synthetic_index(tmp_path, {"a": {"f1": 3}, "b": {}, "c": {"f2": 1}})
    assert summary.empty == 1 and summary.empty_ids == ["b"]
    assert counters["indexed"] == 2 and counters.get("empty", 0) == 1


def test_cli_encode_writes_parts_and_summary(tiny_model, tmp_path, capsys):
    out = tmp_path / "enc"
    assert cli(["encode", "--model", str(tiny_model), "--corpus", str(DEMO_DIR / "corpus.jsonl"),
                "--output", str(out), "--part-size", "12", "--device", "cpu"]) == 0
    assert "35 documents in 3 files" in capsys.readouterr().out
    vectors = dict(read_vectors(out))
    assert len(vectors) == 35 and all(0 < len(v) <= 20 for v in vectors.values())
    summary = read_summary(out)
    assert summary["documents"] == 35 and summary["extra"]["signature"]["quantization_scale"] == 100.0
    # the same command again: already complete, exit 0; other settings: refused
    assert cli(["encode", "--model", str(tiny_model), "--corpus", str(DEMO_DIR), "--output", str(out),
                "--part-size", "12", "--device", "cpu"]) == 0
    assert cli(["encode", "--model", str(tiny_model), "--corpus", str(DEMO_DIR), "--output", str(out),
                "--device", "cpu"]) == 1
    assert "part_size: 12 vs 2000" in capsys.readouterr().err


def test_batch_search_falls_back_when_anserini_loses_tasks(searcher):
    """Anserini's threaded batch_search can throw a task-count mismatch; the fallback searches
    query by query and returns the same hits."""
    from splare_lucene.search import batch_search
    from splare_lucene.types import Query

    queries = [Query(q["_id"], q["text"]) for q in _queries()[:3]]
    expected = batch_search(searcher, queries, k=5, threads=1, progress=False)

    class Flaky:
        def __init__(self, inner):
            self.inner = inner
            self.query_encoder = inner.query_encoder

        def batch_search(self, *args, **kwargs):
            raise RuntimeError("JVM exception occurred: java.lang.RuntimeException: queryCount = 3 is not "
                               "equal to completedTaskCount =  2")

        def search(self, text, k=10):
            return self.inner.search(text, k=k)

    got = batch_search(Flaky(searcher), queries, k=5, threads=2, progress=False)
    assert {q: [(h.doc_id, h.score) for h in hits] for q, hits in got.items()} == \
        {q: [(h.doc_id, h.score) for h in hits] for q, hits in expected.items()}


# -- engine limits: queries of any length, and the batch-search fallback ----------------------------

WIDE = 4096  # SAE latents: a query of the wide model has all of them (> Lucene's 1,024 clauses)


@pytest.fixture(scope="module")
def wide(tiny_backbone, tmp_path_factory):
    """A model without a query top-k whose ReLU SAE (small positive bias) fires on every latent,
    and an index of the demo corpus built with it: (model dir, index dir, jsonl dir)."""
    import torch

    from splare_lucene.config import TextSide
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.sae import build_sae
    from splare_lucene.sae.config import SAEConfig
    from splare_lucene.sae.formats import save_native

    root = tmp_path_factory.mktemp("wide")
    g = torch.Generator().manual_seed(0)
    config = SAEConfig("relu", 32, WIDE, layer=2)
    save_native(build_sae(config, {"W_enc": torch.randn(32, WIDE, generator=g) * 0.05,
                                   "b_enc": torch.full((WIDE,), 0.5)}), root / "sae")
    encoder = SplareEncoder.from_components(str(tiny_backbone), root / "sae", device="cpu",
                                            query=TextSide(512, 0), document=TextSide(64, 400))
    model = encoder.save_pretrained(root / "model")
    assert cli(["index", "--model", str(model), "--corpus", str(DEMO_DIR), "--index", str(root / "index"),
                "--keep-jsonl", str(root / "jsonl"), "--device", "cpu"]) == 0
    return model, root / "index", root / "jsonl"


@pytest.fixture
def default_clause_limit():
    """Lucene's clause limit back at its default (1,024) for the test: it is JVM-wide, and an
    earlier test's searcher may have raised it already. Restored afterwards."""
    import splare_lucene.search as search
    from jnius import autoclass

    index_searcher = autoclass("org.apache.lucene.search.IndexSearcher")
    before = index_searcher.getMaxClauseCount()
    index_searcher.setMaxClauseCount(1024)
    search._clause_limit = None
    yield index_searcher
    index_searcher.setMaxClauseCount(max(before, index_searcher.getMaxClauseCount()))
    search._clause_limit = None


def _long_query() -> str:
    """200 words of the demo corpus."""
    words = " ".join(d["text"] for d in read_jsonl(DEMO_DIR / "corpus.jsonl")).split()
    return " ".join(words[:200])


def _expected_scores(jsonl, terms):
    docs = dict(read_vectors(jsonl))
    scores = {d: sum(w * v.get(t, 0) for t, w in terms.items()) for d, v in docs.items()}
    return {d: s for d, s in scores.items() if s > 0}


def test_query_over_lucene_clause_limit_searches(wide, default_clause_limit):
    """>1,024 query terms used to raise IndexSearcher$TooManyClauses; open_searcher's searcher
    takes them, and Lucene's scores are still the integer dot products."""
    from splare_lucene.search import SplareQueryEncoder, open_searcher

    model, index, jsonl = wide
    searcher = open_searcher(index, SplareQueryEncoder.from_pretrained(model, device="cpu"))
    terms = searcher.query_encoder.encode(_long_query())
    assert len(terms) > 1024
    hits = searcher.search(_long_query(), k=100)
    expected = _expected_scores(jsonl, terms)
    assert hits and {h.docid for h in hits} == set(expected)
    for h in hits:
        assert h.score == pytest.approx(expected[h.docid], abs=1e-3)


def test_batch_search_of_long_queries(wide, default_clause_limit):
    from splare_lucene.search import SplareQueryEncoder, batch_search, open_searcher
    from splare_lucene.types import Query

    model, index, _ = wide
    searcher = open_searcher(index, SplareQueryEncoder.from_pretrained(model, device="cpu"))
    queries = [Query("long", _long_query()), Query("short", "bees pollinate flowers")]
    results = batch_search(searcher, queries, k=5, threads=2, progress=False)
    assert all(len(results[q.id]) == 5 for q in queries)


def test_drop_in_searcher_takes_long_queries(wide, default_clause_limit):
    """A plain Pyserini LuceneImpactSearcher with SplareQueryEncoder: the encoder raises the limit."""
    from pyserini.search.lucene import LuceneImpactSearcher

    from splare_lucene import SplareQueryEncoder

    model, index, _ = wide
    searcher = LuceneImpactSearcher(str(index), SplareQueryEncoder.from_pretrained(model, device="cpu"), min_idf=-1)
    assert default_clause_limit.getMaxClauseCount() >= WIDE
    assert len(searcher.search(_long_query(), k=5)) == 5
    assert len(searcher.batch_search([_long_query()], ["q"], k=5, threads=2)["q"]) == 5


def test_fallback_reports_the_failing_query(wide, default_clause_limit):
    """When Anserini's threaded batch search loses a query (only "completedTaskCount" is said),
    the one-at-a-time fallback raises the real Java error with the query id, not a raw traceback.
    Here the limit is lowered behind the toolkit's back after the searcher was opened."""
    from splare_lucene.search import SearchError, SplareQueryEncoder, batch_search, open_searcher
    from splare_lucene.types import Query

    model, index, _ = wide
    searcher = open_searcher(index, SplareQueryEncoder.from_pretrained(model, device="cpu"))
    default_clause_limit.setMaxClauseCount(1024)
    with pytest.raises(SearchError, match=r"query 'long' failed: .*TooManyClauses.*4096 query terms "
                                          r"over Lucene's clause limit of 1024"):
        batch_search(searcher, [Query("long", _long_query())], k=5, threads=2, progress=False)


def test_fallback_names_the_query_of_any_java_error(searcher):
    """Other Java errors in the fallback are raised too, as a SearchError naming the query."""
    from splare_lucene.search import SearchError, batch_search
    from splare_lucene.types import Query

    class LosesTasks:
        query_encoder = searcher.query_encoder

        def batch_search(self, *args, **kwargs):
            raise RuntimeError("JVM exception occurred: java.lang.RuntimeException: queryCount = 1 is "
                               "not equal to completedTaskCount = 0")

        def search(self, text, k=10):
            raise RuntimeError("JVM exception occurred: java.io.IOException: read past EOF\n\tat ...")

    with pytest.raises(SearchError, match=r"searching query 'q7' failed: JVM exception occurred: "
                                          r"java.io.IOException: read past EOF$"):
        batch_search(LosesTasks(), [Query("q7", "bees")], k=5, progress=False)


def test_long_pseudo_tokens_match_only_when_shortened(tmp_path, tiny_model):
    """Anserini splits an indexed token over 255 characters, so it never matches the query term;
    vocab.shorten_token's form (what TokenVocab emits) does."""
    from splare_lucene.search import SplareQueryEncoder, open_searcher
    from splare_lucene.vocab import shorten_token

    from splare_lucene.errors import InputError

    long = "%E2%96%81" * 40  # 360 characters: "▁" x 40 percent-encoded
    # the long form is refused before Anserini (issue 10: it used to be indexed, unreachable)
    with pytest.raises(InputError, match="longer than 255 characters: Anserini cuts it into pieces"):
        _synthetic_index(tmp_path / "raw", {"raw": {long: 3, "f1": 1}})
    _synthetic_index(tmp_path, {"short": {shorten_token(long): 5, "f1": 1}})
    qe = SplareQueryEncoder.from_pretrained(tiny_model, device="cpu")
    qe._memo["short"] = {shorten_token(long): 1}
    searcher = open_searcher(tmp_path / "index", qe)
    assert [(h.docid, h.score) for h in searcher.search("short", k=10)] == [("short", 5.0)]
