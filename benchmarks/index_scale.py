"""Indexing cost against the quantization scale (issue 11, section 3): documents/s and index size.

Input: the output directory of ``splare-lucene encode`` with the default model (integer impacts
at scale 100), one per corpus (``--encoded NAME=DIR``; default
``benchmarks/results/perf-work/<name>-default``). Only *complete* parts are read: those listed in
a sealed manifest (``"status": "complete"``), or, while ``encode`` is still running, the parts
whose done-marker exists in ``.work/`` (a part file appears before its marker), contiguous from
part 0, each checked against its recorded size and sha256; ``--max-docs`` keeps a prefix.

For each scale ``s`` (``--scales``, default 5,10,20,50,100) every impact ``i`` becomes
``round_half_up(i * s / 100)`` in exact integer arithmetic, and entries that become 0 are dropped,
as :func:`splare_lucene.quantize.quantize` drops them. This rescales the scale-100 *integers*,
not the float weights: an impact can differ by 1 from ``round(weight * s)`` when the two
roundings meet (``|i/100 - w| <= 0.005``, then times ``s``), and an entry with ``weight * s``
within ``0.005 * s`` of 0.5 can be kept or dropped differently. Neither moves the cost figures
beyond that rounding: what indexing costs is the number of postings and the sum of the impacts
(Anserini writes each pseudo-token as a term whose frequency is the impact), and both change by
at most that rounding per entry. The rankings (top-10 overlap, nDCG) come from the float weights
instead, in ``quantization_fidelity.py``, and are shown beside the costs.

The rescaled parts are written with the toolkit's own part writer (:class:`PartsDir`: parts,
sealed manifest, ``summary.json`` recording ``quantization_scale = s``), so that they are an
``encode`` output that ``splare-lucene index --jsonl`` accepts; each is then indexed with
:func:`splare_lucene.backends.build_index` (backend ``lucene``, one thread, raw documents stored:
exactly what ``splare-lucene index --jsonl DIR --index IDX`` runs: the id and vector scan, then
Anserini ``IndexCollection -impact -pretokenized -storeRaw`` in its own JVM). Timed: the whole
call (wall, one indexing thread) and, inside it, the Anserini process alone (JVM start
included); the rest is the toolkit's checks. Scales are built in a rotating order per repeat
(``--repeats``; the median is reported) so that load changes on a shared machine hit every scale.
Index size: the bytes of every file in the index directory. One Seismic build per corpus at
scale 100 (the default backend options, one thread) is timed beside Lucene's (``--no-seismic``
to skip).

    .venv/bin/python benchmarks/index_scale.py                       # cranfield + squad-train, 3 repeats
    .venv/bin/python benchmarks/index_scale.py --quick               # cranfield, 300 documents, 1 repeat
    .venv/bin/python benchmarks/index_scale.py --collections squad-train --max-docs 10000

Writes ``benchmarks/results/index_scale.{json,md}`` with the command (``--out`` to change the
stem). Work files go to ``benchmarks/results/perf-work/index-scale/`` (gitignored); indexes are
removed after they are measured unless ``--keep``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import logging
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_results.py
from _results import write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
WORK = REPO / "benchmarks" / "results" / "perf-work"
RESULTS = REPO / "benchmarks" / "results"
FIDELITY = RESULTS / "quantization_fidelity_cranfield.json"
SOURCE_SCALE = 100
DEFAULT_SCALES = (5, 10, 20, 50, 100)
FIXED_DOCS = 10  # documents of the build that measures a build's fixed cost
FIXED = 0  # its key among the scales (no scale is 0)
# Anserini's closing line: "Total 1,398 documents indexed in 00:00:04"
_ANSERINI_TOTAL = re.compile(r"Total ([\d,]+) documents indexed in (\d+):(\d\d):(\d\d)")

logger = logging.getLogger("index_scale")


# -- input: the complete parts of an encode output -----------------------------------------------

@dataclasses.dataclass
class SourceParts:
    """The complete parts of one encode output: the job (its manifest) and the part files in
    order, each a (PartRecord, path); ``sealed`` when the manifest says complete."""

    directory: Path
    manifest: dict
    parts: list
    sealed: bool


def complete_parts(encoded: Path) -> SourceParts:
    """The complete parts of ``encoded`` (see the module docstring): of its one shard, or of every
    shard of a sharded encode (``--num-shards N``: shard 0's parts, then shard 1's...).

    Raises SystemExit naming the fix when the directory holds no manifest, no complete part, shards
    of different encodes, or a part whose size or sha256 differs from its record (being rewritten,
    or damaged)."""
    from splare_lucene.engines.parts import MANIFEST_GLOB, WORK_DIR, PartRecord, sha256_file

    manifests = sorted(encoded.glob(MANIFEST_GLOB))
    if not manifests:
        raise SystemExit(f"{encoded}: no manifest.shard-*.json (not a `splare-lucene encode` output); "
                         "pass --encoded NAME=DIR")
    loaded = [json.loads(m.read_text(encoding="utf-8")) for m in manifests]
    first = loaded[0]
    for path, manifest in zip(manifests[1:], loaded[1:]):
        if (manifest.get("model_fingerprint"), manifest.get("signature")) != (first.get("model_fingerprint"),
                                                                              first.get("signature")):
            raise SystemExit(f"{path} and {manifests[0]} come from different models or quantizations; "
                             "keep one encode per directory")
    parts = []
    sealed = True
    for manifest in loaded:
        shard_sealed = manifest.get("status") == "complete"
        sealed = sealed and shard_sealed
        if shard_sealed:
            records = [PartRecord.from_dict(p) for p in manifest["parts"]]
        else:
            markers = sorted((encoded / WORK_DIR).glob("*.done.json"))
            by_index = {}
            for r in (PartRecord.from_dict(json.loads(m.read_text())) for m in markers):
                if r.file.startswith(f"shard-{manifest.get('shard_id', 0):05d}-of-{manifest.get('num_shards', 1):05d}"):
                    by_index[r.index] = r
            records = []
            while len(records) in by_index:  # contiguous from part 0: a prefix of the shard
                records.append(by_index[len(records)])
        for rec in records:
            path = encoded / rec.file
            if not path.is_file() or path.stat().st_size != rec.bytes or sha256_file(path) != rec.sha256:
                raise SystemExit(f"{path} does not match its record (size {rec.bytes}, sha256 {rec.sha256[:12]}...): "
                                 "being rewritten or damaged; rerun the `splare-lucene encode` command that wrote it")
            parts.append((rec, path))
    if not parts:
        raise SystemExit(f"{encoded} has no complete part yet (no sealed manifest, no done-marker in {WORK_DIR}/); "
                         "wait for `splare-lucene encode` to finish its first part")
    # The rescaled copies are written as one unsharded encode of these documents.
    manifest = {**first, "num_shards": 1, "shard_id": 0}
    return SourceParts(encoded, manifest, parts, sealed)


def read_documents(source: SourceParts, max_docs: int | None) -> list[tuple[str, str, dict[str, int]]]:
    """(id, contents, {token: impact}) of the first ``max_docs`` documents (all when None)."""
    docs: list[tuple[str, str, dict[str, int]]] = []
    for _, path in source.parts:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                if max_docs is not None and len(docs) >= max_docs:
                    return docs
                obj = json.loads(line)
                docs.append((obj["id"], obj.get("contents", ""), obj["vector"]))
    return docs


# -- rescaling -----------------------------------------------------------------------------------

def rescale(vector: dict[str, int], scale: int, source_scale: int = SOURCE_SCALE) -> dict[str, int]:
    """``{token: i}`` at ``source_scale`` -> ``{token: round_half_up(i * scale / source_scale)}``,
    zeros dropped (as ``quantize`` drops them), in the input's order. Exact integer arithmetic:
    ``floor((2 i s + S) / (2 S))`` is ``floor(i s / S + 1/2)``, with no float rounding at the .5
    boundaries (``50 * 0.05`` is not 2.5 in binary)."""
    out = {}
    for token, i in vector.items():
        j = (2 * i * scale + source_scale) // (2 * source_scale)
        if j > 0:
            out[token] = j
    return out


def write_rescaled(source: SourceParts, docs: list, scale: int, out: Path) -> dict:
    """Write ``docs`` rescaled to ``scale`` into ``out`` as an encode output (parts of the source's
    part size, sealed manifest and summary recording ``quantization_scale = scale``); returns the
    cost figures of the vectors (postings, sum and mean of impacts, entries dropped)."""
    from splare_lucene.engines.parts import EncodingJob, PartsDir, PartSpec, plan_parts

    job = EncodingJob.from_dict(source.manifest)
    signature = {**job.signature, "quantization_scale": float(scale)}
    config = {**job.config, "quantization_scale": float(scale)}
    job = dataclasses.replace(job, signature=signature, config=config,
                              extra={**job.extra, "rescaled_from_scale": SOURCE_SCALE})
    shutil.rmtree(out, ignore_errors=True)
    parts_dir = PartsDir(out, job)
    parts_dir.prepare()
    stats = {"documents": len(docs), "postings": 0, "impact_sum": 0, "dropped": 0, "source_postings": 0,
             "empty": 0}
    for spec in plan_parts(len(docs), job.part_size):
        records = []
        for doc_id, text, vector in docs[spec.start:spec.stop]:
            scaled = rescale(vector, scale)
            stats["postings"] += len(scaled)
            stats["impact_sum"] += sum(scaled.values())
            stats["source_postings"] += len(vector)
            stats["dropped"] += len(vector) - len(scaled)
            stats["empty"] += not scaled
            records.append((doc_id, text, scaled))
        parts_dir.write_part(PartSpec(spec.index, spec.start, spec.stop), records)
    parts_dir.finish(len(docs))
    stats["mean_impact"] = stats["impact_sum"] / stats["postings"] if stats["postings"] else 0.0
    stats["mean_postings_per_doc"] = stats["postings"] / len(docs) if docs else 0.0
    return stats


# -- building and measuring ----------------------------------------------------------------------

def dir_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (recursively)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _RecordingSubprocess(SimpleNamespace):
    """Stands in for the ``subprocess`` module inside :mod:`splare_lucene.index` during one build,
    so that the Anserini process can be timed and its log read without changing the toolkit's
    code path: ``run`` is ``subprocess.run`` plus a stopwatch; everything else is the module's."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[float, str]] = []

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    def run(self, *args, **kwargs):
        t0 = time.perf_counter()
        proc = subprocess.run(*args, **kwargs)
        self.calls.append((time.perf_counter() - t0, (proc.stdout or "") + (proc.stderr or "")))
        return proc


