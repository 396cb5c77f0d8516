"""Every reader of user text, fed the bad inputs of issue 10 (cases 2, 3 and 4).

* case 2: a byte that is not UTF-8 -> ``PATH:LINE: not valid UTF-8 (byte 0xe9 at column N)``;
* case 3: a UTF-8 byte-order mark and CRLF (or CR) line ends -> read as if they were not there;
* case 4: ids with whitespace (or control characters, or not strings) -> refused at read time,
  naming the file, the line and the id.

The readers: documents and queries (JSONL, TSV, gzip, BEIR folder), qrels, TREC runs, encoded
vectors, training JSONL, and the local-BEIR-folder path that ``splare-lucene evaluate FOLDER``
takes (ir_datasets registration -> corpus/queries/qrels).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from splare_lucene.corpus import read_documents, read_queries
from splare_lucene.errors import InputError
from splare_lucene.evaluate import read_qrels, read_run
from splare_lucene.jsonl import read_vectors
from splare_lucene.textio import check_id, iter_lines
from splare_lucene.train.data import load_examples
from splare_lucene.types import Document, Query

BOM = b"\xef\xbb\xbf"


class Reader(NamedTuple):
    """One reader of one format: the file it reads, how a record (id, text) is written as one
    line, how to read the file back as [(id, text-ish)], and a header line (or None)."""

    filename: str
    line: Callable[[str, str], str]
    read: Callable[[Path], list]
    header: str | None = None


def _docs(path: Path) -> list:
    return [(d.id, d.text) for d in read_documents(str(path))]


def _queries(path: Path) -> list:
    return [(q.id, q.text) for q in read_queries(str(path))]


def _qrels(path: Path) -> list:
    return [(q, d) for q, docs in read_qrels(path).items() for d in docs]


def _run(path: Path) -> list:
    return [(q, h.doc_id) for q, hits in read_run(path).items() for h in hits]


def _vectors(path: Path) -> list:
    return [(doc_id, "") for doc_id, _ in read_vectors(path.parent)]


def _train(path: Path) -> list:
    return sorted((e.query, e.docs[0]) for e in load_examples(str(path), 1))  # loading shuffles


def _folder(part: str) -> Callable[[Path], list]:
    """Read a local BEIR folder the way ``evaluate FOLDER`` does: registered with ir_datasets,
    documents through ``read_documents(collection.source)``, queries and qrels through
    ``load_topics``. ``path`` is the folder's file of that ``part``."""

    def read(path: Path) -> list:
        from splare_lucene.collections import load_topics, resolve_collection

        folder = path.parent.parent if part == "qrels" else path.parent
        coll = resolve_collection(str(folder))
        if part == "docs":
            return [(d.id, d.text) for d in read_documents(coll.source)]
        topics = load_topics(coll)
        if part == "queries":
            return [(q.id, q.text) for q in topics.queries]
        return [(q, d) for q, docs in topics.qrels.items() for d in docs]

    return read


def _jsonl(obj: Callable[[str, str], dict]) -> Callable[[str, str], str]:
    return lambda rid, text: json.dumps(obj(rid, text), ensure_ascii=False)


