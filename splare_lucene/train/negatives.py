"""Hard negatives mined with BM25 (Pyserini/Anserini) from the training corpus."""

from __future__ import annotations

from pathlib import Path


def mine_bm25_negatives(folder: Path, queries: dict[str, str], *, depth: int = 50, threads: int = 1,
                        cache_dir: Path | None = None) -> dict[str, list[str]]:
    """{qid: text} -> {qid: top-``depth`` BM25 doc ids} over ``folder``'s corpus."""
    from ..bm25 import bm25_index, bm25_search

    index = bm25_index(str(folder), threads=threads, cache_dir=cache_dir)
    return {q: [d for d, _ in hits] for q, hits in bm25_search(index, queries, k=depth, threads=threads).items()}
