"""The local engine and the parts/manifest scheme: sharding, resumption, refusals, indexing of
several shard directories."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from splare_lucene.engines.local import encode_local
from splare_lucene.engines.parts import PartsDir, PartPlanner, ShardSpec, read_outputs
from splare_lucene.errors import ConfigError, InputError
from splare_lucene.jsonl import read_vectors

from conftest import DEMO_DIR

CORPUS = DEMO_DIR / "corpus.jsonl"  # 35 documents


@pytest.fixture(scope="module")
def encoder(tiny_model):
    from splare_lucene.encoder import SplareEncoder

    return SplareEncoder.from_pretrained(tiny_model, device="cpu")


def _encode(encoder, out, **kw):
    kw.setdefault("part_size", 10)
    return encode_local(encoder, str(kw.pop("corpus", CORPUS)), out, model_name="tiny", progress=False, **kw)


def _parts_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.part-*.jsonl.gz"))}


class Crash(RuntimeError):
    pass


def _crash_after(monkeypatch, parts: int):
    """Make PartsDir.write_part raise after ``parts`` successful calls (a crash mid-run)."""
    original = PartsDir.write_part
    calls = {"n": 0}

    def write_part(self, part, records):
        if calls["n"] >= parts:
            raise Crash("simulated crash")
        calls["n"] += 1
        return original(self, part, records)

    monkeypatch.setattr(PartsDir, "write_part", write_part)


def _count_encoded(monkeypatch, encoder) -> dict:
    seen = {"texts": 0}
    original = type(encoder).encode

    def encode(self, texts, kind="document"):
        seen["texts"] += len(texts)
        return original(self, texts, kind)

    monkeypatch.setattr(type(encoder), "encode", encode)
    return seen


def test_parts_manifest_and_summary(encoder, tmp_path):
    out = tmp_path / "out"
    summary = _encode(encoder, out)
    assert summary.documents == 35 and summary.shards == 4
    manifest = json.loads((out / "manifest.shard-00000-of-00001.json").read_text())
    assert manifest["status"] == "complete" and manifest["documents"] == 35
    assert [(p["start"], p["stop"]) for p in manifest["parts"]] == [(0, 10), (10, 20), (20, 30), (30, 35)]
    assert manifest["model_fingerprint"] == encoder.fingerprint and manifest["corpus"]["size"] == CORPUS.stat().st_size
    assert not (out / ".work").exists()  # markers and temp files are gone once complete
    ids = [json.loads(line)["id"] for f in sorted(out.glob("shard-*.jsonl.gz")) for line in gzip.open(f, "rt")]
    assert ids == [json.loads(line)["_id"] for line in CORPUS.read_text().splitlines() if line.strip()]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["documents"] == 35 and on_disk["extra"]["signature"] == encoder.config.index_signature()
    assert len(dict(read_vectors(out))) == 35  # the reader skips manifests


def test_resume_after_crash_is_identical_and_skips_done_parts(encoder, tmp_path, monkeypatch, caplog):
    ref = tmp_path / "ref"
    _encode(encoder, ref)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _crash_after(m, 2)
        with pytest.raises(Crash):
            _encode(encoder, out)
    assert len(list((out / ".work").glob("*.done.json"))) == 2
    seen = _count_encoded(monkeypatch, encoder)
    with caplog.at_level("INFO", logger="splare_lucene"):
        _encode(encoder, out)
    assert seen["texts"] == 15  # parts 2 and 3 only: 10 + 5 documents
    assert any("resuming" in r.getMessage() and "20 documents" in r.getMessage() for r in caplog.records)
    assert _parts_bytes(out) == _parts_bytes(ref)
    seen["texts"] = 0
    caplog.clear()
    with caplog.at_level("INFO", logger="splare_lucene"):
        assert _encode(encoder, out).documents == 35  # finished: says so, encodes nothing
    assert seen["texts"] == 0 and any("already complete" in r.getMessage() for r in caplog.records)


def test_part_file_without_marker_is_rewritten(encoder, tmp_path, monkeypatch):
    """A kill between the part's rename and its marker leaves a part file without a marker."""
    ref, out = tmp_path / "ref", tmp_path / "out"
    _encode(encoder, ref)
    with monkeypatch.context() as m:
        _crash_after(m, 1)
        with pytest.raises(Crash):
            _encode(encoder, out)
    (out / "shard-00000-of-00001.part-000001.jsonl.gz").write_bytes(b"half-written garbage")
    (out / ".work" / "shard-00000-of-00001.part-000001.jsonl.gz.tmp-1-abcd").write_bytes(b"junk")
    _encode(encoder, out)
    assert _parts_bytes(out) == _parts_bytes(ref)
    assert not (out / ".work").exists()