def build_lucene(jsonl_dir: Path, index_dir: Path, threads: int) -> dict:
    """``splare-lucene index --jsonl jsonl_dir --index index_dir`` (Lucene, raw stored), timed."""
    import splare_lucene.index as index_module
    from splare_lucene.backends import build_index

    shutil.rmtree(index_dir, ignore_errors=True)
    recorder = _RecordingSubprocess()
    with mock.patch.object(index_module, "subprocess", recorder):
        t0 = time.perf_counter()
        counters = build_index([jsonl_dir], index_dir, backend="lucene", threads=threads, progress=False,
                               options={"store_raw": True})
        wall = time.perf_counter() - t0
    if len(recorder.calls) != 1:
        raise RuntimeError(f"expected one Anserini process per build; saw {len(recorder.calls)} "
                           "(splare_lucene.index changed? update build_lucene)")
    anserini_s, log = recorder.calls[0]
    reported = _ANSERINI_TOTAL.search(log)
    return {"wall_s": wall, "anserini_s": anserini_s, "checks_s": wall - anserini_s,
            "anserini_reported_s": (int(reported[2]) * 3600 + int(reported[3]) * 60 + int(reported[4]))
            if reported else None,
            "bytes": dir_bytes(index_dir), "counters": counters}


def build_seismic(jsonl_dir: Path, index_dir: Path, threads: int) -> dict:
    """``splare-lucene index --backend seismic --jsonl jsonl_dir`` with Seismic's defaults, timed."""
    from splare_lucene.backends import build_index

    shutil.rmtree(index_dir, ignore_errors=True)
    t0 = time.perf_counter()
    counters = build_index([jsonl_dir], index_dir, backend="seismic", threads=threads, progress=False)
    wall = time.perf_counter() - t0
    files = {p.name: p.stat().st_size for p in index_dir.iterdir() if p.is_file()}
    return {"wall_s": wall, "bytes": dir_bytes(index_dir), "files": files, "counters": counters}


