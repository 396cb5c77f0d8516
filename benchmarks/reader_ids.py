"""What the readers' duplicate-id check costs: memory held per record and time per record.

``read_documents``/``read_queries`` refuse a repeated id (splare_lucene/corpus.py), so they must
remember every id read so far. They keep 8-byte hashes (splare_lucene/idset.py); before issue 9's
fix they kept a dict ``{id: line}``. On one source (default: squad-train's 87,599 questions,
read in place) this prints:

- bytes held per record while the reader is open, traced by ``tracemalloc`` after all but the
  last record have been read (the hashes and whatever else the reader keeps);
- bytes the old bookkeeping takes for the same ids: a dict ``{id: line number}`` built alone,
  traced the same way;
- microseconds per record to read the whole source (best of ``--repeats``), and the time of the
  same records as ``_records`` yields them (parsed, ids validated) without the reader's
  bookkeeping (the duplicate check, the empty-text check, the Document/Query objects).

Usage (the figures in docs/scale.md):

    python benchmarks/reader_ids.py --out benchmarks/results/reader_ids
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results  # noqa: E402
DATA = Path(os.environ.get("SPLARE_SHARED_DATA", REPO.parent / "shared" / "data"))


def held_bytes_while_reading(source: str, kind: str, n: int) -> int:
    """Traced bytes the open reader holds after n - 1 of its n records (imports and the first
    record's buffers before the baseline)."""
    from splare_lucene.corpus import read_documents, read_queries

    stream = (read_documents if kind == "documents" else read_queries)(source)
    next(stream)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(n - 2):
            next(stream)
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
        stream.close()


def dict_bytes(ids_and_lines: list[tuple[str, int | None]]) -> int:
    """Traced bytes of the old bookkeeping for these ids: ``{id: line}`` with fresh id strings
    (as a reader creates them, not shared with the list)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        seen = {}
        for rid, line in ids_and_lines:
            seen["".join(rid)] = line
        return tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=str(DATA / "squad-train" / "queries.jsonl"))
    p.add_argument("--kind", choices=["documents", "queries"], default="queries")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="write OUT.json and OUT.md")
    args = p.parse_args(argv)
    if not Path(args.source).exists():
        sys.exit(f"{args.source} not found: set SPLARE_SHARED_DATA or pass --source")

    from splare_lucene.corpus import _records, read_documents, read_queries

    read = read_documents if args.kind == "documents" else read_queries
    ids_and_lines = [(rid, line) for rid, _, _, line in _records(args.source, args.kind)]
    n = len(ids_and_lines)
    timings = {"reader": [], "records_only": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        count = sum(1 for _ in read(args.source))
        timings["reader"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sum(1 for _ in _records(args.source, args.kind))
        timings["records_only"].append(time.perf_counter() - t0)
    assert count == n
    result = {
        "command": "python benchmarks/reader_ids.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"), "load_average": os.getloadavg()[0],
        "source": args.source, "records": n,
        "held_bytes_per_record": round(held_bytes_while_reading(args.source, args.kind, n) / n, 1),
        "dict_bytes_per_record": round(dict_bytes(ids_and_lines) / n, 1),
        "us_per_record_reader": round(1e6 * min(timings["reader"]) / n, 2),
        "us_per_record_without_check": round(1e6 * min(timings["records_only"]) / n, 2),
    }
    md = "\n".join([
        "# The readers' duplicate-id check", "", f"Command: `{result['command']}`", "",
        f"Machine: {result['machine']}; {result['date']}; load average {result['load_average']:.1f}.", "",
        f"Source: `{args.source}` ({n:,} records, {args.kind}).", "",
        "| measure | value |", "|---|---:|",
        f"| bytes held per record by the open reader (8-byte hashes) | {result['held_bytes_per_record']} |",
        f"| bytes per record of a dict {{id: line}} of the same ids (the bookkeeping before) | "
        f"{result['dict_bytes_per_record']} |",
        f"| us per record, reader (parse, validate, duplicate check), best of {args.repeats} | "
        f"{result['us_per_record_reader']} |",
        f"| us per record, the same records parsed and their ids validated, without the reader's bookkeeping "
        f"(duplicate check, empty-text check, record objects) | {result['us_per_record_without_check']} |",
        ""])
    if args.out:
        write_results(args.out, result, md)
    else:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