def test_other_settings_corpus_or_model_are_refused(encoder, tmp_path, tiny_model, monkeypatch):
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _crash_after(m, 1)
        with pytest.raises(Crash):
            _encode(encoder, out)
    with pytest.raises(ConfigError, match=r"part_size: 10 vs 7.*--overwrite"):
        _encode(encoder, out, part_size=7)
    with pytest.raises(ConfigError, match="allow_empty: False vs True"):
        _encode(encoder, out, allow_empty=True)
    other_corpus = tmp_path / "corpus.jsonl"
    other_corpus.write_text(CORPUS.read_text().replace("a", "b", 1))
    with pytest.raises(ConfigError, match="corpus: "):
        _encode(encoder, out, corpus=other_corpus)
    from splare_lucene.encoder import SplareEncoder

    other = tmp_path / "model"
    shutil.copytree(tiny_model, other)
    cfg = json.loads((other / "splare_config.json").read_text())
    cfg["quantization_scale"] = 50.0
    (other / "splare_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="model: 'tiny' .*fingerprint"):
        _encode(SplareEncoder.from_pretrained(other, device="cpu"), out)
    summary = _encode(encoder, out, part_size=7, overwrite=True)  # --overwrite starts over
    assert summary.documents == 35 and summary.shards == 5


def test_foreign_or_older_directory_is_refused(encoder, tmp_path):
    from splare_lucene.jsonl import JsonVectorWriter

    old = tmp_path / "old"
    with JsonVectorWriter(old) as w:  # what encode wrote before parts
        w.write("a", "a", {"f1": 1})
    with pytest.raises(ConfigError, match="no shard of this encoding wrote .*part-000.jsonl.gz"):
        _encode(encoder, old)
    assert _encode(encoder, old, overwrite=True).documents == 35


def test_shards_partition_the_corpus_by_position(encoder, tmp_path):
    all_ids = [json.loads(line)["_id"] for line in CORPUS.read_text().splitlines() if line.strip()]
    got = []
    for i in range(3):
        _encode(encoder, tmp_path / f"s{i}", shard=ShardSpec(3, i), part_size=4)
        ids = [d for d, _ in read_vectors(tmp_path / f"s{i}")]
        assert ids == all_ids[i::3]
        got += ids
    assert sorted(got) == sorted(all_ids)
    outputs = read_outputs([tmp_path / f"s{i}" for i in range(3)])
    assert outputs.summary["documents"] == 35 and len(outputs.files) == 3 + 3 + 3
    with pytest.raises(ConfigError, match=r"1 of 3 shards missing \(--shard-id 1\)"):
        read_outputs([tmp_path / "s0", tmp_path / "s2"])
    shutil.copytree(tmp_path / "s0", tmp_path / "s0-copy")
    with pytest.raises(ConfigError, match="shard 0 of 3 appears twice"):
        read_outputs([tmp_path / "s0", tmp_path / "s0-copy", tmp_path / "s1", tmp_path / "s2"])
    # shards may also share one directory; their files do not collide
    shared = tmp_path / "shared"
    for i in range(3):
        _encode(encoder, shared, shard=ShardSpec(3, i), part_size=4)
    assert read_outputs([shared]).summary["documents"] == 35
    assert json.loads((shared / "summary.json").read_text())["documents"] == 35


def test_index_refuses_incomplete_mismatched_or_damaged_outputs(encoder, tiny_model, tmp_path, monkeypatch):
    from splare_lucene.encoder import SplareEncoder

    with monkeypatch.context() as m:
        _crash_after(m, 1)
        with pytest.raises(Crash):
            _encode(encoder, tmp_path / "partial")
    with pytest.raises(ConfigError, match="not complete .*rerun the same `splare-lucene encode`"):
        read_outputs([tmp_path / "partial"])
    _encode(encoder, tmp_path / "s0", shard=ShardSpec(2, 0))
    other = tmp_path / "model"
    shutil.copytree(tiny_model, other)
    cfg = json.loads((other / "splare_config.json").read_text())
    cfg["quantization_scale"] = 50.0
    (other / "splare_config.json").write_text(json.dumps(cfg))
    _encode(SplareEncoder.from_pretrained(other, device="cpu"), tmp_path / "s1", shard=ShardSpec(2, 1))
    with pytest.raises(ConfigError, match="different encodings .*quantization_scale|different encodings .*model"):
        read_outputs([tmp_path / "s0", tmp_path / "s1"])
    part = next((tmp_path / "s0").glob("shard-*.part-000000.jsonl.gz"))
    data = part.read_bytes()
    part.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ConfigError, match="does not match its checksum"):
        read_outputs([tmp_path / "s0"])


