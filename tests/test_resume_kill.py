"""`splare-lucene encode` killed with SIGKILL at random moments resumes to the exact output of an
uninterrupted run: every document once, with the same vector (the part files are byte-identical).

Starting the console script costs ~8 s here (torch + transformers imports), so after one killed
run of the console script itself, runs are forked from a warm process (a "zygote" that loaded the
model once and then only forks): each fork runs the same ``splare_lucene.cli.main.main(["encode",
...])`` as the console script and is killed by its pid at a random moment of a seeded RNG, until
20+ kills have landed over 3+ output directories, each resumed to completion.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about 55 s on 2 busy CPU cores

DOCUMENTS = 300
PART_SIZE = 8
MIN_KILLS = 20
WORDS = "sparse latent lucene impact index query model vector encoder layer residual stream".split()

ZYGOTE = r"""
import json, os, sys
from splare_lucene.cli.main import main
import tqdm
from splare_lucene.encoder import SplareEncoder
import splare_lucene.engines.local  # noqa: F401
tqdm.tqdm.monitor_interval = 0  # no tqdm monitor thread: a lock it holds at fork time would hang a child
# Load the model once so that every lazy import (transformers' model classes, tokenizers, the SAE
# loader) is done before forking; OMP_NUM_THREADS=1 keeps torch from starting a thread pool that
# a forked child could not use.
SplareEncoder.from_pretrained(sys.argv[1], device="cpu")
# tqdm's default write lock includes a multiprocessing RLock, a semaphore every forked child shares:
# a child SIGKILLed while drawing a bar (transformers' "Loading weights", encode's own bar) died
# holding it and hung every later child. A threading lock is copied, unheld, into each child
# instead, on every tqdm class that keeps its own: tqdm.auto's class (tqdm_asyncio) and
# huggingface_hub's got theirs before this line ran, and set_lock on the base leaves them alone.
import threading
def _tqdm_classes(cls):
    yield cls
    for sub in cls.__subclasses__():
        yield from _tqdm_classes(sub)
_lock = threading.RLock()
for cls in _tqdm_classes(tqdm.std.tqdm):
    cls.set_lock(_lock)
for line in sys.stdin:
    argv = json.loads(line)
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        code = 1
        try:
            code = main(argv)
        finally:
            os._exit(code)  # never back into the loop: the child must not become a second zygote
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9,
                      "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}), flush=True)
"""


def _corpus(path: Path) -> Path:
    rng = random.Random(7)
    with path.open("w") as f:
        for i in range(DOCUMENTS):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 30)))
            f.write(json.dumps({"_id": f"doc{i}", "title": "", "text": text}) + "\n")
    return path


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _documents(out: Path) -> list[tuple[str, dict]]:
    """(id, vector) of every line of the parts the manifest lists, in order."""
    manifest = json.loads((out / "manifest.shard-00000-of-00001.json").read_text())
    assert manifest["status"] == "complete"
    return [(obj["id"], obj["vector"]) for p in manifest["parts"]
            for obj in map(json.loads, gzip.open(out / p["file"], "rt"))]


def _done_parts(out: Path) -> int:
    return len(list((out / ".work").glob("*.done.json"))) if (out / ".work").is_dir() else 0


def _parts(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.part-*.jsonl.gz"))}


def test_sigkill_at_random_moments_then_resume(tiny_model, tmp_path):
    corpus = _corpus(tmp_path / "corpus.jsonl")
    script = Path(sys.executable).with_name("splare-lucene")
    cmd = lambda out: ["encode", "--model", str(tiny_model), "--corpus", str(corpus), "--output", str(out),  # noqa: E731
                       "--part-size", str(PART_SIZE), "--batch-size", "4", "--device", "cpu"]
    rng = random.Random(20260)
    # The console script, started first (its imports overlap the zygote's), killed while encoding:
    # after its manifest appears, at a random moment.
    first = tmp_path / "series0"
    proc = subprocess.Popen([str(script), *cmd(first)], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(tiny_model)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env())
    try:
        while not (first / "manifest.shard-00000-of-00001.json").exists() and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.3))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the console script finished before it was killed"
        kills = 1

        def run(out: Path, delay: float | None, limit: float) -> dict:
            """One forked encode into ``out``, SIGKILLed after ``delay`` s (None: never); a run
            still going after ``limit`` s is killed and fails the test (a hang, not a slow run)."""
            zygote.stdin.write(json.dumps(cmd(out)) + "\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            hung = threading.Event()

            def kill(flag: threading.Event | None = None) -> None:
                if flag is not None:
                    flag.set()
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

            watchdog = threading.Timer(limit, kill, args=(hung,))
            watchdog.start()
            try:
                if delay is not None:
                    time.sleep(delay)
                    kill()
                result = json.loads(zygote.stdout.readline())
            finally:
                watchdog.cancel()
            assert not hung.is_set(), (
                f"an encode run into {out.name} was still going after {limit:.0f} s (the "
                f"uninterrupted run took {full:.0f} s): a resumed run hangs")
            return result

        start = time.monotonic()
        ref = tmp_path / "ref"
        full = float("nan")
        assert run(ref, None, limit=600)["code"] == 0  # the uninterrupted run
        full = time.monotonic() - start  # its duration: model load + encoding
        reference = _documents(ref)
        assert len(reference) == DOCUMENTS
        series = runs = 0
        while kills < MIN_KILLS or series < 3:
            out = tmp_path / f"series{series}"
            scale = 0.6 * full  # most moments fall while the run encodes or writes
            while True:
                runs += 1
                done = _done_parts(out)
                result = run(out, rng.uniform(0, scale), limit=max(120.0, 20 * full))
                if result["killed"]:
                    kills += 1
                    # On a loaded machine the model load can outlast the moments drawn so far:
                    # widen the window until a run gets a part done, so that every series ends.
                    scale = 0.6 * full if _done_parts(out) > done else scale * 1.5
                    continue
                assert result["code"] == 0, f"run {runs} failed"
                break
            documents = _documents(out)
            ids = [d for d, _ in documents]
            assert len(ids) == len(set(ids)) == DOCUMENTS  # every document exactly once
            assert documents == reference  # with the vector of the uninterrupted run
            assert _parts(out) == _parts(ref)  # byte for byte
            assert not (out / ".work").exists()
            assert json.loads((out / "summary.json").read_text())["documents"] == DOCUMENTS
            series += 1
        logging.getLogger(__name__).info("%d kills over %d runs in %d series", kills, runs, series)
    finally:
        if proc.poll() is None:
            proc.kill()
        zygote.stdin.close()
        zygote.wait(timeout=60)