def rotations(items: list, repeats: int) -> Iterator[tuple[int, object]]:
    """(repeat, item) with the items in a rotating order per repeat: repeat r starts at item r."""
    for r in range(repeats):
        for j in range(len(items)):
            yield r, items[(r + j) % len(items)]


def measure_collection(name: str, encoded: Path, args) -> dict:
    source = complete_parts(encoded)
    docs = read_documents(source, args.max_docs)
    if source.manifest.get("signature", {}).get("quantization_scale") != SOURCE_SCALE:
        raise SystemExit(f"{encoded} was encoded at quantization scale "
                         f"{source.manifest.get('signature', {}).get('quantization_scale')}; this benchmark "
                         f"rescales scale-{SOURCE_SCALE} impacts (the default model's)")
    work = WORK / "index-scale" / name
    logger.info("%s: %d documents from %d complete parts of %s%s", name, len(docs), len(source.parts), encoded,
                "" if source.sealed else " (an unfinished encode: its complete parts, a prefix of each shard)")
    vectors: dict[int, dict] = {}
    for s in args.scales:
        vectors[s] = write_rescaled(source, docs, s, work / f"jsonl-s{s}")
    # The fixed cost of a build (JVM start, Lucene set-up, commit), whatever the corpus: the same
    # call on the first FIXED_DOCS documents, in the rotation with the scales. Subtracted, it gives
    # the marginal rate, which is what a large corpus sees.
    fixed_docs = min(FIXED_DOCS, len(docs))
    write_rescaled(source, docs[:fixed_docs], SOURCE_SCALE, work / "jsonl-fixed")
    names = {s: f"s{s}" for s in args.scales} | {FIXED: "fixed"}
    runs: dict = {key: [] for key in names}
    for r, key in rotations(list(names), args.repeats):
        index_dir = work / f"lucene-{names[key]}"
        run = build_lucene(work / f"jsonl-{names[key]}", index_dir, args.threads)
        logger.info("%s %s repeat %d: %.2f s (Anserini %.2f s), %.2f MB", name, names[key], r, run["wall_s"],
                    run["anserini_s"], run["bytes"] / 1e6)
        runs[key].append(run)
        if not args.keep:
            shutil.rmtree(index_dir, ignore_errors=True)
    fixed_s = statistics.median(x["wall_s"] for x in runs[FIXED])
    rows = []
    for s in args.scales:
        wall = statistics.median(x["wall_s"] for x in runs[s])
        anserini = statistics.median(x["anserini_s"] for x in runs[s])
        marginal = (len(docs) - fixed_docs) / (wall - fixed_s) if wall > fixed_s and len(docs) > fixed_docs else None
        rows.append({"scale": s, **vectors[s], "wall_s": wall, "anserini_s": anserini,
                     "docs_per_s": len(docs) / wall, "anserini_docs_per_s": len(docs) / anserini,
                     "marginal_docs_per_s": marginal,
                     "index_bytes": runs[s][-1]["bytes"], "counters": runs[s][-1]["counters"],
                     "runs": [{k: v for k, v in x.items() if k != "counters"} for x in runs[s]]})
    entry = {"encoded": str(encoded), "sealed": source.sealed, "documents": len(docs),
             "parts_read": len(source.parts), "fixed_cost": {"documents": fixed_docs, "wall_s": fixed_s,
                                                             "runs": [x["wall_s"] for x in runs[FIXED]]},
             "rows": rows}
    if args.seismic:
        default = SOURCE_SCALE if SOURCE_SCALE in args.scales else args.scales[-1]
        seismic = build_seismic(work / f"jsonl-s{default}", work / f"seismic-s{default}", args.threads)
        seismic.update(scale=default, docs_per_s=len(docs) / seismic["wall_s"])
        logger.info("%s Seismic scale %d: %.2f s, %.2f MB", name, default, seismic["wall_s"], seismic["bytes"] / 1e6)
        entry["seismic"] = seismic
        if not args.keep:
            shutil.rmtree(work / f"seismic-s{default}", ignore_errors=True)
    return entry


