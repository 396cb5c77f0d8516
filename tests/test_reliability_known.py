"""Bad inputs from public bug reports that the toolkit already handles (issue 10, "six of thirteen
behave well"). Each test pins the behaviour so that a change that breaks it fails here.

| report class (upstream example)                                   | test                         |
|-------------------------------------------------------------------|------------------------------|
| corpus records without a title (beir-cellar/beir#78, None titles) | test_missing_or_null_title_* |
| qrels naming documents absent from the corpus (beir-cellar/beir#101) | test_qrels_naming_absent_*|
| qrels with grades -1/0/1/2 (TREC Web, MIRACL)                     | test_graded_and_negative_*   |
| numeric-looking topic ids "001", "30_1" (castorini/pyserini#1348) | test_numeric_looking_ids_*   |
| threaded batch search (castorini/pyserini#1864, anserini task loss) | test_threaded_batch_search_*|
| impacts that round to zero (Anserini JsonVectorCollection int cast) | test_*round_to_zero*       |
| a text longer than the model's max length (transformers' "Token   | test_text_longer_than_*      |
|   indices sequence length is longer than the specified maximum")  |                              |
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from splare_lucene.corpus import read_documents, read_queries
from splare_lucene.evaluate import evaluate, read_qrels, read_run
from splare_lucene.types import Document, Query, ScoredDoc

from conftest import DEMO_DIR


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# -- 1. records without a title --------------------------------------------------------------------
# BEIR's GenericDataLoader stores an absent title as None and its exact search then computes
# None + str (TypeError); a reader that does str(obj.get("title")) indexes the word "None".

TITLELESS = [
    {"_id": "d1", "text": "tides follow the moon"},                      # no title key at all
    {"_id": "d2", "title": None, "text": "bees pollinate flowers"},      # explicit null
    {"_id": "d3", "title": "", "text": "bread rises with yeast"},        # empty string
    {"_id": "d4", "title": "Chess", "text": "a board game"},             # a real title, for contrast
]
TITLELESS_TEXTS = ["tides follow the moon", "bees pollinate flowers", "bread rises with yeast",
                   "Chess a board game"]


def test_missing_or_null_title_gives_the_text_alone(tmp_path):
    """Catches: 'None ' prepended to the text, a KeyError on a missing title, or a leading space."""
    path = _write_jsonl(tmp_path / "corpus.jsonl", TITLELESS)
    docs = list(read_documents(str(path)))
    assert docs == [Document(r["_id"], t) for r, t in zip(TITLELESS, TITLELESS_TEXTS)]


def test_missing_or_null_title_reads_the_same_through_ir_datasets(tmp_path):
    """`evaluate` reads BEIR folders through ir_datasets (collections.register_local): the same text
    as the corpus reader, so an index built by `index` and one built by `evaluate` agree."""
    from splare_lucene.collections import register_local

    folder = tmp_path / "titleless"
    (folder / "qrels").mkdir(parents=True)
    _write_jsonl(folder / "corpus.jsonl", TITLELESS)
    _write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "moon"}])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    collection = register_local(folder)
    texts = [d.default_text() for d in collection.dataset().docs_iter()]
    assert texts == TITLELESS_TEXTS
    assert list(read_documents(collection.source)) == list(read_documents(str(folder)))


# -- 2. qrels naming documents absent from the corpus -------------------------------------------
# ArguAna's qrels name a passage its corpus lacks (beir-cellar/beir#101). trec_eval's convention,
# which the toolkit keeps: such a judgement still counts in the recall/nDCG denominators (no
# system can find it), it is neither an error nor silently dropped, and the other judgements of
# the same query are scored as usual.

def test_qrels_naming_absent_documents_are_scored_like_trec_eval(tmp_path):
    """Catches: an error on the unknown id, or dropping it (R@100 would become 1.0, not 0.5)."""
    qrels_file = tmp_path / "test.tsv"
    qrels_file.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\tnot-in-corpus\t1\nq2\td2\t1\n")
    qrels = read_qrels(qrels_file)
    assert qrels == {"q1": {"d1": 1, "not-in-corpus": 1}, "q2": {"d2": 1}}
    run = {"q1": [ScoredDoc("q1", "d1", 3.0, 1), ScoredDoc("q1", "d3", 2.0, 2)],
           "q2": [ScoredDoc("q2", "d2", 5.0, 1)]}
    aggregate, per_query = evaluate(run, qrels, ["R@100", "RR@10"])
    table = {(q, m): v for q, m, v in per_query}
    assert table[("q1", "R@100")] == pytest.approx(0.5)
    assert table[("q1", "RR@10")] == pytest.approx(1.0)
    assert aggregate["R@100"] == pytest.approx(0.75)


def test_qrels_naming_absent_documents_keep_their_query(tmp_path):
    """A query whose only judged document is absent from the corpus is still evaluated (and
    scores 0), through the folder path `evaluate` uses: not refused, not dropped from the mean."""
    from splare_lucene.collections import load_topics, register_local

    folder = tmp_path / "dangling"
    (folder / "qrels").mkdir(parents=True)
    _write_jsonl(folder / "corpus.jsonl", [{"_id": "d1", "text": "moon tides"}])
    _write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "moon"}, {"_id": "q2", "text": "bees"}])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\tgone\t1\n")
    topics = load_topics(register_local(folder))
    assert [q.id for q in topics.queries] == ["q1", "q2"]
    aggregate, _ = evaluate({"q1": [ScoredDoc("q1", "d1", 1.0, 1)]}, topics.qrels, ["nDCG@10"])
    assert aggregate["nDCG@10"] == pytest.approx(0.5)  # q2 counts as 0, not left out


def test_graded_and_negative_relevance_follow_trec_eval(tmp_path):
    """Qrels with grades -1 (judged non-relevant / spam, as in TREC Web and MIRACL), 0, 1 and 2.
    Catches: the first line taken for a header because of its '-' sign, -1 read as relevant
    (P@1 would be 1), or used as a negative gain (nDCG would drop below trec_eval's value)."""
    import math

    qrels_file = tmp_path / "qrels.txt"
    qrels_file.write_text("q1 0 a -1\nq1 0 b 2\nq1 0 c 0\nq1 0 d 1\n")
    qrels = read_qrels(qrels_file)
    assert qrels == {"q1": {"a": -1, "b": 2, "c": 0, "d": 1}}
    run = {"q1": [ScoredDoc("q1", d, 10.0 - r, r + 1) for r, d in enumerate("abcd")]}
    aggregate, _ = evaluate(run, qrels, ["P@1", "RR@10", "nDCG@10", "R@100"])
    dcg = 0 + 2 / math.log2(3) + 0 + 1 / math.log2(5)  # a's -1 gains 0, as in trec_eval
    idcg = 2 + 1 / math.log2(3)
    assert aggregate["P@1"] == 0.0 and aggregate["RR@10"] == 0.5 and aggregate["R@100"] == 1.0
    assert aggregate["nDCG@10"] == pytest.approx(dcg / idcg, abs=1e-6)


# -- 3. numeric-looking ids ------------------------------------------------------------------------
# Pyserini parsed topic keys with int(): "30_1" became 301 (Python's int() accepts underscores)
# and "001" became 1, so runs no longer matched the qrels (castorini/pyserini#1348). The toolkit
# keeps every id as the string it read.

ODD_IDS = ["001", "1", "30_1", "1e3", "0x10", "-5", "١٢"]  # the last: Arabic-Indic digits (int() takes them)


def test_numeric_looking_ids_stay_strings_in_every_reader(tmp_path):
    """Catches any int()/float() of an id: "001" == "1", "30_1" -> "301", "1e3" -> "1000.0"."""
    tsv = tmp_path / "queries.tsv"
    tsv.write_text("".join(f"{qid}\tquery {n}\n" for n, qid in enumerate(ODD_IDS)), encoding="utf-8")
    assert [q.id for q in read_queries(str(tsv))] == ODD_IDS
    jsonl = _write_jsonl(tmp_path / "docs.jsonl", [{"_id": i, "text": f"doc {n}"} for n, i in enumerate(ODD_IDS)])
    assert [d.id for d in read_documents(str(jsonl))] == ODD_IDS
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"{i} 0 {i} 1\n" for i in ODD_IDS), encoding="utf-8")
    assert read_qrels(qrels) == {i: {i: 1} for i in ODD_IDS}
    run = tmp_path / "run.trec"
    run.write_text("".join(f"{i} Q0 {i} 1 1.0 t\n" for i in ODD_IDS), encoding="utf-8")
    assert sorted(read_run(run)) == sorted(ODD_IDS)


