"""The Seismic backend: a ``pyseismic-lsr`` index over the same encoded vectors as Lucene's.

Seismic (Bruch et al., SIGIR 2024; https://github.com/TusKANNy/seismic) prunes each posting list
to its ``n_postings`` best documents on average, cuts it into blocks with a summary vector each,
and at query time skips the blocks whose summary cannot beat the current top-k (``heap_factor``)
over the query's ``query_cut`` largest terms. With no pruning it is exact (see
:data:`EXACT_BUILD` / :data:`EXACT_SEARCH`); with its defaults it is approximate.

Layout of an index directory (written in a temporary directory and renamed into place, as
:mod:`splare_lucene.index` does)::

    splare_index.json      the model, quantization and encoding summary (as Lucene's), plus
                           "backend": "seismic" and a "seismic" record: index class, parameters
    seismic.index.seismic  the Seismic index (SeismicIndex or SeismicIndexLV ``save``)
    components.json        the pseudo-tokens, list position = Seismic component id
    documents.jsonl.gz     {"id", "contents"} per document (unless store_text is off)

Components: every pseudo-token of the documents gets an integer component id (first-seen order),
and the documents go in with :meth:`SeismicDatasetLV.add_documents_by_id`; tokens are never
passed as Seismic strings, whose fixed width (``get_seismic_string()``: ``U100``) would truncate
a vocabulary representation's long tokens (up to 255 characters). Seismic addresses component
``c`` as the string ``str(c)`` at query time. Seismic keeps our string document ids as they are.

Index class: ``SeismicIndex`` stores components as 16-bit integers (at most 65,535), so
``SeismicIndexLV`` (32-bit) is used whenever the model's width (``extra.width`` of the encoding
summary) is over 65,535, as Llama Scope's 131,072 latents are, or unknown (JSONL from elsewhere).

Queries: the model's quantized query terms (the integer impacts Lucene uses), as float32. A query
term that no document holds is dropped (it adds nothing to any score, in Lucene too). Scores are
float32 sums of integer products, exact below 2**24, so they equal Lucene's.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError, InputError, SearchError
from ..outputs import temp_dir_beside
from ..types import Query, ScoredDoc

logger = logging.getLogger(__name__)

NAME = "seismic"
INSTALL_HINT = "pip install 'splare-lucene[seismic]'"
INDEX_STEM = "seismic"  # Seismic's save(path) appends ".index.seismic"
INDEX_FILE = INDEX_STEM + ".index.seismic"
COMPONENTS_FILE = "components.json"
DOCUMENTS_FILE = "documents.jsonl.gz"
MAX_SHORT_COMPONENTS = 65_535  # SeismicIndex's u16 component ids
_ADD_BATCH = 10_000  # documents handed to Seismic per add_documents_by_id call


def import_seismic():
    """The ``seismic`` module of pyseismic-lsr, or ConfigError with the install command."""
    try:
        import seismic
    except ImportError as exc:
        raise ConfigError(f"the seismic backend needs pyseismic-lsr, which is not installed ({exc}); "
                          f"install it with `{INSTALL_HINT}` (or `pip install 'pyseismic-lsr>=0.5'`)") from exc
    return seismic


@dataclass(frozen=True)
class SeismicBuildOptions:
    """Seismic's build parameters. Defaults: pyseismic-lsr 0.5.4's own
    (``SeismicIndexLV.build_from_dataset`` signature, the values of Seismic's README and
    docs/PythonUsage.md); ``store_text`` is ours.

    n_postings: average posting-list length kept per component (3500).
    centroid_fraction: fraction of a posting list used as cluster centroids (0.1).
    min_cluster_size: smallest block of a posting list (2).
    summary_energy: fraction of a block's L1 mass its summary keeps (0.4; 1.0 keeps all).
    max_fraction: a posting list keeps at most ``n_postings * max_fraction`` documents (1.5).
    doc_cut: document components kept when documents are clustered at build time (15).
    store_text: keep the documents' text for ``search --query`` (True).
    """

    n_postings: int = 3500
    centroid_fraction: float = 0.1
    min_cluster_size: int = 2
    summary_energy: float = 0.4
    max_fraction: float = 1.5
    doc_cut: int = 15
    store_text: bool = True

    def __post_init__(self) -> None:
        for name in ("n_postings", "min_cluster_size", "doc_cut"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"Seismic {name} must be >= 1; got {getattr(self, name)!r}")
        if not 0.0 < self.centroid_fraction <= 1.0:
            raise ConfigError(f"Seismic centroid_fraction must be in (0, 1]; got {self.centroid_fraction!r}")
        if not 0.0 < self.summary_energy <= 1.0:
            raise ConfigError(f"Seismic summary_energy must be in (0, 1]; got {self.summary_energy!r}")
        if not self.max_fraction > 0.0:
            raise ConfigError(f"Seismic max_fraction must be > 0; got {self.max_fraction!r}")

    def seismic_kwargs(self) -> dict:
        """The keyword arguments of ``build_from_dataset`` (without ``store_text``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "store_text"}


