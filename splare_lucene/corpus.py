"""Read documents and queries, streaming and validated: the first step of the pipeline.

Sources (the same rules for documents and queries):

* a BEIR folder (``corpus.jsonl`` / ``queries.jsonl`` inside);
* JSON lines, optionally gzipped: ids in ``_id``, ``id`` or ``docid``; document text from BEIR
  ``title`` + ``text``, or Pyserini ``contents``; query text from ``text``, ``query`` or ``contents``;
* TSV: ``id<TAB>text`` (MS MARCO style; a header line ``id text`` is skipped);
* an ir_datasets id, optionally prefixed ``irds:`` (``irds:beir/scifact/test``).

Files are read by :mod:`splare_lucene.textio`: plain or gzip, strict UTF-8 (a bad byte is an
error naming the line and column), a leading byte-order mark dropped, LF/CRLF/CR line ends.
Ids follow :func:`splare_lucene.textio.check_id`: no whitespace or control characters (they
would break TREC runs), strings or JSON integers only; commas and other punctuation are fine.

Errors name the file and line. Duplicate ids and empty texts are errors unless asked otherwise;
a source that yields no record (an empty file, only a header, every text empty) is an error.
Reading keeps 8 bytes per record, whatever the corpus size: ids are remembered as 64-bit hashes
(:mod:`splare_lucene.idset`), checked a window of records ahead of what is yielded.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Iterator

from .errors import InputError
from .textio import check_id, iter_jsonl, iter_lines, json_kind
from .types import Document, Query

__all__ = ["read_documents", "read_queries", "iter_jsonl", "record_id", "text_field", "ID_KEYS", "QUERY_TEXT_KEYS"]

logger = logging.getLogger(__name__)

ID_KEYS = ("_id", "id", "docid", "query_id", "qid")
QUERY_TEXT_KEYS = ("text", "query", "contents")


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


def record_id(obj: dict, path: Path, line: int) -> str:
    """The record's id: the first of ID_KEYS present and not null or blank, checked by check_id."""
    for key in ID_KEYS:
        if key in obj:
            value = obj[key]
            if value is None or (isinstance(value, str) and not value.strip()):
                break
            return check_id(value, path, line, what=f"id ({key!r})")
    raise InputError(f"record has no id; expected one of the keys {list(ID_KEYS)}", str(path), line)


def text_field(obj: dict, key: str, path: str | Path, line: int | None) -> str:
    """``obj[key]`` as text: a string, a number (its decimal text) or null/absent (""); anything
    else (an array, an object, a boolean) is an InputError, never ``str()``-ed into the text."""
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"field {key!r} must be a string; got {json_kind(value)} {value!r:.60}",
                     str(path), line)


def _document_text(obj: dict, path: Path, line: int) -> str:
    if "contents" in obj:
        return text_field(obj, "contents", path, line)
    if "text" in obj or "title" in obj:
        title = text_field(obj, "title", path, line).strip()
        text = text_field(obj, "text", path, line).strip()
        return f"{title} {text}".strip() if title else text
    raise InputError("record has no text; expected 'contents' (Pyserini) or 'title'/'text' (BEIR)",
                     str(path), line)


def _query_text(obj: dict, path: Path, line: int) -> str:
    for key in QUERY_TEXT_KEYS:
        if key in obj:
            return text_field(obj, key, path, line)
    raise InputError(f"query has no text; expected one of the keys {list(QUERY_TEXT_KEYS)}", str(path), line)


TSV_HEADER_IDS = ("id", "_id", "docid", "doc_id", "qid", "query_id", "query-id")