def test_changed_corpus_is_detected_when_skipping_done_parts(encoder, tmp_path, monkeypatch):
    from splare_lucene.corpus import read_documents

    out = tmp_path / "out"
    with monkeypatch.context() as m:
        _crash_after(m, 2)
        with pytest.raises(Crash):
            _encode(encoder, out)
    done = PartsDir(out, json_job(out)).done_parts()
    docs = list(read_documents(str(CORPUS)))
    docs[12] = docs[12]._replace(id="renamed")
    with pytest.raises(InputError, match="part 1 .*the corpus changed"):
        list(PartPlanner(docs, ShardSpec(), 10, done))


def json_job(out: Path):
    from splare_lucene.engines.parts import EncodingJob

    return EncodingJob.from_dict(json.loads((out / "manifest.shard-00000-of-00001.json").read_text()))


@pytest.mark.parametrize("num_shards, shard_id, message", [(0, 0, "--num-shards must be >= 1; got 0"),
                                                          (2, 2, r"--shard-id must be in \[0, 1\]")])
def test_invalid_shard_settings(num_shards, shard_id, message):
    with pytest.raises(ConfigError, match=message):
        ShardSpec(num_shards, shard_id)


def test_invalid_part_size(encoder, tmp_path):
    with pytest.raises(ConfigError, match="--part-size must be >= 1; got 0"):
        _encode(encoder, tmp_path / "o", part_size=0)
    assert not (tmp_path / "o").exists()


@pytest.mark.java
def test_index_resumes_encoding_and_indexes_several_shard_directories(tiny_model, tmp_path, monkeypatch, capsys):
    from splare_lucene.cli.main import main as cli
    from splare_lucene.index import read_index_meta

    base = ["--model", str(tiny_model), "--device", "cpu"]
    index = tmp_path / "index"
    with monkeypatch.context() as m:
        _crash_after(m, 1)
        # the CLI turns the crash into one error line and exit 1 (cli/failures.py)
        assert cli(["index", *base, "--corpus", str(CORPUS), "--index", str(index), "--part-size", "10"]) == 1
        assert "Crash: simulated crash" in capsys.readouterr().err
    work = tmp_path / "index.jsonl"  # the resumable work directory beside the index
    assert len(list((work / ".work").glob("*.done.json"))) == 1 and not index.exists()
    assert cli(["index", *base, "--corpus", str(CORPUS), "--index", str(index), "--part-size", "10"]) == 0
    assert not work.exists() and read_index_meta(index)["counters"]["indexed"] == 35
    for i in range(2):
        assert cli(["encode", *base, "--corpus", str(CORPUS), "--output", str(tmp_path / f"s{i}"),
                    "--num-shards", "2", "--shard-id", str(i), "--part-size", "8"]) == 0
    assert cli(["index", "--jsonl", str(tmp_path / "s0"), str(tmp_path / "s1"), "--index",
                str(tmp_path / "both")]) == 0
    meta = read_index_meta(tmp_path / "both")
    assert meta["counters"]["indexed"] == 35 and meta["encoding"]["documents"] == 35
    assert meta["model_fingerprint"] and meta["signature"]["quantization_scale"] == 100.0
    assert cli(["index", "--jsonl", str(tmp_path / "s0"), "--index", str(tmp_path / "one")]) == 1
    assert "shards missing (--shard-id 1)" in capsys.readouterr().err


@pytest.mark.java
def test_evaluate_index_resumes_an_interrupted_encoding(encoder, tmp_path, monkeypatch, caplog):
    from splare_lucene.collections import resolve_collection
    from splare_lucene.pipeline import ensure_index

    collection = resolve_collection(str(DEMO_DIR))
    monkeypatch.setattr("splare_lucene.engines.parts.DEFAULT_PART_SIZE", 10)
    with monkeypatch.context() as m:
        _crash_after(m, 2)
        with pytest.raises(Crash):
            ensure_index(encoder, collection, tmp_path, progress=False)
    (work,) = tmp_path.glob("jsonl-*")
    assert len(list((work / ".work").glob("*.done.json"))) == 2
    seen = _count_encoded(monkeypatch, encoder)
    with caplog.at_level("INFO", logger="splare_lucene"):
        index_dir, meta, reused = ensure_index(encoder, collection, tmp_path, progress=False)
    assert seen["texts"] == 15 and not reused and meta["counters"]["indexed"] == 35
    assert any("resuming" in r.getMessage() for r in caplog.records)
    assert not work.exists()  # removed once indexed (no --keep-jsonl)


