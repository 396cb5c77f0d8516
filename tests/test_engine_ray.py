"""The Ray Data engine (``encode --engine ray``): a local Ray instance on the CPU with 2 actors
(tiny model, one torch thread each) writes the local engine's parts byte for byte, resumes an
interrupted output (its own or the local engine's) without re-encoding done parts, and without
ray installed fails with the install command."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from splare_lucene.errors import ConfigError

DEMO = Path(__file__).resolve().parents[1] / "splare_lucene" / "assets" / "demo" / "corpus.jsonl"
COPIES = 6  # 6 x 35 demo documents = 210 -> 27 parts: enough for an interruption to leave some undone
DOCUMENTS = 6 * 35
PART_SIZE = 8
BATCH_SIZE = 4


def _parts(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("shard-*.jsonl.gz"))}


def _vectors(directory: Path) -> list[tuple[str, dict]]:
    from splare_lucene.engines.parts import read_outputs
    from splare_lucene.corpus import iter_jsonl

    return [(obj["id"], obj["vector"]) for f in read_outputs([directory]).files for _, obj in iter_jsonl(f)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """The demo corpus, ``COPIES`` times over with distinct ids (BEIR JSONL)."""
    import json

    from splare_lucene.corpus import iter_jsonl

    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    records = [obj for _, obj in iter_jsonl(DEMO)]
    with path.open("w", encoding="utf-8") as f:
        for copy in range(COPIES):
            for obj in records:
                f.write(json.dumps({**obj, "_id": f"{obj['_id']}-{copy}"}) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def ray_cpu():
    """One local Ray instance for the module (starting one takes ~10 s): 4 logical CPUs on this
    2-core machine, so the read task and two 1-CPU actors are all scheduled at once."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install -e '.[ray]'")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=4, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_output(tiny_model, corpus, tmp_path_factory) -> Path:
    """The local engine's uninterrupted output: the reference."""
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines.local import encode_local

    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    out = tmp_path_factory.mktemp("local") / "out"
    encode_local(encoder, corpus, out, part_size=PART_SIZE, batch_size=BATCH_SIZE,
                 model_name=str(tiny_model), progress=False)
    return out


def _encode_ray(model: Path, corpus: str, out: Path, **kw):
    from splare_lucene.engines.ray import RayResources, encode_ray

    return encode_ray(str(model), corpus, out, part_size=PART_SIZE, batch_size=BATCH_SIZE,
                      model_name=str(model), progress=False, resources=RayResources(num_workers=2), **kw)


def test_ray_engine_writes_the_local_engines_parts(ray_cpu, tiny_model, corpus, local_output, tmp_path):
    out = tmp_path / "ray"
    summary = _encode_ray(tiny_model, corpus, out)
    assert summary.documents == DOCUMENTS
    assert _parts(out) == _parts(local_output)  # same files, byte for byte
    vectors = _vectors(out)
    assert len({i for i, _ in vectors}) == DOCUMENTS
    assert vectors == _vectors(local_output)  # same ids, same order, same impacts
    assert not (out / ".work").exists()


def _manifest_status(out: Path) -> str:
    import json

    return json.loads((out / "manifest.shard-00000-of-00001.json").read_text())["status"]


@pytest.mark.slow
def test_ray_resumes_an_interrupted_ray_run(ray_cpu, tiny_model, corpus, local_output, tmp_path, monkeypatch):
    """The driver dies (KeyboardInterrupt after 2 finished parts, as under Ctrl-C): the output is
    left unfinished; the same call resumes it without rewriting the parts already done."""
    import tqdm.auto

    out = tmp_path / "ray"
    calls = {"n": 0}
    original = tqdm.auto.tqdm.update

    def update(self, n=1):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return original(self, n)

    with monkeypatch.context() as m:
        m.setattr(tqdm.auto.tqdm, "update", update)
        with pytest.raises(KeyboardInterrupt):
            _encode_ray(tiny_model, corpus, out)
    assert _manifest_status(out) == "encoding"
    # Parts recorded as done (their done-marker written). An actor may have renamed a part into
    # place without its marker when the driver died: that part is not done, and resuming rewrites
    # it (seen under heavy load), so it is not among those that must stay untouched.
    done = {m.name[:-len(".done.json")] for m in (out / ".work").glob("*.done.json")}
    before = {p.name: p.stat().st_ino for p in out.glob("shard-*.jsonl.gz")
              if p.name[:-len(".jsonl.gz")] in done}
    assert len(before) >= 2
    summary = _encode_ray(tiny_model, corpus, out)
    assert summary.documents == DOCUMENTS and _manifest_status(out) == "complete"
    assert _parts(out) == _parts(local_output)
    assert _vectors(out) == _vectors(local_output)
    assert {n: (out / n).stat().st_ino for n in before} == before  # done parts were not written again
    # A finished output is left as it is.
    assert _encode_ray(tiny_model, corpus, out).documents == DOCUMENTS
    assert {n: (out / n).stat().st_ino for n in before} == before


