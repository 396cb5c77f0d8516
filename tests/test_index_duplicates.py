"""Issue 10, case 5: encoded JSONL indexed with `index --jsonl`.

- Duplicate document ids across shard files (or within one) are refused before Anserini starts,
  naming the id, both files and lines; ids with whitespace are refused with file and line.
- An index built from JSONL without `summary.json` (written by another tool) is searched with a
  warning (what cannot be checked); a real model/index difference is still refused.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from splare_lucene.engines import ids as ids_module
from splare_lucene.engines.ids import scan_ids
from splare_lucene.engines.parts import read_outputs
from splare_lucene.errors import IndexMismatchError, InputError
from splare_lucene.index import INDEX_META, build_index, check_index_matches

SIGNATURE = {"representation": "sae", "token_prefix": "f", "quantization_scale": 100.0}


def _write(path: Path, ids, gz: bool = True) -> Path:
    lines = "".join(json.dumps({"id": d, "contents": "", "vector": {"f1": 1}}) + "\n" for d in ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(lines.encode()) if gz else lines.encode())
    return path


@pytest.fixture
def no_java(monkeypatch):
    """Anserini must not be started: the check comes first."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"Anserini was started: {args[0] if args else kwargs}")

    monkeypatch.setattr(subprocess, "run", refuse)


def test_overlapping_files_are_refused_before_anserini(tmp_path, no_java):
    """The issue's shape: 4 documents for 3 ids (two foreign files that overlap)."""
    folder = tmp_path / "jsonl"
    _write(folder / "a.jsonl.gz", ["d1", "d2"])
    _write(folder / "b.jsonl", ["d3", "d2"], gz=False)
    with pytest.raises(InputError) as err:
        build_index(folder, tmp_path / "index", progress=False)
    message = str(err.value)
    assert "document id 'd2' appears twice" in message
    assert f"{folder / 'a.jsonl.gz'}:2" in message and f"{folder / 'b.jsonl'}:2" in message
    assert "--num-shards" in message  # the fix
    assert not (tmp_path / "index").exists()


def test_duplicate_within_one_file(tmp_path):
    path = _write(tmp_path / "x" / "part.jsonl.gz", ["a", "b", "c", "b"])
    with pytest.raises(InputError, match=rf"'b' appears twice: {path}:2 and {path}:4"):
        scan_ids([path], progress=False)


def test_overlapping_shard_directories_are_refused(tmp_path, tiny_model, no_java):
    """Two complete shard outputs (manifests, checksums) that hold one id twice: read_outputs
    accepts the set (same job, every shard once), the id scan refuses it."""
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines.local import encode_local
    from splare_lucene.engines.parts import ShardSpec, sha256_file

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(6)))
    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    for i in range(2):
        encode_local(encoder, str(corpus), tmp_path / f"s{i}", shard=ShardSpec(2, i), progress=False)
    # shard 1's part gets a copy of a shard 0 document (an overlap), its manifest updated to match
    part = next((tmp_path / "s1").glob("shard-*.part-*.jsonl.gz"))
    first = gzip.decompress(next((tmp_path / "s0").glob("shard-*.part-*.jsonl.gz")).read_bytes()).splitlines()[0]
    part.write_bytes(gzip.compress(gzip.decompress(part.read_bytes()) + first + b"\n"))
    manifest = next((tmp_path / "s1").glob("manifest.shard-*.json"))
    m = json.loads(manifest.read_text())
    m["parts"][0].update(bytes=part.stat().st_size, sha256=sha256_file(part))
    manifest.write_text(json.dumps(m))
    dirs = [tmp_path / "s0", tmp_path / "s1"]
    assert len(read_outputs(dirs).files) == 2  # without the scan: accepted
    with pytest.raises(InputError, match=r"document id 'd0' appears twice: .*s0.*:1 and .*s1.*:4"):
        read_outputs(dirs, check_ids=True, progress=False)
    with pytest.raises(InputError, match="'d0' appears twice"):
        build_index(dirs, tmp_path / "index", progress=False)


