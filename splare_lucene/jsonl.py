"""Anserini JsonVectorCollection I/O: ``{"id", "contents", "vector": {token: int}}`` lines.

``encode`` writes its output in resumable parts (:mod:`splare_lucene.engines.parts`);
:class:`JsonVectorWriter` is the one-shot writer for small outputs made in one go (tests,
synthetic collections): it spreads documents round-robin over gzip shards, streams, writes into
a temporary directory renamed into place at the end (no half-written output on failure), and
keeps a summary with the ids of empty vectors (Anserini skips those silently). The readers here
read both.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import InputError

logger = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"
SHARD_PATTERN = "part-{:03d}.jsonl.gz"
MAX_EMPTY_IDS = 1000  # ids listed in the summary; the count is always exact


@dataclass
class WriteSummary:
    documents: int = 0
    empty: int = 0
    empty_ids: list[str] = field(default_factory=list)
    total_nnz: int = 0
    max_nnz: int = 0
    total_weight: int = 0
    shards: int = 0
    extra: dict = field(default_factory=dict)  # model, quantization, ... (set by the caller)

    @property
    def mean_nnz(self) -> float:
        return self.total_nnz / self.documents if self.documents else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["mean_nnz"] = round(self.mean_nnz, 3)
        out["mean_weight"] = round(self.total_weight / self.total_nnz, 3) if self.total_nnz else 0.0
        return out

    def describe(self) -> str:
        text = (f"{self.documents} documents in {self.shards} files; non-zeros per document: "
                f"mean {self.mean_nnz:.1f}, max {self.max_nnz}; empty vectors: {self.empty}")
        if self.empty:
            shown = ", ".join(self.empty_ids[:10])
            text += f" (Anserini skips them; ids: {shown}{', ...' if self.empty > 10 else ''})"
        return text


def count_vector(stats, doc_id: str, vector: dict[str, int]) -> None:
    """Add one document's vector to ``stats`` (a WriteSummary or an engines.parts.PartRecord:
    anything with total_nnz, max_nnz, total_weight, empty and empty_ids); the first
    MAX_EMPTY_IDS empty documents are listed by id, all are counted."""
    nnz = len(vector)
    stats.total_nnz += nnz
    stats.max_nnz = max(stats.max_nnz, nnz)
    stats.total_weight += sum(vector.values())
    if nnz == 0:
        stats.empty += 1
        if len(stats.empty_ids) < MAX_EMPTY_IDS:
            stats.empty_ids.append(doc_id)


class JsonVectorWriter:
    """Context manager writing shards into ``output_dir`` atomically."""

    def __init__(self, output_dir: str | os.PathLike, shards: int = 1, contents: bool = True):
        if shards < 1:
            raise ValueError(f"shards must be >= 1; got {shards}")
        self.output_dir = Path(output_dir)
        self.num_shards = shards
        self.contents = contents
        self.summary = WriteSummary(shards=shards)
        self._tmp: Path | None = None
        self._files: list = []

    def __enter__(self) -> "JsonVectorWriter":
        self.output_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=self.output_dir.name + ".", dir=self.output_dir.parent))
        self._files = [gzip.open(self._tmp / SHARD_PATTERN.format(i), "wt", encoding="utf-8", compresslevel=1)
                       for i in range(self.num_shards)]
        return self

    def write(self, doc_id: str, text: str, vector: dict[str, int]) -> None:
        s = self.summary
        record = {"id": doc_id, "contents": text if self.contents else "", "vector": vector}
        self._files[s.documents % self.num_shards].write(json.dumps(record, ensure_ascii=False) + "\n")
        s.documents += 1
        count_vector(s, doc_id, vector)

    def __exit__(self, exc_type, exc, tb) -> None:
        for f in self._files:
            f.close()
        if exc_type is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        (self._tmp / SUMMARY_NAME).write_text(json.dumps(self.summary.to_dict(), indent=2) + "\n")
        if self.output_dir.exists():
            shutil.rmtree(self.output_dir)  # callers check --overwrite before writing
        os.replace(self._tmp, self.output_dir)
        if self.summary.empty:
            logger.warning("%d documents have empty vectors; Anserini will skip them (ids in %s)",
                           self.summary.empty, self.output_dir / SUMMARY_NAME)


def shard_files(directory: str | os.PathLike) -> list[Path]:
    """The data files of an encoded directory, sorted: ``*.jsonl``, ``*.jsonl.gz`` and ``*.json``
    files other than ``summary.json`` and ``encode``'s manifests (``manifest.shard-*.json``).
    Raises InputError when there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("not a directory of .jsonl(.gz) shards", path=str(directory))
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.name.endswith((".jsonl", ".jsonl.gz", ".json")))
    files = [p for p in files if p.name != SUMMARY_NAME and not p.name.startswith("manifest.shard-")]
    if not files:
        raise InputError("no .jsonl or .jsonl.gz shards found", path=str(directory))
    return files


def read_vectors(directory: str | os.PathLike) -> Iterator[tuple[str, dict[str, int]]]:
    """(id, {token: weight}) for every line of every shard, validated."""
    from .corpus import iter_jsonl

    for path in shard_files(directory):
        for number, obj in iter_jsonl(path):
            if "id" not in obj or not isinstance(obj.get("vector"), dict):
                raise InputError("expected keys 'id' and 'vector' (an object of token: weight)",
                                 str(path), number)
            yield str(obj["id"]), obj["vector"]


def index_meta(summary: dict, **extra) -> dict:
    """What an index built from these shards records: the encoder's metadata (model, quantization,
    ...), ``extra``, and the encoding counts (without the list of empty ids)."""
    encoding = {k: v for k, v in summary.items() if k not in ("extra", "empty_ids")}
    return {**summary.get("extra", {}), **extra, "encoding": encoding}


def read_summary(directory: str | os.PathLike) -> dict | None:
    path = Path(directory) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else None
