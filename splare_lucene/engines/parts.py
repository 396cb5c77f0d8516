"""The on-disk scheme every encoding engine writes: parts, done-markers and per-shard manifests.

An encoding *job* is one shard (``shard_id`` of ``num_shards``) of one corpus, encoded by one
model with fixed settings into one output directory. The shard holds the documents whose
position ``p`` in the validated corpus stream (:func:`splare_lucene.corpus.read_documents`, after
``allow_empty`` skipping) has ``p % num_shards == shard_id``: any reader of the same corpus
agrees, and no reader needs the corpus size. The shard's documents, numbered ``0, 1, ...`` in
corpus order (*shard-local positions*), are cut into parts of ``part_size``: part ``k`` holds
shard-local positions ``[k * part_size, (k + 1) * part_size)``.

Layout of an output directory (shards of one job may share a directory, or use one each)::

    OUT/
      manifest.shard-00000-of-00004.json        the job: model, corpus, settings; "status"
      shard-00000-of-00004.part-000000.jsonl.gz  gzip JsonVectorCollection, corpus order
      shard-00000-of-00004.part-000001.jsonl.gz
      summary.json                              merged summary of the complete shards here
      .work/                                    only while encoding: temp files, done-markers
        shard-00000-of-00004.part-000000.done.json

Write protocol (nothing half-written is ever taken for done):

1. :meth:`PartsDir.prepare` (the job's driver, once): writes the manifest with ``"status":
   "encoding"`` (or checks that the existing one describes the same job: same model (document
   fingerprint: :meth:`EncodingJob.same_model`), quantization signature, corpus identity and
   settings), and reads the done-markers.
2. :meth:`PartsDir.write_part` (any worker, concurrently, one call per part): writes the part to
   ``.work/<name>.tmp-<pid>-<random>``, fsyncs, renames it into ``OUT``; then writes the part's
   done-marker the same way. Workers never touch a shared file: a part is done iff its marker
   exists (a part file without a marker is rewritten).
3. :meth:`PartsDir.finish` (the driver, once every part is done): checks the markers cover the
   whole shard, rewrites the manifest with ``"status": "complete"``, the list of parts (document
   ranges, counts, sizes, sha256) and the shard's :class:`~splare_lucene.jsonl.WriteSummary`,
   removes ``.work/`` (Anserini would read it) and refreshes ``summary.json``.

Corpus identity: for a file, its size and the sha256 of its first and last MiB (a copy or a
``touch`` keeps it; a change that keeps the size and both ends is not seen, but the ids of the
documents of every done part are checked again on resume, see :class:`PartPlanner`); for an
``irds:`` source, its dataset id. The resolved path is recorded but not compared, so a moved
corpus still resumes.

Readers (:func:`read_outputs`) accept complete directories only, check that every shard of a set
was encoded by the same model, quantization, corpus and shard count, and name missing shards.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from ..errors import ConfigError, InputError
from ..jsonl import MAX_EMPTY_IDS, SUMMARY_NAME, count_vector  # light: no torch, no JVM

logger = logging.getLogger(__name__)

FORMAT = "splare-parts"
FORMAT_VERSION = 1
DEFAULT_PART_SIZE = 2000
WORK_DIR = ".work"
MANIFEST_GLOB = "manifest.shard-*.json"
_HEAD_BYTES = 1 << 20

# Settings of a job that change its output: a directory written with other values is refused.
_COMPARED = ("model_fingerprint", "signature", "corpus", "num_shards", "shard_id", "part_size",
             "allow_empty", "contents")


# -- small atomic-file helpers -------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX: the directory entry lives in the directory's own block)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems (and Windows) do not open directories: best effort
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path, tmp_dir: Path | None = None) -> Iterator[BinaryIO]:
    """``with atomic_writer(path) as f: f.write(...)``: the bytes go to a unique temp file in
    ``tmp_dir`` (default: beside ``path``; it must be on the same filesystem), which is fsynced
    and renamed over ``path`` when the block ends without error, then the directory is fsynced.
    A crash or an exception leaves either the old file or none, never a half-written one (the
    temp file is removed); concurrent writers of *different* paths never collide (the temp name
    carries the pid and a random suffix). The file gets the usual mode (umask), unlike mkstemp's
    0600."""
    tmp_dir = tmp_dir or path.parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, tmp_dir: Path | None = None) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_writer`)."""
    with atomic_writer(path, tmp_dir) as f:
        f.write(data)


