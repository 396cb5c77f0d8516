"""Query side: a Pyserini ``QueryEncoder`` emitting integer impacts, and batch search.

Importing this module starts the JVM (via :func:`splare_lucene.java.start_jvm`) because
``SplareQueryEncoder`` subclasses ``pyserini.encode.QueryEncoder``; ``splare_lucene`` itself
imports it only when ``SplareQueryEncoder`` is first used.

Drop-in use::

    from pyserini.search.lucene import LuceneImpactSearcher
    from splare_lucene import SplareQueryEncoder
    searcher = LuceneImpactSearcher(index_dir, SplareQueryEncoder.from_pretrained("default"),
                                    min_idf=-1)

``min_idf=-1``: LuceneImpactSearcher drops every query term whose idf <= min_idf (default 0),
i.e. latents present in every document, silently. SAE latents like that exist and matter, so
:func:`open_searcher` always keeps them.

Query length: Anserini turns each query term into one clause of a Lucene ``BooleanQuery``, and
Lucene refuses more than ``IndexSearcher.getMaxClauseCount()`` clauses (1,024 by default:
``IndexSearcher$TooManyClauses``). A model without a query top-k (untrained SPLARE vectors have
thousands of non-zeros) exceeds that, so :class:`SplareQueryEncoder` raises the limit to the
model's width when it is created; every path that searches with it (:func:`open_searcher`,
:func:`batch_search`, Pyserini's ``LuceneImpactSearcher``) then takes queries of any length.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

from .java import start_jvm

start_jvm()

from pyserini.encode import QueryEncoder  # noqa: E402  (after the JVM is configured)

from .errors import SearchError  # noqa: E402  (re-exported: splare_lucene.search.SearchError)
from .index import check_index_matches  # noqa: E402
from .ranking import rank_hits, write_trec_run  # noqa: E402,F401  (write_trec_run re-exported)
from .types import Query, ScoredDoc  # noqa: E402

logger = logging.getLogger(__name__)

MIN_IDF_KEEP_ALL = -1.0  # idf = log(N / df) >= 0, so every indexed query term is kept
MAX_HITS_PER_CALL = 50_000  # hits materialised by one Java batch_search call

_clause_limit: int | None = None  # the JVM's limit as last read or set here (None: not read yet)


def max_clause_count() -> int:
    """Lucene's JVM-wide limit on the clauses of one BooleanQuery (query terms, here)."""
    from jnius import autoclass

    return int(autoclass("org.apache.lucene.search.IndexSearcher").getMaxClauseCount())


def ensure_max_clauses(n_terms: int) -> int:
    """Raise Lucene's clause limit to at least ``n_terms``; returns the limit now in force.

    The limit is a static of ``org.apache.lucene.search.IndexSearcher`` (Lucene 9.9.1, the
    version Anserini 1.7.1 bundles): it applies to every searcher in this JVM, so it is only ever
    raised here, never lowered (another searcher may rely on the higher value); the value last
    read or set is cached, so code that lowers it behind this module's back is not noticed until
    a search fails (with a :class:`SearchError` that says so). Lucene keeps the
    limit against runaway wildcard/fuzzy expansions; a query of explicit impact terms costs one
    posting-list cursor per term, which is what a long query asks for.
    """
    global _clause_limit
    if _clause_limit is not None and n_terms <= _clause_limit:
        return _clause_limit
    from jnius import autoclass

    searcher_class = autoclass("org.apache.lucene.search.IndexSearcher")
    current = int(searcher_class.getMaxClauseCount())
    if n_terms > current:
        searcher_class.setMaxClauseCount(int(n_terms))
        logger.info("raised Lucene's maxClauseCount from %d to %d (JVM-wide) so that queries of "
                    "up to %d terms search", current, n_terms, n_terms)
        current = int(n_terms)
    _clause_limit = current
    return current


class SplareQueryEncoder(QueryEncoder):
    """``encode(text) -> {pseudo-token: int impact}`` with the model's quantization.

    Batch-encoded queries are memoised (:meth:`prime`), so Pyserini's one-query-at-a-time
    ``batch_search`` costs one batched forward pass per batch instead of one per query.
    """

    def __init__(self, encoder, batch_size: int = 32):
        if batch_size < 1:
            from .errors import ConfigError

            raise ConfigError(f"batch_size must be >= 1 (queries per forward pass); got {batch_size}")
        super().__init__()
        self.encoder = encoder
        self.has_model = True
        self.batch_size = batch_size
        self._memo: dict[str, dict[str, int]] = {}
        # A query has at most d_sae terms: with this limit no query of the model can hit Lucene's
        # TooManyClauses, whichever searcher (ours or a plain LuceneImpactSearcher) runs it.
        ensure_max_clauses(int(encoder.d_sae))

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "default", *, device: str = "auto",
                        dtype: str = "float32", batch_size: int = 32) -> "SplareQueryEncoder":
        from .encoder import SplareEncoder

        return cls(SplareEncoder.from_pretrained(name_or_path, device=device, dtype=dtype), batch_size)

    def prime(self, texts: Iterable[str], progress: bool = False) -> None:
        """Encode many queries in length-sorted batches and remember them."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        for text, vector in self.encoder.encode_stream(todo, kind="query", batch_size=self.batch_size,
                                                       progress=progress, total=len(todo)):
            self._memo[text] = self.encoder.terms(vector)

    def encode(self, text: str, **kwargs) -> dict[str, int]:
        """``text`` -> {pseudo-token: integer impact}; checks Lucene's clause limit covers it."""
        terms = self._memo.get(text)
        if terms is None:
            terms = self.encoder.terms(self.encoder.encode([text], kind="query")[0])
        ensure_max_clauses(len(terms))  # an int comparison once the limit covers the model's width
        return terms

    def clear(self) -> None:
        self._memo.clear()