def test_rerun_after_a_corpus_error_before_the_first_part_starts_over(encoder, tmp_path):
    """A run that fails before writing any part (here: a Latin-1 byte on line 2) leaves only its
    manifest; the rerun with the re-saved corpus (another size, so another corpus identity) must
    start over, not ask for the settings of a run that produced nothing. Once a part exists, a
    changed corpus is still refused (its parts would be lost)."""
    lines = CORPUS.read_bytes().splitlines(keepends=True)
    bad = tmp_path / "corpus.jsonl"
    bad.write_bytes(lines[0] + lines[1].replace(b'"text": "', b'"text": "caf\xe9 ', 1) + b"".join(lines[2:]))
    out = tmp_path / "out"
    with pytest.raises(InputError, match="not valid UTF-8"):
        _encode(encoder, out, corpus=bad)
    assert [p.name for p in out.iterdir() if p.name != ".work"] == ["manifest.shard-00000-of-00001.json"]
    bad.write_bytes(lines[0] + lines[1].replace(b'"text": "', "\"text\": \"caf\u00e9 ".encode(), 1)
                    + b"".join(lines[2:]))
    assert _encode(encoder, out, corpus=bad).documents == 35
    bad.write_bytes(b"".join(lines[:-1]))  # a changed corpus over finished parts: refused
    with pytest.raises(ConfigError, match="--overwrite"):
        _encode(encoder, out, corpus=bad)


def test_a_query_side_copy_resumes_the_encoding_and_reuses_the_index(tiny_model, tmp_path, monkeypatch):
    """configure --query-top-k changes nothing in the document vectors: the copy resumes the
    original's encoding (same document fingerprint) and evaluate's index key is the original's."""
    from splare_lucene.cli.main import main as cli
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines.parts import EncodingJob
    from splare_lucene.pipeline import _built_by, index_key

    original = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    out = tmp_path / "enc"
    with monkeypatch.context() as m:
        _crash_after(m, 1)
        with pytest.raises(Crash):
            _encode(original, out)
    assert cli(["configure", "--model", str(tiny_model), "--output", str(tmp_path / "q"), "--query-top-k", "5"]) == 0
    copy = SplareEncoder.from_pretrained(tmp_path / "q", device="cpu")
    assert copy.fingerprint != original.fingerprint and copy.document_fingerprint == original.document_fingerprint
    summary = _encode(copy, out)  # resumed, not refused
    assert summary.documents == 35
    assert index_key(copy, "c") == index_key(original, "c")
    extra = summary.extra
    assert extra["document_fingerprint"] == original.document_fingerprint
    assert _built_by({**extra, "corpus_key": "c"}, copy, "c") and _built_by({**extra, "corpus_key": "c"}, original, "c")
    # metadata from before the document fingerprint: the whole model must match
    old = {k: v for k, v in extra.items() if k != "document_fingerprint"} | {"corpus_key": "c"}
    assert _built_by(old, original, "c") != _built_by(old, copy, "c")
    # a job from before the field compares the model fingerprint
    def job(fingerprint, document=None):
        return EncodingJob.from_dict({"model": "m", "model_fingerprint": fingerprint, "signature": {}, "config": {},
                                      "corpus": {}, "extra": {"document_fingerprint": document} if document else {}})

    # both record a document fingerprint: it decides; otherwise (a job from before the field, or
    # from a driver that does not record it) the model fingerprints do
    assert job("a", "d").same_model(job("b", "d")) and not job("a", "d").same_model(job("a", "e"))
    assert job("a", "d").same_model(job("a")) and job("a").same_model(job("a", "d"))
    assert not job("a", "d").same_model(job("b"))
    assert job("a", "d").differences(job("b")) == ["model: 'm' vs 'm' (fingerprint b vs a)"]
    assert job("a", "d").differences(job("a", "e")) == ["model: 'm' vs 'm' (document fingerprint e vs d)"]
