"""Cost of the id and vector check that `index --jsonl` runs before Anserini (engines/ids.py).

Writes N tiny documents (``--latents`` non-zeros each, default 8; no text) as gzip JsonVectorCollection parts, the way
`encode` writes them, then times :func:`splare_lucene.engines.ids.scan_ids` over them; with
``--trace-memory`` also the peak traced memory (numpy's hash array included: tracemalloc sees
numpy allocations; tracing slows the scan, so the time is then not representative).

    .venv/bin/python benchmarks/id_scan.py --documents 1000000 --dir /tmp/id-scan
    .venv/bin/python benchmarks/id_scan.py --documents 1000000 --dir /tmp/id-scan --ids-only  # for comparison
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import time
import tracemalloc
from pathlib import Path


def write_parts(directory: Path, documents: int, per_part: int, latents: int = 8) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    files = []
    for part, start in enumerate(range(0, documents, per_part)):
        path = directory / f"part-{part:05d}.jsonl.gz"
        if not path.exists():
            lines = [json.dumps({"id": f"doc{i}", "contents": "",
                                 "vector": {f"f{rng.randrange(8192)}": rng.randrange(1, 200) for _ in range(latents)}},
                                ensure_ascii=False) + "\n"
                     for i in range(start, min(documents, start + per_part))]
            path.write_bytes(gzip.compress("".join(lines).encode(), compresslevel=1, mtime=0))
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--per-part", type=int, default=100_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/id-scan"))
    parser.add_argument("--latents", type=int, default=8, help="non-zeros per document (8: the first runs)")
    parser.add_argument("--trace-memory", action="store_true")
    parser.add_argument("--width", type=int, default=8192,
                        help="check tokens as pseudo-tokens f0..f{width-1} (as for an encode output with a "
                             "summary); 0: only the checks that need no model (a foreign folder)")
    parser.add_argument("--ids-only", action="store_true",
                        help="accept any vector on the fast path (the scan as it was before vectors were "
                             "checked, up to the UTF-8 check of the whole line), for comparison")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import re

    from splare_lucene.engines import ids
    from splare_lucene.engines.ids import scan_ids
    from splare_lucene.jsonl import VectorRules

    rules = VectorRules("f", args.width, "benchmark") if args.width else VectorRules()
    if args.ids_only:
        ids._vector_pattern = lambda rules: re.compile(rb"(?s).*")

    files = write_parts(args.dir, args.documents, args.per_part, args.latents)
    size = sum(f.stat().st_size for f in files)
    if args.trace_memory:
        tracemalloc.start()
    start = time.perf_counter()
    result = scan_ids(files, expected=args.documents, progress=False, rules=rules)
    seconds = time.perf_counter() - start
    memory = f", peak traced memory {tracemalloc.get_traced_memory()[1] / 1e6:.1f} MB" if args.trace_memory else ""
    print(f"{result.documents} documents, {len(files)} files, {size / 1e6:.1f} MB gzip: {seconds:.1f} s "
          f"({result.documents / seconds / 1e3:.0f}k ids/s){memory}")


if __name__ == "__main__":
    main()