def atomic_write_json(path: Path, obj: Any, tmp_dir: Path | None = None) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), tmp_dir)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- job description -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``shard_id`` of ``num_shards``: the documents at corpus positions ``p`` with
    ``p % num_shards == shard_id``. Raises ConfigError on values outside ``0 <= shard_id < num_shards``."""

    num_shards: int = 1
    shard_id: int = 0

    def __post_init__(self) -> None:
        if self.num_shards < 1:
            raise ConfigError(f"--num-shards must be >= 1; got {self.num_shards}")
        if not 0 <= self.shard_id < self.num_shards:
            raise ConfigError(f"--shard-id must be in [0, {self.num_shards - 1}] for --num-shards "
                              f"{self.num_shards}; got {self.shard_id}")

    @property
    def tag(self) -> str:
        """``shard-00002-of-00004``: the prefix of this shard's manifest and part files."""
        return f"shard-{self.shard_id:05d}-of-{self.num_shards:05d}"

    def selects(self, position: int) -> bool:
        """Whether the document at corpus ``position`` (0-based) belongs to this shard."""
        return position % self.num_shards == self.shard_id

    def corpus_position(self, local: int) -> int:
        """Shard-local position -> corpus position."""
        return self.shard_id + local * self.num_shards


@dataclass(frozen=True)
class PartSpec:
    """Part ``index`` of a shard: shard-local positions ``[start, stop)`` (``stop - start`` is
    ``part_size`` except for the shard's last part)."""

    index: int
    start: int
    stop: int

    @property
    def documents(self) -> int:
        return self.stop - self.start

    def file_name(self, shard: ShardSpec) -> str:
        return f"{shard.tag}.part-{self.index:06d}.jsonl.gz"

    def marker_name(self, shard: ShardSpec) -> str:
        return f"{shard.tag}.part-{self.index:06d}.done.json"


def corpus_identity(source: str) -> dict:
    """What identifies a corpus across runs (see the module docstring). Raises InputError when
    ``source`` does not exist."""
    from ..corpus import _resolve

    fmt, target = _resolve(str(source), "documents")
    if fmt == "irds":
        return {"format": "irds", "dataset": str(target), "path": str(source)}
    path = Path(target).resolve()
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(_HEAD_BYTES)).hexdigest()
        f.seek(max(0, size - _HEAD_BYTES))
        tail = hashlib.sha256(f.read(_HEAD_BYTES)).hexdigest()
    return {"format": fmt, "size": size, "head_sha256": head, "tail_sha256": tail, "path": str(path)}


def _corpus_key(identity: dict) -> dict:
    """The compared part of a corpus identity (the path is informational)."""
    return {k: v for k, v in identity.items() if k != "path"}


@dataclass
class EncodingJob:
    """Everything recorded in a shard's manifest before encoding starts.

    ``model_fingerprint`` is None for a model built in memory (no directory): such a job never
    resumes (its output directory is refused unless ``--overwrite``). ``extra`` (e.g. the
    ``corpus_key`` of ``evaluate``; its ``document_fingerprint`` stands in for the model fingerprint
    when both jobs have one: :meth:`same_model`) and ``runtime`` (batch size, device, dtype) are
    recorded but not compared: a different runtime only warns, because it can move a float weight in its last bits
    (rarely an impact by 1) between parts encoded before and after the change.
    """

    model: str
    model_fingerprint: str | None
    signature: dict
    config: dict
    corpus: dict
    num_shards: int = 1
    shard_id: int = 0
    part_size: int = DEFAULT_PART_SIZE
    allow_empty: bool = False
    contents: bool = True
    extra: dict = field(default_factory=dict)
    runtime: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        ShardSpec(self.num_shards, self.shard_id)  # validates
        if self.part_size < 1:
            raise ConfigError(f"--part-size must be >= 1; got {self.part_size}")

    @property
    def shard(self) -> ShardSpec:
        return ShardSpec(self.num_shards, self.shard_id)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, obj: dict) -> "EncodingJob":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in obj.items() if k in names})

    def compared(self) -> dict:
        """The settings another run must share to resume or to be indexed with this one (the
        model as :meth:`same_model` compares it)."""
        out = {k: getattr(self, k) for k in _COMPARED}
        out["corpus"] = _corpus_key(self.corpus)
        return out

    def same_model(self, other: "EncodingJob") -> bool:
        """Whether ``other``'s model writes this job's vectors: the same document fingerprint
        (:func:`splare_lucene.encoder.model_fingerprints`; a copy that differs only on the query
        side writes the same vectors, so it resumes or is indexed with the original's encoding)
        when both jobs record one, else (a job written before it existed, or by a driver that does
        not record it) the same model fingerprint."""
        mine, theirs = self.extra.get("document_fingerprint"), other.extra.get("document_fingerprint")
        if mine and theirs:
            return mine == theirs
        return self.model_fingerprint == other.model_fingerprint

    def differences(self, other: "EncodingJob", keys: Sequence[str] = _COMPARED) -> list[str]:
        """Human-readable ``name: other vs self`` for each compared setting that differs."""
        mine, theirs = self.compared(), other.compared()
        out = []
        for key in keys:
            if key == "model_fingerprint":
                if not self.same_model(other):
                    both = self.extra.get("document_fingerprint") and other.extra.get("document_fingerprint")
                    what = (f"document fingerprint {other.extra['document_fingerprint']} vs "
                            f"{self.extra['document_fingerprint']}" if both else
                            f"fingerprint {other.model_fingerprint} vs {self.model_fingerprint}")
                    out.append(f"model: {other.model!r} vs {self.model!r} ({what})")
            elif mine[key] != theirs[key]:
                a, b = theirs[key], mine[key]
                if key == "corpus":
                    out.append(f"corpus: {other.corpus.get('path') or other.corpus.get('dataset')} "
                               f"({_short(a)}) vs {self.corpus.get('path') or self.corpus.get('dataset')} "
                               f"({_short(b)})")
                else:
                    out.append(f"{key}: {a!r} vs {b!r}")
        return out


