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
from .outputs import temp_dir_beside

logger = logging.getLogger(__name__)

INDEX_META = "splare_index.json"
# log4j lines of Anserini at level ERROR: "2026-11-29 11:40:04,529 ERROR [thread] ..."
_ERROR_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,.]+ ERROR ")
_COUNTER = re.compile(r"(indexed|empty|skipped|errors|unindexable):\s+([\d,]+)")


class IndexingError(SplareError, RuntimeError):
    """Anserini's IndexCollection failed."""


def build_index(jsonl_dirs: str | os.PathLike | Sequence[str | os.PathLike], index_dir: str | os.PathLike, *,
                threads: int = 1, meta: dict | None = None, store_raw: bool = True,
                overwrite: bool = False, progress: bool = True) -> dict:
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

    Before Anserini starts, every document id of every file is read
    (:func:`splare_lucene.engines.ids.scan_ids`, a tqdm bar when ``progress`` on large inputs):
    an id that appears twice (overlapping ``--jsonl`` folders, or within one file), an id that
    :func:`~splare_lucene.textio.check_id` refuses, and a vector whose weights are not integers
    >= 1 or whose tokens the encoding model cannot produce (:class:`~splare_lucene.jsonl.VectorRules`
    from the folders' summary) are refused with an InputError naming the file and line. After
    Anserini, :func:`check_anserini_output` refuses any loss (IndexingError quoting Anserini).
    """
    from .java import java_command
    from .outputs import install_dir

    index_dir = Path(index_dir)
    dirs, outputs, scan, meta = prepare_index_inputs(jsonl_dirs, index_dir, meta=meta, overwrite=overwrite,
                                                     progress=progress)
    tmp = temp_dir_beside(index_dir)
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
        counters = check_anserini_output(output, proc.returncode, scan.documents)
        record = {"counters": counters, "threads": threads, **(meta or {})}
        (tmp / INDEX_META).write_text(json.dumps(record, indent=2) + "\n")
        install_dir(tmp, index_dir, ["index"], what="--index")  # checked again: it may have changed
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if counters.get("empty"):
        logger.warning("Anserini skipped %d empty documents", counters["empty"])
    return counters


def prepare_index_inputs(jsonl_dirs, index_dir: Path, *, meta: dict | None = None, overwrite: bool = False,
                         progress: bool = True):
    """What every backend checks before it indexes encoded parts into ``index_dir``; returns
    ``(dirs, outputs, scan, meta)``: the directories as a list, their
    :class:`~splare_lucene.engines.parts.EncodedOutput`, the id scan's result, and ``meta``
    (default: the merged encoding summary, :func:`~splare_lucene.jsonl.index_meta`).

    Before any work: the directories exist; ``index_dir`` is new (or ``overwrite``), never one of
    the inputs nor a directory the toolkit did not write. Then every id and vector is checked
    (issue 10): Anserini would index a repeated id twice, cast a float weight to int, drop weights
    below 1 and abandon a file at a bad id. Raises ConfigError / InputError naming the fix."""
    from .engines.ids import scan_ids
    from .engines.parts import read_outputs
    from .jsonl import VectorRules, index_meta
    from .outputs import check_not_input, check_output_dir, check_replaceable

    dirs = [jsonl_dirs] if isinstance(jsonl_dirs, (str, os.PathLike)) else list(jsonl_dirs)
    for d in dirs:
        if not Path(d).is_dir():
            raise ConfigError(f"--jsonl {d} is not a directory of encoded parts (from `splare-lucene encode`)")
    if index_dir.exists() and not overwrite:
        raise ConfigError(f"index directory {index_dir} already exists; pass --overwrite to replace it")
    check_not_input(index_dir, {"--jsonl": dirs}, what="--index")
    check_output_dir(index_dir, what="--index")
    check_replaceable(index_dir, ["index"], what="--index")
    outputs = read_outputs(dirs, progress=progress)
    scan = scan_ids(outputs.files, expected=outputs.summary.get("documents"), progress=progress,
                    rules=VectorRules.from_summary(outputs.summary))
    if meta is None:
        meta = index_meta(outputs.summary)
        if not meta.get("signature"):
            logger.warning("%s has no summary.json of `splare-lucene encode` (JSONL from another tool?): "
                           "the index will not record the model and quantization, so `search` cannot "
                           "check them", ", ".join(map(str, dirs)))
    return dirs, outputs, scan, meta


def check_anserini_output(output: str, returncode: int, documents: int) -> dict[str, int]:
    """Anserini IndexCollection's counters, or IndexingError when it lost anything.

    IndexCollection exits 0 even when it abandons a whole file (an id over Lucene's term limit, a
    line its JSON reader refuses: the rest of that file is skipped, only an ERROR line says so),
    so its exit status is not enough. Refused: a non-zero exit; any log line at level ERROR;
    missing counters; and ``indexed + empty + skipped != documents`` (``documents``: the lines
    given, counted by the id scan). The error quotes Anserini's own lines. A non-zero ``skipped``
    or ``unindexable`` count is reported too (these documents are not in the index).
    """
    counters = {k: int(v.replace(",", "")) for k, v in _COUNTER.findall(output)}
    errors = [line.strip()[:400] for line in output.splitlines() if _ERROR_LINE.match(line)]
    lost = documents - sum(counters.get(k, 0) for k in ("indexed", "empty", "skipped"))
    if returncode == 0 and not errors and "indexed" in counters and lost == 0 \
            and not counters.get("errors") and not counters.get("unindexable"):
        if counters.get("skipped"):
            logger.warning("Anserini skipped %d documents; they are not in the index", counters["skipped"])
        return counters
    counted = ", ".join(f"{k} {v}" for k, v in counters.items()) or "no counters printed"
    quoted = "\n".join(errors[:5]) if errors else output.strip()[-3000:]
    raise IndexingError(
        f"Anserini IndexCollection (exit {returncode}) did not index every document: given {documents}, "
        f"Anserini counted {counted}. Anserini abandons the rest of a file at the first document it cannot "
        f"index, so the index would silently lack documents; nothing was written. Its messages:\n{quoted}")


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
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def check_index_matches(index_dir: str | os.PathLike, signature: dict, fingerprint: str | None,
                        document_fingerprint: str | None = None) -> None:
    """Refuse a query encoder whose vocabulary or quantization differs from the index's.

    ``signature``: the model's :meth:`~splare_lucene.config.SplareConfig.index_signature`. Only
    real differences are refused (IndexMismatchError): a key recorded by the index with another
    value. What cannot be checked gets a warning and the search goes on, as docs/anserini.md says
    for an index built elsewhere: no ``splare_index.json`` at all, one without a ``signature``
    (indexed with ``index --jsonl`` from JSONL that has no ``summary.json``, e.g. written by
    another tool), or one without some of the keys (recorded by an older version).

    ``fingerprint`` / ``document_fingerprint``: the query encoder's
    (:func:`splare_lucene.encoder.model_fingerprints`). Another model than the index's gets a
    warning, unless both record the same document fingerprint: a copy of the indexing model that
    differs only on the query side (query top-k, idf weighting) fits the index (logged at INFO).
    """
    meta = read_index_meta(index_dir)
    if meta is None:
        logger.warning("%s has no %s (not built by splare-lucene): cannot check that the model's "
                       "vocabulary and quantization match the index; searching anyway", index_dir, INDEX_META)
        return
    built = meta.get("signature")
    if not isinstance(built, dict) or not built:
        logger.warning("index %s does not record the model that encoded its documents (built from "
                       "JSONL without splare-lucene's summary.json, e.g. written by another tool): "
                       "cannot check that this model's vocabulary and quantization (%s) match it; "
                       "searching anyway", index_dir,
                       ", ".join(f"{k}={v!r}" for k, v in sorted(signature.items())))
        return
    unknown = sorted(k for k in signature if k not in built)
    if unknown:
        logger.warning("index %s does not record %s (built by an older version?): not checked",
                       index_dir, ", ".join(unknown))
    diffs = {k: (built[k], v) for k, v in signature.items() if k in built and built[k] != v}
    if diffs:
        detail = ", ".join(f"{k}: index {a!r} vs model {b!r}" for k, (a, b) in diffs.items())
        raise IndexMismatchError(f"the model does not match index {index_dir} ({detail}); search "
                                 "with the model that built the index, or re-index with this one")
    if fingerprint and meta.get("model_fingerprint") and meta["model_fingerprint"] != fingerprint:
        if document_fingerprint and meta.get("document_fingerprint") == document_fingerprint:
            logger.info("index %s was built by model %s (fingerprint %s); searching with %s, which "
                        "differs from it only in its query-side settings", index_dir, meta.get("model"),
                        meta["model_fingerprint"], fingerprint)
            return
        both_recorded = meta.get("document_fingerprint") is not None and document_fingerprint is not None
        how = ("which would encode the documents differently" if both_recorded else
               "which may encode the documents differently (the index does not record the document side)")
        logger.warning("index %s was built by model %s (fingerprint %s); searching with %s, %s: other "
                       "weights, or other document-side settings (document top-k or length, text "
                       "normalisation, quantization scale), so the scores may mix two encodings. Search "
                       "with the model that built the index, or re-index with this one", index_dir,
                       meta.get("model"), meta["model_fingerprint"], fingerprint, how)
