"""idset.py and the readers' duplicate check built on it: exact answers, 8 bytes per id."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from splare_lucene.corpus import _READ_AHEAD, read_documents, read_queries
from splare_lucene.errors import InputError
from splare_lucene.idset import IdHashSet, id_digest


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.text(alphabet="abc", min_size=1, max_size=3), max_size=300),
       cuts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20))
def test_add_marks_exactly_the_repeats(ids, cuts):
    """Against a plain set: a position is marked iff its id appeared earlier (in an earlier
    batch or earlier in its own), whatever the batch sizes; runs stay logarithmic."""
    hashes, seen, start, i = IdHashSet(), set(), 0, 0
    while start < len(ids):
        batch = ids[start:start + cuts[i % len(cuts)]]
        marked = hashes.add([id_digest(x) for x in batch])
        expected = []
        for x in batch:
            expected.append(x in seen)
            seen.add(x)
        assert marked.tolist() == expected
        start, i = start + len(batch), i + 1
    assert hashes.size == len(ids) and hashes.nbytes == 8 * len(ids)
    assert len(hashes._runs) <= max(1, len(ids)).bit_length() + 1


def test_empty_batch_and_unicode_ids():
    hashes = IdHashSet()
    assert hashes.add([]).tolist() == []
    assert hashes.add([id_digest("café"), id_digest("cafe\u0301")]).tolist() == [False, False]
    assert hashes.add([id_digest("café".encode())]).tolist() == [True]  # str and its UTF-8 bytes agree


def _corpus(path, ids):
    path.write_text("".join(json.dumps({"_id": i, "text": f"text of {i}"}) + "\n" for i in ids))
    return path


def test_a_repeat_in_a_later_window_names_the_first_line(tmp_path):
    ids = [f"d{i}" for i in range(2 * _READ_AHEAD + 10)] + ["d3"]
    path = _corpus(tmp_path / "c.jsonl", ids)
    with pytest.raises(InputError, match=r"c\.jsonl:%d: duplicate id 'd3' \(first at line 4\)" % len(ids)):
        list(read_documents(str(path)))


def test_every_document_before_a_repeat_is_read(tmp_path):
    """Errors come in stream order: the documents before the repeat are yielded, then it fails."""
    ids = [f"d{i}" for i in range(_READ_AHEAD + 5)] + ["d0"] + ["later"]
    stream = read_documents(str(_corpus(tmp_path / "c.jsonl", ids)))
    got = [next(stream).id for _ in range(_READ_AHEAD + 5)]
    assert got == ids[:_READ_AHEAD + 5]
    with pytest.raises(InputError, match="duplicate id 'd0' \\(first at line 1\\)"):
        next(stream)


def test_hash_collisions_are_not_repeats(tmp_path, monkeypatch):
    """Every id hashed to one value: the re-read tells distinct ids apart (all are read) and
    still finds the true repeat, at its line."""
    import splare_lucene.idset as idset

    monkeypatch.setattr(idset, "id_digest", lambda doc_id: b"\x00" * 8)
    unique = [f"q{i}" for i in range(40)]
    path = tmp_path / "queries.jsonl"
    _corpus(path, unique)
    assert [q.id for q in read_queries(str(path))] == unique
    _corpus(path, unique + ["q7"])
    with pytest.raises(InputError, match=r"queries\.jsonl:41: duplicate id 'q7' \(first at line 8\)"):
        list(read_queries(str(path)))


def test_a_repeated_id_of_a_skipped_empty_record_is_still_a_repeat(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "text": ""}\n{"_id": "b", "text": "x"}\n{"_id": "a", "text": "y"}\n')
    with pytest.raises(InputError, match="duplicate id 'a' \\(first at line 1\\)"):
        list(read_documents(str(path), allow_empty=True))


def test_reading_keeps_no_python_object_per_document(tmp_path):
    """The reader remembers ids as 8-byte hashes, not as strings in a dict (about 130 bytes per
    id before): Python memory traced while streaming 30,000 documents stays far below what
    keeping the ids would take. A deterministic allocation count, not a timing."""
    n = 30_000
    path = _corpus(tmp_path / "c.jsonl", [f"document-{i:08d}" for i in range(n)])
    stream = read_documents(str(path))
    next(stream)  # imports and first buffers before the baseline
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(n - 2):  # the reader is still open, holding what it remembers
            next(stream)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert held < 40 * n, f"{held / n:.0f} bytes per document kept while reading"
