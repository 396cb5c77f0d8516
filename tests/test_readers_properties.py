"""Property tests of the text readers (issue 10, "Also"): hypothesis writes files and reads them.

* arbitrary bytes (plain, gzipped, gzipped and cut short) fed to the document, query, qrels, run,
  encoded-vector and training readers: each file is either read or refused with the toolkit's
  error type (SplareError); no other exception ever escapes;
* arbitrary *valid* records, written with a random byte-order mark, line end (LF, CRLF, CR),
  trailing newline and gzip: read back exactly as written.
"""

from __future__ import annotations

import gzip
import json
import tempfile
import unicodedata
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from splare_lucene.corpus import TSV_HEADER_IDS, read_documents, read_queries  # noqa: E402
from splare_lucene.errors import SplareError  # noqa: E402
from splare_lucene.evaluate import read_qrels, read_run  # noqa: E402
from splare_lucene.jsonl import read_vectors  # noqa: E402
from splare_lucene.textio import check_id  # noqa: E402
from splare_lucene.train.data import load_examples  # noqa: E402

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BOM = b"\xef\xbb\xbf"

# name -> (file name, read the whole file)
READERS = {
    "documents-jsonl": ("corpus.jsonl", lambda p: list(read_documents(str(p)))),
    "documents-tsv": ("corpus.tsv", lambda p: list(read_documents(str(p)))),
    "queries-jsonl": ("queries.jsonl", lambda p: list(read_queries(str(p)))),
    "queries-tsv": ("queries.tsv", lambda p: list(read_queries(str(p)))),
    "qrels": ("qrels.tsv", read_qrels),
    "run": ("run.trec", read_run),
    "vectors": ("part-000.jsonl", lambda p: list(read_vectors(p.parent))),
    "train": ("train.jsonl", lambda p: load_examples(str(p), 1)),
}

# Bytes that look like the formats (JSON punctuation, TABs, CR/LF, BOM, UTF-8 and invalid bytes),
# so that the readers get past their first check more often than with uniform random bytes.
FRAGMENTS = [b'{"_id": "', b'{"id": ', b'"text": "', b'"contents": ', b'"vector": {"f1": 1}', b'"query": "q"',
             b'"positive": "p"', b'"negatives": ["n"]', b'"}', b"}", b"[", b"]", b",", b":", b"\t", b" ", b"\n",
             b"\r\n", b"\r", BOM, b"\xff\xfe", b"q1", b"d1", b"0", b"1", b"-2", b"1e5", b"nan", b"Q0", b"\xe9",
             "\u00e9".encode(), "\u00a0".encode(), b"\x00", b"\\ud800", b"\\u00e9", b"null", b"true", b"9" * 30]
RAW = st.one_of(st.binary(max_size=200),
                st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=4), max_size=40).map(b"".join))


def _as_file(data: bytes, packing: str, cut: int) -> bytes:
    if packing == "plain":
        return data
    packed = gzip.compress(data)
    return packed if packing == "gzip" else packed[: cut % max(1, len(packed))]


@pytest.mark.parametrize("name", list(READERS))
@SETTINGS
@given(data=RAW, packing=st.sampled_from(["plain", "gzip", "gzip-cut"]), cut=st.integers(0, 10_000))
def test_arbitrary_bytes_are_read_or_refused_with_splare_error(name, data, packing, cut):
    filename, read = READERS[name]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / filename
        path.write_bytes(_as_file(data, packing, cut))
        try:
            read(path)
        except SplareError:
            pass  # refused with a located message: fine; anything else fails the test


# -- valid records round-trip, whatever the BOM, line ends and compression -------------------------

# Ids: what check_id accepts (no whitespace or control characters), any other character allowed.
IDS = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=12).filter(
    lambda s: not any(c.isspace() for c in s) and "\ufeff" not in s)
# Texts on one line: no line-end characters; not blank (an empty text is an error by design).
LINE_TEXTS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                     min_size=1, max_size=40).filter(lambda s: s.strip() != "")
JSON_TEXTS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    lambda s: s.strip() != "")
LAYOUT = st.tuples(st.booleans(), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(), st.booleans())


def _write(tmp: str, name: str, lines: list[str], layout) -> Path:
    bom, eol, trailing, gz = layout
    text = eol.join(lines) + (eol if trailing else "")
    data = (BOM if bom else b"") + text.encode("utf-8")
    path = Path(tmp) / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@SETTINGS
@given(records=st.lists(st.tuples(IDS, JSON_TEXTS), min_size=1, max_size=6, unique_by=lambda r: r[0]),
       layout=LAYOUT, kind=st.sampled_from(["documents", "queries"]), ascii_only=st.booleans())
def test_valid_jsonl_records_round_trip(records, layout, kind, ascii_only):
    key = "contents" if kind == "documents" else "text"  # neither is stripped by the reader
    lines = [json.dumps({"id": i, key: t}, ensure_ascii=ascii_only) for i, t in records]
    read = read_documents if kind == "documents" else read_queries
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, "records.jsonl", lines, layout)
        assert [(r.id, r.text) for r in read(str(path))] == records


@SETTINGS
@given(records=st.lists(st.tuples(IDS, LINE_TEXTS), min_size=1, max_size=6, unique_by=lambda r: r[0]),
       layout=LAYOUT, kind=st.sampled_from(["documents", "queries"]))
def test_valid_tsv_records_round_trip(records, layout, kind):
    assume(records[0][0].lower() not in TSV_HEADER_IDS)  # a first id "id" is a header line
    lines = [f"{i}\t{t}" for i, t in records]
    read = read_documents if kind == "documents" else read_queries
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, "records.tsv", lines, layout)
        assert [(r.id, r.text) for r in read(str(path))] == records


@SETTINGS
@given(judgements=st.dictionaries(st.tuples(IDS, IDS), st.integers(-3, 5), min_size=1, max_size=8),
       layout=LAYOUT, fmt=st.sampled_from(["beir", "beir-header", "trec"]))
def test_valid_qrels_round_trip(judgements, layout, fmt):
    if fmt == "trec":
        lines = [f"{q} 0 {d} {r}" for (q, d), r in judgements.items()]
    else:
        lines = (["query-id\tcorpus-id\tscore"] if fmt == "beir-header" else []) + \
            [f"{q}\t{d}\t{r}" for (q, d), r in judgements.items()]
    expected: dict[str, dict[str, int]] = {}
    for (q, d), r in judgements.items():
        expected.setdefault(q, {})[d] = r
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, "qrels.tsv", lines, layout)
        assert read_qrels(path) == expected


@SETTINGS
@given(hits=st.dictionaries(st.tuples(IDS, IDS), st.integers(-10_000, 10_000), min_size=1, max_size=8),
       layout=LAYOUT)
def test_valid_runs_round_trip(hits, layout):
    lines = [f"{q} Q0 {d} {n + 1} {s / 8} tag" for n, ((q, d), s) in enumerate(hits.items())]
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, "run.trec", lines, layout)
        run = read_run(path)
    assert {(q, h.doc_id) for q, ranked in run.items() for h in ranked} == set(hits)


@SETTINGS
@given(value=st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.booleans(), st.none(),
                       st.lists(st.integers(), max_size=2)))
def test_check_id_returns_a_clean_string_or_refuses(value):
    try:
        got = check_id(value)
    except SplareError:
        return
    assert isinstance(got, str) and got
    assert not any(c.isspace() or unicodedata.category(c) in ("Cc", "Cs") or c == "\ufeff" for c in got)
    assert got.split() == [got]  # one column of a TREC run