def test_numeric_looking_ids_are_scored_against_the_right_query():
    """"001" and "1" are two queries: each run line is matched with its own judgements."""
    qrels = {"001": {"a": 1}, "1": {"b": 1}, "30_1": {"c": 1}}
    run = {"001": [ScoredDoc("001", "a", 1.0, 1)], "1": [ScoredDoc("1", "a", 1.0, 1)],
           "30_1": [ScoredDoc("30_1", "c", 1.0, 1)]}
    _, per_query = evaluate(run, qrels, ["RR@10"])
    assert {q: v for q, _, v in per_query} == {"001": 1.0, "1": 0.0, "30_1": 1.0}


# -- 4 and 5. threaded batch search; impacts that round to zero (Lucene) --------------------------

N_DOCS, N_QUERIES, WIDTH = 60, 40, 64


def _vector(rng: random.Random, n_terms: int) -> dict[str, int]:
    return {f"f{i}": rng.randint(1, 300) for i in rng.sample(range(WIDTH), n_terms)}


@pytest.fixture(scope="module")
def synthetic(tiny_model, tmp_path_factory):
    """An impact index of random integer vectors (one document all zero impacts: empty) and a
    query encoder whose queries are memoised vectors, so that no text is encoded."""
    from splare_lucene.index import build_index
    from splare_lucene.jsonl import JsonVectorWriter
    from splare_lucene.search import SplareQueryEncoder

    rng = random.Random(7)
    root = tmp_path_factory.mktemp("reliability")
    docs = {f"{n:03d}": _vector(rng, rng.randint(1, 8)) for n in range(N_DOCS)}
    docs["zero"] = {}  # every weight rounded to 0: written with an empty vector, not dropped silently
    with JsonVectorWriter(root / "jsonl", shards=2) as writer:
        for did, vec in docs.items():
            writer.write(did, f"text of {did}", vec)
    meta = {"signature": {"representation": "sae", "token_prefix": "f", "quantization_scale": 100.0}}
    counters = build_index(root / "jsonl", root / "index", meta=meta)
    encoder = SplareQueryEncoder.from_pretrained(tiny_model, device="cpu")
    ids = ODD_IDS[:4] + [f"q{n}" for n in range(N_QUERIES - 5)] + ["empty"]
    queries = [Query(qid, f"query text {qid}") for qid in ids]
    vectors = {q.text: _vector(rng, rng.randint(1, 6)) for q in queries}
    vectors["query text empty"] = {}  # a query whose impacts all rounded to 0
    return dict(root=root, docs=docs, counters=counters, encoder=encoder, queries=queries, vectors=vectors,
                summary=writer.summary)