READERS: dict[str, Reader] = {
    "documents-jsonl": Reader("corpus.jsonl", _jsonl(lambda i, t: {"_id": i, "title": "", "text": t}), _docs),
    "documents-contents-jsonl": Reader("docs.jsonl", _jsonl(lambda i, t: {"id": i, "contents": t}), _docs),
    "documents-tsv": Reader("docs.tsv", lambda i, t: f"{i}\t{t}", _docs, header="id\ttext"),
    "queries-jsonl": Reader("queries.jsonl", _jsonl(lambda i, t: {"_id": i, "text": t}), _queries),
    "queries-tsv": Reader("queries.tsv", lambda i, t: f"{i}\t{t}", _queries),
    "qrels-beir": Reader("qrels.tsv", lambda i, t: f"{i}\t{t}\t1", _qrels, header="query-id\tcorpus-id\tscore"),
    "qrels-trec": Reader("qrels.txt", lambda i, t: f"{i} 0 {t} 1", _qrels),
    "run": Reader("run.trec", lambda i, t: f"{i} Q0 {t} 1 2.5 sys", _run),
    "vectors": Reader("part-000.jsonl", _jsonl(lambda i, t: {"id": i, "contents": t, "vector": {"f1": 1}}),
                      _vectors),
    "train-jsonl": Reader("train.jsonl", _jsonl(lambda i, t: {"query": i, "positive": t, "negatives": ["n"]}),
                          _train),
    "folder-docs": Reader("corpus.jsonl", _jsonl(lambda i, t: {"_id": i, "title": "", "text": t}),
                          _folder("docs")),
    "folder-queries": Reader("queries.jsonl", _jsonl(lambda i, t: {"_id": i, "text": t}), _folder("queries")),
    "folder-qrels": Reader("qrels/test.tsv", lambda i, t: f"{i}\t{t}\t1", _folder("qrels"),
                           header="query-id\tcorpus-id\tscore"),
}
# Readers whose records carry a text (the second field is free text, not an id).
TEXT_READERS = ("documents-jsonl", "documents-contents-jsonl", "documents-tsv", "queries-jsonl",
                "queries-tsv", "train-jsonl", "folder-docs", "folder-queries")
# Readers of ids in the text's place (qrels' doc id, a run's doc id): the text must be an id too.
ID_ONLY = {"qrels-beir", "qrels-trec", "run", "folder-qrels"}
GZIP_READERS = ("documents-jsonl", "documents-tsv", "queries-tsv", "qrels-beir", "run", "vectors",
                "train-jsonl", "folder-docs", "folder-queries")