def open_searcher(index_dir: str | os.PathLike, query_encoder: SplareQueryEncoder):
    """A LuceneImpactSearcher that keeps every query term; refuses a mismatched model."""
    from pyserini.search.lucene import LuceneImpactSearcher

    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        from .errors import ConfigError

        if index_dir.exists():  # "does not exist" would mislead: it is there, but not a folder
            raise ConfigError(f"index {index_dir} is a file, not an index directory; give the folder "
                              "that `splare-lucene index --index DIR` (or Anserini's IndexCollection) built")
        raise ConfigError(f"index {index_dir} does not exist; build it with `splare-lucene index`")
    enc = query_encoder.encoder
    check_index_matches(index_dir, enc.config.index_signature(), enc.fingerprint)
    try:
        return LuceneImpactSearcher(str(index_dir), query_encoder, min_idf=MIN_IDF_KEEP_ALL)
    except Exception as exc:  # jnius.JavaException: Lucene could not open the directory as an index
        if type(exc).__name__ != "JavaException":
            raise
        raise SearchError(f"Lucene cannot open index {index_dir}: "
                          f"{_first_line(exc).removeprefix('JVM exception occurred: ').rstrip('.')}. Is it an index "
                          "built by `splare-lucene index` (or Anserini's IndexCollection), complete and "
                          "undamaged? Rebuild it (`splare-lucene index ... --overwrite`)") from exc


def batch_search(searcher, queries: Sequence[Query], *, k: int = 1000, threads: int = 1,
                 progress: bool = True) -> dict[str, list[ScoredDoc]]:
    """Search every query; returns {query id: ranked hits}. Raises ConfigError when ``k`` or
    ``threads`` is below 1 (Lucene's own "numHits must be > 0" would name no option)."""
    if k < 1 or threads < 1:
        from .errors import ConfigError

        raise ConfigError(f"k (hits per query) and threads must be >= 1; got k={k}, threads={threads}")
    encoder: SplareQueryEncoder = searcher.query_encoder
    encoder.prime([q.text for q in queries], progress=progress)
    out: dict[str, list[ScoredDoc]] = {}
    # Anserini's results carry each hit's stored Lucene document (with -storeRaw, the text and the
    # whole vector): 1,000 queries x 1,000 hits exhausted a 6 GB JVM heap. Bound hits per call.
    step = max(1, min(1000, MAX_HITS_PER_CALL // max(1, k)))
    for s in range(0, len(queries), step):
        chunk = queries[s:s + step]
        try:
            hits = searcher.batch_search([q.text for q in chunk], [q.id for q in chunk], k=k, threads=threads)
        except Exception as exc:  # jnius.JavaException
            # Anserini 1.7.1's SimpleImpactSearcher.batch_search runs each query as a task of a
            # ThreadPoolExecutor and never looks at the tasks' own exceptions: it only compares
            # the queries submitted with getCompletedTaskCount() and throws "queryCount = N is not
            # equal to completedTaskCount = M" when a task failed (a worker died of an
            # OutOfMemoryError before hits were bounded per call; a query over Lucene's clause
            # limit). So the message says nothing about the cause: search one query at a time
            # (same query construction and min_idf filter, same hits), which either succeeds or
            # raises the real error for the query that fails.
            if "completedTaskCount" not in str(exc):
                raise
            logger.warning("Anserini's threaded batch search failed on a batch of %d queries (%s); "
                           "searching them one at a time to recover or to find the failing query",
                           len(chunk), _first_line(exc))
            hits = {q.id: _search_one(searcher, q, k) for q in chunk}
        for q in chunk:
            # Lucene orders tied hits by internal docid; the toolkit's one rule (ranking.py) instead
            out[q.id] = rank_hits(ScoredDoc(q.id, h.docid, float(h.score), 0) for h in hits.get(q.id, []))
    encoder.clear()
    return out


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _search_one(searcher, query: Query, k: int):
    """``searcher.search`` for one query; a Java failure is raised as a :class:`SearchError`
    naming the query (the Java stack trace stays in the chained exception)."""
    try:
        return searcher.search(query.text, k=k)
    except Exception as exc:  # jnius.JavaException and anything the query encoder raises
        message = _first_line(exc)
        hint = ""
        if "TooManyClauses" in message:
            hint = (f" ({len(searcher.query_encoder.encode(query.text))} query terms over Lucene's "
                    f"clause limit of {max_clause_count()}; SplareQueryEncoder raises it to the "
                    "model's width: was the limit lowered afterwards? Or use a query top-k: "
                    "`splare-lucene assemble --query-top-k 40`)")
        raise SearchError(f"searching query {query.id!r} failed: {message}{hint}") from exc


def search_hits(searcher, query: Query, k: int = 10) -> list[ScoredDoc]:
    """One query's hits, ranked by the toolkit's rule (:mod:`splare_lucene.ranking`); a Java
    failure is raised as a :class:`SearchError` naming the query. Raises ConfigError when ``k``
    is below 1."""
    if k < 1:
        from .errors import ConfigError

        raise ConfigError(f"k (hits per query) must be >= 1; got {k}")
    return rank_hits(ScoredDoc(query.id, h.docid, float(h.score), 0) for h in _search_one(searcher, query, k))


def hit_text(searcher, doc_id: str) -> str:
    """The document text stored with ``-storeRaw`` (empty when the index has no raw docs)."""
    doc = searcher.doc(doc_id)
    raw = doc.raw() if doc is not None else None
    if not raw:
        return ""
    try:
        return json.loads(raw).get("contents", "")
    except json.JSONDecodeError:
        return raw
