"""The Lucene backend: Anserini impact indexes, searched exactly.

A thin wrapper: building delegates to :func:`splare_lucene.index.build_index`, searching to
:func:`splare_lucene.search.open_searcher` (an :class:`~splare_lucene.search.ImpactSearcher`: the
hits and scores of Pyserini's ``LuceneImpactSearcher``, without its per-query work that is not
search) and :func:`~splare_lucene.search.batch_search`. The JVM starts only when an index is built
or opened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from ..types import Query, ScoredDoc

NAME = "lucene"
_BUILD_OPTIONS = ("store_raw",)
_OPEN_OPTIONS = ("batch_size",)


def _check_options(options: Mapping[str, Any] | None, allowed: Sequence[str], what: str) -> dict:
    options = dict(options or {})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"the lucene backend has no {what} option {', '.join(map(repr, unknown))}; "
                          f"its {what} options: {list(allowed)}")
    return options


class LuceneIndex:
    """An Anserini impact index opened for one model (see :class:`~splare_lucene.backends.SearchIndex`)."""

    backend = NAME

    def __init__(self, index_dir: str | os.PathLike, query_encoder: Any, *, batch_size: int = 32):
        from ..search import SplareQueryEncoder, open_searcher

        if not isinstance(query_encoder, SplareQueryEncoder):  # a SplareEncoder
            query_encoder = SplareQueryEncoder(query_encoder, batch_size=batch_size)
        self.index_dir = Path(index_dir)
        self.query_encoder = query_encoder
        self.searcher = open_searcher(self.index_dir, query_encoder)  # checks model vs index

    def search(self, queries: Sequence[Query], *, k: int = 1000, threads: int = 1,
               progress: bool = True) -> dict[str, list[ScoredDoc]]:
        from ..search import batch_search

        return batch_search(self.searcher, list(queries), k=k, threads=threads, progress=progress)

    def search_terms(self, query_ids: Sequence[str], terms: Sequence[Mapping[str, int]], *, k: int = 1000,
                     threads: int = 1) -> dict[str, list[ScoredDoc]]:
        """Search already encoded queries (``{pseudo-token: impact}`` each, as
        :meth:`SplareEncoder.terms` gives); ranked hits per id (as the Seismic backend's)."""
        from ..ranking import rank_hits
        from ..search import _query_error

        if k < 1 or threads < 1:
            raise ConfigError(f"k (hits per query) and threads must be >= 1; got k={k}, threads={threads}")
        out: dict[str, list[ScoredDoc]] = {}
        for qid, t in zip(query_ids, terms):
            try:
                hits = self.searcher.search_vector(t, k, threads)
            except Exception as exc:  # jnius.JavaException
                raise _query_error(self.searcher, Query(qid, ""), exc, n_terms=len(t)) from exc
            out[qid] = rank_hits(ScoredDoc(qid, h.docid, float(h.score), 0) for h in hits)
        return out

    def search_one(self, query: Query, k: int = 10) -> list[ScoredDoc]:
        from ..search import search_hits

        return search_hits(self.searcher, query, k=k)

    def hit_text(self, doc_id: str) -> str:
        from ..search import hit_text

        return hit_text(self.searcher, doc_id)


class LuceneBackend:
    name = NAME

    def build(self, jsonl_dirs: Sequence[str | os.PathLike], index_dir: str | os.PathLike, *,
              threads: int = 1, meta: dict | None = None, overwrite: bool = False,
              progress: bool = True, options: Mapping[str, Any] | None = None) -> dict[str, int]:
        """:func:`splare_lucene.index.build_index`; ``options``: ``store_raw`` (default True).
        The index records ``"backend": "lucene"`` when ``meta`` is given; without it, index.py
        writes the encoding summary, and an index without the key is read as Lucene's."""
        from ..index import build_index

        opts = _check_options(options, _BUILD_OPTIONS, "build")
        if meta is not None:
            meta = {**meta, "backend": NAME}
        return build_index(list(jsonl_dirs), index_dir, threads=threads, meta=meta,
                           store_raw=bool(opts.get("store_raw", True)), overwrite=overwrite, progress=progress)

    def open(self, index_dir: str | os.PathLike, query_encoder: Any, *,
             options: Mapping[str, Any] | None = None) -> LuceneIndex:
        opts = _check_options(options, _OPEN_OPTIONS, "search")
        return LuceneIndex(index_dir, query_encoder, **opts)


BACKEND = LuceneBackend()
