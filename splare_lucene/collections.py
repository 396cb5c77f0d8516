"""Test collections by name or folder -> an ir_datasets dataset: the read step for evaluations.

* ``beir/<name>/<split>``: the public BEIR datasets in ir_datasets (``beir/scifact/test``,
  ``beir/cqadupstack/android``; ``beir/cqadupstack/test`` expands to its 12 forums);
* ``miracl/<lang>/<split>``: MIRACL (``miracl/sw/dev``), with the language's BM25 analyzer;
* a BEIR-layout folder on disk (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``),
  registered with ir_datasets as ``local/<folder name>/<split>`` so that folders and named
  datasets are read by the same code;
* any other ir_datasets id, as ``irds:<id>``.

ir_datasets downloads what it lacks on first use. Named datasets are checked first
(:meth:`Collection.require`): a missing file raises :class:`InputError` naming the file to place
and where, before anything touches the network, unless downloads are allowed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

from .errors import InputError
from .types import Query

logger = logging.getLogger(__name__)

# BEIR datasets that ir_datasets serves, with their splits that have qrels.
BEIR_DATASETS: dict[str, tuple[str, ...]] = {
    "msmarco": ("train", "dev", "test"), "trec-covid": ("test",), "nfcorpus": ("train", "dev", "test"),
    "nq": ("test",), "hotpotqa": ("train", "dev", "test"), "fiqa": ("train", "dev", "test"),
    "arguana": ("test",), "webis-touche2020": ("test",), "webis-touche2020/v2": ("test",),
    "cqadupstack": ("test",), "quora": ("dev", "test"), "dbpedia-entity": ("dev", "test"),
    "scidocs": ("test",), "fever": ("train", "dev", "test"), "climate-fever": ("test",),
    "scifact": ("train", "test"),
}
CQADUPSTACK_FORUMS = ("android", "english", "gaming", "gis", "mathematica", "physics", "programmers",
                      "stats", "tex", "unix", "webmasters", "wordpress")
# The other four BEIR datasets are not redistributable; BEIR's own scripts build them.
BEIR_RESTRICTED = ("bioasq", "signal1m", "trec-news", "robust04")

# MIRACL language -> Anserini analyzer language (-language / set_language). Anserini has no
# Swahili or Yoruba analyzer and falls back to its default one for "sw" and "yo".
MIRACL_LANGUAGES: dict[str, str] = {lang: lang for lang in (
    "ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko", "ru", "sw", "te", "th", "yo", "zh")}
MIRACL_QRELS_SPLITS: dict[str, tuple[str, ...]] = {
    lang: ("dev",) if lang in ("de", "yo") else ("train", "dev") for lang in MIRACL_LANGUAGES}

PARTS = ("docs", "queries", "qrels")


class MissingFile(NamedTuple):
    path: Path
    url: str | None
    md5: str | None


@dataclass(frozen=True)
class Collection:
    """A test collection read through ir_datasets."""

    name: str                 # shown in tables: "beir/scifact/test", "cranfield", ...
    dataset_id: str           # ir_datasets id: "beir/scifact/test", "local/cranfield/test"
    language: str             # analyzer language of the BM25 baseline
    corpus_key: str           # identity of the documents (indexes are reused only for the same)
    folder: Path | None = None

    @property
    def source(self) -> str:
        """For :func:`splare_lucene.corpus.read_documents` / ``read_queries``."""
        return f"irds:{self.dataset_id}"

    @property
    def slug(self) -> str:
        return slugify(self.name)

    def dataset(self):
        import ir_datasets

        return ir_datasets.load(self.dataset_id)

    def has(self, part: str) -> bool:
        return bool(getattr(self.dataset(), f"has_{part}")())

    def require(self, *parts: str, allow_download: bool = False) -> None:
        """Raise InputError if a part is absent, or needs files that are not on disk."""
        for part in parts:
            if part not in PARTS:
                raise ValueError(f"part must be one of {list(PARTS)}; got {part!r}")
            if not self.has(part):
                if self.folder is not None:
                    raise InputError(f"the folder has no {part} for split "
                                     f"{self.dataset_id.rsplit('/', 1)[-1]!r} (qrels/<split>.tsv)",
                                     path=str(self.folder))
                raise InputError(f"collection {self.name} ({self.dataset_id}) has no {part}"
                                 + (f"; splits with qrels: {_splits_hint(self.dataset_id)}" if part == "qrels" else ""))
        if allow_download or self.folder is not None:
            return
        missing = missing_files(self.dataset_id, parts)
        if missing:
            raise InputError(missing_files_message(self.dataset_id, missing))

    def queries(self) -> list[Query]:
        from .corpus import read_queries

        return list(read_queries(self.source))

    def qrels(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for qrel in self.dataset().qrels_iter():
            out.setdefault(str(qrel.query_id), {})[str(qrel.doc_id)] = int(qrel.relevance)
        return out


def slugify(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "collection"


def _splits_hint(dataset_id: str) -> str:
    parts = dataset_id.split("/")
    if parts[0] == "miracl" and len(parts) > 1:
        return ", ".join(f"miracl/{parts[1]}/{s}" for s in MIRACL_QRELS_SPLITS.get(parts[1], ("dev",)))
    return "see https://ir-datasets.com"


# -- names -> collections ------------------------------------------------------------------------

def expand_collections(specs: Sequence[str]) -> list[str]:
    """``beir/cqadupstack[/test]`` -> its 12 forums (BEIR reports their mean); others unchanged."""
    out: list[str] = []
    for spec in specs:
        if spec.rstrip("/") in ("beir/cqadupstack", "beir/cqadupstack/test"):
            out += [f"beir/cqadupstack/{forum}" for forum in CQADUPSTACK_FORUMS]
        else:
            out.append(spec)
    return out


def resolve_collection(spec: str, *, split: str = "test", language: str | None = None) -> Collection:
    """A folder, ``beir/<name>/<split>``, ``miracl/<lang>/<split>`` or ``irds:<id>`` -> Collection.

    Nothing is downloaded here; call :meth:`Collection.require` before reading.
    """
    spec = str(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return register_local(path, split=split, language=language)
    if spec.startswith("beir/"):
        return _beir(spec, split, language)
    if spec.startswith("miracl/"):
        return _miracl(spec, split, language)
    if spec.startswith("irds:"):
        return _irds(spec[len("irds:"):], language)
    raise InputError(f"collection {spec!r} is not a folder, nor a name. Give a BEIR-layout folder "
                     "(corpus.jsonl, queries.jsonl, qrels/<split>.tsv), beir/<name>/<split> "
                     f"(names: {', '.join(BEIR_DATASETS)}), miracl/<lang>/dev (languages: "
                     f"{', '.join(MIRACL_LANGUAGES)}), or irds:<ir_datasets id>")


def _beir(spec: str, split: str, language: str | None) -> Collection:
    rest = spec[len("beir/"):].strip("/")
    if rest.startswith("cqadupstack/"):
        forum = rest.split("/")[1]
        if forum not in CQADUPSTACK_FORUMS:
            raise InputError(f"unknown CQADupStack forum {forum!r}; forums: {', '.join(CQADUPSTACK_FORUMS)} "
                             "(beir/cqadupstack/test evaluates all 12)")
        return _irds(f"beir/cqadupstack/{forum}", language or "en", name=f"beir/cqadupstack/{forum}")
    name, _, given_split = rest.partition("/")
    if name == "webis-touche2020" and given_split.startswith("v2"):
        name, _, given_split = "webis-touche2020/v2", "", given_split[3:]
    split = given_split or split
    if name in BEIR_RESTRICTED:
        raise InputError(f"beir/{name} is not redistributed (licence), so ir_datasets cannot fetch it; "
                         "build its BEIR folder with the BEIR scripts (https://github.com/beir-cellar/beir) "
                         "and pass --collection FOLDER")
    if name not in BEIR_DATASETS:
        raise InputError(f"unknown BEIR dataset {name!r}; names: {', '.join(BEIR_DATASETS)}")
    splits = BEIR_DATASETS[name]
    if split not in splits:
        raise InputError(f"beir/{name} has no split {split!r}; splits: {', '.join(splits)}")
    # ir_datasets names single-split datasets without the split: beir/arguana is the test set.
    dataset_id = f"beir/{name}" if len(splits) == 1 else f"beir/{name}/{split}"
    return _irds(dataset_id, language or "en", name=f"beir/{name}/{split}")


def _miracl(spec: str, split: str, language: str | None) -> Collection:
    parts = spec.strip("/").split("/")
    lang = parts[1] if len(parts) > 1 else ""
    if lang not in MIRACL_LANGUAGES:
        raise InputError(f"unknown MIRACL language {lang!r}; languages: {', '.join(MIRACL_LANGUAGES)}")
    split = parts[2] if len(parts) > 2 else ("dev" if split == "test" else split)
    if split not in MIRACL_QRELS_SPLITS[lang]:
        raise InputError(f"miracl/{lang}/{split} has no public qrels; splits with qrels: "
                         f"{', '.join(MIRACL_QRELS_SPLITS[lang])}")
    return _irds(f"miracl/{lang}/{split}", language or MIRACL_LANGUAGES[lang])


def _irds(dataset_id: str, language: str | None, name: str | None = None) -> Collection:
    import ir_datasets

    try:
        dataset = ir_datasets.load(dataset_id)
    except KeyError:
        raise InputError(f"unknown ir_datasets id {dataset_id!r}; see https://ir-datasets.com") from None
    if language is None:
        language = dataset.docs_lang() if dataset.has_docs() else None
        language = language or "en"
    docs_key = dataset.docs_namespace() if dataset.has_docs() else dataset_id
    return Collection(name or dataset_id, dataset_id, language, f"irds:{docs_key}")


# -- local BEIR folders --------------------------------------------------------------------------

_LOCAL: dict[str, Path] = {}  # registered id -> folder


def _file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def register_local(folder: str | os.PathLike, *, split: str = "test", language: str | None = None) -> Collection:
    """Register a BEIR-layout folder with ir_datasets as ``local/<folder name>/<split>``."""
    import ir_datasets
    from ir_datasets.datasets.base import Dataset

    folder = Path(folder).expanduser().resolve()
    corpus = _file(folder, "corpus.jsonl")
    queries = _file(folder, "queries.jsonl")
    if corpus is None or queries is None:
        raise InputError("not a BEIR folder: it needs corpus.jsonl and queries.jsonl (optionally "
                         ".gz) and qrels/<split>.tsv", path=str(folder))
    qrels = folder / "qrels" / f"{split}.tsv"
    name = f"{folder.name}/{split}"
    dataset_id = f"local/{name}"
    if dataset_id in _LOCAL and _LOCAL[dataset_id] != folder:  # same folder name elsewhere
        dataset_id = f"local/{folder.name}-{hashlib.sha256(str(folder).encode()).hexdigest()[:6]}/{split}"
    if dataset_id not in _LOCAL:
        docs_cls, queries_cls, qrels_cls = _local_classes()
        handlers = [docs_cls(name, corpus, language or "en"), queries_cls(name, queries)]
        if qrels.is_file():
            handlers.append(qrels_cls(qrels))
        ir_datasets.registry.register(dataset_id, Dataset(*handlers))
        _LOCAL[dataset_id] = folder
    display = dataset_id[len("local/"):].rsplit("/", 1)[0]
    if split != "test":
        display += f"/{split}"
    return Collection(display, dataset_id, language or "en", _file_key(corpus), folder)


def _download(path: Path):
    from ir_datasets.util import GzipExtract, LocalDownload

    local = LocalDownload(path, mkdir=False)
    return GzipExtract(local) if path.suffix == ".gz" else local


def _json_records(path: Path) -> Iterator[tuple[int, str, dict]]:
    """(line, id, object) per line of a local BEIR JSONL file.

    Read by :func:`splare_lucene.textio.iter_jsonl` (gzip, strict UTF-8, BOM and CR dropped), not
    through ir_datasets' streams: those hand out raw bytes, ``json.loads(bytes)`` guesses UTF-16/32
    on its own, and a bad byte escaped as a bare UnicodeDecodeError without file or line. Ids are
    found and checked as :mod:`splare_lucene.corpus` does for the same file given directly.
    """
    from .corpus import record_id
    from .textio import iter_jsonl

    for number, data in iter_jsonl(path):
        yield number, record_id(data, path, number), data


@functools.lru_cache(maxsize=None)
def _local_classes():
    """Defined on first use, so that importing this module does not import ir_datasets."""
    from ir_datasets.datasets.beir import BeirDocs, BeirQrels, BeirQueries
    from ir_datasets.formats import GenericQuery, TrecQrel

    from .corpus import text_field

    class LocalBeirDoc(NamedTuple):
        doc_id: str
        text: str
        title: str

        def default_text(self) -> str:
            # the same text as splare_lucene.corpus gives a BEIR record (no leading space)
            title, text = self.title.strip(), self.text.strip()
            return f"{title} {text}".strip() if title else text

    class LocalBeirDocs(BeirDocs):
        """BeirDocs, streamed from the file. BeirDocs.docs_iter would first copy the corpus into a
        docstore under <ir_datasets home>/beir/<name>/, the place of the real beir/<name>."""

        def __init__(self, name, path: Path, lang: str):
            super().__init__(name, _download(path), LocalBeirDoc)
            self._path = path
            self._lang = lang

        def docs_iter(self):
            for number, doc_id, data in _json_records(self._path):
                key = "text" if "text" in data else "contents"
                yield LocalBeirDoc(doc_id, text_field(data, key, self._path, number),
                                   text_field(data, "title", self._path, number))

        def docs_count(self):
            return None

        def docs_namespace(self):
            return f"local/{self._name}"

        def docs_lang(self):
            return self._lang

    class LocalBeirQueries(BeirQueries):
        def __init__(self, name, path: Path):
            super().__init__(name, _download(path), GenericQuery)
            self._path = path

        def queries_iter(self):
            for number, query_id, data in _json_records(self._path):
                yield GenericQuery(query_id, text_field(data, "text", self._path, number))

        def queries_namespace(self):
            return f"local/{self._name}"

    class LocalBeirQrels(BeirQrels):
        """BEIR qrels TSV read by :func:`splare_lucene.evaluate.iter_qrels`, as a ``--qrels`` file
        is (gzip, strict UTF-8, BOM and CR dropped, ids checked, header optional: BeirQrels
        asserts one, which hand-made folders may lack)."""

        def __init__(self, path: Path):
            super().__init__(_download(path), qrels_defs={})
            self._path = path

        def qrels_iter(self):
            from .evaluate import iter_qrels

            for _, query_id, doc_id, relevance in iter_qrels(self._path):
                yield TrecQrel(query_id, doc_id, relevance, "0")

    return LocalBeirDocs, LocalBeirQueries, LocalBeirQrels


# -- files ir_datasets would download --------------------------------------------------------------

def missing_files(dataset_id: str, parts: Sequence[str] = PARTS) -> list[MissingFile]:
    """Files that reading ``parts`` of ``dataset_id`` would download; nothing is fetched.

    Walks the dataset's handlers down to their ``Download`` objects, stopping at derived caches
    that already exist (ir_datasets then reads those instead of the source file).
    """
    import ir_datasets

    dataset = ir_datasets.load(dataset_id)
    seen: set[int] = set()
    out: dict[Path, MissingFile] = {}
    for part in parts:
        if getattr(dataset, f"has_{part}")():
            handler = getattr(dataset, f"{part}_handler")()
            for download in _downloads(handler, seen):
                missing = _missing(download)
                if missing is not None:
                    out.setdefault(missing.path, missing)
    return list(out.values())


def _downloads(obj, seen: set[int]) -> Iterator:
    from ir_datasets.util import Cache, Lazy
    from ir_datasets.util.download import Download

    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Download):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _downloads(item, seen)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _downloads(item, seen)
    elif isinstance(obj, Cache) and Path(obj._path).exists():
        return
    elif not isinstance(obj, Lazy) and type(obj).__module__.startswith("ir_datasets") and hasattr(obj, "__dict__"):
        for value in vars(obj).values():
            yield from _downloads(value, seen)


def _missing(download) -> MissingFile | None:
    from ir_datasets.util.download import LocalDownload, RequestsDownload

    cache_path = download._cache_path
    if cache_path is not None and os.path.exists(cache_path):
        return None
    locals_ = [m for m in download.mirrors if isinstance(m, LocalDownload)]
    if any(m._path.exists() for m in locals_):
        return None
    urls = [m.url for m in download.mirrors if isinstance(m, RequestsDownload)]
    path = Path(cache_path) if cache_path is not None else (locals_[0]._path if locals_ else None)
    if path is None:
        return None  # a streamed download with no place on disk: nothing to tell the user
    return MissingFile(path, urls[0] if urls else None, download.expected_md5)


def missing_files_message(dataset_id: str, missing: Sequence[MissingFile], shown: int = 8) -> str:
    lines = [f"{dataset_id} needs {len(missing)} file(s) that are not on this machine, and "
             "splare-lucene does not let ir_datasets download them unless you pass --download. "
             "Place each file at the path given (ir_datasets' home is $IR_DATASETS_HOME, default "
             "~/.ir_datasets):"]
    for m in missing[:shown]:
        source = f"  <- {m.url}" if m.url else ""
        md5 = f" (md5 {m.md5})" if m.md5 else ""
        lines.append(f"  {m.path}{source}{md5}")
    rest = missing[shown:]
    if rest:
        lines.append(f"  ... and {len(rest)} more, from the same place with the same naming: "
                     + ", ".join(str(m.path) for m in rest))
    lines.append("Or run once with --download where the network is reachable.")
    return "\n".join(lines)


# -- topics: queries + qrels, possibly from another collection ----------------------------------

@dataclass
class Topics:
    """The queries to search and their judgements."""

    name: str
    queries: list[Query]
    qrels: dict[str, dict[str, int]]


def resolve_queries(spec: str, *, split: str = "test", language: str | None = None) -> Collection | str:
    """``--queries-from``: a collection (folder or name) or a queries file (.jsonl/.tsv)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path)
    return resolve_collection(spec, split=split, language=language)