@pytest.mark.slow
def test_ray_resumes_the_local_engines_partial_output(ray_cpu, tiny_model, corpus, local_output, tmp_path,
                                                      monkeypatch):
    """Either engine resumes the other's output; done parts are skipped, not encoded again."""
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines import local
    from splare_lucene.engines.parts import PartsDir

    out = tmp_path / "mixed"
    encoder = SplareEncoder.from_pretrained(tiny_model, device="cpu")
    original = PartsDir.write_part
    written: list[int] = []

    def write_three_then_die(self, part, records):
        if len(written) == 3:
            raise KeyboardInterrupt  # killed after 3 parts
        written.append(part.index)
        return original(self, part, records)

    with monkeypatch.context() as m:
        m.setattr(PartsDir, "write_part", write_three_then_die)
        with pytest.raises(KeyboardInterrupt):
            local.encode_local(encoder, corpus, out, part_size=PART_SIZE, batch_size=BATCH_SIZE,
                               model_name=str(tiny_model), progress=False)
    done = {p.name: p.stat().st_ino for p in out.glob("shard-*.jsonl.gz")}
    assert len(done) == 3
    _encode_ray(tiny_model, corpus, out)
    assert _parts(out) == _parts(local_output)
    assert {n: (out / n).stat().st_ino for n in done} == done


def test_ray_engine_refuses_another_jobs_output(tiny_model, corpus, local_output, tmp_path):
    """Checked in the driver before any Ray work starts."""
    pytest.importorskip("ray.data", reason="the ray extra is not installed: pip install -e '.[ray]'")
    from splare_lucene.engines.ray import RayResources, encode_ray

    out = tmp_path / "other"
    shutil.copytree(local_output, out)
    with pytest.raises(ConfigError, match="part_size: 8 vs 9"):
        encode_ray(str(tiny_model), corpus, out, part_size=PART_SIZE + 1, batch_size=BATCH_SIZE,
                   model_name=str(tiny_model), progress=False, resources=RayResources(num_workers=2))


def test_ray_engine_refuses_an_empty_corpus_and_its_own_inputs_before_writing(tiny_model, tmp_path):
    """Checked in the driver before any Ray work starts, as encode_local does: nothing is
    written, so the rerun with a fixed corpus is not asked for --overwrite."""
    pytest.importorskip("ray.data", reason="the ray extra is not installed: pip install -e '.[ray]'")
    from splare_lucene.errors import InputError

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "out"
    with pytest.raises(InputError, match="no documents"):
        _encode_ray(tiny_model, str(empty), out)
    assert not out.exists()
    with pytest.raises(ConfigError, match="--corpus"):
        _encode_ray(tiny_model, str(tmp_path), tmp_path / "inside")  # output inside the corpus folder


def test_engine_ray_without_ray_gives_the_install_command(monkeypatch, tmp_path):
    from splare_lucene.engines.ray import RayResources, encode_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ConfigError, match=r"pip install 'splare-lucene\[ray\]'"):
        encode_ray("default", str(DEMO), tmp_path / "out", resources=RayResources(num_workers=2))
    assert not (tmp_path / "out").exists()


def test_ray_resources_are_checked():
    from splare_lucene.engines.ray import RayResources, check_device

    with pytest.raises(ConfigError, match="--num-workers must be >= 1; got 0"):
        RayResources(num_workers=0)
    with pytest.raises(ConfigError, match="--gpus-per-worker must be >= 0"):
        RayResources(gpus_per_worker=-1)
    assert RayResources(gpus_per_worker=0.5).device == "cuda"
    assert RayResources().device == "cpu"
    with pytest.raises(ConfigError, match="--gpus-per-worker 1"):
        check_device("cuda", RayResources())
    check_device("auto", RayResources(gpus_per_worker=1))


def test_a_pool_the_cluster_cannot_hold_is_refused():
    """Ray Data would wait forever for actors that do not fit; say what fits instead."""
    from splare_lucene.engines.ray import RayResources, _check_cluster

    class FakeRay:
        def __init__(self, **total):
            self.total = total

        def cluster_resources(self):
            return self.total

    with pytest.raises(ConfigError, match="the Ray cluster has 0 GPUs. Use --num-workers 1 with --gpus-per-worker 0"):
        _check_cluster(FakeRay(CPU=16.0), RayResources(num_workers=2, gpus_per_worker=1))
    with pytest.raises(ConfigError, match="has 3 GPUs. Use --num-workers 6,"):
        _check_cluster(FakeRay(CPU=64.0, GPU=3.0), RayResources(num_workers=8, gpus_per_worker=0.5))
    with pytest.raises(ConfigError, match="need 5 CPUs; the Ray cluster has 4"):
        _check_cluster(FakeRay(CPU=4.0), RayResources(num_workers=4))
    _check_cluster(FakeRay(CPU=4.0, GPU=2.0), RayResources(num_workers=2, gpus_per_worker=1))


def test_cli_engine_ray_without_ray(monkeypatch, tmp_path, capsys):
    from splare_lucene.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)
    code = main(["encode", "--engine", "ray", "--num-workers", "2", "--corpus", str(DEMO),
                 "--output", str(tmp_path / "out")])
    assert code == 1
    assert "pip install 'splare-lucene[ray]'" in capsys.readouterr().err