def _short(corpus: dict) -> str:
    if corpus.get("format") == "irds":
        return f"irds {corpus.get('dataset')}"
    return f"{corpus.get('size')} bytes, head {str(corpus.get('head_sha256'))[:8]}, tail {str(corpus.get('tail_sha256'))[:8]}"


def make_job(encoder, source: str, *, model_name: str = "", shard: ShardSpec = ShardSpec(),
             part_size: int = DEFAULT_PART_SIZE, allow_empty: bool = False, batch_size: int = 16,
             extra: dict | None = None) -> EncodingJob:
    """The job of encoding ``source`` with ``encoder`` (a :class:`~splare_lucene.SplareEncoder`).

    Reads the first and last MiB of the corpus file (its identity); loads nothing else."""
    backbone_model = getattr(getattr(encoder, "backbone", None), "model", None)
    dtype = str(getattr(backbone_model, "dtype", "")).replace("torch.", "")
    return EncodingJob(model=model_name, model_fingerprint=encoder.fingerprint,
                       signature=encoder.config.index_signature(), config=encoder.config.to_dict(),
                       corpus=corpus_identity(source), num_shards=shard.num_shards,
                       shard_id=shard.shard_id, part_size=part_size, allow_empty=allow_empty,
                       # the latent count, so that `index --jsonl` can refuse tokens beyond it
                       extra=({"width": int(encoder.d_sae)} if isinstance(getattr(encoder, "d_sae", None), int)
                              else {})
                       # what an index checks a query encoder's document side against
                       | ({"document_fingerprint": encoder.document_fingerprint}
                          if getattr(encoder, "document_fingerprint", None) else {})
                       | dict(extra or {}),
                       runtime={"batch_size": batch_size, "device": str(getattr(encoder, "device", "")),
                                "dtype": dtype})


# -- records ---------------------------------------------------------------------------------------




@dataclass
class PartRecord:
    """A done part, as its done-marker and the complete manifest record it.

    ``ids_sha256``: sha256 of the part's document ids joined by ``\\n``, checked again when a
    resumed run reads past the part (the corpus must not have changed)."""

    index: int
    start: int
    stop: int
    file: str
    bytes: int
    sha256: str
    ids_sha256: str
    documents: int
    empty: int = 0
    empty_ids: list[str] = field(default_factory=list)
    total_nnz: int = 0
    max_nnz: int = 0
    total_weight: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict) -> "PartRecord":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in obj.items() if k in names})


def ids_digest(ids: Iterable[str]) -> str:
    h = hashlib.sha256()
    for i, doc_id in enumerate(ids):
        h.update((("\n" if i else "") + doc_id).encode("utf-8"))
    return h.hexdigest()


def render_part(records: Sequence[tuple[str, str, dict[str, int]]], contents: bool = True) -> bytes:
    """(id, text, {token: impact}) records -> the gzip JsonVectorCollection bytes of a part.

    Deterministic for the same records (gzip mtime 0), so a rewritten part is byte-identical."""
    lines = [json.dumps({"id": doc_id, "contents": text if contents else "", "vector": vector},
                        ensure_ascii=False) + "\n" for doc_id, text, vector in records]
    return gzip.compress("".join(lines).encode("utf-8"), compresslevel=1, mtime=0)


def _record_of(part: PartSpec, shard: ShardSpec, records: Sequence[tuple[str, str, dict[str, int]]],
               data: bytes) -> PartRecord:
    rec = PartRecord(index=part.index, start=part.start, stop=part.stop, file=part.file_name(shard),
                     bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                     ids_sha256=ids_digest(r[0] for r in records), documents=len(records))
    for doc_id, _, vector in records:
        count_vector(rec, doc_id, vector)
    return rec


