"""Pre-encoded query files: queries -> quantized vectors -> files that Anserini's and Pyserini's
own command lines search with, no Python-side encoding at search time.

Two formats (``FORMATS``):

* ``anserini-tsv``: ``qid<TAB>f12 f12 f12 f7 ...``, each pseudo-token repeated ``impact`` times
  (as in Anserini's SPLADE regressions), for ``SearchCollection -impact -pretokenized
  -topicReader TsvString``. Its bag-of-words query scores ``sum_t count_t x impact_t``, the same
  integer dot product as ``splare-lucene search``.
* ``pyserini-jsonl``: ``{"id", "title", "contents", "vector": {token: int}}`` per line, for
  ``python -m pyserini.search.lucene --impact --encoder FILE --topics FILE --min-idf -1``.
  Pyserini's ``CachedDataQueryEncoder`` reads ``contents`` and ``vector``; ``title`` (the same
  text) makes the file its own topics file too (Anserini's ``JsonStringTopicReader`` takes the id
  from ``id`` and Pyserini's query iterator reads the text from ``title``).

Queries are encoded once per distinct text, in the batches ``splare-lucene search`` uses for the
same ``batch_size``, so the vectors are identical to what it searches with. The output is written
to a temporary file and renamed into place.

Limits of the consumers, checked here:

* ``CachedDataQueryEncoder`` keys vectors by ``contents.strip()``. Queries with the same text but
  different ids are fine (the same text has the same vector); two different texts equal after
  ``strip()`` (``"a"`` and ``"a "``) would share one entry and are refused.
* Anserini's ``TsvStringTopicReader`` splits each (trimmed) line at tabs and reads field 2, so one
  query with an empty vector (``qid<TAB>``) makes ``SearchCollection`` (1.7.1) print "Unable to
  load topic reader" and write no run, with exit status 0. Such queries (which match nothing
  anyway) are left out of the TSV and logged by id.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .errors import ConfigError, InputError
from .outputs import check_output_file, temp_path_beside
from .vocab import LUCENE_DEFAULT_MAX_CLAUSES

if TYPE_CHECKING:  # keeps this module light: the CLI imports FORMATS while building its parser
    from .types import Query

logger = logging.getLogger(__name__)

FORMATS = ("anserini-tsv", "pyserini-jsonl")
MAX_LISTED_IDS = 20  # ids named in messages; counts are always exact


@dataclass
class QueryFileSummary:
    format: str
    queries: int = 0          # queries read
    written: int = 0          # lines written
    distinct_texts: int = 0   # forward passes needed (one per distinct text)
    empty_ids: list[str] = field(default_factory=list)  # queries whose quantized vector is empty

    def describe(self, path: str | os.PathLike) -> str:
        text = (f"wrote {self.written} of {self.queries} queries ({self.distinct_texts} distinct texts) "
                f"to {path} ({self.format})")
        if self.empty_ids:
            shown = ", ".join(self.empty_ids[:MAX_LISTED_IDS])
            more = ", ..." if len(self.empty_ids) > MAX_LISTED_IDS else ""
            verb = "left out" if self.format == "anserini-tsv" else "written with an empty vector"
            text += f"; {len(self.empty_ids)} with empty vectors {verb}: {shown}{more}"
        return text


def anserini_tsv_line(query_id: str, terms: dict[str, int]) -> str:
    """``qid<TAB>tok tok tok ...``: each pseudo-token repeated ``impact`` times."""
    return query_id + "\t" + " ".join(" ".join([token] * weight) for token, weight in terms.items()) + "\n"


def pyserini_jsonl_line(query_id: str, text: str, terms: dict[str, int]) -> str:
    # ASCII JSON: CachedDataQueryEncoder opens the file with the platform's default encoding.
    return json.dumps({"id": query_id, "title": text, "contents": text, "vector": terms}) + "\n"


def _check_ids(queries: list[Query]) -> None:
    for q in queries:
        if not q.id.strip() or any(c in q.id for c in "\t\r\n") or q.id != q.id.strip():
            raise InputError(f"query id {q.id!r} is empty or has tabs, newlines or surrounding spaces, "
                             "which Anserini's topic readers cannot keep; rename it")


def _check_strip_collisions(texts: Iterable[str]) -> None:
    """Pyserini's CachedDataQueryEncoder keys by ``text.strip()``: refuse ambiguous keys."""
    by_key: dict[str, str] = {}
    for text in texts:
        key = text.strip()
        if key in by_key and by_key[key] != text:
            raise InputError(f"queries {by_key[key]!r} and {text!r} differ only in surrounding whitespace; "
                             "Pyserini's CachedDataQueryEncoder keys vectors by the stripped text and would "
                             "give both the same vector. Strip the query texts, or use --format anserini-tsv")
        by_key[key] = text


def write_query_file(encoder, queries: Iterable[Query], output: str | os.PathLike, fmt: str, *,
                     batch_size: int = 16, overwrite: bool = False, progress: bool = True) -> QueryFileSummary:
    """Encode ``queries`` with ``encoder`` (a SplareEncoder) and write them in format ``fmt``."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {list(FORMATS)}; got {fmt!r}")
    output = Path(output)
    if output.exists() and not overwrite:
        raise ConfigError(f"output {output} already exists; pass --overwrite to replace it")
    check_output_file(output, what="output")  # a directory, an unwritable place: before encoding
    queries = list(queries)
    _check_ids(queries)
    texts = list(dict.fromkeys(q.text for q in queries))  # the order SplareQueryEncoder.prime uses
    if fmt == "pyserini-jsonl":
        _check_strip_collisions(texts)

    terms: dict[str, dict[str, int]] = {}
    for text, vector in encoder.encode_stream(texts, kind="query", batch_size=batch_size,
                                              progress=progress, total=len(texts)):
        terms[text] = encoder.terms(vector)

    summary = QueryFileSummary(fmt, queries=len(queries), distinct_texts=len(texts))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        tmp = temp_path_beside(output)  # a fresh name: never a user's `<output>.tmp`
        with tmp.open("w", encoding="utf-8") as f:
            for q in queries:
                vector = terms[q.text]
                if not vector:
                    summary.empty_ids.append(q.id)
                    if fmt == "anserini-tsv":
                        continue  # `qid<TAB>` crashes TsvStringTopicReader; it would match nothing
                if fmt == "anserini-tsv":
                    f.write(anserini_tsv_line(q.id, vector))
                else:
                    f.write(pyserini_jsonl_line(q.id, q.text, vector))
                summary.written += 1
        os.replace(tmp, output)
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    too_long = [q.id for q in queries if len(terms[q.text]) > LUCENE_DEFAULT_MAX_CLAUSES]
    if too_long:
        # Anserini's SearchCollection and Pyserini's search CLI run in their own JVM with Lucene's
        # default clause limit, which splare-lucene's own searcher raises (search.py).
        logger.warning("%d queries have more than %d distinct terms; Anserini's SearchCollection and "
                       "Pyserini's search CLI refuse them (Lucene's maxClauseCount). Use `splare-lucene "
                       "search`, or assemble the model with a query top-k <= %d (e.g. --query-top-k 40): %s",
                       len(too_long), LUCENE_DEFAULT_MAX_CLAUSES, LUCENE_DEFAULT_MAX_CLAUSES,
                       ", ".join(too_long[:MAX_LISTED_IDS]))
    if summary.empty_ids:
        logger.warning("%d queries have empty vectors (no latent survives quantization)%s: %s",
                       len(summary.empty_ids), " and are left out" if fmt == "anserini-tsv" else "",
                       ", ".join(summary.empty_ids[:MAX_LISTED_IDS]))
    return summary
