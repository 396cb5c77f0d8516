"""corpus.py: every source format, every validation error (with file and line), and laziness."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from splare_lucene.corpus import read_documents, read_queries
from splare_lucene.errors import InputError
from splare_lucene.types import Document, Query


def write_jsonl(path: Path, records, gz: bool = False) -> Path:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- formats ------------------------------------------------------------------------------------


def test_beir_jsonl_joins_title_and_text(tmp_path):
    path = write_jsonl(tmp_path / "corpus.jsonl", [
        {"_id": "d1", "title": "Paris", "text": "is the capital of France."},
        {"_id": "d2", "title": "", "text": "no title here"},
        {"_id": "d3", "title": "  Spaced  ", "text": "  body  "},
    ])
    docs = list(read_documents(str(path)))
    assert docs == [
        Document("d1", "Paris is the capital of France."),
        Document("d2", "no title here"),
        Document("d3", "Spaced body"),
    ]
    assert all(isinstance(d, Document) for d in docs)


def test_beir_jsonl_title_only(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"_id": "d1", "title": "Only a title"}])
    assert list(read_documents(str(path))) == [Document("d1", "Only a title")]


def test_pyserini_jsonl_id_contents(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "a", "contents": "first doc"},
        {"id": 7, "contents": "numeric id"},
    ])
    assert list(read_documents(str(path))) == [Document("a", "first doc"), Document("7", "numeric id")]


def test_contents_takes_precedence_over_title_text(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": "C", "title": "T", "text": "X"}])
    assert list(read_documents(str(path))) == [Document("a", "C")]


def test_docid_key(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"docid": "x9", "contents": "hello"}])
    assert list(read_documents(str(path))) == [Document("x9", "hello")]


def test_gzipped_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl.gz", [
        {"_id": "d1", "title": "T", "text": "body"},
        {"_id": "d2", "text": "caf\u00e9 \u00fcber"},
    ], gz=True)
    assert list(read_documents(str(path))) == [Document("d1", "T body"), Document("d2", "caf\u00e9 \u00fcber")]


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('\n{"id": "a", "contents": "x"}\n   \n{"id": "b", "contents": "y"}\n\n')
    assert [d.id for d in read_documents(str(path))] == ["a", "b"]


def test_beir_folder_documents_and_queries(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "title": "T", "text": "doc"}])
    write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "what?", "metadata": {}}])
    assert list(read_documents(str(tmp_path))) == [Document("d1", "T doc")]
    assert list(read_queries(str(tmp_path))) == [Query("q1", "what?")]


def test_beir_folder_with_gzipped_files(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl.gz", [{"_id": "d1", "text": "doc"}], gz=True)
    write_jsonl(tmp_path / "queries.jsonl.gz", [{"_id": "q1", "text": "q"}], gz=True)
    assert list(read_documents(str(tmp_path))) == [Document("d1", "doc")]
    assert list(read_queries(str(tmp_path))) == [Query("q1", "q")]


def test_beir_folder_without_queries_names_the_folder(tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "d1", "text": "doc"}])
    with pytest.raises(InputError, match="queries.jsonl") as info:
        list(read_queries(str(tmp_path)))
    assert str(tmp_path) in str(info.value)


def test_tsv_without_header(tmp_path):
    path = tmp_path / "queries.tsv"
    path.write_text("1\twhat is a cat\n2\tdogs\tand wolves\n")
    # a tab inside the text is kept: only the first one separates id from text
    assert list(read_queries(str(path))) == [Query("1", "what is a cat"), Query("2", "dogs\tand wolves")]


@pytest.mark.parametrize("header", ["id\ttext", "qid\tquery", "docid\tcontents", "query-id\ttext"])
def test_tsv_header_is_skipped(tmp_path, header):
    path = tmp_path / "q.tsv"
    path.write_text(f"{header}\n1\tone\n")
    assert list(read_queries(str(path))) == [Query("1", "one")]


def test_tsv_header_like_row_after_line_one_is_data(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("1\tone\nid\ttwo\n")
    assert list(read_documents(str(path))) == [Document("1", "one"), Document("id", "two")]


def test_tsv_crlf_and_gz(tmp_path):
    path = tmp_path / "docs.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("d1\tfirst\r\nd2\tsecond\r\n")
    assert list(read_documents(str(path))) == [Document("d1", "first"), Document("d2", "second")]


def test_txt_is_read_as_tsv(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("q1\thello\n")
    assert list(read_queries(str(path))) == [Query("q1", "hello")]


def test_tsv_line_without_tab_is_an_error(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("1\tok\njust text\n")
    with pytest.raises(InputError, match="id<TAB>text") as info:
        list(read_queries(str(path)))
    assert info.value.path == str(path) and info.value.line == 2
    assert f"{path}:2:" in str(info.value)


@pytest.mark.parametrize("key", ["text", "query", "contents"])
def test_query_text_keys(tmp_path, key):
    path = write_jsonl(tmp_path / "q.jsonl", [{"_id": "q1", key: "the query"}])
    assert list(read_queries(str(path))) == [Query("q1", "the query")]


@pytest.mark.parametrize("key", ["query_id", "qid"])
def test_query_id_keys(tmp_path, key):
    path = write_jsonl(tmp_path / "q.jsonl", [{key: 42, "query": "the query"}])
    assert list(read_queries(str(path))) == [Query("42", "the query")]


def test_query_without_text_key(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"_id": "q1", "title": "not a query key"}])
    with pytest.raises(InputError, match="query has no text") as info:
        list(read_queries(str(path)))
    assert info.value.line == 1 and str(path) in str(info.value)


def test_document_without_text_key(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"_id": "d1", "body": "x"}])
    with pytest.raises(InputError, match="record has no text") as info:
        list(read_documents(str(path)))
    assert info.value.line == 1 and str(path) in str(info.value)


# -- errors -------------------------------------------------------------------------------------


def test_malformed_json_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": "x"}, '{"id": "b", "contents": '])
    with pytest.raises(InputError, match="malformed JSON") as info:
        list(read_documents(str(path)))
    assert info.value.path == str(path) and info.value.line == 2
    assert str(info.value).startswith(f"{path}:2: ")


def test_malformed_json_line_number_counts_blank_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "contents": "x"}\n\n\nnot json\n')
    with pytest.raises(InputError) as info:
        list(read_documents(str(path)))
    assert info.value.line == 4


@pytest.mark.parametrize("line", ['["a", "b"]', '"a string"', "17", "null"])
def test_non_object_line(tmp_path, line):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": "x"}, line])
    with pytest.raises(InputError, match="JSON object") as info:
        list(read_documents(str(path)))
    assert info.value.line == 2 and str(path) in str(info.value)


@pytest.mark.parametrize("record", [{"contents": "x"}, {"_id": "", "contents": "x"},
                                    {"id": None, "contents": "x"}, {"id": "   ", "contents": "x"}])
def test_missing_id(tmp_path, record):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": "x"}, record])
    with pytest.raises(InputError, match="no id") as info:
        list(read_documents(str(path)))
    assert info.value.line == 2 and str(path) in str(info.value)
    assert "_id" in str(info.value)  # lists the accepted keys


def test_duplicate_id_mentions_first_line(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "a", "contents": "x"},
        {"id": "b", "contents": "y"},
        {"id": "a", "contents": "z"},
    ])
    with pytest.raises(InputError, match="duplicate id 'a'") as info:
        list(read_documents(str(path)))
    assert info.value.line == 3
    assert "first at line 1" in str(info.value)
    assert str(path) in str(info.value)


def test_duplicate_id_in_tsv(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("id\ttext\nq1\tone\nq1\tagain\n")
    with pytest.raises(InputError, match=r"duplicate id 'q1' \(first at line 2\)") as info:
        list(read_queries(str(path)))
    assert info.value.line == 3


@pytest.mark.parametrize("record", [{"id": "e", "contents": ""}, {"id": "e", "contents": "   \n"},
                                    {"_id": "e", "title": "", "text": ""}, {"id": "e", "contents": None}])
def test_empty_text_is_an_error(tmp_path, record):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": "x"}, record])
    with pytest.raises(InputError, match="empty text for id 'e'") as info:
        list(read_documents(str(path)))
    assert info.value.line == 2 and str(path) in str(info.value)
    assert "--allow-empty" in str(info.value)  # says how to get past it


def test_allow_empty_skips_and_warns(tmp_path, caplog):
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "a", "contents": "x"},
        {"id": "e1", "contents": ""},
        {"id": "b", "contents": "y"},
        {"id": "e2", "contents": "  "},
    ])
    with caplog.at_level(logging.WARNING, logger="splare_lucene.corpus"):
        docs = list(read_documents(str(path), allow_empty=True))
    assert docs == [Document("a", "x"), Document("b", "y")]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "splare_lucene.corpus"]
    assert len(warnings) == 1
    assert "skipped 2 documents" in warnings[0].getMessage()


def test_allow_empty_without_empties_does_not_warn(tmp_path, caplog):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": "x"}])
    with caplog.at_level(logging.WARNING, logger="splare_lucene.corpus"):
        assert list(read_documents(str(path), allow_empty=True)) == [Document("a", "x")]
    assert not [r for r in caplog.records if r.name == "splare_lucene.corpus"]


def test_allow_empty_still_rejects_duplicates(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "contents": ""}, {"id": "a", "contents": "x"}])
    with pytest.raises(InputError, match="duplicate id 'a'"):
        list(read_documents(str(path), allow_empty=True))


def test_allow_empty_queries(tmp_path, caplog):
    path = tmp_path / "q.tsv"
    path.write_text("q1\t \nq2\treal\n")
    with caplog.at_level(logging.WARNING, logger="splare_lucene.corpus"):
        assert list(read_queries(str(path), allow_empty=True)) == [Query("q2", "real")]
    assert any("skipped 1 queries" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.tsv", "no_such_dir/"])
def test_unknown_path(tmp_path, name):
    source = str(tmp_path / name)
    with pytest.raises(InputError, match="no such file or folder") as info:
        list(read_documents(source))
    assert str(tmp_path / name).rstrip("/") in str(info.value)
    assert "irds:" in str(info.value)  # says what would have been accepted


def test_input_error_is_a_value_error(tmp_path):
    with pytest.raises(ValueError):
        list(read_queries(str(tmp_path / "nope.jsonl")))


# -- streaming ----------------------------------------------------------------------------------


def test_reading_is_lazy(tmp_path):
    """Records are read a bounded window ahead (their ids are checked as one batch): the first
    documents come out before a broken line further on is read, and the error names its line."""
    from splare_lucene.corpus import _READ_AHEAD

    n = 2 * _READ_AHEAD + 3
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": f"d{i}", "contents": "x"} for i in range(n)] + ["{broken"])
    stream = read_documents(str(path))
    assert next(stream) == Document("d0", "x")
    for i in range(1, n):
        assert next(stream).id == f"d{i}"
    with pytest.raises(InputError) as info:
        next(stream)
    assert info.value.line == n + 1

