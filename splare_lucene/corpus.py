"""Read documents and queries, streaming and validated: the first step of the pipeline.

Sources (the same rules for documents and queries):

* a BEIR folder (``corpus.jsonl`` / ``queries.jsonl`` inside);
* JSON lines, optionally gzipped: ids in ``_id``, ``id`` or ``docid``; document text from BEIR
  ``title`` + ``text``, or Pyserini ``contents``; query text from ``text``, ``query`` or ``contents``;
* TSV: ``id<TAB>text`` (MS MARCO style; a header line ``id text`` is skipped);
* an ir_datasets id, optionally prefixed ``irds:`` (``irds:beir/scifact/test``).

Errors name the file and line. Duplicate ids and empty texts are errors unless asked otherwise.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from pathlib import Path
from typing import Iterator

from .errors import InputError
from .types import Document, Query

logger = logging.getLogger(__name__)

ID_KEYS = ("_id", "id", "docid", "query_id", "qid")
QUERY_TEXT_KEYS = ("text", "query", "contents")


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def _resolve(source: str, kind: str) -> tuple[str, Path | str]:
    """('jsonl'|'tsv'|'irds', path or dataset id)."""
    if source.startswith("irds:"):
        return "irds", source[len("irds:"):]
    path = Path(source)
    if path.is_dir():
        name = "corpus.jsonl" if kind == "documents" else "queries.jsonl"
        for candidate in (path / name, path / (name + ".gz")):
            if candidate.is_file():
                return "jsonl", candidate
        raise InputError(f"folder has no {name}; a BEIR folder holds corpus.jsonl, queries.jsonl "
                         "and qrels/<split>.tsv", path=str(path))
    if path.is_file():
        suffixes = [s for s in path.suffixes if s != ".gz"]
        if suffixes and suffixes[-1] in (".tsv", ".txt"):
            return "tsv", path
        return "jsonl", path
    if "/" in source and not source.startswith((".", "/")) and not path.suffix:
        return "irds", source
    raise InputError("no such file or folder. Give a BEIR folder, a .jsonl/.tsv file, or an "
                     "ir_datasets id such as irds:beir/scifact/test", path=source)


def _id_of(obj: dict, path: Path, line: int) -> str:
    for key in ID_KEYS:
        if key in obj:
            value = obj[key]
            if value is None or str(value).strip() == "":
                break
            return str(value)
    raise InputError(f"record has no id; expected one of the keys {list(ID_KEYS)}", str(path), line)


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a (gzipped) JSONL file; errors name the line."""
    with _open_text(path) as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"malformed JSON ({exc.msg} at column {exc.colno})", str(path), number) from None
            if not isinstance(obj, dict):
                raise InputError("each line must be a JSON object", str(path), number)
            yield number, obj


def _document_text(obj: dict, path: Path, line: int) -> str:
    if "contents" in obj:
        return str(obj["contents"] or "")
    if "text" in obj or "title" in obj:
        title = str(obj.get("title") or "").strip()
        text = str(obj.get("text") or "").strip()
        return f"{title} {text}".strip() if title else text
    raise InputError("record has no text; expected 'contents' (Pyserini) or 'title'/'text' (BEIR)",
                     str(path), line)


def _query_text(obj: dict, path: Path, line: int) -> str:
    for key in QUERY_TEXT_KEYS:
        if key in obj:
            return str(obj[key] or "")
    raise InputError(f"query has no text; expected one of the keys {list(QUERY_TEXT_KEYS)}", str(path), line)


def _tsv_records(path: Path) -> Iterator[tuple[int, str, str]]:
    with _open_text(path) as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip("\n\r")
            if not raw.strip():
                continue
            parts = raw.split("\t")
            if len(parts) < 2:
                raise InputError("expected `id<TAB>text`", str(path), number)
            if number == 1 and parts[0].lower() in ("id", "docid", "qid", "query_id", "query-id"):
                continue  # header
            yield number, parts[0], "\t".join(parts[1:])


def _irds_records(dataset_id: str, kind: str) -> Iterator[tuple[str, str]]:
    import ir_datasets

    try:
        dataset = ir_datasets.load(dataset_id)
    except KeyError as exc:
        raise InputError(f"unknown ir_datasets id {dataset_id!r}; see https://ir-datasets.com") from exc
    if kind == "documents":
        if not dataset.has_docs():
            raise InputError(f"ir_datasets {dataset_id!r} has no documents")
        for doc in dataset.docs_iter():
            yield doc.doc_id, doc.default_text()
    else:
        if not dataset.has_queries():
            raise InputError(f"ir_datasets {dataset_id!r} has no queries")
        for query in dataset.queries_iter():
            yield query.query_id, query.default_text()


def _records(source: str, kind: str) -> Iterator[tuple[str, str, str, int | None]]:
    """(id, text, where, line) for each record."""
    fmt, target = _resolve(str(source), kind)
    if fmt == "irds":
        for rid, text in _irds_records(str(target), kind):
            yield rid, text, f"irds:{target}", None
    elif fmt == "tsv":
        for line, rid, text in _tsv_records(target):
            yield rid, text, str(target), line
    else:
        text_of = _document_text if kind == "documents" else _query_text
        for line, obj in iter_jsonl(target):
            yield _id_of(obj, target, line), text_of(obj, target, line), str(target), line


def _validated(source: str, kind: str, allow_empty: bool, cls):
    seen: dict[str, int | None] = {}
    skipped = 0
    for rid, text, where, line in _records(source, kind):
        if rid in seen:
            first = f" (first at line {seen[rid]})" if seen[rid] else ""
            raise InputError(f"duplicate id {rid!r}{first}", where, line)
        seen[rid] = line
        if not text.strip():
            if allow_empty:
                skipped += 1
                continue
            raise InputError(f"empty text for id {rid!r}; fix the record or pass --allow-empty "
                             "to skip such records", where, line)
        yield cls(rid, text)
    if skipped:
        logger.warning("skipped %d %s with empty text in %s", skipped, kind, source)


def read_documents(source: str, allow_empty: bool = False) -> Iterator[Document]:
    """Stream validated documents from ``source`` (see module docstring)."""
    return _validated(source, "documents", allow_empty, Document)


def read_queries(source: str, allow_empty: bool = False) -> Iterator[Query]:
    """Stream validated queries from ``source`` (see module docstring)."""
    return _validated(source, "queries", allow_empty, Query)
