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

The toolkit's own search path (:class:`ImpactSearcher`, what :func:`open_searcher` returns) gives
exactly the hits and scores of Pyserini's ``LuceneImpactSearcher(min_idf=-1)`` but does only the
search. Per query, Pyserini 1.6.0 / Anserini 1.7.1 also (profiled in
``benchmarks/search_latency.py --profile``): walk every term of the index in Python when the
searcher opens (``_compute_idf``, for a ``min_idf`` filter that keeps every indexed term at -1);
box each weight into a ``java.lang.Integer``, copy the map to floats in Java, and build a string
with every term repeated ``weight`` times and run it through a WhitespaceAnalyzer
(``SimpleImpactSearcher.encode_with_onnx`` + ``AnalyzerUtils.analyze``: thousands of tokens for
SPLARE impacts, used only for rerankers that never run here); load every hit's whole stored
document (with ``-storeRaw``: its text and vector) to read its id; wrap every hit in a
``ScoredDoc`` Java object that Python then reads field by field (one wrapper and two JNI calls per
hit). :class:`ImpactSearcher` builds the same Lucene query with the same generator, runs the same
sorted search and the same score-tie adjustment (:func:`anserini_tie_scores`), and reads ids
(from the sort's id values), scores and document numbers back as three arrays.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence

from .java import start_jvm

start_jvm()

from pyserini.encode import QueryEncoder  # noqa: E402  (after the JVM is configured)

from .errors import ConfigError, SearchError  # noqa: E402  (SearchError re-exported: splare_lucene.search.SearchError)
from .index import check_index_matches  # noqa: E402
from .ranking import rank_hits, write_trec_run  # noqa: E402,F401  (write_trec_run re-exported)
from .types import Query, ScoredDoc  # noqa: E402

logger = logging.getLogger(__name__)

MIN_IDF_KEEP_ALL = -1.0  # idf = log(N / df) >= 0, so every indexed query term is kept
MAX_HITS_PER_CALL = 50_000  # hits materialised by one Java batch_search call

_clause_limit: int | None = None  # the JVM's limit as last read or set here (None: not read yet)
ID_FIELD = "id"  # Anserini's Constants.ID: stored, and a SortedDocValues field (the tie sort)
CONTENTS_FIELD = "contents"  # Anserini's Constants.CONTENTS: the impact postings


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


class ImpactHit(NamedTuple):
    """One hit of :class:`ImpactSearcher`: the fields of Pyserini's hit objects that a run needs."""

    docid: str  # the collection's document id (Anserini's ``id`` field)
    score: float  # float32 impact score after Anserini's tie adjustment (:func:`anserini_tie_scores`)
    lucene_docid: int  # Lucene's internal document number (changes when the index is rebuilt)


def anserini_tie_scores(scores: Sequence[float]) -> list[float]:
    """Anserini 1.7.1's ``ScoreTiesAdjusterReranker`` on one query's scores, in float32 as Java does.

    ``scores``: float32 values, in the order of Lucene's sort (score descending, then id ascending).
    Each score is rounded to 1e-4 (``(float) (Math.round(s * 1e4d) / 1e4d)``), then a score within
    1e-4 of the (already adjusted) score before it is lowered by ``1e-6f * dup`` (``dup``: its
    place in the run of ties). Reproduced so that :class:`ImpactSearcher` returns the very scores
    of Pyserini's ``LuceneImpactSearcher``. In float32 the step vanishes above a score of about 32,
    which is why :func:`~splare_lucene.ranking.rank_hits` spreads ties again afterwards.
    """
    import numpy as np

    x = np.asarray(scores, dtype=np.float64) * 1e4
    rounded = np.floor(x)
    rounded += (x - rounded) >= 0.5  # Java's Math.round: floor(x + 0.5) without its double rounding
    adjusted = (rounded / 1e4).astype(np.float32)
    n = adjusted.size
    if n < 2:
        return adjusted.tolist()
    tie_gap = np.float32(1e-4)
    step = np.float32(1e-6)
    # Only a hit whose unadjusted gap to the hit before it is small can be a tie: the hit before it
    # was lowered by at most 1e-6 * n. Elsewhere dup is 0 and the score is the rounded one.
    gaps = adjusted[:-1] - adjusted[1:]
    candidates = np.flatnonzero(gaps <= np.float32(2e-4 + 1e-6 * n)) + 1
    dup = 0
    previous = -2
    for i in candidates.tolist():
        if i != previous + 1:
            dup = 0  # the hit before i was no tie, so its dup was reset
        previous = i
        if adjusted[i - 1] - adjusted[i] > tie_gap:
            dup = 0
        else:
            dup += 1
            adjusted[i] = adjusted[i] - step * np.float32(dup)
    return adjusted.tolist()


class _TopDocsReader:
    """Builds impact queries from two arrays, and reads a sorted search's ``TopFieldDocs`` back as
    three arrays, without stored documents.

    Why: pyjnius turns every element of a Java object array into a Python wrapper (about 14 us
    each, measured: 14 ms per 1,000 hits) before Python can read a field, and Anserini's only bulk
    reader, ``ScoredDocs.fromTopDocs``, loads every hit's whole stored document (with ``-storeRaw``:
    text and vector; about 50 ms per 1,000 hits) just to read its id. The hits' ids are already in
    the search results: the tie sort on the ``id`` doc values puts each one in
    ``FieldDoc.fields[1]`` (a ``BytesRef``). So three ``java.lang.invoke`` method-handle loops,
    composed here from public JDK API (no Java source to compile), copy ``doc``, ``score`` and that
    id of every hit into an ``int[]``, a ``float[]`` and a ``String[]``, which pyjnius converts in
    bulk: one JNI call each per query.
    """

    def __init__(self):
        from jnius import autoclass

        handles = autoclass("java.lang.invoke.MethodHandles")
        method_type = autoclass("java.lang.invoke.MethodType").methodType
        lookup = handles.publicLookup()
        cls = autoclass("java.lang.Class").forName
        top_docs, score_doc = cls("org.apache.lucene.search.TopDocs"), cls("org.apache.lucene.search.ScoreDoc")
        score_docs, objects = cls("[Lorg.apache.lucene.search.ScoreDoc;"), cls("[Ljava.lang.Object;")
        java_int, java_float = autoclass("java.lang.Integer").TYPE, autoclass("java.lang.Float").TYPE
        void, string, obj = autoclass("java.lang.Void").TYPE, cls("java.lang.String"), cls("java.lang.Object")

        hits = lookup.findGetter(top_docs, "scoreDocs", score_docs)                   # (TopDocs)ScoreDoc[]
        count = handles.filterReturnValue(hits, handles.arrayLength(score_docs))      # (TopDocs)int
        hit_at = handles.filterArguments(handles.arrayElementGetter(score_docs), 0, hits)  # (TopDocs, int)ScoreDoc
        # FieldDoc.fields[1] (the id's BytesRef; [0] is the score) -> String
        fields = lookup.findGetter(cls("org.apache.lucene.search.FieldDoc"), "fields", objects) \
            .asType(method_type(objects, score_doc))
        second = handles.insertArguments(handles.arrayElementGetter(objects), 1, autoclass("java.lang.Integer")(1))
        utf8 = lookup.findVirtual(cls("org.apache.lucene.util.BytesRef"), "utf8ToString", method_type(string)) \
            .asType(method_type(string, obj))
        id_of = handles.filterReturnValue(handles.filterReturnValue(fields, second), utf8)  # (ScoreDoc)String

        def collect(value_of, array_class):
            """(TopDocs)T[]: ``out[i] = value_of(scoreDocs[i])`` for every hit."""
            value = handles.filterReturnValue(hit_at, value_of)                         # (TopDocs, int)T
            store = handles.collectArguments(handles.arrayElementSetter(array_class), 2, value)
            store = handles.permuteArguments(store, method_type(void, array_class, java_int, top_docs), 0, 1, 2, 1)
            body = handles.foldArguments(handles.dropArguments(handles.identity(array_class), 1, java_int, top_docs),
                                         store)                                         # (T[], int, TopDocs)T[]
            new_array = handles.filterReturnValue(count, handles.arrayConstructor(array_class))
            return handles.countedLoop(count, new_array, body)

        self._docs = collect(lookup.findGetter(score_doc, "doc", java_int), cls("[I"))
        self._scores = collect(lookup.findGetter(score_doc, "score", java_float), cls("[F"))
        self._ids = collect(id_of, cls("[Ljava.lang.String;"))
        # invokeWithArguments(List): pyjnius would pass a Python list to its Object... overload
        # wrapped in a second array
        self._args = autoclass("java.util.Collections").singletonList

        # The query, built the way Anserini's BagOfWordsQueryGenerator builds it (a BooleanQuery
        # of BoostQuery(TermQuery(contents:term), weight) SHOULD clauses) from a String[] of terms
        # and a float[] of weights that pyjnius passes in bulk: a java.util.HashMap for the
        # generator costs one JNI call per term (about 12 us each; 0.4 ms for a 40-term query).
        float_array, query = cls("[F"), cls("org.apache.lucene.search.Query")
        builder = cls("org.apache.lucene.search.BooleanQuery$Builder")
        occur = cls("org.apache.lucene.search.BooleanClause$Occur")
        term = handles.insertArguments(lookup.findConstructor(cls("org.apache.lucene.index.Term"),
                                                              method_type(void, string, string)), 0, CONTENTS_FIELD)
        term_query = handles.filterReturnValue(term, lookup.findConstructor(
            cls("org.apache.lucene.search.TermQuery"), method_type(void, cls("org.apache.lucene.index.Term")))
            .asType(method_type(query, cls("org.apache.lucene.index.Term"))))          # (String)Query
        clause = handles.filterArguments(lookup.findConstructor(
            cls("org.apache.lucene.search.BoostQuery"), method_type(void, query, java_float)), 0, term_query)
        clause = clause.asType(method_type(query, obj, java_float))                    # (Object, float)Query
        clause = handles.collectArguments(handles.collectArguments(clause, 0, handles.arrayElementGetter(objects)),
                                          2, handles.arrayElementGetter(float_array))  # (t[], i, w[], i)Query
        clause = handles.permuteArguments(clause, method_type(query, objects, float_array, java_int), 0, 2, 1, 2)
        add = handles.insertArguments(lookup.findVirtual(builder, "add", method_type(builder, query, occur)), 2,
                                      autoclass("org.apache.lucene.search.BooleanClause$Occur").SHOULD)
        body = handles.collectArguments(add, 1, clause)                                # (b, t[], w[], i)Builder
        body = handles.permuteArguments(body, method_type(builder, builder, java_int, objects, float_array),
                                        0, 2, 3, 1)                                    # (b, i, t[], w[])Builder
        loop = handles.countedLoop(handles.dropArguments(handles.arrayLength(objects), 1, float_array),
                                   handles.dropArguments(lookup.findConstructor(builder, method_type(void)), 0,
                                                         objects, float_array), body)
        self._query = handles.filterReturnValue(loop, lookup.findVirtual(
            builder, "build", method_type(cls("org.apache.lucene.search.BooleanQuery"))))  # (t[], w[])Query

    def query(self, terms: list[str], weights: list[float]):
        """Anserini's impact query for ``terms`` with ``weights`` (same length, not empty)."""
        # two Python lists as the varargs of invokeWithArguments: pyjnius makes them a String[]
        # (accepted as Object[]) and a float[]
        return self._query.invokeWithArguments(terms, weights)

    def read(self, top_docs) -> tuple[list[str], list[float], list[int]]:
        """(ids, float32 scores, Lucene document numbers) of a search sorted by score then id."""
        args = self._args(top_docs)
        return (list(self._ids.invokeWithArguments(args)), list(self._scores.invokeWithArguments(args)),
                list(self._docs.invokeWithArguments(args)))


_top_docs_reader: _TopDocsReader | None = None


def _reader() -> _TopDocsReader:
    global _top_docs_reader
    if _top_docs_reader is None:  # built once per process (the JVM is one per process)
        _top_docs_reader = _TopDocsReader()
    return _top_docs_reader


class ImpactSearcher:
    """Exact search of an Anserini impact index: the hits and scores of Pyserini's
    ``LuceneImpactSearcher(index_dir, query_encoder, min_idf=-1)``, doing only the search.

    Per query: the query Anserini's ``BagOfWordsQueryGenerator`` builds (a ``BooleanQuery`` of
    ``BoostQuery(TermQuery(contents:term), weight)`` SHOULD clauses; built from two arrays by
    :class:`_TopDocsReader`), Lucene's ``IndexSearcher`` with Anserini's ``ImpactSimilarity``
    (score = sum of query weight x stored impact, in float32) sorted by score then the ``id`` doc
    values (Anserini's tie order, which also decides which tied documents make the top ``k``), and
    the hits read back as arrays (:class:`_TopDocsReader`: the ids come from the sort, no stored
    document is loaded). An index written by Lucene 8 is searched unsorted and unadjusted, as
    Anserini does for it (its ids then come from the stored documents).

    Same interface as the Pyserini searcher where the toolkit uses it: ``query_encoder``,
    :meth:`search`, :meth:`batch_search`, :meth:`doc`, :meth:`close`, ``num_docs``; plus
    :meth:`search_vector` for queries encoded beforehand. ``threads`` of :meth:`batch_search`
    (above 1) lets Lucene search an index's segment slices in parallel (a ``ForkJoinPool``, whose
    daemon threads never keep the JVM alive); results do not depend on it.

    Raises (when opening) whatever ``DirectoryReader.open`` raises (a ``jnius.JavaException``);
    :func:`open_searcher` turns that into a :class:`SearchError` with the fix.
    """

    def __init__(self, index_dir: str | os.PathLike, query_encoder: "SplareQueryEncoder | None" = None):
        from jnius import autoclass, cast

        self.index_dir = Path(index_dir)
        self.query_encoder = query_encoder
        self._cast = cast
        self._scored_docs = autoclass("io.anserini.search.ScoredDocs")
        self._similarity = autoclass("io.anserini.search.similarity.ImpactSimilarity")()
        directory = autoclass("org.apache.lucene.store.FSDirectory").open(
            autoclass("java.nio.file.Paths").get(str(self.index_dir)))
        self._reader = autoclass("org.apache.lucene.index.DirectoryReader").open(directory)
        # Anserini's check (SimpleImpactSearcher's constructor, anserini#1952): a Lucene 8 index has
        # no usable id doc values, so it is searched without the id tie sort and tie adjustment.
        self._lucene8 = "lucene.version=9" not in self._reader.toString()
        sort_field = autoclass("org.apache.lucene.search.SortField")
        by_id = sort_field(ID_FIELD, autoclass("org.apache.lucene.search.SortField$Type").STRING_VAL)
        self._sort = autoclass("org.apache.lucene.search.Sort")(sort_field.FIELD_SCORE, by_id)  # Anserini's
        self._stored_ids = False  # read hits' ids from stored documents (no id doc values)
        self._searchers: dict[int, object] = {}
        self._pools: list = []
        self.num_docs = int(self._reader.maxDoc())

    def _searcher(self, threads: int = 1):
        searcher = self._searchers.get(threads)
        if searcher is None:
            from jnius import autoclass

            index_searcher = autoclass("org.apache.lucene.search.IndexSearcher")
            # jnius picks IndexSearcher(IndexReaderContext) for a DirectoryReader unless told its type
            reader = self._cast("org.apache.lucene.index.IndexReader", self._reader)
            if threads == 1:
                searcher = index_searcher(reader)
            else:
                pool = autoclass("java.util.concurrent.ForkJoinPool")(int(threads))
                self._pools.append(pool)
                searcher = index_searcher(reader, self._cast("java.util.concurrent.Executor", pool))
            searcher.setSimilarity(self._similarity)
            self._searchers[threads] = searcher
        return searcher

    def search(self, q: str, k: int = 10) -> list[ImpactHit]:
        """Encode ``q`` with :attr:`query_encoder` and search; hits in Anserini's order (score
        descending, then id ascending). Java errors (``TooManyClauses``...) are raised as they come."""
        if self.query_encoder is None:
            raise ConfigError("this ImpactSearcher has no query encoder; pass one when opening it, or "
                              "search encoded queries with search_vector()")
        return self.search_vector(self.query_encoder.encode(q), k)

    def search_vector(self, terms: Mapping[str, float], k: int = 10, threads: int = 1) -> list[ImpactHit]:
        """Search one encoded query ``{term: weight}`` (integer impacts, as
        :meth:`SplareQueryEncoder.encode` gives); at most ``k`` hits. An empty query has no hits."""
        if k < 1:
            raise ConfigError(f"k (hits per query) must be >= 1; got {k}")
        if not terms:
            return []
        ensure_max_clauses(len(terms))
        query = _reader().query(list(terms), [float(w) for w in terms.values()])
        searcher = self._searcher(threads)
        if self._lucene8:
            top = searcher.search(query, int(k))
        else:
            top = searcher.search(query, int(k), self._sort, True)
        ids = None
        if not self._lucene8 and not self._stored_ids:
            try:
                ids, scores, numbers = _reader().read(top)
            except Exception as exc:  # jnius.JavaException
                # A hit without an id doc value (an index not written by Anserini's generators)
                # has a null sort value; its stored id is still there, as Pyserini reads it.
                logger.warning("index %s: the hits' ids are not in the sort values (%s); reading them "
                               "from the stored documents from now on", self.index_dir, _first_line(exc))
                self._stored_ids = True
        if ids is None:  # unsorted (Lucene 8) or no id doc values: ids from the stored documents
            docs = self._scored_docs.fromTopDocs(top, searcher)
            ids, scores, numbers = docs.docids, docs.scores, docs.lucene_docids
        if not self._lucene8:
            scores = anserini_tie_scores(scores)
        return [ImpactHit(d, s, n) for d, s, n in zip(ids, scores, numbers)]

    def batch_search(self, queries: Sequence[str], qids: Sequence[str], k: int = 10,
                     threads: int = 1) -> dict[str, list[ImpactHit]]:
        """``{qid: hits}`` for every query text (Pyserini's signature). A query that fails is
        raised as a :class:`SearchError` naming it (and, for too many clauses, the limit)."""
        if len(queries) != len(qids):
            raise ConfigError(f"batch_search needs one query id per query; got {len(queries)} queries "
                              f"and {len(qids)} ids")
        if threads < 1:
            raise ConfigError(f"threads must be >= 1; got {threads}")
        out: dict[str, list[ImpactHit]] = {}
        for qid, text in zip(qids, queries):
            try:
                out[qid] = self.search_vector(self.query_encoder.encode(text), k, threads)
            except Exception as exc:  # jnius.JavaException
                raise _query_error(self, Query(qid, text), exc) from exc
        return out

    def doc(self, docid: str | int):
        """The stored document (Pyserini's ``Document``: ``raw()``, ``contents()``...) of a
        collection id (``str``) or a Lucene document number (``int``); None when there is none."""
        from jnius import autoclass
        from pyserini.index.lucene import Document

        if isinstance(docid, int):
            if not 0 <= docid < self.num_docs:
                return None
            lucene_doc = self._reader.storedFields().document(int(docid))
        else:
            lucene_doc = autoclass("io.anserini.index.IndexReaderUtils").document(self._reader, docid)
        return None if lucene_doc is None else Document(lucene_doc)

    def score_document(self, terms: Mapping[str, float], doc_id: str) -> float | None:
        """The score Lucene computes for the collection id ``doc_id`` with the query
        :meth:`search_vector` would run for ``terms`` (``{pseudo-token: impact}``), from Lucene's own
        ``IndexSearcher.explain``: the raw float32 sum, before Anserini's tie adjustment of returned
        hits. None when ``doc_id`` is not in the index; 0.0 for an empty query."""
        from jnius import autoclass

        docnum = int(autoclass("io.anserini.index.IndexReaderUtils").convertDocidToLuceneDocid(self._reader, doc_id))
        if docnum < 0:
            return None
        if not terms:
            return 0.0
        ensure_max_clauses(len(terms))
        # cast: pyjnius otherwise picks IndexSearcher.explain(Weight, int) for the builder's result
        query = self._cast("org.apache.lucene.search.Query",
                           _reader().query(list(terms), [float(w) for w in terms.values()]))
        return float(self._searcher(1).explain(query, docnum).getValue().floatValue())

    def close(self) -> None:
        """Close the index (and stop any search threads); the searcher is unusable afterwards."""
        for pool in self._pools:
            pool.shutdown()
        self._pools.clear()
        self._searchers.clear()
        self._reader.close()


def open_searcher(index_dir: str | os.PathLike, query_encoder: SplareQueryEncoder) -> ImpactSearcher:
    """An :class:`ImpactSearcher` of ``index_dir`` (same hits as Pyserini's
    ``LuceneImpactSearcher(min_idf=-1)``); refuses a mismatched model."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        if index_dir.exists():  # "does not exist" would mislead: it is there, but not a folder
            raise ConfigError(f"index {index_dir} is a file, not an index directory; give the folder "
                              "that `splare-lucene index --index DIR` (or Anserini's IndexCollection) built")
        raise ConfigError(f"index {index_dir} does not exist; build it with `splare-lucene index`")
    enc = query_encoder.encoder
    check_index_matches(index_dir, enc.config.index_signature(), enc.fingerprint,
                        getattr(enc, "document_fingerprint", None))
    try:
        return ImpactSearcher(index_dir, query_encoder)
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
        raise _query_error(searcher, query, exc) from exc


def _query_error(searcher, query: Query, exc: BaseException, n_terms: int | None = None) -> SearchError:
    """The :class:`SearchError` for ``query`` failing with ``exc``: its id, the first line of the
    (Java) message and, for ``TooManyClauses``, the query's length (``n_terms``, else its encoding's)
    against Lucene's limit."""
    message = _first_line(exc)
    hint = ""
    if "TooManyClauses" in message:
        if n_terms is None:
            n_terms = len(searcher.query_encoder.encode(query.text))
        hint = (f" ({n_terms} query terms over Lucene's "
                f"clause limit of {max_clause_count()}; SplareQueryEncoder raises it to the "
                "model's width: was the limit lowered afterwards? Or use a query top-k: "
                "`splare-lucene assemble --query-top-k 40`)")
    return SearchError(f"searching query {query.id!r} failed: {message}{hint}")


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