def _place(tmp_path: Path, name: str, reader: Reader, data: bytes, gz: bool = False) -> Path:
    """Write ``data`` as the reader's file (gzipped and named .gz when ``gz``); a BEIR folder gets
    valid other parts, so that only the file under test is bad."""
    root = tmp_path / name.replace("-", "_")
    path = root / (reader.filename + (".gz" if gz else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    if name.startswith("folder-"):
        good = {"corpus.jsonl": b'{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": "two"}\n',
                "queries.jsonl": b'{"_id": "q1", "text": "one"}\n{"_id": "q2", "text": "two"}\n',
                "qrels/test.tsv": b"q1\td1\t1\nq2\td2\t1\n"}
        for rel, content in good.items():
            other = root / rel
            if other.name != reader.filename.split("/")[-1] and not (root / (rel + ".gz")).exists():
                other.parent.mkdir(parents=True, exist_ok=True)
                if not other.exists():
                    other.write_bytes(content)
    return path


def _records(name: str) -> list[tuple[str, str]]:
    if name in ID_ONLY:
        return [("q1", "d1"), ("q2", "d2")]
    if name.startswith("folder-"):  # ids the folder's other parts (qrels) refer to
        prefix = "d" if name == "folder-docs" else "q"
        return [(f"{prefix}1", "moon tides"), (f"{prefix}2", "sun and stars")]
    return [("q1", "moon tides"), ("q2", "sun and stars")]


# every reader plain; gzip only for the readers in GZIP_READERS (the others share their reader)
READER_CASES = ([pytest.param(n, False, id=f"{n}-plain") for n in READERS]
                + [pytest.param(n, True, id=f"{n}-gzip") for n in GZIP_READERS])


def _content(name: str, records, *, eol: str = "\n", bom: bool = False) -> bytes:
    reader = READERS[name]
    lines = ([reader.header] if reader.header else []) + [reader.line(i, t) for i, t in records]
    return (BOM if bom else b"") + "".join(line + eol for line in lines).encode("utf-8")


# -- case 2: not UTF-8 -----------------------------------------------------------------------------

@pytest.mark.parametrize("name, gz", READER_CASES)
def test_latin1_byte_is_an_error_naming_file_line_byte_and_column(tmp_path, name, gz):
    reader = READERS[name]
    first, second = _records(name)
    if name in ID_ONLY:  # no free text: the Latin-1 byte sits in the doc id
        second = (second[0], "d\u00e92")
    else:
        second = (second[0], "caf\u00e9 au lait")
    good = _content(name, [first])
    bad_line = reader.line(*second)
    column = bad_line.index("\u00e9") + 1  # in characters, from 1
    data = good + bad_line.encode("utf-8").replace("\u00e9".encode(), b"\xe9") + b"\n"
    path = _place(tmp_path, name, reader, data, gz)
    line = 3 if reader.header else 2
    with pytest.raises(InputError) as info:
        reader.read(path)
    assert str(info.value).startswith(f"{path}:{line}: not valid UTF-8 (byte 0xe9 at column {column};")
    assert info.value.path == str(path) and info.value.line == line


def test_column_counts_characters_of_the_line_not_bytes(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_bytes("q1\t\u00fcber \u20ac ".encode() + b"\xff\n")  # 2- and 3-byte characters first
    with pytest.raises(InputError, match=r"q.tsv:1: not valid UTF-8 \(byte 0xff at column 11;"):
        list(read_queries(str(path)))


@pytest.mark.parametrize("bad", [b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\xf8\x88\x80\x80\x80"],
                         ids=["encoded-surrogate", "overlong", "truncated", "5-byte"])
def test_every_kind_of_invalid_sequence_is_refused(tmp_path, bad):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"_id": "d1", "text": "x' + bad + b'y"}\n')
    with pytest.raises(InputError, match=rf"c.jsonl:1: not valid UTF-8 \(byte 0x{bad[0]:02x} at column 25;"):
        list(read_documents(str(path)))


@pytest.mark.parametrize("bom", [b"\xff\xfe", b"\xfe\xff"], ids=["le", "be"])
def test_utf16_file_is_refused_with_a_re_save_hint(tmp_path, bom):
    path = tmp_path / "queries.tsv"
    encoding = "utf-16-le" if bom == b"\xff\xfe" else "utf-16-be"
    path.write_bytes(bom + "q1\tmoon\n".encode(encoding))
    with pytest.raises(InputError, match=r"queries.tsv:1: the file is UTF-16.*re-save it as UTF-8"):
        list(read_queries(str(path)))


@pytest.mark.parametrize("cut", [10, 30, -6], ids=["header", "deflate-stream", "crc-trailer"])
def test_truncated_gzip_is_an_input_error_naming_the_file(tmp_path, cut):
    lines = "".join(json.dumps({"_id": f"d{i}", "text": f"document {i} " * 20}) + "\n" for i in range(200))
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(gzip.compress(lines.encode())[:cut])
    with pytest.raises(InputError, match=r"corpus.jsonl.gz: the gzip file is truncated or corrupt (after line [1-9]\d*|before its first line)"):
        list(read_documents(str(path)))


def test_corrupt_gzip_data_is_an_input_error(tmp_path):
    data = bytearray(gzip.compress(b'{"_id": "d1", "text": "x"}\n' * 50))
    data[20:30] = b"\x00" * 10
    path = tmp_path / "corpus.jsonl.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated or corrupt"):
        list(read_documents(str(path)))


def test_gzip_is_detected_by_content_and_a_plain_gz_name_is_read_as_text(tmp_path):
    gz = tmp_path / "queries.tsv"  # gzip data without the .gz name
    gz.write_bytes(gzip.compress(b"q1\tmoon\n"))
    assert list(read_queries(str(gz))) == [Query("q1", "moon")]
    plain = tmp_path / "other.tsv.gz"  # plain text named .gz
    plain.write_bytes(b"q1\tmoon\n")
    assert list(read_queries(str(plain))) == [Query("q1", "moon")]


def test_lone_surrogate_escape_in_json_is_refused(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "d1", "text": "ok \\ud83d\\ude00"}\n{"_id": "d2", "text": "bad \\ud800"}\n')
    with pytest.raises(InputError, match=r"c.jsonl:2: a JSON string holds a lone surrogate"):
        list(read_documents(str(path)))


def test_summary_json_not_utf8_is_an_input_error(tmp_path):
    from splare_lucene.jsonl import read_summary

    (tmp_path / "summary.json").write_bytes(b'{"documents": "caf\xe9"}')
    with pytest.raises(InputError, match=r"summary.json:1: not valid UTF-8 \(byte 0xe9 at column 19;"):
        read_summary(tmp_path)
    (tmp_path / "summary.json").write_bytes(BOM + b'{"documents": 3}\r\n')
    assert read_summary(tmp_path) == {"documents": 3}


# -- case 3: byte-order mark and CRLF / CR line ends ----------------------------------------------

@pytest.mark.parametrize("eol", ["\r\n", "\r"], ids=["crlf", "cr"])
@pytest.mark.parametrize("name, gz", READER_CASES)
def test_bom_and_crlf_are_stripped(tmp_path, name, eol, gz):
    records = _records(name)
    reader = READERS[name]
    path = _place(tmp_path, name, reader, _content(name, records, eol=eol, bom=True), gz)
    got = reader.read(path)
    if name == "vectors":
        records = [(i, "") for i, _ in records]
    assert got == records  # first id "q1", not "\ufeffq1"; no "\r" in any id or text


def test_issue_example_bom_crlf_queries_tsv(tmp_path):
    path = tmp_path / "queries.tsv"
    path.write_bytes(BOM + b"q1\tmoon tides\r\nq2\tsun\r\n")
    assert list(read_queries(str(path))) == [Query("q1", "moon tides"), Query("q2", "sun")]


def test_bom_before_a_tsv_header_is_still_a_header(tmp_path):
    path = tmp_path / "docs.tsv"
    path.write_bytes(BOM + b"id\ttext\r\nd1\tone\r\n")
    assert list(read_documents(str(path))) == [Document("d1", "one")]


def test_only_one_leading_bom_is_dropped_and_a_later_one_is_an_id_error(tmp_path):
    path = tmp_path / "docs.tsv"  # two files concatenated, each with a BOM
    path.write_bytes(BOM + b"d1\tone\n" + BOM + b"d2\ttwo\n")
    with pytest.raises(InputError, match=r"docs.tsv:2: id '\\ufeffd2' contains a byte-order mark"):
        list(read_documents(str(path)))


def test_iter_lines_line_ends_and_what_is_not_one(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes(BOM + b"a\r\nb\rc\n\nd" + "\u2028e\u0085f\x0cg".encode() + b"\r\n")
    assert list(iter_lines(path)) == [(1, "a"), (2, "b"), (3, "c"), (4, ""), (5, "d\u2028e\u0085f\x0cg")]


# -- case 4: identifiers ---------------------------------------------------------------------------

WHITESPACE_IDS = ["doc 1", "doc\t1", "doc\u00a01", "doc\u20031", "doc\u3000x", " d1", "d1 ", "d\x0b1",
                  "d\u20281", "d\x851", "d\x1c1"]
CONTROL_IDS = ["d\x001", "d\x7f1", "d\x1b1", "d\x9f1"]


@pytest.mark.parametrize("bad_id", WHITESPACE_IDS + CONTROL_IDS)
@pytest.mark.parametrize("name", ["documents-jsonl", "documents-contents-jsonl", "queries-jsonl", "vectors",
                                  "folder-docs", "folder-queries"])
def test_jsonl_ids_with_whitespace_or_controls_are_refused(tmp_path, name, bad_id):
    reader = READERS[name]
    first = _records(name)[0]
    data = _content(name, [first, (bad_id, "some text")])
    path = _place(tmp_path, name, reader, data)
    with pytest.raises(InputError) as info:
        reader.read(path)
    message = str(info.value)
    assert message.startswith(f"{path}:2: id") and repr(bad_id) in message
    assert "whitespace" in message or "control character" in message


@pytest.mark.parametrize("bad_id", ["doc 1", "doc\u00a01", " d1", "d\x001"])
@pytest.mark.parametrize("name", ["documents-tsv", "queries-tsv", "qrels-beir", "folder-qrels"])
def test_tsv_ids_with_whitespace_are_refused(tmp_path, name, bad_id):
    """Documents and queries TSV: the id is everything before the first TAB, so a space around
    it is part of it and refused. Qrels columns are whitespace-delimited (TREC), so spaces around
    a TAB-separated column are not part of the id there (as trec_eval reads it)."""
    if bad_id == " d1" and "qrels" in name:
        reader = READERS[name]
        path = _place(tmp_path, name, reader, _content(name, [_records(name)[0], (bad_id, "d2")]))
        assert read_qrels(path)["d1"] == {"d2": 1}
        return
    reader = READERS[name]
    path = _place(tmp_path, name, reader, _content(name, [_records(name)[0], (bad_id, "d2")]))
    line = 3 if reader.header else 2
    with pytest.raises(InputError) as info:
        reader.read(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and repr(bad_id) in str(info.value)


def test_beir_qrels_doc_id_with_a_space_is_not_read_as_a_trec_line(tmp_path):
    # was: split on whitespace -> 4 columns -> read as TREC `qid 0 docid rel` -> {"q1": {"1": 1}}
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\tdoc 1\t1\n")
    with pytest.raises(InputError, match=r"qrels.tsv:2: doc id 'doc 1' contains whitespace"):
        read_qrels(path)


@pytest.mark.parametrize("value, kind", [([1], "an array"), ({"a": 1}, "an object"), (True, "a boolean"),
                                         (1.5, "a number with a fraction"), (1e3, "a number with a fraction")])
def test_json_ids_that_are_not_strings_or_integers_are_refused(tmp_path, value, kind):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"_id": "a", "text": "x"}) + "\n" + json.dumps({"_id": value, "text": "y"}) + "\n")
    with pytest.raises(InputError, match=rf"c.jsonl:2: id \('_id'\) must be a string \(or an integer\); got {kind}"):
        list(read_documents(str(path)))


def test_integer_json_ids_are_their_decimal_text(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": 7, "text": "x"}\n{"_id": -12, "text": "y"}\n')
    assert [d.id for d in read_documents(str(path))] == ["7", "-12"]


@pytest.mark.parametrize("field, value", [("text", ["a", "b"]), ("title", {"x": 1}), ("contents", True)])
def test_json_texts_that_are_not_strings_are_refused(tmp_path, field, value):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"_id": "d1", field: value}) + "\n")
    with pytest.raises(InputError, match=rf"c.jsonl:1: field '{field}' must be a string"):
        list(read_documents(str(path)))