def _tsv_records(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line, id, text) per non-blank line of ``id<TAB>text`` (the text may hold more TABs); a
    first line whose id is a header name (``id``, ``qid``, ...) is skipped."""
    first = True
    for number, raw in iter_lines(path):
        if not raw.strip():
            continue
        parts = raw.split("\t")
        if len(parts) < 2:
            hint = " (this line has spaces but no TAB)" if " " in raw.strip() else ""
            raise InputError(f"expected `id<TAB>text`{hint}", str(path), number)
        header, first = first and parts[0].lower() in TSV_HEADER_IDS, False
        if header:
            continue
        yield number, check_id(parts[0], path, number), "\t".join(parts[1:])


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
        what = "document id" if kind == "documents" else "query id"
        for rid, text in _irds_records(str(target), kind):
            # datasets read through ir_datasets (local BEIR folders too) obey the same id rules
            yield check_id(rid, f"irds:{target}", None, what=what), text, f"irds:{target}", None
    elif fmt == "tsv":
        for line, rid, text in _tsv_records(target):
            yield rid, text, str(target), line
    else:
        text_of = _document_text if kind == "documents" else _query_text
        for line, obj in iter_jsonl(target):
            yield record_id(obj, target, line), text_of(obj, target, line), str(target), line


_READ_AHEAD = 512  # records read ahead, so that their ids are checked as one numpy batch


def _validated(source: str, kind: str, allow_empty: bool, cls):
    """Records of ``source`` as ``cls`` (Document or Query): duplicate ids refused, empty texts
    refused or (``allow_empty``) skipped; a source that yields no record at all is refused too
    (InputError naming it and why), since an empty run, index or encoding is never what was meant.

    Memory stays flat with the source's size but for 8 bytes per record: ids are remembered as
    64-bit hashes (:class:`~splare_lucene.idset.IdHashSet`; a dict of the ids themselves cost
    about 100 bytes each: benchmarks/reader_ids.py), checked :data:`_READ_AHEAD` records at a time before any of them is
    yielded. A hash seen before is confirmed by re-reading the source up to that record: a true
    repeat is refused naming the first line, a hash collision of two distinct ids (about
    ``n^2 / 2^65``) is let through. Errors come in stream order, as if each record were checked
    alone."""
    from .idset import IdHashSet, id_digest

    ids = IdHashSet()
    count = skipped = 0
    records = iter(_records(source, kind))
    while True:
        batch, error = [], None
        try:  # a bad record is raised after the good ones before it are yielded, as without read-ahead
            batch.extend(itertools.islice(records, _READ_AHEAD))
        except Exception as exc:
            error = exc
        if not batch and error is None:
            break
        again = ids.add([id_digest(rid) for rid, *_ in batch])
        for (rid, text, where, line), maybe_repeat in zip(batch, again):
            if maybe_repeat:
                found, first_line = _first_occurrence(source, kind, rid, count)
                if found:
                    first = f" (first at line {first_line})" if first_line else ""
                    raise InputError(f"duplicate id {rid!r}{first}; every record needs its own id: "
                                     "remove the repeated record or give it another id", where, line)
            count += 1
            if not text.strip():
                if allow_empty:
                    skipped += 1
                    continue
                raise InputError(f"empty text for id {rid!r}; fix the record or pass --allow-empty "
                                 "to skip such records", where, line)
            yield cls(rid, text)
        if error is not None:
            raise error
    if not count:
        why = ("the dataset has none" if _resolve(str(source), kind)[0] == "irds" else
               "the file is empty, or holds only blank lines or a header line")
        raise InputError(f"no {kind}: {why}; give a source with at least one record", path=str(source))
    if skipped == count:
        raise InputError(f"no {kind}: every text is empty ({skipped} records, all skipped by "
                         "--allow-empty); give a source with at least one non-empty text", path=str(source))
    if skipped:
        logger.warning("skipped %d %s with empty text in %s", skipped, kind, source)


def _first_occurrence(source: str, kind: str, rid: str, before: int) -> tuple[bool, int | None]:
    """Whether id ``rid`` is among the first ``before`` records of ``source``, and its line there
    (None for ir_datasets). Re-reads the source: called only when a hash says "maybe seen"."""
    for rid_, _, _, line in itertools.islice(_records(source, kind), before):
        if rid_ == rid:
            return True, line
    return False, None


def read_documents(source: str, allow_empty: bool = False) -> Iterator[Document]:
    """Stream validated documents from ``source`` (see module docstring)."""
    return _validated(source, "documents", allow_empty, Document)


def read_queries(source: str, allow_empty: bool = False) -> Iterator[Query]:
    """Stream validated queries from ``source`` (see module docstring)."""
    return _validated(source, "queries", allow_empty, Query)