def _searcher(synthetic):
    from splare_lucene.search import open_searcher

    encoder = synthetic["encoder"]
    encoder._memo.update(synthetic["vectors"])  # batch_search clears the memo after each call
    return open_searcher(synthetic["root"] / "index", encoder)


def _expected(synthetic, qtext: str, k: int) -> list[tuple[str, float]]:
    q = synthetic["vectors"][qtext]
    scores = {d: sum(w * v.get(t, 0) for t, w in q.items()) for d, v in synthetic["docs"].items()}
    return sorted(((d, float(s)) for d, s in scores.items() if s > 0), key=lambda x: (-x[1], x[0]))[:k]


@pytest.mark.java
@pytest.mark.parametrize("threads", [2, 4])
def test_threaded_batch_search_equals_one_thread(synthetic, threads):
    """Anserini's SimpleImpactSearcher.batch_search runs queries on a thread pool. Catches lost
    or swapped queries, hits of one query under another's id, and results that depend on the
    thread count: every query id (odd ones included) comes back, with the same hits as one thread
    and as the integer dot products computed here."""
    from splare_lucene.search import batch_search

    k = 10
    one = batch_search(_searcher(synthetic), synthetic["queries"], k=k, threads=1, progress=False)
    many = batch_search(_searcher(synthetic), synthetic["queries"], k=k, threads=threads, progress=False)
    ids = [q.id for q in synthetic["queries"]]
    assert list(one) == ids and list(many) == ids
    for q in synthetic["queries"]:
        got = [(h.doc_id, h.score) for h in many[q.id]]
        assert got == [(h.doc_id, h.score) for h in one[q.id]], q.id
        assert [h.rank for h in many[q.id]] == list(range(1, len(got) + 1))
        assert all(h.query_id == q.id for h in many[q.id])
        # the scores are the integer dot products computed here; the order of documents with
        # equal scores is issue 10 #6's, so documents are checked against their own score only
        assert [s for _, s in got] == [s for _, s in _expected(synthetic, q.text, k)], q.id
        everything = dict(_expected(synthetic, q.text, N_DOCS + 1))
        assert all(everything[d] == s for d, s in got), q.id