@dataclass(frozen=True)
class SeismicSearchOptions:
    """Seismic's search parameters.

    query_cut: the query's largest terms searched (None, the default: all of them, so that only
        the index side approximates; Seismic's README example uses 3 for a 3-term query).
    heap_factor: a block is scanned when its summary score exceeds ``heap_factor`` times the
        current k-th score (0.8, Seismic's README quick start; 1.0 skips only blocks that cannot
        enter the top k).
    batch_size: queries per forward pass of the query encoder (32, as Lucene's path).
    """

    query_cut: int | None = None
    heap_factor: float = 0.8
    batch_size: int = 32

    def __post_init__(self) -> None:
        if self.query_cut is not None and int(self.query_cut) < 1:
            raise ConfigError(f"Seismic query_cut must be >= 1 (or None: every query term); got {self.query_cut!r}")
        if not 0.0 < self.heap_factor <= 1.0:
            raise ConfigError(f"Seismic heap_factor must be in (0, 1]; got {self.heap_factor!r}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1 (queries per forward pass); got {self.batch_size!r}")


def exact_build(documents: int) -> SeismicBuildOptions:
    """Build options that prune nothing for a corpus of ``documents`` documents: every posting
    list whole (``n_postings >= documents``, ``max_fraction`` 1), summaries keeping all their mass,
    documents never cut. With :data:`EXACT_SEARCH` the results equalled exact search in every test
    (tests/test_backend_seismic.py); Seismic's block bounds are its own, so this is observed, not proven."""
    return SeismicBuildOptions(n_postings=max(1, documents), max_fraction=1.0, summary_energy=1.0,
                               doc_cut=1_000_000)


EXACT_SEARCH = SeismicSearchOptions(query_cut=None, heap_factor=1.0)


def _options(cls, options: Mapping[str, Any] | Any | None):
    """``options`` (None, an instance of ``cls`` or a mapping of its field names) as a ``cls``.
    In a mapping, None means "the default" (as an option not given on the command line), except
    for ``query_cut``, whose None is a value (every query term). Unknown names: ConfigError."""
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"the seismic backend has no option {', '.join(map(repr, unknown))}; "
                          f"its options here: {sorted(known)}")
    return cls(**{k: v for k, v in options.items() if v is not None or k == "query_cut"})


def build_record(options: Mapping[str, Any] | SeismicBuildOptions | None) -> dict:
    """The build parameters as an index records them (``splare_index.json`` ``seismic.build``),
    defaults filled in: two indexes with equal records were built alike."""
    return dataclasses.asdict(_options(SeismicBuildOptions, options))


def _index_class_name(width: int | None) -> str:
    return "SeismicIndex" if width is not None and width <= MAX_SHORT_COMPONENTS else "SeismicIndexLV"