def summarize(parts: Iterable[PartRecord], extra: dict, files: int | None = None):
    """Part records -> a :class:`~splare_lucene.jsonl.WriteSummary` (``shards`` = part files)."""
    from ..jsonl import WriteSummary

    parts = list(parts)
    s = WriteSummary(shards=len(parts) if files is None else files, extra=dict(extra))
    for p in parts:
        s.documents += p.documents
        s.empty += p.empty
        s.total_nnz += p.total_nnz
        s.max_nnz = max(s.max_nnz, p.max_nnz)
        s.total_weight += p.total_weight
        s.empty_ids.extend(p.empty_ids[:max(0, MAX_EMPTY_IDS - len(s.empty_ids))])
    return s


def encoding_extra(job: EncodingJob) -> dict:
    """What a summary's ``extra`` (and then an index's ``splare_index.json``) records of a job."""
    return {"model": job.model, "model_fingerprint": job.model_fingerprint, "signature": job.signature,
            "config": job.config, **job.extra}


# -- the directory ---------------------------------------------------------------------------------


@dataclass
class PrepareResult:
    """What :meth:`PartsDir.prepare` found: ``complete`` (nothing to do; ``summary`` set) or the
    done parts to skip (``done``: part index -> record)."""

    complete: bool
    done: dict[int, PartRecord]
    summary: Any = None  # jsonl.WriteSummary when complete

    @property
    def done_documents(self) -> int:
        return sum(r.documents for r in self.done.values())