@pytest.mark.java
def test_document_whose_impacts_round_to_zero_is_reported_not_lost_silently(synthetic):
    """Anserini's JsonVectorCollection casts float weights to int, so SPLADE vectors with weights
    below 1 become empty documents without a word. Here: the writer's summary names the document,
    Anserini's counters count it as empty, and every other document is indexed."""
    summary, counters = synthetic["summary"], synthetic["counters"]
    assert summary.empty_ids == ["zero"] and summary.empty == 1
    assert counters["indexed"] == N_DOCS and counters.get("empty", 0) == 1


@pytest.mark.java
def test_query_whose_impacts_round_to_zero_gets_no_hits_and_no_error(synthetic):
    """A query with no term left after quantization: zero hits (not a Java exception, not every
    document at score 0), and the queries batched with it are unaffected."""
    from splare_lucene.search import batch_search

    searcher = _searcher(synthetic)
    assert searcher.search("query text empty", k=10) == []
    results = batch_search(searcher, synthetic["queries"][-3:], k=10, threads=2, progress=False)
    assert results["empty"] == []
    for q in synthetic["queries"][-3:-1]:
        assert [h.score for h in results[q.id]] == [s for _, s in _expected(synthetic, q.text, 10)]


def test_weights_that_round_to_zero_leave_an_empty_vector_not_an_error(tiny_model):
    """The encoder's quantization: a pooled vector whose weights are all below half a step gives
    no terms (an empty dict that the writer reports), never a 0 impact that Lucene would store."""
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.types import SparseVector

    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    tiny = SparseVector(np.array([3, 5], dtype=np.int64), np.array([0.004, 0.0049], dtype=np.float32))
    assert encoder.terms(tiny) == {}
    mixed = SparseVector(np.array([3, 5], dtype=np.int64), np.array([0.2, 0.004], dtype=np.float32))
    assert encoder.terms(mixed) == {"f3": 20}


# -- 6. texts longer than the model's max length ----------------------------------------------------
# transformers warns "Token indices sequence length is longer than the specified maximum sequence
# length for this model"; a model run on such ids fails with "index out of range in self" (position
# embeddings). The toolkit truncates every text to the model's max_length for its side.

def _words() -> list[str]:
    import re

    return re.findall(r"[a-z]+", (DEMO_DIR / "corpus.jsonl").read_text().lower())


@pytest.mark.parametrize("kind", ["document", "query"])
def test_text_longer_than_the_model_max_length_is_truncated(tiny_model, kind):
    """2,000 words against a backbone with 256 positions and max_length 64 (documents) / 32
    (queries). Catches: no truncation (an IndexError in the position embeddings, or a vector
    of the whole text) and truncation at another length than the model's: the vector equals
    that of the text cut to max_length - 1 words (the tiny tokenizer: one token per word, plus BOS)
    and to max_length words (the word after the cut is dropped)."""
    from splare_lucene.encoder import SplareEncoder

    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    max_length = encoder.config.side(kind).max_length
    words = (_words() * 40)[:2000]
    assert encoder.backbone.model.config.max_position_embeddings < len(words)
    long_vec, cut_vec, one_more_vec = encoder.encode(
        [" ".join(words), " ".join(words[: max_length - 1]), " ".join(words[:max_length])], kind)
    assert long_vec.nnz > 0
    for other in (cut_vec, one_more_vec):  # the word after the cut changes nothing
        np.testing.assert_array_equal(long_vec.indices, other.indices)
        np.testing.assert_allclose(long_vec.values, other.values, rtol=1e-5, atol=1e-6)
