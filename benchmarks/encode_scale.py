"""Encoding at scale on the CPU: Ray workers, memory over a long encode, cost of parts + manifest.

Three measurements (issue 9, section 4), printed as a markdown table and saved as JSON:

1. **Ray throughput**: the same corpus encoded by ``encode_ray`` with 1 and with 2 actors (one
   torch thread each, ``cpus_per_worker=1``) in one Ray instance started once (its ~9 s start is
   not counted; each actor's model load is). Documents per second and the 2-worker speed-up.
2. **Resident memory over a long encode**: the local engine encodes ``--rss-docs`` documents
   (default 20,000) while a thread samples this process's RSS (``/proc/self/status`` VmRSS, and
   its two parts: RssAnon, the heap and tensors, and RssFile, mapped files such as memory-mapped
   weights) every 0.5 s. Reported: RSS after the first part, at the end, its maximum, the slope of
   a least-squares line through the samples after the first part (MiB per 1,000 documents), the
   same for each part, and the memory as each part was done; plus a census of the heap as each
   part finishes encoding (:func:`heap_census`: glibc ``mallinfo2`` in use / free / mmapped,
   Python's allocated blocks, gc-tracked objects), which tells live memory from free memory the
   allocator keeps, and the time of ``release_free_memory`` (``malloc_trim``) once per part.
3. **Parts and manifest overhead**: during run 2, the time spent in ``PartsDir.prepare``,
   ``write_part`` (gzip JSONL, fsync, rename, done-marker) and ``finish`` as a share of the
   encode's wall time. ``write_part`` includes serialising the JSONL, which a plain single-file
   writer also pays, so the share is an upper bound on what the parts scheme adds.

The documents are SQuAD-train questions (``../shared/data/squad-train/queries.jsonl``) read as
documents: the first ``--ray-docs`` (default 3,000) for 1, the first ``--rss-docs`` for 2 and 3.
They are short, so 20,000 of them encode in about 45 minutes on one core with the default model (long
documents such as cranfield's abstracts take an hour). They are streamed from the shared folder
into a temporary JSONL, never copied into the repository; ``--corpus`` picks another corpus for 1.

Usage (the committed tables came from these two commands; the first needs an otherwise idle
machine, since the Ray speed-up measures how two actors share the cores; the second does not mind
other load: its figures are a memory curve and a ratio of times within one run):

    python benchmarks/encode_scale.py --skip-rss --out benchmarks/results/encode_scale_ray
    python benchmarks/encode_scale.py --skip-ray --out benchmarks/results/encode_scale_memory

Without ``--skip-*`` both run, one after the other, into one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))


def memory_mib() -> dict[str, float]:
    """This process's resident memory from /proc/self/status, MiB: ``rss`` (VmRSS), ``anon``
    (RssAnon: heap, tensors) and ``file`` (RssFile: mapped files, e.g. memory-mapped weights)."""
    keys = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file"}
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            name = line.split(None, 1)[0] if line.strip() else ""
            if name in keys:
                out[keys[name]] = int(line.split()[1]) / 1024
    if "rss" not in out:
        raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")
    return out


class RssSampler(threading.Thread):
    """Samples (seconds, documents done, {rss, anon, file} MiB) every ``period`` seconds until
    stopped. Samples are kept in flat ``array`` columns (40 bytes each), not as Python tuples of
    dicts (about 400 bytes each): the sampler must not be a source of the growth it measures."""

    KINDS = ("rss", "anon", "file")

    def __init__(self, progress, period: float = 0.5):
        super().__init__(daemon=True)
        self.progress, self.period = progress, period
        self._seconds, self._done = array("d"), array("q")
        self._mib = {kind: array("d") for kind in self.KINDS}
        self._halt = threading.Event()

    @property
    def samples(self) -> list[tuple[float, int, dict[str, float]]]:
        return [(t, d, {kind: self._mib[kind][i] for kind in self.KINDS})
                for i, (t, d) in enumerate(zip(self._seconds, self._done))]

    def run(self) -> None:
        start = time.perf_counter()
        while not self._halt.is_set():
            mem = memory_mib()
            self._seconds.append(time.perf_counter() - start)
            self._done.append(self.progress())
            for kind in self.KINDS:
                self._mib[kind].append(mem[kind])
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def heap_census() -> dict[str, float]:
    """Where anonymous memory sits, at one moment: glibc's ``mallinfo2`` (all arenas, MiB):
    ``malloc_in_use`` (uordblks: bytes handed out by malloc and not freed, C++ and torch
    allocations included), ``malloc_free`` (fordblks: freed but kept in the arenas, i.e.
    fragmentation or reuse pools) and ``malloc_mmapped`` (hblkhd: large blocks served by mmap);
    Python's ``sys.getallocatedblocks()`` (pymalloc blocks alive) and the number of objects the
    cycle collector tracks (``gc.get_objects()``, containers only). A growth of ``malloc_in_use``
    with flat Python counts is native memory kept per document; a growth of ``malloc_free`` is
    fragmentation. glibc only (mallinfo2: glibc >= 2.33); other C libraries give Python counts."""
    import ctypes
    import gc

    out: dict[str, float] = {"python_blocks": sys.getallocatedblocks(), "gc_objects": len(gc.get_objects())}
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return out

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                          "fsmblks", "uordblks", "fordblks", "keepcost")]

    fn.restype = MallInfo2
    info = fn()
    out.update(malloc_in_use=info.uordblks / 2**20, malloc_free=info.fordblks / 2**20,
               malloc_mmapped=info.hblkhd / 2**20)
    return out


def slope_per_1000(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of MiB against documents, in MiB per 1,000 documents (nan: fewer than
    two distinct document counts, e.g. a run of two parts whose samples all fell in the second)."""
    if len({d for d, _ in points}) < 2:
        return float("nan")
    return statistics.linear_regression([d / 1000 for d, _ in points], [m for _, m in points]).slope