class SeismicBackend:
    name = NAME

    def build(self, jsonl_dirs: Sequence[str | os.PathLike], index_dir: str | os.PathLike, *,
              threads: int = 1, meta: dict | None = None, overwrite: bool = False,
              progress: bool = True, options: Mapping[str, Any] | SeismicBuildOptions | None = None
              ) -> dict[str, int]:
        """Index the encoded parts of ``jsonl_dirs`` with Seismic into ``index_dir``.

        The inputs are checked exactly as for Lucene (:func:`splare_lucene.index.build_index`:
        complete outputs of one job, checksums, every id and vector) before anything is built.
        Returns ``{"indexed": n, "empty": m}`` (documents without any term are not in a Seismic
        index; they match no query in Lucene either). Raises ConfigError (pyseismic-lsr missing,
        an existing ``index_dir`` without ``overwrite``, bad options, nothing to index),
        InputError (a bad line, naming file and line).
        """
        import numpy as np

        from ..index import INDEX_META, prepare_index_inputs
        from ..outputs import install_dir
        from ..textio import iter_jsonl

        opts = _options(SeismicBuildOptions, options)
        seismic = import_seismic()  # before any work: the install command, not a traceback later
        index_dir = Path(index_dir)
        # the checks every backend makes (Lucene's included): paths, then every id and vector
        dirs, outputs, _, meta = prepare_index_inputs(jsonl_dirs, index_dir, meta=meta, overwrite=overwrite,
                                                      progress=progress)
        width = (outputs.summary.get("extra") or {}).get("width")
        width = width if isinstance(width, int) and width > 0 else None
        class_name = _index_class_name(width)
        dataset = getattr(seismic, class_name.replace("Index", "Dataset"))(dim=width or 0)

        tmp = temp_dir_beside(index_dir)
        try:
            components: dict[str, int] = {}
            indexed = empty = 0
            texts = gzip.open(tmp / DOCUMENTS_FILE, "wt", encoding="utf-8") if opts.store_text else None
            batch_ids: list[str] = []
            batch_cols: list[np.ndarray] = []
            batch_vals: list[np.ndarray] = []

            def flush() -> None:
                if not batch_ids:
                    return
                offsets = np.zeros(len(batch_ids) + 1, dtype=np.int64)
                np.cumsum([len(c) for c in batch_cols], out=offsets[1:])
                dataset.add_documents_by_id(batch_ids, np.concatenate(batch_cols).astype(np.int64),
                                            np.concatenate(batch_vals).astype(np.float32), offsets)
                batch_ids.clear(), batch_cols.clear(), batch_vals.clear()

            try:
                for path in outputs.files:
                    for _, obj in iter_jsonl(path):  # every line was checked by scan_ids above
                        vector: dict[str, int] = obj["vector"]
                        if texts is not None:
                            texts.write(json.dumps({"id": obj["id"], "contents": obj.get("contents", "")},
                                                   ensure_ascii=False) + "\n")
                        if not vector:
                            empty += 1
                            continue
                        cols = np.fromiter((components.setdefault(t, len(components)) for t in vector),
                                           dtype=np.int64, count=len(vector))
                        vals = np.fromiter(vector.values(), dtype=np.float32, count=len(vector))
                        order = np.argsort(cols, kind="stable")  # Seismic wants increasing components
                        batch_ids.append(obj["id"])
                        batch_cols.append(cols[order])
                        batch_vals.append(vals[order])
                        indexed += 1
                        if len(batch_ids) >= _ADD_BATCH:
                            flush()
                flush()
            finally:
                if texts is not None:
                    texts.close()
            if width is not None and len(components) > width:  # scan_ids' rules make this impossible
                raise InputError(f"{len(components)} distinct tokens in {', '.join(map(str, dirs))}, more than "
                                 f"the model's width {width}")
            if not indexed:
                raise ConfigError(f"no document of {', '.join(map(str, dirs))} has any term: nothing for "
                                  "Seismic to index")
            logger.info("building a %s of %d documents (%d components; %s) with %d threads", class_name,
                        indexed, len(components), opts, threads)
            index = getattr(seismic, class_name).build_from_dataset(dataset, num_threads=threads,
                                                                    **opts.seismic_kwargs())
            index.save(str(tmp / INDEX_STEM))
            if not (tmp / INDEX_FILE).is_file():  # the name Seismic 0.5 gives it; checked, not assumed
                raise ConfigError(f"Seismic did not write {INDEX_FILE} in {tmp} (wrote "
                                  f"{sorted(p.name for p in tmp.iterdir())}); is pyseismic-lsr >= 0.5?")
            (tmp / COMPONENTS_FILE).write_text(json.dumps(list(components)) + "\n", encoding="utf-8")
            counters = {"indexed": indexed, "empty": empty}
            record = {**(meta or {}), "backend": NAME, "counters": counters, "threads": threads,
                      "seismic": {"index_class": class_name, "components": len(components),
                                  "pyseismic_lsr": _version(), "build": dataclasses.asdict(opts)}}
            (tmp / INDEX_META).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            install_dir(tmp, index_dir, ["index"], what="--index")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if empty:
            logger.warning("%d documents have no term and are not in the Seismic index", empty)
        return counters

    def open(self, index_dir: str | os.PathLike, query_encoder: Any, *,
             options: Mapping[str, Any] | SeismicSearchOptions | None = None) -> "SeismicSearchIndex":
        return SeismicSearchIndex(index_dir, query_encoder, _options(SeismicSearchOptions, options))


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyseismic-lsr")
    except PackageNotFoundError:
        return None