# -- report --------------------------------------------------------------------------------------

def fidelity_by_scale() -> dict[float, dict]:
    """scale -> the cranfield fidelity row (top-10 overlap, int nDCG@10), {} when absent."""
    if not FIDELITY.is_file():
        return {}
    return {float(row["scale"]): row for row in json.loads(FIDELITY.read_text())["scales"]}


RECOMMEND_OVERLAP = 0.97  # the 0.95 agreement target plus a margin: one collection's
# overlap at a scale moves with the collection, and scale 10 sits at 0.952 on cranfield


def recommend(entry: dict, fidelity: dict[float, dict], target: float = RECOMMEND_OVERLAP) -> str:
    """The smallest scale whose cranfield top-10 overlap reaches ``target``, with its costs
    relative to scale 100's (measured)."""
    rows = {r["scale"]: r for r in entry["rows"]}
    ok = sorted(s for s in rows if fidelity.get(float(s), {}).get("top10_overlap", 0) >= target)
    if not ok or SOURCE_SCALE not in rows:
        return "no recommendation: the fidelity figures or the scale-100 row are missing"
    s, ref = ok[0], rows[SOURCE_SCALE]
    speed = (f"{rows[s]['marginal_docs_per_s'] / ref['marginal_docs_per_s']:.2f}x as fast at the margin"
             if rows[s]["marginal_docs_per_s"] and ref["marginal_docs_per_s"] else "(no marginal rate)")
    return (f"scale {s}: the smallest tested that keeps >= {target:.0%} of the float top-10 on cranfield "
            f"({fidelity[float(s)]['top10_overlap']:.3f}); here its index is "
            f"{rows[s]['index_bytes'] / ref['index_bytes']:.2f}x the size of scale 100's and it builds {speed} "
            f"({rows[s]['docs_per_s'] / ref['docs_per_s']:.2f}x whole calls, fixed cost included)")


