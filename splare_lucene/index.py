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
from typing import Sequence

from .errors import ConfigError, IndexMismatchError, SplareError

logger = logging.getLogger(__name__)

INDEX_META = "splare_index.json"
_COUNTER = re.compile(r"(indexed|empty|skipped|errors|unindexable):\s+([\d,]+)")


class IndexingError(SplareError, RuntimeError):
    """Anserini's IndexCollection failed."""


def build_index(jsonl_dirs: str | os.PathLike | Sequence[str | os.PathLike], index_dir: str | os.PathLike, *,
                threads: int = 1, meta: dict | None = None, store_raw: bool = True,
                overwrite: bool = False) -> dict:
    """Index encoded parts into ``index_dir``; returns Anserini's counters.

    ``jsonl_dirs``: one directory or several (the shard outputs of ``encode --num-shards N``),
    checked by :func:`splare_lucene.engines.parts.read_outputs`: complete, same model,
    quantization and corpus, no shard missing, part files matching their checksums (ConfigError
    otherwise, naming the fix). A directory without manifests (an older ``encode`` output, or
    JsonVectorCollection files from elsewhere) is indexed as it is. ``meta`` (default: the merged
    encoding summary of the directories, :func:`~splare_lucene.jsonl.index_meta`) is written to
    ``splare_index.json`` in the index.

    Anserini reads every file under its ``-input`` (recursively, manifests included), so it gets
    a staging directory of links to exactly the listed part files, removed afterwards.
    """
    from .engines.parts import read_outputs
    from .java import java_command
    from .jsonl import index_meta

    dirs = [jsonl_dirs] if isinstance(jsonl_dirs, (str, os.PathLike)) else list(jsonl_dirs)
    index_dir = Path(index_dir)
    for d in dirs:
        if not Path(d).is_dir():
            raise ConfigError(f"--jsonl {d} is not a directory of encoded parts (from `splare-lucene encode`)")
    if index_dir.exists() and not overwrite:
        raise ConfigError(f"index directory {index_dir} already exists; pass --overwrite to replace it")
    outputs = read_outputs(dirs)
    if meta is None:
        meta = index_meta(outputs.summary)
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=index_dir.name + ".", dir=index_dir.parent))
    staging = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}.input-", dir=index_dir.parent))
    try:
        _stage(outputs.files, staging)
        args = ["-collection", "JsonVectorCollection", "-input", str(staging), "-index", str(tmp),
                "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads),
                "-impact", "-pretokenized"]
        if store_raw:
            args.append("-storeRaw")
        cmd = java_command("io.anserini.index.IndexCollection", args)
        logger.info("indexing %d files of %s with Anserini (%d threads)", len(outputs.files),
                    ", ".join(map(str, dirs)), threads)
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
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if counters.get("empty"):
        logger.warning("Anserini skipped %d empty documents", counters["empty"])
    return counters


def _stage(files: Sequence[Path], staging: Path) -> None:
    """Hard links (no copy) to ``files`` in ``staging``, named ``<n>-<name>`` so that parts of
    several directories never collide; symbolic links where hard links fail (another filesystem),
    which Anserini follows when it opens a file."""
    for n, path in enumerate(files):
        link = staging / f"{n:06d}-{path.name}"
        try:
            os.link(path, link)
        except OSError:
            link.symlink_to(path.resolve())


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