@pytest.mark.parametrize("line, doc_id", [
    ('{"id": "doc 1", "vector": {}}', "doc 1"),
    ('{"id": "doc\\t2", "vector": {}}', "doc\t2"),          # an escape: parsed, then refused
    ('{"vector": {}, "id": "doc\\u00a03"}', "doc\xa03"),    # id not first; Unicode whitespace
    ('{"id": "é x", "vector": {}}', "é x"),                   # non-ASCII id
    ('{"id": "", "vector": {}}', ""),
])
def test_ids_with_whitespace_are_refused_with_file_and_line(tmp_path, line, doc_id):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "ok", "vector": {}}\n' + line + "\n")
    # textio.check_id's wording, which the scan shares since the issue-10 follow-up
    expected = f"{path}:2: " + ("empty document id" if not doc_id else f"document id {doc_id!r} contains whitespace")
    with pytest.raises(InputError, match="^" + re.escape(expected)):
        scan_ids([path], progress=False)


@pytest.mark.parametrize("line, message", [
    ("[1, 2]", "expected a JSON object"),
    ('{"vector": {}, "id": ', "not valid JSON"),  # lines not written by encode are parsed whole
    ('{"contents": "no id"}', "expected a JSON object with an \"id\""),
])
def test_malformed_lines_are_refused_with_file_and_line(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "ok", "vector": {}}\n\n' + line + "\n")
    with pytest.raises(InputError, match=rf"^{path}:3: {message}"):
        scan_ids([path], progress=False)


def test_escaped_and_plain_spellings_of_one_id_are_one_id(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "caf\\u00e9", "vector": {}}\n{"id": "café", "vector": {}}\n')
    with pytest.raises(InputError, match="'café' appears twice"):
        scan_ids([path], progress=False)


def test_hash_collisions_are_not_duplicates(tmp_path, monkeypatch, caplog):
    """Every id hashed to one value: pass 2 tells the distinct ids apart, and still finds a true
    duplicate among them."""
    monkeypatch.setattr(ids_module, "id_digest", lambda doc_id: b"\x00" * 8)
    unique = _write(tmp_path / "u.jsonl.gz", [f"d{i}" for i in range(50)])
    with caplog.at_level(logging.INFO, logger="splare_lucene.engines.ids"):
        result = scan_ids([unique], progress=False)
    assert result.documents == 50 and result.collisions == 49
    assert "checked the ids of 50 documents in 1 files: all unique" in caplog.text
    dup = _write(tmp_path / "d.jsonl.gz", ["x1", "d7"])
    with pytest.raises(InputError, match="'d7' appears twice"):
        scan_ids([unique, dup], progress=False)


def test_hash_array_grows_past_its_first_size(tmp_path, monkeypatch):
    monkeypatch.setattr(ids_module, "_CHUNK", 7)
    files = [_write(tmp_path / f"p{i}.jsonl.gz", [f"f{i}-{j}" for j in range(30)]) for i in range(3)]
    assert scan_ids(files, expected=5, progress=False).documents == 90
    extra = _write(tmp_path / "extra.jsonl.gz", ["f2-29"])
    with pytest.raises(InputError, match="'f2-29' appears twice"):
        scan_ids([*files, extra], expected=5, progress=False)


# -- an index built from JSONL without summary.json --------------------------------------------


def _index_with_meta(tmp_path: Path, meta: dict | None) -> Path:
    index = tmp_path / "index"
    index.mkdir(parents=True)
    if meta is not None:
        (index / INDEX_META).write_text(json.dumps(meta))
    return index


@pytest.mark.parametrize("meta", [None, {"counters": {"indexed": 3}, "encoding": {}}, {"signature": {}}])
def test_index_without_signature_is_searched_with_a_warning(tmp_path, meta, caplog):
    index = _index_with_meta(tmp_path, meta)
    with caplog.at_level(logging.WARNING, logger="splare_lucene.index"):
        check_index_matches(index, SIGNATURE, "abc")
    assert "cannot check that" in caplog.text and "searching anyway" in caplog.text


def test_real_mismatch_is_still_refused(tmp_path, caplog):
    index = _index_with_meta(tmp_path, {"signature": {**SIGNATURE, "quantization_scale": 50.0}})
    with pytest.raises(IndexMismatchError, match="quantization_scale: index 50.0 vs model 100.0"):
        check_index_matches(index, SIGNATURE, None)
    # an older index that lacks a key: that key is not checked (warning), the others are
    partial = _index_with_meta(tmp_path / "old", {"signature": {"representation": "sae", "token_prefix": "f"}})
    with caplog.at_level(logging.WARNING, logger="splare_lucene.index"):
        check_index_matches(partial, SIGNATURE, None)
    assert "does not record quantization_scale" in caplog.text
    with pytest.raises(IndexMismatchError, match="representation: index 'sae' vs model 'vocab'"):
        check_index_matches(partial, {**SIGNATURE, "representation": "vocab"}, None)