def ray_throughput(model: str, corpus: str, work: Path, workers: list[int], batch_size: int,
                   part_size: int) -> list[dict]:
    import ray

    from splare_lucene.engines.parts import ShardSpec
    from splare_lucene.engines.ray import RayResources, encode_ray

    # one instance for every run; more logical CPUs than cores (read task + actors, see ray.py)
    ray.init(address="local", num_cpus=max(4, max(workers) + 2), num_gpus=0, include_dashboard=False,
             log_to_driver=False)
    rows = []
    try:
        for n in workers:
            out = work / f"ray-{n}"
            t0 = time.perf_counter()
            summary = encode_ray(model, corpus, out, shard=ShardSpec(), part_size=part_size,
                                 batch_size=batch_size, progress=False, device="cpu", dtype="float32",
                                 resources=RayResources(num_workers=n, cpus_per_worker=1))
            seconds = time.perf_counter() - t0
            steady = steady_rate(out, n)
            rows.append({"workers": n, "documents": summary.documents, "seconds": round(seconds, 2),
                         "docs_per_s": round(summary.documents / seconds, 2), **steady})
            print(f"ray, {n} worker(s): {summary.documents} docs in {seconds:.1f} s; steady state "
                  f"{steady['steady_docs_per_s']} docs/s", file=sys.stderr)
    finally:
        ray.shutdown()
    base, steady_base = rows[0]["docs_per_s"], rows[0]["steady_docs_per_s"]
    for row in rows:
        row["speedup"] = round(row["docs_per_s"] / base, 3)
        row["steady_speedup"] = round(row["steady_docs_per_s"] / steady_base, 3)
    return rows