def render(results: dict) -> str:
    fidelity = fidelity_by_scale()
    lines = ["# Indexing cost against the quantization scale", "",
             f"Command: `{results['command']}`  ", f"Machine: {results['machine']}; {results['when']}", "",
             "Each scale's impacts are the scale-100 integers of `encode` rescaled, "
             "`round_half_up(i * s / 100)`, zeros dropped (not re-quantized floats: at most 1 off per "
             "impact where two roundings meet, so postings and impact sums, hence the costs, differ by "
             "that rounding only). Indexed as `splare-lucene index --jsonl` does (one thread, raw stored); "
             "docs/s: the whole call (id and vector checks + Anserini in its JVM, start included), "
             "Anserini: its process alone. Top-10 overlap and nDCG@10: cranfield, float weights "
             "quantized at each scale (`quantization_fidelity.py`, docs/quantization.md).", ""]
    for name, entry in results["collections"].items():
        lines += [f"## {name}: {entry['documents']:,} documents"
                  + ("" if entry["sealed"] else " (the complete parts of an unfinished encode)"), "",
                  "| scale | top-10 overlap | int nDCG@10 | docs/s | marginal docs/s | Anserini docs/s | index MB "
                  "| postings | mean impact | entries dropped |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in entry["rows"]:
            fid = fidelity.get(float(row["scale"]), {})
            overlap = f"{fid['top10_overlap']:.4f}" if fid else "-"
            ndcg = f"{fid['int_ndcg10']:.4f}" if fid else "-"
            marginal = f"{row['marginal_docs_per_s']:.0f}" if row["marginal_docs_per_s"] else "-"
            lines.append(f"| {row['scale']} | {overlap} | {ndcg} | {row['docs_per_s']:.0f} | {marginal} | "
                         f"{row['anserini_docs_per_s']:.0f} | {row['index_bytes'] / 1e6:.2f} | {row['postings']:,} | "
                         f"{row['mean_impact']:.1f} | {row['dropped'] / max(1, row['source_postings']):.2%} |")
        fixed = entry["fixed_cost"]
        lines += ["", f"Fixed cost of a build (the same call on {fixed['documents']} documents): "
                      f"{fixed['wall_s']:.1f} s; marginal docs/s = (documents - {fixed['documents']}) / "
                      "(build time - fixed cost), the rate a large corpus sees."]
        if "seismic" in entry:
            sz = entry["seismic"]
            lines += ["", f"Seismic (default build options, one thread) at scale {sz['scale']}: "
                          f"{sz['docs_per_s']:.0f} docs/s, {sz['bytes'] / 1e6:.2f} MB "
                          f"(of which its index file {sz['files'].get('seismic.index.seismic', 0) / 1e6:.2f} MB, "
                          f"stored text {sz['files'].get('documents.jsonl.gz', 0) / 1e6:.2f} MB)."]
        lines += ["", "Recommendation from these figures: " + recommend(entry, fidelity) + ".", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collections", nargs="+", default=["cranfield", "squad-train"])
    parser.add_argument("--encoded", nargs="*", default=[], metavar="NAME=DIR",
                        help="encode output per collection (default benchmarks/results/perf-work/<name>-default)")
    parser.add_argument("--scales", default=",".join(map(str, DEFAULT_SCALES)),
                        help="comma-separated integer scales (default 5,10,20,50,100)")
    parser.add_argument("--max-docs", type=int, default=None, help="documents per collection (a prefix)")
    parser.add_argument("--repeats", type=int, default=3, help="builds per scale (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="indexing threads (default 1)")
    parser.add_argument("--no-seismic", dest="seismic", action="store_false", help="skip the Seismic build")
    parser.add_argument("--keep", action="store_true", help="keep the indexes (perf-work/index-scale/)")
    parser.add_argument("--quick", action="store_true", help="cranfield, 300 documents, 1 repeat")
    parser.add_argument("--out", default=str(RESULTS / "index_scale"), help="results stem (.json, .md)")
    args = parser.parse_args(argv)
    try:
        args.scales = [int(s) for s in args.scales.split(",")]
    except ValueError:
        parser.error(f"--scales takes comma-separated integers; got {args.scales!r}")
    if any(s < 1 for s in args.scales) or args.repeats < 1 or args.threads < 1 \
            or (args.max_docs is not None and args.max_docs < 1):
        parser.error("--scales, --repeats, --threads and --max-docs must be >= 1")
    if args.quick:
        args.collections, args.repeats = ["cranfield"], 1
        args.max_docs = args.max_docs or 300
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    encoded_dirs = dict(item.split("=", 1) for item in args.encoded)
    results: dict = {"command": shlex.join([Path(sys.executable).name, *sys.argv]),
                     "python": platform.python_version(),
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
                     "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "source_scale": SOURCE_SCALE, "scales": args.scales, "repeats": args.repeats,
                     "threads": args.threads, "collections": {}}
    for name in args.collections:
        encoded = Path(encoded_dirs.get(name, WORK / f"{name}-default"))
        results["collections"][name] = measure_collection(name, encoded, args)
    fidelity = fidelity_by_scale()
    for entry in results["collections"].values():
        entry["recommendation"] = recommend(entry, fidelity)
    write_results(args.out, results, render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