def test_training_texts_that_are_not_strings_are_refused(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps({"query": "q", "positive": "p", "negatives": [["n"]]}) + "\n")
    with pytest.raises(InputError, match=r"train.jsonl:1: 'negatives' must be a string or an array of strings"):
        load_examples(str(path), 1)
    path.write_text(json.dumps({"query": "q", "positive": "p", "negatives": ["n"], "scores": [1, "x"]}) + "\n")
    with pytest.raises(InputError, match=r"train.jsonl:1: 'scores' must be an array of numbers"):
        load_examples(str(path), 1)
    # json reads NaN and Infinity: a non-finite teacher score would make the KL loss NaN
    for bad, shown in (("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")):
        path.write_text('{"query": "q", "positive": "p", "negatives": ["n"], "scores": [1.5, %s]}\n' % bad)
        with pytest.raises(InputError, match=rf"train.jsonl:1: 'scores' must be finite numbers; value 1 of 2 "
                                             rf"is {shown} "):
            load_examples(str(path), 1)


def test_ids_from_ir_datasets_are_checked_too(monkeypatch):
    import splare_lucene.corpus as corpus

    monkeypatch.setattr(corpus, "_irds_records", lambda dataset_id, kind: iter([("d1", "x"), ("d 2", "y")]))
    with pytest.raises(InputError, match=r"irds:some/dataset: document id 'd 2' contains whitespace"):
        list(read_documents("irds:some/dataset"))