@pytest.mark.java
def test_index_from_summaryless_jsonl_is_searched(tiny_model, tmp_path, caplog):
    """JSONL written by another tool (the encoded parts, without summary.json or manifests) is
    indexed and then searched with the tiny model, with a warning instead of a refusal."""
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines.local import encode_local
    from splare_lucene.search import SplareQueryEncoder, batch_search, open_searcher
    from splare_lucene.types import Query

    from conftest import DEMO_DIR

    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    encode_local(encoder, str(DEMO_DIR / "corpus.jsonl"), tmp_path / "enc", progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for part in (tmp_path / "enc").glob("shard-*.part-*.jsonl.gz"):
        shutil.copy(part, foreign / "vectors.jsonl.gz")
    with caplog.at_level(logging.WARNING):
        build_index(foreign, tmp_path / "index", progress=False)
    assert "has no summary.json" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="splare_lucene.index"):
        searcher = open_searcher(tmp_path / "index", SplareQueryEncoder(encoder))
    try:
        assert "does not record the model" in caplog.text
        run = batch_search(searcher, [Query("q1", "moon tides")], k=5, progress=False)
    finally:
        searcher.close()
    assert run["q1"] and [h.rank for h in run["q1"]] == list(range(1, len(run["q1"]) + 1))


def test_a_copy_that_differs_only_on_the_query_side_searches_without_a_warning(tmp_path, caplog):
    """Another model than the index's is warned about, unless both record the same document
    fingerprint (a query-side-only copy: configure --query-top-k, --query-idf-power)."""
    meta = {"signature": SIGNATURE, "model": "m", "model_fingerprint": "aaaa", "document_fingerprint": "dddd"}
    index = _index_with_meta(tmp_path, meta)
    with caplog.at_level(logging.INFO, logger="splare_lucene.index"):
        check_index_matches(index, SIGNATURE, "bbbb", "dddd")
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    assert "differs from it only in its query-side settings" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="splare_lucene.index"):
        check_index_matches(index, SIGNATURE, "bbbb", "eeee")  # another document side
        check_index_matches(_index_with_meta(tmp_path / "old", {**meta, "document_fingerprint": None}),
                            SIGNATURE, "bbbb", "dddd")  # an index from before the field: not checkable
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 2
    assert "was built by model m (fingerprint aaaa); searching with bbbb, which would encode the documents " \
        "differently: other weights, or other document-side settings" in caplog.records[0].getMessage()
    assert "which may encode the documents differently (the index does not record the document side)" \
        in caplog.records[1].getMessage()
    assert "Search with the model that built the index, or re-index with this one" in caplog.text


@pytest.mark.java
def test_indexes_record_the_document_fingerprint_that_query_side_copies_share(tiny_model, tiny_demo_index,
                                                                              tmp_path):
    from conftest import DEMO_DIR

    from splare_lucene.cli.main import main as cli
    from splare_lucene.config import SplareConfig
    from splare_lucene.encoder import model_fingerprints

    meta = json.loads((tiny_demo_index / INDEX_META).read_text())
    fingerprint, document = model_fingerprints(tiny_model, SplareConfig.load(tiny_model))
    assert (meta["model_fingerprint"], meta["document_fingerprint"]) == (fingerprint, document)
    copies = {"q": ["--query-top-k", "7"],
              "idf": ["--query-idf-power", "1", "--query-idf-corpus", str(DEMO_DIR), "--device", "cpu"],
              "doc": ["--doc-top-k", "7"], "lc": ["--text-normalization", "lowercase"]}
    prints = {}
    for name, settings in copies.items():
        assert cli(["configure", "--model", str(tiny_model), "--output", str(tmp_path / name), *settings]) == 0
        prints[name] = model_fingerprints(tmp_path / name, SplareConfig.load(tmp_path / name))
    assert all(prints[n][0] != fingerprint for n in copies)
    assert prints["q"][1] == prints["idf"][1] == document
    assert prints["doc"][1] != document and prints["lc"][1] != document
