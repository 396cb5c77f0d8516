"""Search backends: engines that index the same encoded vectors and return the same runs.

A backend builds an index from directories of encoded parts (``splare-lucene encode``) and opens
it for a model; an opened index searches a batch of queries into ``{query id: [ScoredDoc]}``
ranked by the toolkit's one rule (:mod:`splare_lucene.ranking`), so a run is a run whichever
backend produced it.

- ``lucene`` (:mod:`.lucene`): Anserini impact index, exact, searched through Pyserini.
- ``seismic`` (:mod:`.seismic`): a ``pyseismic-lsr`` index (approximate by default, exact with the
  parameters its module names); needs ``pip install 'splare-lucene[seismic]'``.

Which backend built an index: the ``"backend"`` key of its ``splare_index.json``. Indexes written
before backends existed have no such key and are Lucene indexes. :func:`open_index` picks the
backend the index names; a backend asked for explicitly must agree (ConfigError otherwise).

Nothing heavy is imported here: no JVM, no torch, no seismic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from ..errors import ConfigError
from ..types import Query, ScoredDoc

BACKENDS: tuple[str, ...] = ("lucene", "seismic")
DEFAULT_BACKEND = "lucene"
META_NAME = "splare_index.json"  # the same file as splare_lucene.index.INDEX_META (kept import-light)


@runtime_checkable
class SearchIndex(Protocol):
    """An opened index of one backend, bound to a query encoder of the model that built it."""

    backend: str
    index_dir: Path

    def search(self, queries: Sequence[Query], *, k: int = 1000, threads: int = 1,
               progress: bool = True) -> dict[str, list[ScoredDoc]]:
        """``{query id: hits}`` for every query, ranked (:func:`~splare_lucene.ranking.rank_hits`),
        at most ``k`` hits each. Raises ConfigError for ``k`` or ``threads`` below 1."""
        ...

    def hit_text(self, doc_id: str) -> str:
        """The stored text of a document ("" when the index stores none)."""
        ...


class Backend(Protocol):
    """What a backend module provides (:mod:`.lucene`, :mod:`.seismic`)."""

    name: str

    def build(self, jsonl_dirs: Sequence[str | os.PathLike], index_dir: str | os.PathLike, *,
              threads: int = 1, meta: dict | None = None, overwrite: bool = False,
              progress: bool = True, options: Mapping[str, Any] | None = None) -> dict[str, int]:
        """Index the encoded parts into ``index_dir`` (atomically); returns the document counters."""
        ...

    def open(self, index_dir: str | os.PathLike, query_encoder: Any, *,
             options: Mapping[str, Any] | None = None) -> SearchIndex:
        """Open ``index_dir`` for ``query_encoder``'s model (checked against the index's record)."""
        ...


def check_backend_name(name: str) -> str:
    """``name`` if it is one of :data:`BACKENDS`, else ConfigError listing them."""
    if name not in BACKENDS:
        raise ConfigError(f"backend must be one of {list(BACKENDS)}; got {name!r}")
    return name


def get_backend(name: str) -> Backend:
    """The backend module called ``name`` (exact key; ConfigError listing the valid ones). The
    Seismic backend raises ConfigError with the install command when pyseismic-lsr is missing
    only once it builds or opens an index, so this stays cheap."""
    check_backend_name(name)
    if name == "lucene":
        from . import lucene as module
    else:
        from . import seismic as module
    return module.BACKEND


def index_backend(index_dir: str | os.PathLike) -> str:
    """The backend that built ``index_dir``, from its ``splare_index.json``: its ``"backend"``
    key, or ``lucene`` when the key (or the whole file: an index Anserini built) is absent.
    Raises ConfigError for a directory that does not exist or a backend this version does not
    know."""
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        if index_dir.exists():
            raise ConfigError(f"index {index_dir} is a file, not an index directory; give the folder "
                              "that `splare-lucene index --index DIR` built")
        raise ConfigError(f"index {index_dir} does not exist; build it with `splare-lucene index`")
    path = index_dir / META_NAME
    if not path.is_file():
        return DEFAULT_BACKEND
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not JSON ({exc}); rebuild the index with `splare-lucene index "
                          "... --overwrite`") from exc
    name = meta.get("backend", DEFAULT_BACKEND) if isinstance(meta, dict) else DEFAULT_BACKEND
    if name not in BACKENDS:
        raise ConfigError(f"{path} says the index was built by backend {name!r}, which this version does "
                          f"not know (known: {list(BACKENDS)}); upgrade splare-lucene or rebuild the index")
    return name


def resolve_backend(index_dir: str | os.PathLike, requested: str | None = None) -> str:
    """The backend to open ``index_dir`` with: the one its metadata names; ``requested``
    (``--backend``), when given, must be that one (ConfigError naming both otherwise)."""
    built = index_backend(index_dir)
    if requested is not None and check_backend_name(requested) != built:
        raise ConfigError(f"--backend {requested} given, but index {index_dir} was built by the {built} "
                          f"backend (its {META_NAME} says so); search it with --backend {built} (or leave "
                          f"--backend out), or build a {requested} index with `splare-lucene index "
                          f"--backend {requested}`")
    return built


def build_index(jsonl_dirs: str | os.PathLike | Sequence[str | os.PathLike], index_dir: str | os.PathLike, *,
                backend: str = DEFAULT_BACKEND, threads: int = 1, meta: dict | None = None,
                overwrite: bool = False, progress: bool = True,
                options: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Build a ``backend`` index of the encoded parts in ``jsonl_dirs``; returns its counters.
    ``options``: the backend's build options (:class:`.seismic.SeismicBuildOptions` fields for
    Seismic; Lucene takes ``store_raw``)."""
    dirs = [jsonl_dirs] if isinstance(jsonl_dirs, (str, os.PathLike)) else list(jsonl_dirs)
    return get_backend(backend).build(dirs, index_dir, threads=threads, meta=meta, overwrite=overwrite,
                                      progress=progress, options=options)


def open_index(index_dir: str | os.PathLike, query_encoder: Any, *, backend: str | None = None,
               options: Mapping[str, Any] | None = None) -> SearchIndex:
    """Open ``index_dir`` with the backend that built it (:func:`resolve_backend`) for
    ``query_encoder`` (a :class:`~splare_lucene.encoder.SplareEncoder`, or a
    :class:`~splare_lucene.search.SplareQueryEncoder` for Lucene). ``options``: search options
    of that backend (:class:`.seismic.SeismicSearchOptions` fields for Seismic)."""
    name = resolve_backend(index_dir, backend)
    return get_backend(name).open(index_dir, query_encoder, options=options)


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "SearchIndex", "build_index", "check_backend_name",
           "get_backend", "index_backend", "open_index", "resolve_backend"]