def test_comma_and_other_punctuation_in_ids_survive_to_the_run_and_back(tmp_path):
    """A comma (or quote, #, /, non-ASCII letter) is fine in a TREC run: documented, and
    read -> run file -> read_run keeps the ids as they were."""
    from splare_lucene.ranking import write_trec_run
    from splare_lucene.types import ScoredDoc

    ids = ["doc,2", 'd"3', "d#4", "a/b", "caf\u00e9", "\u6587\u66f8"]
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "contents": "x"}, ensure_ascii=False) + "\n" for i in ids),
                      encoding="utf-8")
    read = [d.id for d in read_documents(str(corpus))]
    assert read == ids
    run = tmp_path / "run.trec"
    write_trec_run({"q,1": [ScoredDoc("q,1", d, 10.0 - n, n + 1) for n, d in enumerate(read)]}, run)
    assert [h.doc_id for h in read_run(run)["q,1"]] == ids


def test_check_id_accepts_and_refuses():
    assert check_id("doc,2") == "doc,2" and check_id(7) == "7"
    for bad in ("", "a b", None, 2.0, False, ["x"], "\ud800"):
        with pytest.raises(InputError):
            check_id(bad, "f.jsonl", 3)


# -- the CLI: a Latin-1 corpus ends with the located error and exit code 1 -------------------------

