"""jsonl.py: sharded, atomic JsonVectorCollection writing; validated reading."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from splare_lucene.errors import InputError
from splare_lucene.jsonl import (SHARD_PATTERN, SUMMARY_NAME, JsonVectorWriter, read_summary,
                                 read_vectors, shard_files)

DOCS = [
    ("d0", "zero", {"f1": 3, "f7": 1}),
    ("d1", "one", {"f2": 5}),
    ("d2", "two", {}),
    ("d3", "three", {"f1": 2, "f3": 4, "f9": 10}),
    ("d4", "four \u00e9", {"f4": 1}),
]


def write_all(out, docs=DOCS, **kwargs) -> JsonVectorWriter:
    with JsonVectorWriter(out, **kwargs) as writer:
        for doc_id, text, vector in docs:
            writer.write(doc_id, text, vector)
    return writer


def shard_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_round_robin_over_gzip_shards(tmp_path):
    out = tmp_path / "vectors"
    write_all(out, shards=3)
    names = sorted(p.name for p in out.iterdir())
    assert names == [SHARD_PATTERN.format(i) for i in range(3)] + [SUMMARY_NAME]
    assert names[:3] == ["part-000.jsonl.gz", "part-001.jsonl.gz", "part-002.jsonl.gz"]
    ids = [[r["id"] for r in shard_lines(out / SHARD_PATTERN.format(i))] for i in range(3)]
    assert ids == [["d0", "d3"], ["d1", "d4"], ["d2"]]


def test_every_line_has_id_contents_vector(tmp_path):
    out = tmp_path / "vectors"
    write_all(out, shards=2)
    records = {r["id"]: r for i in range(2) for r in shard_lines(out / SHARD_PATTERN.format(i))}
    assert set(records) == {d[0] for d in DOCS}
    for doc_id, text, vector in DOCS:
        assert set(records[doc_id]) == {"id", "contents", "vector"}
        assert records[doc_id]["contents"] == text
        assert records[doc_id]["vector"] == vector


def test_non_ascii_is_written_as_utf8(tmp_path):
    out = tmp_path / "vectors"
    write_all(out)
    raw = gzip.open(out / SHARD_PATTERN.format(0), "rb").read().decode("utf-8")
    assert "four \u00e9" in raw  # ensure_ascii=False: the text is readable, not \u-escaped


def test_contents_false_writes_empty_contents(tmp_path):
    out = tmp_path / "vectors"
    write_all(out, contents=False)
    records = shard_lines(out / SHARD_PATTERN.format(0))
    assert [r["contents"] for r in records] == [""] * len(DOCS)
    assert [r["vector"] for r in records] == [d[2] for d in DOCS]


def test_more_shards_than_documents_leaves_empty_shards(tmp_path):
    out = tmp_path / "vectors"
    write_all(out, docs=DOCS[:2], shards=4)
    assert [len(shard_lines(out / SHARD_PATTERN.format(i))) for i in range(4)] == [1, 1, 0, 0]
    assert [doc_id for doc_id, _ in read_vectors(out)] == ["d0", "d1"]


@pytest.mark.parametrize("shards", [0, -1])
def test_invalid_shard_count(tmp_path, shards):
    with pytest.raises(ValueError, match=f"got {shards}"):
        JsonVectorWriter(tmp_path / "v", shards=shards)


def test_summary_counts(tmp_path):
    out = tmp_path / "vectors"
    writer = write_all(out, shards=2)
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary == read_summary(out)
    assert summary["documents"] == 5
    assert summary["shards"] == 2
    assert summary["total_nnz"] == 2 + 1 + 0 + 3 + 1
    assert summary["max_nnz"] == 3
    assert summary["mean_nnz"] == pytest.approx(7 / 5)
    assert summary["total_weight"] == 4 + 5 + 16 + 1
    assert summary["mean_weight"] == pytest.approx(round(26 / 7, 3))
    assert summary["empty"] == 1
    assert summary["empty_ids"] == ["d2"]
    assert writer.summary.documents == 5


def test_summary_extra_is_recorded(tmp_path):
    out = tmp_path / "vectors"
    with JsonVectorWriter(out) as writer:
        writer.summary.extra["model"] = "demo"
        writer.write("a", "x", {"f1": 1})
    assert read_summary(out)["extra"] == {"model": "demo"}


def test_empty_vectors_are_logged(tmp_path, caplog):
    out = tmp_path / "vectors"
    with caplog.at_level(logging.WARNING, logger="splare_lucene.jsonl"):
        writer = write_all(out, docs=[("a", "x", {}), ("b", "y", {}), ("c", "z", {"f0": 1})])
    assert writer.summary.empty == 2
    assert any("2 documents have empty vectors" in r.getMessage() for r in caplog.records)
    assert "ids: a, b" in writer.summary.describe()


def test_no_empty_vectors_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="splare_lucene.jsonl"):
        write_all(tmp_path / "vectors", docs=[("a", "x", {"f0": 1})])
    assert not [r for r in caplog.records if r.name == "splare_lucene.jsonl"]


def test_empty_writer_summary(tmp_path):
    out = tmp_path / "vectors"
    write_all(out, docs=[])
    summary = read_summary(out)
    assert summary["documents"] == 0 and summary["mean_nnz"] == 0.0 and summary["mean_weight"] == 0.0


def test_output_appears_only_after_exit(tmp_path):
    out = tmp_path / "vectors"
    with JsonVectorWriter(out, shards=2) as writer:
        writer.write("a", "x", {"f1": 1})
        assert not out.exists()
        # the work happens in one temporary sibling directory
        siblings = [p for p in tmp_path.iterdir()]
        assert len(siblings) == 1 and siblings[0].name.startswith("vectors.")
    assert out.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors"]  # temp dir renamed away


def test_creates_missing_parent(tmp_path):
    out = tmp_path / "a" / "b" / "vectors"
    write_all(out)
    assert (out / SUMMARY_NAME).is_file()


def test_exception_leaves_nothing(tmp_path):
    out = tmp_path / "vectors"
    with pytest.raises(RuntimeError, match="boom"):
        with JsonVectorWriter(out, shards=3) as writer:
            writer.write("a", "x", {"f1": 1})
            raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp dir left in the parent


def test_exception_keeps_existing_output(tmp_path):
    out = tmp_path / "vectors"
    write_all(out, docs=DOCS[:1])
    with pytest.raises(KeyboardInterrupt):
        with JsonVectorWriter(out) as writer:
            writer.write("new", "x", {"f1": 1})
            raise KeyboardInterrupt
    assert [doc_id for doc_id, _ in read_vectors(out)] == ["d0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors"]


def test_success_replaces_existing_output(tmp_path):
    out = tmp_path / "vectors"
    write_all(out, shards=3)
    write_all(out, docs=[("new", "x", {"f1": 1})], shards=1)
    assert sorted(p.name for p in out.iterdir()) == [SHARD_PATTERN.format(0), SUMMARY_NAME]
    assert list(read_vectors(out)) == [("new", {"f1": 1})]


def test_read_vectors_round_trip(tmp_path):
    out = tmp_path / "vectors"
    write_all(out, shards=2)
    got = dict(read_vectors(out))
    assert got == {doc_id: vector for doc_id, _, vector in DOCS}
    # shards are read in name order: shard 0's documents first
    assert [doc_id for doc_id, _ in read_vectors(out)] == ["d0", "d2", "d4", "d1", "d3"]


def test_read_vectors_plain_jsonl_and_numeric_ids(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"id": 1, "vector": {"f1": 2}}\n\n{"id": "x", "vector": {}}\n')
    assert list(read_vectors(tmp_path)) == [("1", {"f1": 2}), ("x", {})]


def test_read_vectors_malformed_json_names_file_and_line(tmp_path):
    good = json.dumps({"id": "a", "vector": {"f1": 1}})
    path = tmp_path / "part-000.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(f"{good}\n{good.replace('a', 'b')}\n{{not json\n")
    stream = read_vectors(tmp_path)
    assert next(stream)[0] == "a"
    assert next(stream)[0] == "b"
    with pytest.raises(InputError, match="malformed JSON") as info:
        next(stream)
    assert info.value.path == str(path) and info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: ")


@pytest.mark.parametrize("line", [
    '{"vector": {"f1": 1}}',  # no id
    '{"id": "a"}',  # no vector
    '{"id": "a", "vector": [1, 2]}',  # vector not an object
    '{"id": "a", "vector": "f1 f2"}',
    '["id", "vector"]',  # not an object at all
    '"id"',
    "5",
])
def test_read_vectors_rejects_bad_records(tmp_path, line):
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": "ok", "vector": {}}\n' + line + "\n")
    with pytest.raises(InputError, match="expected keys 'id' and 'vector'|must be a JSON object") as info:
        list(read_vectors(tmp_path))
    assert info.value.path == str(path) and info.value.line == 2


def test_shard_files_empty_dir(tmp_path):
    with pytest.raises(InputError, match="no .jsonl or .jsonl.gz shards") as info:
        shard_files(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_shard_files_ignores_summary_and_other_files(tmp_path):
    (tmp_path / SUMMARY_NAME).write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError):
        shard_files(tmp_path)
    (tmp_path / "b.jsonl.gz").write_bytes(b"")
    (tmp_path / "a.jsonl").write_text("")
    assert [p.name for p in shard_files(tmp_path)] == ["a.jsonl", "b.jsonl.gz"]


def test_read_summary_absent(tmp_path):
    assert read_summary(tmp_path) is None