class PartsDir:
    """One job's view of an output directory. Picklable (paths and the job only), so a worker
    process can rebuild it and call :meth:`write_part`.

    ``directory``: the output directory; ``job``: the :class:`EncodingJob` it holds."""

    def __init__(self, directory: str | os.PathLike, job: EncodingJob):
        self.directory = Path(directory)
        self.job = job
        self.shard = job.shard

    @property
    def work(self) -> Path:
        return self.directory / WORK_DIR

    @property
    def manifest_path(self) -> Path:
        return self.directory / f"manifest.{self.shard.tag}.json"

    # -- driver --------------------------------------------------------------------------------

    def start(self, *, overwrite: bool = False, restart_mismatched: bool = False) -> PrepareResult:
        """:meth:`prepare`, logging what an engine's driver is about to do (nothing: the output is
        complete; resume: how many parts and documents are already encoded)."""
        state = self.prepare(overwrite=overwrite, restart_mismatched=restart_mismatched)
        if state.complete:
            logger.info("%s is already complete (%s): nothing to encode", self.directory,
                        state.summary.describe())
        elif state.done:
            logger.info("resuming %s: %d parts (%d documents) already encoded", self.directory,
                        len(state.done), state.done_documents)
        return state

    def prepare(self, *, overwrite: bool = False, restart_mismatched: bool = False) -> PrepareResult:
        """Create, resume or refuse the output directory (the job's driver, before encoding).

        - absent or empty: created, manifest written;
        - this shard's manifest, same job: resume (``complete`` when finished), stale temp files
          removed, done parts listed (a marker whose part file is missing or of another size is
          dropped: that part is encoded again);
        - ``overwrite``: this shard's files are removed first (the whole directory when it holds
          nothing of sibling shards of the same job), then as absent;
        - anything else (another model, corpus or settings; files of another tool): ConfigError
          naming what differs and the fix; ``restart_mismatched`` removes the directory instead
          (for private work directories, e.g. under ``evaluate``'s index root; only when the
          directory holds nothing but encode outputs).
        """
        if self.directory.exists() and not self.directory.is_dir():
            raise ConfigError(f"output {self.directory} is a file; give a directory")
        if overwrite:
            self._remove_own(whole_if_alone=True)
        problem = self._conflict()
        if problem and restart_mismatched and _only_encode_outputs(self.directory):
            logger.info("%s: %s; starting over (a private work directory)", self.directory, problem)
            shutil.rmtree(self.directory)
            problem = None
        if problem and _nothing_encoded(self.directory):
            # A run that failed before its first part (a corpus error, a model that did not load)
            # leaves only a manifest: nothing to resume or lose, so the rerun with the fixed input
            # starts over rather than asking for the settings of a run that produced nothing.
            logger.info("%s: %s, but it holds no encoded part; starting over", self.directory, problem)
            shutil.rmtree(self.directory)
            problem = None
        if problem:
            raise ConfigError(f"output directory {self.directory} {problem}. Rerun with the settings "
                              "it was written with to resume, pass --overwrite to start over, or "
                              "choose another output directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        manifest = _read_json(self.manifest_path)
        if manifest and manifest.get("status") == "complete":
            # A run killed right after sealing the manifest left these undone.
            summary_json = _read_json(self.directory / SUMMARY_NAME) or {}
            if self.shard.shard_id not in summary_json.get("shards_in_directory", []):
                self._write_directory_summary()
            self._remove_work_files()
            return PrepareResult(True, {}, summarize([PartRecord.from_dict(p) for p in manifest["parts"]],
                                                     encoding_extra(self.job)))
        if manifest is None:
            atomic_write_json(self.manifest_path, {**self.job.to_dict(), "status": "encoding"}, self.work)
        else:
            self._warn_runtime(EncodingJob.from_dict(manifest))
        self._clean_temp()
        return PrepareResult(False, self.done_parts())

    def done_parts(self) -> dict[int, PartRecord]:
        """Part index -> record of every part whose marker exists and whose file has the recorded
        size (a marker without its file, after a manual deletion, is ignored with a warning)."""
        out: dict[int, PartRecord] = {}
        if not self.work.is_dir():
            return out
        prefix = self.shard.tag + ".part-"
        for marker in sorted(self.work.glob(prefix + "*.done.json")):
            obj = _read_json(marker)
            if obj is None:
                continue
            rec = PartRecord.from_dict(obj)
            path = self.directory / rec.file
            if not path.is_file() or path.stat().st_size != rec.bytes:
                logger.warning("%s: part file %s is missing or of another size; encoding it again",
                               self.directory, rec.file)
                marker.unlink(missing_ok=True)
                continue
            out[rec.index] = rec
        return out

    def finish(self, total_documents: int):
        """Seal the shard once every part is written (the driver, after the last part).

        ``total_documents``: the shard's document count, as the planner counted it. Raises
        ConfigError when a part is missing (a worker failed): rerun the same command to encode it.
        Returns the shard's :class:`~splare_lucene.jsonl.WriteSummary`."""
        done = self.done_parts()
        expected = plan_parts(total_documents, self.job.part_size)
        missing = [p.index for p in expected if p.index not in done
                   or (done[p.index].start, done[p.index].stop) != (p.start, p.stop)]
        if missing:
            raise ConfigError(f"{self.directory}: {len(missing)} of {len(expected)} parts of "
                              f"{self.shard.tag} are not written (e.g. part {missing[0]}); rerun the "
                              "same command to encode them")
        records = [done[p.index] for p in expected]
        summary = summarize(records, encoding_extra(self.job))
        manifest = {**self.job.to_dict(), "status": "complete", "documents": total_documents,
                    "parts": [r.to_dict() for r in records], "summary": summary.to_dict()}
        atomic_write_json(self.manifest_path, manifest, self.work)
        self._write_directory_summary()
        self._remove_work_files()
        if summary.empty:
            logger.warning("%d documents have empty vectors; Anserini will skip them (ids in %s)",
                           summary.empty, self.directory / SUMMARY_NAME)
        if total_documents == 0 and self.shard.num_shards > 1:  # read_documents refuses an empty corpus
            logger.warning("%s got no documents: the corpus has fewer documents than --num-shards %d; its "
                           "output %s is empty, which is fine when indexed with the other shards",
                           self.shard.tag, self.shard.num_shards, self.directory)
        return summary

    # -- workers -------------------------------------------------------------------------------

    def write_part(self, part: PartSpec, records: Sequence[tuple[str, str, dict[str, int]]]) -> PartRecord:
        """Write one part atomically, then its done-marker (any worker; parts are independent).

        ``records``: ``(doc id, text, {pseudo-token: impact})`` in corpus order, exactly
        ``part.documents`` of them (else ValueError: a planner bug)."""
        if len(records) != part.documents:
            raise ValueError(f"part {part.index} spans {part.documents} documents; got {len(records)} records")
        data = render_part(records, self.job.contents)
        rec = _record_of(part, self.shard, records, data)
        atomic_write_bytes(self.directory / rec.file, data, self.work)
        atomic_write_json(self.work / part.marker_name(self.shard), rec.to_dict(), self.work)
        return rec

    # -- internals -----------------------------------------------------------------------------

    def _siblings(self) -> list[tuple[Path, dict]]:
        """(path, manifest) of the other shards' manifests in the directory."""
        if not self.directory.is_dir():
            return []
        return [(p, m) for p in sorted(self.directory.glob(MANIFEST_GLOB))
                if p != self.manifest_path and (m := _read_json(p)) is not None]

    def _conflict(self) -> str | None:
        """Why this job cannot use the directory, or None."""
        if not self.directory.is_dir():
            return None
        manifest = _read_json(self.manifest_path) if self.manifest_path.exists() else None
        if self.manifest_path.exists() and manifest is None:
            return f"has an unreadable {self.manifest_path.name}"
        if manifest is not None:
            if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
                return (f"was written by another version of the toolkit (format "
                        f"{manifest.get('format')} {manifest.get('format_version')})")
            if self.job.model_fingerprint is None:
                return ("exists and the model has no fingerprint (not loaded from a directory), so "
                        "its parts cannot be trusted to come from this model")
            diffs = self.job.differences(EncodingJob.from_dict(manifest))
            if diffs:
                return "was written by another job (directory vs this run: " + "; ".join(diffs) + ")"
        for path, sibling in self._siblings():
            other = EncodingJob.from_dict(sibling)
            keys = [k for k in _COMPARED if k not in ("shard_id", "part_size")]
            diffs = self.job.differences(other, keys)
            if diffs:
                return (f"holds {path.name} of another job (directory vs this run: " + "; ".join(diffs) + ")")
        # What may sit beside this shard: manifests, the parts of shards that have a manifest
        # here, summary.json and .work/. Anything else (an older output's part-000.jsonl.gz, a
        # user's files) means the directory is not ours to write into.
        tags = {self.shard.tag} | {p.name[len("manifest."):-len(".json")] for p, _ in self._siblings()}
        foreign = sorted(p.name for p in self.directory.iterdir()
                         if p.name not in (SUMMARY_NAME, WORK_DIR)
                         and not (p.name.startswith("manifest.shard-") and p.name.endswith(".json"))
                         and not any(p.name.startswith(t + ".part-") for t in tags))
        if manifest is None and not self._siblings() and (self.directory / SUMMARY_NAME).exists():
            foreign.insert(0, SUMMARY_NAME)
        if foreign:
            return (f"exists and holds files that no shard of this encoding wrote ({', '.join(foreign[:3])}"
                    f"{', ...' if len(foreign) > 3 else ''}: an output of an older splare-lucene version "
                    "or of another tool)")
        return None

    def _remove_own(self, whole_if_alone: bool) -> None:
        if not self.directory.is_dir():
            return
        siblings = [(p, m) for p, m in self._siblings()
                    if not self.job.differences(EncodingJob.from_dict(m),
                                                [k for k in _COMPARED if k not in ("shard_id", "part_size")])]
        if whole_if_alone and not siblings:
            from ..outputs import safe_replace_dir

            # only an encode output (or an empty directory) goes: a folder of the user's files is
            # refused, naming what it holds (issue 10: --overwrite deleted a thesis.txt)
            logger.info("--overwrite: removing %s", self.directory)
            safe_replace_dir(self.directory, ["encode"], what="--output")
            return
        logger.info("--overwrite: removing the files of %s in %s (sibling shards kept)", self.shard.tag,
                    self.directory)
        for path in list(self.directory.glob(self.shard.tag + ".part-*")) + [self.manifest_path]:
            path.unlink(missing_ok=True)
        if self.work.is_dir():
            for path in self.work.glob(self.shard.tag + ".part-*"):
                path.unlink(missing_ok=True)
            for path in self.work.glob(f"manifest.{self.shard.tag}.json.tmp-*"):
                path.unlink(missing_ok=True)

    def _remove_work_files(self) -> None:
        """Once the manifest is sealed: this shard's markers and temp files, and ``.work/`` itself
        unless a sibling shard is still encoding in the same directory."""
        if not self.work.is_dir():
            return
        for marker in self.work.glob(self.shard.tag + ".part-*.done.json"):
            marker.unlink(missing_ok=True)
        self._clean_temp()
        try:
            self.work.rmdir()
        except OSError:
            pass

    def _clean_temp(self) -> None:
        """Remove this shard's temp files left by a killed run (only the driver calls this, when
        no worker of the job runs)."""
        if not self.work.is_dir():
            return
        for path in self.work.iterdir():
            if ".tmp-" in path.name and (path.name.startswith(self.shard.tag + ".")
                                        or path.name.startswith(f"manifest.{self.shard.tag}.")
                                        or path.name.startswith(SUMMARY_NAME)):
                path.unlink(missing_ok=True)

    def _warn_runtime(self, previous: EncodingJob) -> None:
        before, now = previous.runtime or {}, self.job.runtime or {}
        changed = {k: (before.get(k), now.get(k)) for k in ("batch_size", "dtype")
                   if before.get(k) is not None and before.get(k) != now.get(k)}
        if changed:
            detail = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
            logger.warning("resuming %s with another runtime (%s): parts written before and after may "
                           "differ in the last bits of a weight (rarely an impact by 1); resume with "
                           "the same --batch-size and --dtype for identical vectors", self.directory, detail)

    def _write_directory_summary(self) -> None:
        """``summary.json``: the merged summary of the complete shards in this directory, for
        people and older readers. Two shards finishing at the same instant may leave it missing
        one of them; readers use the manifests (:func:`read_outputs`)."""
        manifests = [m for m in (_read_json(p) for p in sorted(self.directory.glob(MANIFEST_GLOB)))
                     if m and m.get("status") == "complete"]
        records = [PartRecord.from_dict(p) for m in manifests for p in m["parts"]]
        extra = encoding_extra(self.job)
        summary = summarize(records, extra)
        out = summary.to_dict()
        out["shards_in_directory"] = sorted(m["shard_id"] for m in manifests)
        out["num_shards"] = self.job.num_shards
        atomic_write_json(self.directory / SUMMARY_NAME, out, self.work)


_LEGACY_PART = re.compile(r"part-\d+\.jsonl\.gz")


def _only_encode_outputs(directory: Path) -> bool:
    """Whether ``directory`` holds nothing but what ``encode`` writes (of any job or version):
    the only directories :meth:`PartsDir.prepare` may remove without ``overwrite``."""
    return all(p.name in (SUMMARY_NAME, WORK_DIR) or p.name.startswith(("manifest.shard-", "shard-"))
               or _LEGACY_PART.fullmatch(p.name) for p in directory.iterdir())


def _nothing_encoded(directory: Path) -> bool:
    """Whether ``directory`` holds only manifests of unfinished runs (and an empty or
    marker-free ``.work/``): no part file, no done-marker, no summary."""
    if not directory.is_dir():
        return False
    for p in directory.iterdir():
        if p.name == WORK_DIR:
            if p.is_dir() and any(m.name.endswith(".done.json") for m in p.iterdir()):
                return False
        elif not p.name.startswith("manifest.shard-"):
            return False
        elif (_read_json(p) or {}).get("status") != "encoding":
            return False
    return True


def _read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or not UTF-8
        logger.warning("cannot read %s (%s)", path, exc)
        return None
    return obj if isinstance(obj, dict) else None


# -- planning --------------------------------------------------------------------------------------


def plan_parts(total_documents: int, part_size: int) -> list[PartSpec]:
    """The parts of a shard of ``total_documents`` documents."""
    return [PartSpec(k, s, min(s + part_size, total_documents))
            for k, s in enumerate(range(0, total_documents, part_size))]


class PartPlanner:
    """Cut a document stream into this shard's parts, skipping done ones without encoding them.

    Iterating yields ``(PartSpec, [Document, ...])`` for each part *not* in ``done``, in order;
    the documents of done parts are read (the stream is sequential) and their ids checked against
    the part's ``ids_sha256`` (InputError when the corpus changed since). After the iteration,
    ``documents`` is the shard's document count (for :meth:`PartsDir.finish`), ``skipped`` the
    count of documents in done parts.

    ``documents_stream``: all documents of the corpus in order (``read_documents``); only every
    ``num_shards``-th is kept. ``on_skip(n)`` is called after each done part (progress bars)."""

    def __init__(self, documents_stream: Iterable, shard: ShardSpec, part_size: int,
                 done: dict[int, PartRecord] | None = None,
                 on_skip: Callable[[int], None] | None = None):
        self.stream = documents_stream
        self.shard = shard
        self.part_size = part_size
        self.done = done or {}
        self.on_skip = on_skip
        self.documents = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[tuple[PartSpec, list]]:
        buffer: list = []
        index = 0
        for position, doc in enumerate(self.stream):
            if not self.shard.selects(position):
                continue
            buffer.append(doc)
            self.documents += 1
            if len(buffer) == self.part_size:
                yield from self._emit(index, buffer)
                index += 1
                buffer = []
        if buffer:
            yield from self._emit(index, buffer)

    def _emit(self, index: int, docs: list) -> Iterator[tuple[PartSpec, list]]:
        start = index * self.part_size
        part = PartSpec(index, start, start + len(docs))
        rec = self.done.get(index)
        if rec is not None and (rec.start, rec.stop) == (part.start, part.stop):
            if rec.ids_sha256 != ids_digest(d.id for d in docs):
                raise InputError(f"the documents of part {index} (shard-local positions {part.start}-"
                                 f"{part.stop - 1}) are not those encoded before: the corpus changed "
                                 "since; rerun with --overwrite to encode it from scratch")
            self.skipped += len(docs)
            if self.on_skip:
                self.on_skip(len(docs))
            return
        yield part, docs


# -- reading finished outputs ----------------------------------------------------------------------


@dataclass
class EncodedOutput:
    """Complete encoded output over one or more directories: the part files to index (in shard
    and part order), the merged summary dict (``WriteSummary.to_dict()`` shape with ``extra``),
    and the shards' jobs (empty for directories without manifests: older or foreign outputs)."""

    files: list[Path]
    summary: dict
    jobs: list[EncodingJob]


def read_outputs(directories: Sequence[str | os.PathLike], *, verify: bool = True, check_ids: bool = False,
                 progress: bool = True) -> EncodedOutput:
    """Check and merge encode outputs for indexing.

    Every directory must hold complete shards (manifest ``"status": "complete"``) of one job set:
    same model (:meth:`EncodingJob.same_model`), quantization signature, corpus, ``num_shards`` and ``allow_empty``;
    every shard ``0..num_shards-1`` exactly once. ``verify`` checks every part file's size and
    sha256 against the manifest. A directory without manifests (an older ``encode`` output, or
    JsonVectorCollection files from elsewhere) is accepted on its own, its ``*.jsonl(.gz)`` files
    indexed as they are. ``check_ids`` reads every line of every file
    (:func:`splare_lucene.engines.ids.scan_ids`: 8 bytes of memory per document) and refuses a
    document id that appears twice, within one file or across the directories (overlapping
    outputs), or that is empty or holds whitespace. Raises ConfigError (what is wrong, and the
    command that fixes it) or InputError (a missing directory; a duplicate or bad id, with file
    and line)."""
    from ..jsonl import VectorRules, read_summary, shard_files

    dirs = [Path(d) for d in directories]
    if not dirs:
        raise ConfigError("give at least one directory of encoded parts")
    for d in dirs:
        if not d.is_dir():
            raise InputError("not a directory of encoded parts (from `splare-lucene encode`)", path=str(d))
    by_dir = [(d, [(p, _read_json(p)) for p in sorted(d.glob(MANIFEST_GLOB))]) for d in dirs]
    legacy = [d for d, ms in by_dir if not ms]
    if legacy:
        if len(dirs) > 1:
            raise ConfigError(f"{legacy[0]} has no manifest.shard-*.json (not written by this version of "
                              "`splare-lucene encode`); several directories are indexed together only when "
                              "each holds encode's manifests")
        d = legacy[0]
        logger.warning("%s has no manifest (an older or foreign output): indexing its files as they are", d)
        output = EncodedOutput(shard_files(d), read_summary(d) or {}, [])
        if check_ids:
            from .ids import scan_ids

            scan_ids(output.files, expected=output.summary.get("documents"), progress=progress,
                     rules=VectorRules.from_summary(output.summary))
        return output
    jobs: list[EncodingJob] = []
    parts: list[tuple[int, int, Path]] = []
    records: list[PartRecord] = []
    seen: dict[int, Path] = {}
    first: EncodingJob | None = None
    first_dir: Path | None = None
    for d, manifests in by_dir:
        for path, m in manifests:
            if m is None:
                raise ConfigError(f"{path} is unreadable; re-encode that shard with `splare-lucene encode "
                                  "... --overwrite`")
            job = EncodingJob.from_dict(m)
            tag = job.shard.tag
            if m.get("status") != "complete":
                raise ConfigError(f"{d}: {tag} is not complete (encoding was interrupted or is still "
                                  "running); rerun the same `splare-lucene encode` command to finish it")
            if first is None:
                first, first_dir = job, d
            else:
                keys = [k for k in _COMPARED if k not in ("shard_id", "part_size")]
                diffs = job.differences(first, keys)
                if diffs:
                    # differences() words them "first vs this one": name the files in that order
                    raise ConfigError(f"{first_dir}/manifest.{first.shard.tag}.json and {d}/{path.name} belong "
                                      f"to different encodings ({'; '.join(diffs)}); index the outputs of one "
                                      "model, quantization, corpus and --num-shards together (to index several "
                                      "corpora in one index, concatenate them into one JSONL corpus and encode "
                                      "that, with --num-shards for parallel runs)")
            if job.shard_id in seen:
                raise ConfigError(f"shard {job.shard_id} of {job.num_shards} appears twice ({seen[job.shard_id]} "
                                  f"and {d}); give each shard's output once")
            seen[job.shard_id] = d
            jobs.append(job)
            for p in m["parts"]:
                rec = PartRecord.from_dict(p)
                file = d / rec.file
                if not file.is_file():
                    raise ConfigError(f"{file} is listed in {path.name} but missing; re-encode shard "
                                      f"{job.shard_id} with `splare-lucene encode ... --overwrite`")
                if verify and (file.stat().st_size != rec.bytes or sha256_file(file) != rec.sha256):
                    raise ConfigError(f"{file} does not match its checksum in {path.name} (modified or "
                                      f"damaged); re-encode shard {job.shard_id} with `splare-lucene "
                                      "encode ... --overwrite`")
                parts.append((job.shard_id, rec.index, file))
                records.append(rec)
    assert first is not None
    missing = sorted(set(range(first.num_shards)) - set(seen))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ConfigError(f"the shard set is incomplete: {len(missing)} of {first.num_shards} shards missing "
                          f"(--shard-id {shown}); encode them with `splare-lucene encode ... --num-shards "
                          f"{first.num_shards} --shard-id I` and pass every output directory")
    summary = summarize(records, encoding_extra(first), files=len(parts)).to_dict()
    files = [f for _, _, f in sorted(parts)]
    if check_ids:
        from .ids import scan_ids

        scan_ids(files, expected=summary.get("documents"), progress=progress,
                 rules=VectorRules.from_summary(summary))
    return EncodedOutput(files, summary, jobs)