def check_available(corpus: Collection, queries_from: Collection | str | None = None, *,
                    qrels_given: bool = False, allow_download: bool = False) -> None:
    """Fail before any work when a part is absent or its files are not on disk (see require).

    ``qrels_given``: the judgements come from elsewhere (``--qrels``), not from a collection.
    """
    needed: dict[str, tuple[Collection, list[str]]] = {corpus.dataset_id: (corpus, ["docs"])}

    def need(collection: Collection, part: str) -> None:
        needed.setdefault(collection.dataset_id, (collection, []))[1].append(part)

    if queries_from is None or isinstance(queries_from, Collection):
        need(queries_from or corpus, "queries")
    if not qrels_given:
        judged = queries_from if isinstance(queries_from, Collection) and queries_from.has("qrels") else corpus
        if not judged.has("qrels"):
            raise InputError(f"no qrels for the queries searched against {corpus.name}: "
                             f"{judged.name} has none; pass --qrels FILE")
        need(judged, "qrels")
    for collection, parts in needed.values():
        collection.require(*parts, allow_download=allow_download)


def load_topics(corpus: Collection, queries_from: Collection | str | None = None,
                qrels: dict[str, dict[str, int]] | None = None) -> Topics:
    """Queries with judgements, searched against ``corpus``.

    Queries: ``queries_from`` (a collection or a queries file), else the corpus collection's.
    Qrels: ``qrels`` ({qid: {docid: relevance}}, e.g. from a ``--qrels`` file), else those of
    ``queries_from`` when it is a collection with qrels, else the corpus collection's. Queries
    without judgements are left out.
    """
    from .corpus import read_queries

    if queries_from is None:
        name, queries = corpus.name, corpus.queries()
    elif isinstance(queries_from, Collection):
        name, queries = f"{queries_from.name}->{corpus.name}", queries_from.queries()
    else:
        name, queries = f"{Path(queries_from).stem}->{corpus.name}", list(read_queries(str(queries_from)))
    if qrels is not None:
        judged = qrels
    elif isinstance(queries_from, Collection) and queries_from.has("qrels"):
        judged = queries_from.qrels()
    elif corpus.has("qrels"):
        judged = corpus.qrels()
    else:
        raise InputError(f"no qrels for {name}: the collections have none; pass --qrels FILE")
    kept = [q for q in queries if q.id in judged]
    if not kept:
        raise InputError(f"none of the {len(queries)} queries of {name} has a judgement in the qrels "
                         f"({len(judged)} judged query ids, e.g. {sorted(judged)[:3]}); the query ids must "
                         "match the qrels' query ids (pass --qrels FILE)")
    if len(kept) < len(queries):
        logger.info("%s: %d of %d queries have judgements; the others are not searched",
                    name, len(kept), len(queries))
    return Topics(name, kept, {q.id: judged[q.id] for q in kept})