def steady_rate(output_dir: Path, workers: int) -> dict:
    """Throughput once every actor is warm, from the write times of the part files.

    Each actor's first part includes its start and model load. The first ``workers`` parts to
    finish are therefore left out: the rate is the documents of the remaining parts over the time
    from the ``workers``-th part's completion to the last one's (a part file's mtime is set when
    its bytes are written, just before the atomic rename; the manifest gives its documents)."""
    manifest = json.loads(next(output_dir.glob("manifest.shard-*.json")).read_text())
    done = sorted(((output_dir / p["file"]).stat().st_mtime, p["documents"]) for p in manifest["parts"])
    if len(done) <= workers:
        return {"steady_docs_per_s": float("nan"), "steady_parts": 0}
    later = done[workers:]
    span = later[-1][0] - done[workers - 1][0]
    return {"steady_docs_per_s": round(sum(d for _, d in later) / span, 2), "steady_parts": len(later)}


def first_questions(n: int, path: Path) -> Path:
    """The first ``n`` SQuAD-train questions as a JSONL corpus (``_id``, ``text``) in ``path``."""
    src = DATA / "squad-train" / "queries.jsonl"
    if not src.is_file():
        sys.exit(f"{src} not found: set SPLARE_SHARED_DATA to the shared data folder")
    written = 0
    with src.open() as f, path.open("w") as out:
        for line in f:
            if written == n:
                break
            obj = json.loads(line)
            out.write(json.dumps({"_id": obj["_id"], "text": obj["text"]}) + "\n")
            written += 1
    if written < n:
        sys.exit(f"{src} has only {written} questions; pass --rss-docs <= {written}")
    return path


def _by_progress(samples) -> list[tuple[int, dict[str, float]]]:
    """The first sample after each step of progress (documents are counted per part):
    [(documents done, MiB by kind)]."""
    out, last = [], 0
    for _, done, mem in samples:
        if done > last:
            out.append((done, {k: round(v, 1) for k, v in mem.items()}))
            last = done
    return out