def test_cli_encode_latin1_corpus_exits_1_with_the_located_error(tmp_path, tiny_model, capsys):
    from splare_lucene.cli.main import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_bytes(b'{"_id": "d1", "text": "moon tides"}\n'
                       b'{"_id": "d2", "text": "caf\xe9 au lait"}\n')
    code = main(["encode", "--model", str(tiny_model), "--corpus", str(corpus),
                 "--output", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{corpus}:2: not valid UTF-8 (byte 0xe9 at column 27;" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("part, content, message", [
    ("queries.jsonl", b'{"_id": "q1", "text": "moon"}\n{"_id": "q2", "text": "caf\xe9"}\n',
     "queries.jsonl:2: not valid UTF-8 (byte 0xe9 at column 27;"),
    ("qrels/test.tsv", BOM + b"query-id\tcorpus-id\tscore\r\nq1\tdoc 1\t1\r\n",
     "test.tsv:2: doc id 'doc 1' contains whitespace"),
], ids=["latin1-queries", "qrels-id-with-space"])
def test_cli_evaluate_folder_refuses_bad_files_before_loading_the_model(tmp_path, capsys, part, content, message):
    """``evaluate FOLDER`` reads queries and qrels before it loads the model: the bad file ends
    the command with exit code 1 and a located message (the default model is never loaded)."""
    from splare_lucene.cli.main import main

    folder = tmp_path / "coll"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "moon"}\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "moon"}\n')
    (folder / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    (folder / part).write_bytes(content)
    code = main(["evaluate", "--collection", str(folder), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err


def test_an_empty_training_file_is_named_with_what_a_line_holds(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("")
    with pytest.raises(InputError, match=r"train.jsonl: no training examples: the file has no lines; give one "
                                         r"JSON object per line with 'query', 'positive' and 'negatives'"):
        load_examples(str(path), 1)


def test_negatives_left_unused_are_reported(tmp_path, caplog):
    """A distill-data file holds 8 scored negatives per query; `train --negatives 1` (the default)
    samples one of them, which the log says, with the option that uses them all."""
    path = tmp_path / "kl.jsonl"
    line = {"query": "q", "positive": "p", "negatives": [f"n{i}" for i in range(8)], "scores": list(range(9))}
    path.write_text(json.dumps(line) + "\n")
    with caplog.at_level("WARNING", logger="splare_lucene.train.data"):
        [example] = load_examples(str(path), 1)
    assert len(example.docs) == 2
    assert "hold up to 8 negatives and --negatives 1 uses 1 of them" in caplog.text
    assert "pass --negatives 8" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="splare_lucene.train.data"):
        load_examples(str(path), 8)
    assert caplog.text == ""
