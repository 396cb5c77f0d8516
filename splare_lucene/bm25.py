"""BM25 with Anserini: a plain-text Lucene index of a corpus and batch search over it.

Used for hard-negative mining (training) and as the baseline in evaluations. Indexes are cached
per corpus file (path, size, mtime) and analyzer language under ``cache_dir()/bm25``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import SplareError

logger = logging.getLogger(__name__)


def _corpus_key(source: str, language: str, corpus_key: str | None = None) -> str:
    if corpus_key is None and source.startswith("irds:"):
        corpus_key = source  # an ir_datasets id names fixed data
    if corpus_key is not None:
        return hashlib.sha256(f"{corpus_key}|{language}".encode()).hexdigest()[:16]
    path = Path(source)
    parts = [str(path.resolve()), language]
    for f in ([path / "corpus.jsonl"] if path.is_dir() else [path]):
        if f.exists():
            st = f.stat()
            parts += [str(st.st_size), str(int(st.st_mtime))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def bm25_index(source: str, *, language: str = "en", threads: int = 1, cache_dir: Path | None = None,
               corpus_key: str | None = None) -> Path:
    """Build (or reuse) a BM25 index of the documents of ``source``; returns its directory.

    ``source``: anything :func:`splare_lucene.corpus.read_documents` reads, ``irds:<id>`` included.
    ``corpus_key`` identifies the documents (default: the file's path, size and mtime, or the
    ir_datasets id); the index is reused only for the same key and language.
    """
    from .backbone import cache_dir as default_cache
    from .corpus import read_documents
    from .java import java_command

    root = Path(cache_dir) if cache_dir else default_cache() / "bm25"
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", source[len("irds:"):]) if source.startswith("irds:") else Path(source).name
    index = root / f"{name}-{language}-{_corpus_key(source, language, corpus_key)}"
    if (index / "done").is_file():
        return index
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bm25-", dir=root))
    try:
        (work / "docs").mkdir()
        with gzip.open(work / "docs" / "docs.jsonl.gz", "wt", encoding="utf-8") as f:
            for doc in read_documents(source, allow_empty=True):
                f.write(json.dumps({"id": doc.id, "contents": doc.text}, ensure_ascii=False) + "\n")
        args = ["-collection", "JsonCollection", "-input", str(work / "docs"), "-index", str(work / "index"),
                "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads), "-language", language]
        proc = subprocess.run(java_command("io.anserini.index.IndexCollection", args), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SplareError(f"BM25 indexing of {source} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        (work / "index" / "done").write_text("ok\n")
        if index.exists():
            shutil.rmtree(index)
        os.replace(work / "index", index)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return index


def bm25_search(index: Path, queries: dict[str, str], *, k: int = 1000, threads: int = 1,
                language: str = "en") -> dict[str, list[tuple[str, float]]]:
    """{qid: text} -> {qid: [(docid, score), ...]} with Anserini's default BM25 (k1=0.9, b=0.4)."""
    from .java import start_jvm

    start_jvm()
    from pyserini.search.lucene import LuceneSearcher

    searcher = LuceneSearcher(str(index))
    if language != "en":
        searcher.set_language(language)
    qids = list(queries)
    out: dict[str, list[tuple[str, float]]] = {}
    step = max(1, min(1000, 50_000 // max(1, k)))  # bounded hit lists per Java call (see search.py)
    for s in range(0, len(qids), step):
        chunk = qids[s:s + step]
        hits = searcher.batch_search([queries[q] for q in chunk], chunk, k=k, threads=threads)
        for q in chunk:
            out[q] = [(h.docid, float(h.score)) for h in hits.get(q, [])]
    searcher.close()
    return out