def long_encode(model: str, n_docs: int, work: Path, batch_size: int, part_size: int) -> dict:
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.engines import local
    from splare_lucene.engines.parts import PartsDir, ShardSpec

    corpus = first_questions(n_docs, work / "questions.jsonl")
    encoder = SplareEncoder.from_pretrained(model, device="cpu", dtype="float32")
    timers = {"prepare": 0.0, "write_part": 0.0, "finish": 0.0}
    originals = {name: getattr(PartsDir, name) for name in timers}

    def timed(name):
        def wrapper(self, *args, **kwargs):
            t0 = time.perf_counter()
            try:
                return originals[name](self, *args, **kwargs)
            finally:
                timers[name] += time.perf_counter() - t0
        return wrapper

    done = [0]
    encode_part = local.encode_part

    census: list[tuple[int, dict[str, float]]] = []

    def counting_encode_part(*args, **kwargs):
        records = encode_part(*args, **kwargs)
        done[0] += len(records)
        census.append((done[0], {**{k: round(v, 1) for k, v in memory_mib().items()}, **heap_census()}))
        return records

    from splare_lucene import allocator

    release = allocator.release_free_memory
    trim_seconds = [0.0]

    def timed_release():
        t0 = time.perf_counter()
        try:
            return release()
        finally:
            trim_seconds[0] += time.perf_counter() - t0

    for name in timers:
        setattr(PartsDir, name, timed(name))
    local.encode_part = counting_encode_part
    allocator.release_free_memory = timed_release
    sampler = RssSampler(lambda: done[0])
    try:
        sampler.start()
        t0 = time.perf_counter()
        summary = local.encode_local(encoder, str(corpus), work / "local", shard=ShardSpec(),
                                     part_size=part_size, batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - t0
    finally:
        sampler.stop()
        for name, fn in originals.items():
            setattr(PartsDir, name, fn)
        local.encode_part = encode_part
        allocator.release_free_memory = release
    samples = sampler.samples  # built once from the sampler's columns
    after_first = [(d, m) for _, d, m in samples if d >= part_size]
    slopes = {kind: round(slope_per_1000([(d, m[kind]) for d, m in after_first]), 3)
              for kind in ("rss", "anon", "file")}
    overhead = sum(timers.values())
    return {
        "documents": summary.documents, "part_size": part_size, "seconds": round(seconds, 2),
        "docs_per_s": round(summary.documents / seconds, 2),
        "rss_after_first_part_mib": round(after_first[0][1]["rss"], 1) if after_first else None,
        "rss_end_mib": round(samples[-1][2]["rss"], 1),
        "rss_max_mib": round(max(m["rss"] for _, _, m in samples), 1),
        "rss_slope_mib_per_1000_docs": slopes["rss"],
        "anon_after_first_part_mib": round(after_first[0][1]["anon"], 1) if after_first else None,
        "anon_end_mib": round(samples[-1][2]["anon"], 1),
        "anon_slope_mib_per_1000_docs": slopes["anon"],
        "anon_band_after_first_part_mib": [round(min(m["anon"] for _, m in after_first), 1),
                                           round(max(m["anon"] for _, m in after_first), 1)] if after_first else None,
        "release_free_memory_seconds": round(trim_seconds[0], 4),
        "file_after_first_part_mib": round(after_first[0][1]["file"], 1) if after_first else None,
        "file_end_mib": round(samples[-1][2]["file"], 1),
        "file_slope_mib_per_1000_docs": slopes["file"],
        "rss_by_progress": _by_progress(samples),
        "census_by_part": census,
        "census_slopes_after_first_part": {
            key: round(slope_per_1000([(d, c[key]) for d, c in census[1:]]), 4)
            for key in (census[0][1] if census else {}) if len(census) > 2},
        "samples": len(samples),
        "parts_seconds": {k: round(v, 3) for k, v in timers.items()},
        "parts_overhead_fraction": round(overhead / seconds, 5),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="default")
    p.add_argument("--corpus", help="corpus of the Ray throughput runs (default: the first --ray-docs "
                   "SQuAD-train questions)")
    p.add_argument("--ray-docs", type=int, default=3000)
    p.add_argument("--ray-part-size", type=int, default=250,
                   help="part size of the Ray runs: small enough that both actors get parts to share")
    p.add_argument("--workers", default="1,2", help="Ray actor counts to compare (the first is the base)")
    p.add_argument("--rss-docs", type=int, default=20000)
    p.add_argument("--part-size", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--skip-ray", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--out", help="write OUT.json and OUT.md")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # the local run uses one thread, like one Ray worker
    result = {"command": "python benchmarks/encode_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
              "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory(prefix="splare-encode-scale-") as tmp:
        work = Path(tmp)
        if not args.skip_ray:
            corpus = args.corpus or str(first_questions(args.ray_docs, work / "ray-questions.jsonl"))
            args.corpus = args.corpus or f"first {args.ray_docs} SQuAD-train questions"
            result["ray"] = ray_throughput(args.model, corpus, work,
                                           [int(n) for n in args.workers.split(",")],
                                           args.batch_size, args.ray_part_size)
        if not args.skip_rss:
            result["long_encode"] = long_encode(args.model, args.rss_docs, work, args.batch_size,
                                                args.part_size)
    md = render(result, args)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        out.with_suffix(".md").write_text(md)
    return 0


def render(result: dict, args) -> str:
    lines = ["# Encoding at scale on the CPU", "", f"Command: `{result['command']}`", "",
             f"Machine: {result['machine']}; {result['date']}. Model: `{args.model}`; batch "
             f"{args.batch_size}, part size {args.part_size}; one torch thread per worker.", ""]
    if "ray" in result:
        lines += ["## Ray Data engine: 1 vs 2 workers", "",
                  f"Corpus: {args.corpus}; part size {args.ray_part_size}; wall time of `encode_ray` in "
                  "one running Ray instance (actor start and model load included).", "",
                  "| workers | documents | seconds | docs/s | speed-up | steady docs/s | steady speed-up |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['workers']} | {r['documents']} | {r['seconds']} | {r['docs_per_s']} | {r['speedup']}x "
                  f"| {r['steady_docs_per_s']} | {r['steady_speedup']}x |" for r in result["ray"]]
        lines += ["", "docs/s and speed-up: documents over the wall time of `encode_ray`, each actor's start "
                  "and model load included (about 20 s, paid once per actor whatever the corpus size). "
                  "Steady: once every actor is warm, i.e. the parts after the first one per actor, over "
                  "the time between their write times (`steady_rate`).", "",
                  "Target: >= 1.8x for 2 workers.", ""]
    if "long_encode" in result:
        r = result["long_encode"]
        lines += ["## Local engine: resident memory and the cost of parts", "",
                  f"{r['documents']} SQuAD-train questions as documents, {r['seconds']} s "
                  f"({r['docs_per_s']} docs/s), RSS sampled every 0.5 s ({r['samples']} samples).", "",
                  "| measure | value |", "|---|---:|",
                  f"| RSS after the first part | {r['rss_after_first_part_mib']} MiB |",
                  f"| RSS at the end | {r['rss_end_mib']} MiB |",
                  f"| RSS maximum | {r['rss_max_mib']} MiB |",
                  f"| RSS slope after the first part | {r['rss_slope_mib_per_1000_docs']} MiB per 1,000 docs |",
                  f"| of which anonymous (RssAnon: heap, tensors) | {r.get('anon_after_first_part_mib')} -> "
                  f"{r.get('anon_end_mib')} MiB, slope {r.get('anon_slope_mib_per_1000_docs')} MiB per 1,000 docs |",
                  f"| of which file-backed (RssFile: mapped weights, libraries) | {r.get('file_after_first_part_mib')} -> "
                  f"{r.get('file_end_mib')} MiB, slope {r.get('file_slope_mib_per_1000_docs')} MiB per 1,000 docs |",
                  f"| anonymous, lowest and highest sample after the first part | {r.get('anon_band_after_first_part_mib')} MiB |",
                  f"| `release_free_memory` (malloc_trim) once per part | {r.get('release_free_memory_seconds')} s in all |",
                  f"| prepare + write_part + finish | {sum(r['parts_seconds'].values()):.2f} s "
                  f"({', '.join(f'{k} {v} s' for k, v in r['parts_seconds'].items())}) |",
                  f"| share of encode time | {100 * r['parts_overhead_fraction']:.2f}% (target < 2%) |", ""]
        if r.get("rss_by_progress"):
            lines += ["Resident memory (MiB) as each part was done:", "",
                      "| documents | RSS | anon | file |", "|---:|---:|---:|---:|"]
            lines += [f"| {d} | {m['rss']} | {m['anon']} | {m['file']} |" for d, m in r["rss_by_progress"]]
            lines += [""]
        if r.get("census_by_part"):
            keys = [k for k in ("anon", "malloc_in_use", "malloc_free", "malloc_mmapped", "python_blocks",
                                "gc_objects") if k in r["census_by_part"][0][1]]
            lines += ["Where the anonymous memory sits as each part was encoded (`heap_census`: glibc "
                      "mallinfo2 in MiB, Python allocated blocks and gc-tracked objects in counts):", "",
                      "| documents | " + " | ".join(keys) + " |", "|---:|" + "---:|" * len(keys)]
            lines += [f"| {d} | " + " | ".join(f"{c[k]:.1f}" if isinstance(c[k], float) else str(c[k]) for k in keys)
                      + " |" for d, c in r["census_by_part"]]
            slopes = r.get("census_slopes_after_first_part", {})
            lines += ["| slope per 1,000 docs after the first part | "
                      + " | ".join(str(slopes.get(k, "")) for k in keys) + " |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
