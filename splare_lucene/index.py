"""Lucene impact indexing with Anserini's IndexCollection, run in its own JVM.

``IndexCollection -collection JsonVectorCollection -impact -pretokenized`` stores each
pseudo-token with its integer impact as the term frequency. The index is built in a temporary
directory and renamed into place on success; ``splare_index.json`` inside it records the model
and quantization, and is checked at search time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import ConfigError, IndexMismatchError, SplareError

logger = logging.getLogger(__name__)

INDEX_META = "splare_index.json"
_COUNTER = re.compile(r"(indexed|empty|skipped|errors|unindexable):\s+([\d,]+)")


class IndexingError(SplareError, RuntimeError):
    """Anserini's IndexCollection failed."""


def build_index(jsonl_dir: str | os.PathLike, index_dir: str | os.PathLike, *, threads: int = 1,
                meta: dict | None = None, store_raw: bool = True, overwrite: bool = False) -> dict:
    """Index the JsonVectorCollection shards in ``jsonl_dir``; returns Anserini's counters."""
    from .java import java_command

    jsonl_dir, index_dir = Path(jsonl_dir), Path(index_dir)
    if not jsonl_dir.is_dir():
        raise ConfigError(f"--jsonl {jsonl_dir} is not a directory of .jsonl(.gz) shards")
    if index_dir.exists() and not overwrite:
        raise ConfigError(f"index directory {index_dir} already exists; pass --overwrite to replace it")
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=index_dir.name + ".", dir=index_dir.parent))
    args = ["-collection", "JsonVectorCollection", "-input", str(jsonl_dir), "-index", str(tmp),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads),
            "-impact", "-pretokenized"]
    if store_raw:
        args.append("-storeRaw")
    cmd = java_command("io.anserini.index.IndexCollection", args)
    logger.info("indexing %s with Anserini (%d threads)", jsonl_dir, threads)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0 or "Exception" in output and "indexed:" not in output:
            raise IndexingError(f"Anserini IndexCollection failed (exit {proc.returncode}):\n"
                                + output[-4000:])
        counters = {k: int(v.replace(",", "")) for k, v in _COUNTER.findall(output)}
        record = {"counters": counters, "threads": threads, **(meta or {})}
        (tmp / INDEX_META).write_text(json.dumps(record, indent=2) + "\n")
        if index_dir.exists():
            shutil.rmtree(index_dir)
        os.replace(tmp, index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if counters.get("empty"):
        logger.warning("Anserini skipped %d empty documents", counters["empty"])
    return counters


def read_index_meta(index_dir: str | os.PathLike) -> dict | None:
    path = Path(index_dir) / INDEX_META
    return json.loads(path.read_text()) if path.is_file() else None


def check_index_matches(index_dir: str | os.PathLike, signature: dict, fingerprint: str | None) -> None:
    """Refuse a query encoder whose vocabulary or quantization differs from the index's."""
    meta = read_index_meta(index_dir)
    if meta is None:
        logger.warning("%s has no %s (not built by splare-lucene); cannot check that the model's "
                       "quantization matches", index_dir, INDEX_META)
        return
    built = meta.get("signature", {})
    diffs = {k: (built.get(k), v) for k, v in signature.items() if built.get(k) != v}
    if diffs:
        detail = ", ".join(f"{k}: index {a!r} vs model {b!r}" for k, (a, b) in diffs.items())
        raise IndexMismatchError(f"the model does not match index {index_dir} ({detail}); search "
                                 "with the model that built the index, or re-index with this one")
    if fingerprint and meta.get("model_fingerprint") and meta["model_fingerprint"] != fingerprint:
        logger.warning("index %s was built by model %s (fingerprint %s); searching with %s",
                       index_dir, meta.get("model"), meta["model_fingerprint"], fingerprint)