class SeismicSearchIndex:
    """A Seismic index opened for one model (see :class:`~splare_lucene.backends.SearchIndex`).

    ``query_encoder``: a :class:`~splare_lucene.encoder.SplareEncoder` (or a
    :class:`~splare_lucene.search.SplareQueryEncoder`, whose ``encoder`` is used).
    Raises IndexMismatchError when the model's vocabulary or quantization differs from the
    index's (:func:`splare_lucene.index.check_index_matches`), ConfigError when the directory is
    not a complete Seismic index.
    """

    backend = NAME

    def __init__(self, index_dir: str | os.PathLike, query_encoder: Any,
                 options: SeismicSearchOptions = SeismicSearchOptions()):
        from ..index import check_index_matches, read_index_meta

        seismic = import_seismic()
        self.index_dir = Path(index_dir)
        self.encoder = getattr(query_encoder, "encoder", query_encoder)
        self.options = options
        meta = read_index_meta(self.index_dir) or {}
        record = meta.get("seismic") or {}
        missing = [n for n in (INDEX_FILE, COMPONENTS_FILE) if not (self.index_dir / n).is_file()]
        if meta.get("backend") != NAME or missing or record.get("index_class") not in ("SeismicIndex", "SeismicIndexLV"):
            raise ConfigError(f"{self.index_dir} is not a complete Seismic index of splare-lucene (missing "
                              f"{missing or 'its seismic record in splare_index.json'}); rebuild it with "
                              "`splare-lucene index --backend seismic ... --overwrite`")
        check_index_matches(self.index_dir, self.encoder.config.index_signature(), self.encoder.fingerprint,
                            getattr(self.encoder, "document_fingerprint", None))
        self.index = getattr(seismic, record["index_class"]).load(str(self.index_dir / INDEX_FILE))
        tokens = json.loads((self.index_dir / COMPONENTS_FILE).read_text(encoding="utf-8"))
        self.components: dict[str, str] = {t: str(i) for i, t in enumerate(tokens)}
        self._texts: dict[str, str] | None = None

    def query_terms(self, queries: Sequence[Query], *, progress: bool = False) -> list[dict[str, int]]:
        """The model's quantized terms ``{pseudo-token: impact}`` of each query (batched)."""
        texts = [q.text for q in queries]
        unique = list(dict.fromkeys(texts))
        terms = {text: self.encoder.terms(vector) for text, vector in
                 self.encoder.encode_stream(unique, kind="query", batch_size=self.options.batch_size,
                                            progress=progress, total=len(unique))}
        return [terms[t] for t in texts]

    def search_terms(self, query_ids: Sequence[str], terms: Sequence[Mapping[str, int]], *, k: int = 1000,
                     threads: int = 1) -> dict[str, list[ScoredDoc]]:
        """Search already encoded queries (``{pseudo-token: impact}`` each); ranked hits per id."""
        import numpy as np

        from ..ranking import rank_hits

        if k < 1 or threads < 1:
            raise ConfigError(f"k (hits per query) and threads must be >= 1; got k={k}, threads={threads}")
        string_type = import_seismic().get_seismic_string()
        out: dict[str, list[ScoredDoc]] = {qid: [] for qid in query_ids}
        ids, comps, vals = [], [], []
        dropped = 0
        for qid, t in zip(query_ids, terms):
            kept = [(self.components[tok], w) for tok, w in t.items() if tok in self.components]
            dropped += len(t) - len(kept)
            if kept:  # a query without any indexed term matches nothing (as in Lucene)
                ids.append(qid)
                comps.append(np.array([c for c, _ in kept], dtype=string_type))
                vals.append(np.array([w for _, w in kept], dtype=np.float32))
        if dropped:
            logger.debug("%d query terms are in no document of %s (they add nothing to any score)",
                         dropped, self.index_dir)
        if not ids:
            return out
        query_cut = self.options.query_cut or max(len(c) for c in comps)
        try:
            results = self.index.batch_search(np.array(ids, dtype=string_type), comps, vals, k=k,
                                              query_cut=query_cut, heap_factor=self.options.heap_factor,
                                              num_threads=threads)
        except Exception as exc:  # pyo3 raises plain Python exceptions from Rust panics/errors
            raise SearchError(f"Seismic search of {len(ids)} queries in {self.index_dir} failed: {exc}") from exc
        # Each hit names its query: group by that, never by list position. pyseismic-lsr 0.5.4's
        # batch_search returned some queries' lists in another query's position (seen in about one
        # run in three here, with num_threads=1; its `search` never did).
        grouped: dict[str, list[ScoredDoc]] = {}
        misplaced = sum(1 for qid, hits in zip(ids, results) if hits and str(hits[0][0]) != qid)
        if misplaced:
            logger.debug("Seismic's batch_search returned %d of %d hit lists out of query order "
                         "(regrouped by query id)", misplaced, len(ids))
        for hits in results:
            if not hits:
                continue
            owners = {hit[0] for hit in hits}
            if len(owners) == 1:  # the usual case: one list, one query (build its hits in one pass)
                qid = str(hits[0][0])
                grouped.setdefault(qid, []).extend([ScoredDoc(qid, doc_id, float(score), 0)
                                                    for _, score, doc_id in hits])
                continue
            for hit_qid, score, doc_id in hits:
                grouped.setdefault(str(hit_qid), []).append(ScoredDoc(str(hit_qid), doc_id, float(score), 0))
        unknown = sorted(set(grouped) - set(ids))
        if unknown:
            raise SearchError(f"Seismic returned hits for query ids {unknown[:5]} that were not asked for "
                              f"(in {self.index_dir}); is pyseismic-lsr >= 0.5?")
        for qid, hits in grouped.items():
            out[qid] = rank_hits(hits)
        return out

    def search(self, queries: Sequence[Query], *, k: int = 1000, threads: int = 1,
               progress: bool = True) -> dict[str, list[ScoredDoc]]:
        """``{query id: ranked hits}`` (at most ``k`` each) for every query."""
        if k < 1 or threads < 1:  # before encoding
            raise ConfigError(f"k (hits per query) and threads must be >= 1; got k={k}, threads={threads}")
        queries = list(queries)
        terms = self.query_terms(queries, progress=progress)
        return self.search_terms([q.id for q in queries], terms, k=k, threads=threads)

    def search_one(self, query: Query, k: int = 10) -> list[ScoredDoc]:
        return self.search([query], k=k, progress=False)[query.id]

    @property
    def stores_text(self) -> bool:
        """Whether the index keeps the documents' ids and text (built with ``store_text``)."""
        return (self.index_dir / DOCUMENTS_FILE).is_file()

    def _stored(self) -> dict[str, str]:
        if self._texts is None:  # read once, on first use
            from ..textio import iter_jsonl

            path = self.index_dir / DOCUMENTS_FILE
            self._texts = {obj["id"]: obj.get("contents", "") for _, obj in iter_jsonl(path)} \
                if path.is_file() else {}
        return self._texts

    def hit_text(self, doc_id: str) -> str:
        """The stored text of ``doc_id`` ("" when the index was built without ``store_text``).
        The first call reads every stored text into memory."""
        return self._stored().get(doc_id, "")

    def doc(self, doc_id: str) -> str | None:
        """As Pyserini's ``searcher.doc``: the stored text of a document of the corpus indexed
        (documents without any term included), None when it is not one of them; always None for
        an index built without ``store_text``."""
        return self._stored().get(doc_id)


BACKEND = SeismicBackend()
