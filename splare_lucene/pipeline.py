"""Compositions of the pipeline steps: corpus -> encoder -> quantized JSONL -> index, and
collection -> index -> run -> metrics (:func:`evaluate_collection`, :func:`run_evaluation`)."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from .jsonl import WriteSummary, index_meta

logger = logging.getLogger(__name__)


def encoding_meta(encoder, model_name: str) -> dict:
    return {"model": model_name, "model_fingerprint": encoder.fingerprint,
            "signature": encoder.config.index_signature(), "config": encoder.config.to_dict()}


def encode_corpus(encoder, source: str, output_dir: str | os.PathLike, *, num_shards: int = 1,
                  shard_id: int = 0, part_size: int | None = None, batch_size: int = 16,
                  allow_empty: bool = False, model_name: str = "", overwrite: bool = False,
                  restart_mismatched: bool = False, progress: bool = True, meta: dict | None = None,
                  shards: int | None = None) -> WriteSummary:
    """Encode shard ``shard_id`` of ``num_shards`` of ``source`` into ``output_dir``, in parts of
    ``part_size`` documents (default :data:`~splare_lucene.engines.parts.DEFAULT_PART_SIZE`), with
    the local engine (:func:`splare_lucene.engines.local.encode_local`).

    An unfinished output of the same job resumes; a finished one is returned as it is;
    ``overwrite`` starts over; an output of another model, corpus or settings raises ConfigError.
    ``meta`` is recorded in the manifest and the summary's ``extra`` beside the model and
    quantization. ``shards`` (the number of round-robin files of earlier versions) is ignored:
    every part is one file.
    """
    from .engines.local import encode_local
    from .engines.parts import DEFAULT_PART_SIZE, ShardSpec

    if shards not in (None, 1):
        logger.warning("shards=%s is ignored: the output is written in parts of part_size documents, "
                       "one file each (Anserini indexes files in parallel)", shards)
    return encode_local(encoder, source, output_dir, shard=ShardSpec(num_shards, shard_id),
                        part_size=part_size or DEFAULT_PART_SIZE, batch_size=batch_size,
                        allow_empty=allow_empty, model_name=model_name, overwrite=overwrite,
                        restart_mismatched=restart_mismatched, progress=progress, meta=meta)


def default_work_dir(index_dir: str | os.PathLike) -> Path:
    """Where ``index --corpus`` encodes when no ``--keep-jsonl`` is given: ``<index>.jsonl`` beside
    the index, so that a rerun after a crash resumes; removed once the index is built."""
    index_dir = Path(index_dir)
    return index_dir.with_name(index_dir.name + ".jsonl")


def index_corpus(encoder, source: str, index_dir: str | os.PathLike, *, threads: int = 1,
                 batch_size: int = 16, allow_empty: bool = False, model_name: str = "",
                 keep_jsonl: str | os.PathLike | None = None, overwrite: bool = False,
                 progress: bool = True, meta: dict | None = None, part_size: int | None = None,
                 work_dir: str | os.PathLike | None = None, restart_encoding: bool = False,
                 backend: str = "lucene", backend_options: dict | None = None) -> dict:
    """Encode + write + index; returns the backend's counters (Anserini's for Lucene).

    The JSONL parts go to ``keep_jsonl`` (kept) or else to ``work_dir`` (default
    :func:`default_work_dir`; removed after indexing). Either way an interrupted run resumes
    encoding where it stopped when rerun. ``overwrite`` applies to the index only; a work
    directory of another model or corpus is started over (a ``keep_jsonl`` one is refused), and
    ``restart_encoding`` starts the encoding over in any case.

    ``meta`` is recorded in the encoding manifest and in the index's ``splare_index.json``.
    ``backend`` (:data:`splare_lucene.backends.BACKENDS`) builds the index with
    ``backend_options`` (that backend's build options).
    """
    import shutil

    from .backends import build_index as build_backend_index, check_backend_name

    from .errors import ConfigError

    from .outputs import check_apart, check_not_input, check_output_dir, check_replaceable

    check_backend_name(backend)
    index_dir = Path(index_dir)
    if index_dir.exists() and not overwrite:  # fail before encoding, not after
        raise ConfigError(f"index directory {index_dir} already exists; pass --overwrite to replace it")
    private = keep_jsonl is None
    jsonl_dir = Path(keep_jsonl) if keep_jsonl is not None else Path(work_dir or default_work_dir(index_dir))
    # every output checked before encoding: not an input, writable, and (--overwrite) replaceable
    inputs = {"--corpus": str(source), "--model": getattr(encoder, "model_dir", None)}
    check_not_input(index_dir, inputs, what="--index")
    jsonl_what = "--keep-jsonl" if keep_jsonl else "work directory"
    check_not_input(jsonl_dir, inputs, what=jsonl_what)
    check_apart(jsonl_dir, index_dir, what=jsonl_what, other_what="--index")
    check_output_dir(index_dir, what="--index")
    check_replaceable(index_dir, ["index"], what="--index")
    summary = encode_corpus(encoder, source, jsonl_dir, part_size=part_size, batch_size=batch_size,
                            allow_empty=allow_empty, model_name=model_name, progress=progress, meta=meta,
                            overwrite=restart_encoding, restart_mismatched=private)
    meta = index_meta(summary.to_dict(), corpus=str(source))
    counters = build_backend_index(jsonl_dir, index_dir, backend=backend, threads=threads, meta=meta,
                                   overwrite=overwrite, progress=progress, options=backend_options)
    if private:
        shutil.rmtree(jsonl_dir, ignore_errors=True)
    return counters


def directory_size(path: str | os.PathLike) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# -- evaluation ----------------------------------------------------------------------------------


def index_key(encoder, corpus_key: str) -> str | None:
    """What an index is reused for: this model's document side (its document fingerprint:
    :func:`splare_lucene.encoder.model_fingerprints`), quantization and corpus. Copies of a model
    that differ only on the query side (query top-k, idf weighting) share the key, hence the index.

    None when the model has no fingerprint (built in memory): its index is never reused.
    """
    import hashlib
    import json

    if not encoder.fingerprint:
        return None
    document = getattr(encoder, "document_fingerprint", None)
    model = {"document": document} if document else encoder.fingerprint
    payload = {"model": model, "signature": encoder.config.index_signature(), "corpus": corpus_key}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _built_by(meta: dict | None, encoder, corpus_key: str) -> bool:
    """Whether ``meta`` (an index's ``splare_index.json`` or an encoding's summary extra) is of this
    corpus, quantization and document side (the document fingerprint; the model fingerprint for
    metadata written before the document fingerprint existed)."""
    if not meta or meta.get("signature") != encoder.config.index_signature() or meta.get("corpus_key") != corpus_key:
        return False
    document = getattr(encoder, "document_fingerprint", None)
    if document and meta.get("document_fingerprint"):
        return meta["document_fingerprint"] == document
    return meta.get("model_fingerprint") == encoder.fingerprint


def _same_backend(meta: dict | None, backend: str, options: dict | None) -> bool:
    """Whether an index's metadata says ``backend`` built it with these build ``options``."""
    if (meta or {}).get("backend", "lucene") != backend:  # no key: a Lucene index
        return False
    if backend == "seismic":
        from .backends.seismic import build_record

        return ((meta or {}).get("seismic") or {}).get("build") == build_record(options)
    return True


def ensure_index(encoder, collection, root: str | os.PathLike, *, threads: int = 1, batch_size: int = 16,
                 model_name: str = "", keep_jsonl: bool = False, reuse: bool = True,
                 progress: bool = True, backend: str = "lucene",
                 backend_options: dict | None = None) -> tuple[Path, dict, bool]:
    """The impact index of ``collection``'s corpus under ``root/index-<key>`` (``root/seismic-<key>``
    for ``backend="seismic"``, built with ``backend_options``): reused when its
    ``splare_index.json`` names the same document side of the model (:func:`index_key`),
    quantization, corpus, backend and build options; else built,
    from ``root/jsonl-<key>`` when that holds the complete encoding of the same, else by encoding
    into ``root/jsonl-<key>`` (resumed after an interruption; removed after indexing unless
    ``keep_jsonl``).

    Returns (index directory, its metadata, whether it was reused).
    """
    from .backends import build_index as build_backend_index
    from .engines.parts import read_outputs
    from .errors import ConfigError
    from .index import read_index_meta

    root = Path(root)
    key = index_key(encoder, collection.corpus_key)
    prefix = "index" if backend == "lucene" else backend
    index_dir = root / (f"{prefix}-{key}" if key else f"{prefix}-unkeyed")
    jsonl_dir = root / (f"jsonl-{key}" if key else "jsonl-unkeyed")
    meta = read_index_meta(index_dir) if index_dir.is_dir() else None
    if reuse and key and _built_by(meta, encoder, collection.corpus_key) \
            and _same_backend(meta, backend, backend_options):
        logger.info("reusing %s (same model document side, quantization and corpus)", index_dir)
        return index_dir, meta, True
    if key is None:
        logger.warning("the model has no fingerprint (not loaded from a directory): indexing %s anew",
                       collection.name)
    summary = None
    if reuse and key and jsonl_dir.is_dir():
        try:
            summary = read_outputs([jsonl_dir], verify=False).summary
        except (ConfigError, ValueError):  # unfinished (resumed below) or not an encode output
            summary = None
    if summary and _built_by(summary.get("extra"), encoder, collection.corpus_key):
        logger.info("indexing the encoded corpus in %s (same model, quantization and corpus)", jsonl_dir)
        meta = index_meta(summary, corpus=collection.source)
        build_backend_index(jsonl_dir, index_dir, backend=backend, threads=threads, meta=meta, overwrite=True,
                            progress=progress, options=backend_options)
    else:
        # jsonl-<key> is this function's own directory: an unfinished encoding of the same job
        # resumes; another one (or --no-reuse, or an unkeyed model) starts over.
        index_corpus(encoder, collection.source, index_dir, threads=threads, batch_size=batch_size,
                     allow_empty=True, model_name=model_name, overwrite=True, progress=progress,
                     keep_jsonl=jsonl_dir if keep_jsonl else None, work_dir=jsonl_dir,
                     restart_encoding=not (reuse and key), backend=backend, backend_options=backend_options,
                     meta={"corpus_key": collection.corpus_key, "collection": collection.name})
    return index_dir, read_index_meta(index_dir), False


def _check_judged_documents(searcher, qrels: dict[str, dict[str, int]], corpus_name: str,
                            sample: int = 200) -> None:
    """Qrels from another corpus would score 0 silently: refuse when no judged document is indexed."""
    judged = sorted({d for docs in qrels.values() for d, rel in docs.items() if rel > 0})[:sample]
    if not judged:
        return
    found = sum(searcher.doc(d) is not None for d in judged)
    if found == 0:
        from .errors import InputError

        raise InputError(f"none of the judged documents (checked {len(judged)}, e.g. {judged[:3]}) is in the "
                         f"corpus of {corpus_name}: the qrels belong to another corpus; pass --qrels with "
                         "judgements of this corpus' document ids")
    if found < len(judged):
        logger.warning("%d of %d judged documents checked are not in the corpus of %s (they count as "
                       "unretrieved)", len(judged) - found, len(judged), corpus_name)


def evaluate_collection(encoder, collection, work_dir: str | os.PathLike, *, split: str = "test",
                        k: int = 1000, threads: int = 1, batch_size: int = 16, model_name: str = "",
                        measures=None, reuse: bool = True, progress: bool = True, queries_from=None,
                        qrels=None, topics=None, index_root: str | os.PathLike | None = None,
                        keep_jsonl: bool = False, allow_download: bool = False, backend: str = "lucene",
                        backend_options: dict | None = None, search_options: dict | None = None) -> dict:
    """Encode + index a collection's corpus, search its queries, score them with its qrels.

    ``collection``: a :class:`~splare_lucene.collections.Collection` or what
    :func:`~splare_lucene.collections.resolve_collection` takes (a BEIR folder, ``beir/...``,
    ``miracl/...``, ``irds:<id>``). Cross-lingual: ``queries_from`` (a collection or a queries
    file) gives the queries, and ``qrels`` (a file or a dict) the judgements when they come from neither
    (see :func:`~splare_lucene.collections.load_topics`); ``topics`` passes both, loaded.

    The index lives in ``index_root`` (default ``work_dir``) under ``index-<key>``, the key being
    the model's document fingerprint, quantization signature and corpus identity
    (:func:`index_key`, :func:`ensure_index`); an index of another model's document side or of
    another quantization is never used (a copy that differs only in query settings uses the
    original's). The run goes to ``work_dir/run.trec``.
    ``backend`` (:data:`splare_lucene.backends.BACKENDS`) builds and searches the index, with
    ``backend_options`` (build) and ``search_options`` (search) of that backend.
    """
    import time

    from .collections import check_available, load_topics, resolve_collection, resolve_queries
    from .evaluate import DEFAULT_MEASURES, evaluate
    from .ranking import write_trec_run

    if not hasattr(collection, "corpus_key"):
        collection = resolve_collection(str(collection), split=split)
    if isinstance(queries_from, (str, os.PathLike)):
        queries_from = resolve_queries(str(queries_from), split=split)
    if topics is None:
        check_available(collection, queries_from, qrels_given=qrels is not None, allow_download=allow_download)
        topics = load_topics(collection, queries_from, _qrels(qrels))
    work_dir = Path(work_dir)
    start = time.time()
    index_dir, meta, reused = ensure_index(encoder, collection, index_root or work_dir, threads=threads,
                                           batch_size=batch_size, model_name=model_name,
                                           keep_jsonl=keep_jsonl, reuse=reuse, progress=progress,
                                           backend=backend, backend_options=backend_options)
    index_seconds = time.time() - start
    queries = topics.queries
    if backend != "lucene":
        from .backends import open_index

        index = open_index(index_dir, encoder, backend=backend,
                           options={"batch_size": batch_size, **(search_options or {})})
        if index.stores_text:  # its doc() knows the corpus' ids only then
            _check_judged_documents(index, topics.qrels, collection.name)
        start = time.time()
        terms = index.query_terms(queries, progress=progress)
        q_nnz = [len(t) for t in terms]
        run = index.search_terms([q.id for q in queries], terms, k=k, threads=threads)
        search_seconds = time.time() - start
    else:
        run, q_nnz, search_seconds = _search_lucene(encoder, index_dir, topics, collection, queries, k=k,
                                                    threads=threads, batch_size=batch_size, progress=progress)
    run_path = work_dir / "run.trec"
    write_trec_run(run, run_path, tag=model_name or "splare")
    aggregate, per_query = evaluate(run, topics.qrels, measures or DEFAULT_MEASURES)
    return {"metrics": aggregate, "per_query": per_query, "queries": len(queries),
            "documents": meta["counters"].get("indexed", 0), "doc_nnz_mean": meta["encoding"]["mean_nnz"],
            "query_nnz_mean": sum(q_nnz) / max(1, len(q_nnz)), "index_bytes": directory_size(index_dir),
            "index_seconds": round(index_seconds, 1), "search_seconds": round(search_seconds, 1),
            "reused_index": reused, "index_dir": str(index_dir), "run_path": str(run_path),
            "collection": collection.name, "topics": topics.name, "backend": backend}


def _search_lucene(encoder, index_dir, topics, collection, queries, *, k: int, threads: int, batch_size: int,
                   progress: bool):
    """evaluate_collection's Lucene search: (run, query term counts, seconds)."""
    import time

    from .search import SplareQueryEncoder, batch_search, open_searcher

    searcher = open_searcher(index_dir, SplareQueryEncoder(encoder, batch_size=batch_size))
    try:
        _check_judged_documents(searcher, topics.qrels, collection.name)
        start = time.time()
        searcher.query_encoder.prime([q.text for q in queries], progress=progress)
        q_nnz = [len(searcher.query_encoder.encode(q.text)) for q in queries]
        run = batch_search(searcher, queries, k=k, threads=threads, progress=False)
        search_seconds = time.time() - start
    finally:
        searcher.close()
    return run, q_nnz, search_seconds


def _qrels(qrels) -> dict[str, dict[str, int]] | None:
    """A ``--qrels`` file (or an already read dict) -> {qid: {docid: relevance}}."""
    if qrels is None or isinstance(qrels, dict):
        return qrels
    from .errors import InputError
    from .evaluate import read_qrels

    if not Path(qrels).is_file():
        raise InputError("no such qrels file (BEIR `query-id corpus-id score` TSV or TREC qrels)", path=str(qrels))
    return read_qrels(qrels)


def model_label(model: str) -> str:
    """A short system name: 'default', a directory's name, or the name part of a hub id."""
    return Path(str(model).rstrip("/")).name or str(model)


@dataclass
class EvaluationReport:
    """What :func:`run_evaluation` wrote and measured."""

    rows: list                      # evaluate.ResultRow, per collection and system (+ means)
    measures: list[str]
    markdown: str
    output: Path
    files: dict[str, Path]          # results.md / .csv / .json, plot
    collections: list[dict] = field(default_factory=list)  # per collection: dirs, reuse, timings


def run_evaluation(model: str, collections: Sequence[str], *, output: str | os.PathLike | None = None,
                   split: str = "test", measures: Sequence[str] | None = None, queries_from: str | None = None,
                   qrels: str | None = None, baseline_runs: Sequence[str] = (), baseline_name: str = "baseline",
                   bm25: bool = False, language: str | None = None, significance: str = "t-test",
                   k: int = 1000, threads: int = 1, batch_size: int = 16, device: str = "auto",
                   dtype: str = "float32", plot: bool = False, allow_download: bool = False,
                   keep_jsonl: bool = False, reuse: bool = True, model_name: str | None = None,
                   progress: bool = True, backend: str = "lucene", backend_options: dict | None = None,
                   search_options: dict | None = None, hybrid: str | None = None, fusion: str = "rrf",
                   alpha: float | None = None, rrf_k: int | None = None) -> EvaluationReport:
    """Model + collections -> metrics for the model, BM25, a hybrid and a baseline run, with significance.

    Inputs are all checked (measures, files, collections on disk, queries with qrels) before the
    model is loaded. Outputs go under ``output`` (default ``runs/evaluate/<model name>``): per
    collection ``<slug>/`` with ``index-<key>/``, ``run.trec``, ``bm25.trec``, ``per_query.tsv``;
    BM25 indexes in ``<slug>/bm25/``; and ``results.md``, ``results.csv``, ``results.json``,
    ``results.png`` (``plot``). ``backend`` (``seismic-<key>/`` indexes for Seismic),
    ``backend_options`` and ``search_options``: as :func:`evaluate_collection`. ``hybrid="bm25"``
    adds the row ``hybrid_name(...)``: the model's run fused with BM25's (same analyzer as
    ``bm25``; ``bm25.trec`` is written either way) by :func:`splare_lucene.fusion.fuse` with
    ``fusion`` (``rrf`` with ``rrf_k``, or ``interpolation`` with ``alpha`` weighting the model),
    written to ``hybrid.trec``.
    """
    import json

    from .collections import (Collection, check_available, expand_collections, load_topics,
                              resolve_collection, resolve_queries, slugify)
    from .errors import ConfigError, InputError
    from .evaluate import (DEFAULT_MEASURES, SIGNIFICANCE_TESTS, ResultRow, evaluate, markdown_table,
                           mean_rows, measure_names, paired_test, read_run, values_of, write_csv,
                           write_per_query)

    measures = measure_names(measures or DEFAULT_MEASURES)
    from .backends import check_backend_name

    check_backend_name(backend)
    if backend == "seismic":  # the install command before anything loads
        from .backends.seismic import import_seismic

        import_seismic()
    if significance not in SIGNIFICANCE_TESTS:
        raise ConfigError(f"significance must be one of {list(SIGNIFICANCE_TESTS)}; got {significance!r}")
    specs = expand_collections(list(collections))
    if not specs:
        raise ConfigError("give at least one --collection")
    baseline_runs = list(baseline_runs)
    if baseline_runs and len(baseline_runs) != len(specs):
        raise ConfigError(f"give one --baseline-run per collection, in the same order: {len(specs)} "
                          f"collection(s), {len(baseline_runs)} run file(s)")
    name = model_name or model_label(model)
    if name in ("BM25", baseline_name) or baseline_name == "BM25":
        raise ConfigError(f"system names must differ: model {name!r}, baseline {baseline_name!r}, BM25; "
                          "pass --name or --baseline-name")
    hybrid_system = None
    if hybrid is not None:
        from .fusion import check_fusion_parameters

        if hybrid not in HYBRID_SYSTEMS:
            raise ConfigError(f"hybrid must be one of {list(HYBRID_SYSTEMS)}; got {hybrid!r}")
        check_fusion_parameters(fusion, n_runs=2, alpha=alpha, rrf_k=rrf_k, k=k)
        hybrid_system = hybrid_name(name, fusion, alpha=alpha, rrf_k=rrf_k)
        if hybrid_system == baseline_name:
            raise ConfigError(f"system names must differ: hybrid {hybrid_system!r}, baseline {baseline_name!r}; "
                              "pass --baseline-name")
    baseline_hits = [read_run(path) for path in baseline_runs]  # malformed runs fail before any work
    corpora = [resolve_collection(s, split=split, language=language) for s in specs]
    query_source = resolve_queries(queries_from, split=split, language=language) if queries_from else None
    problems = []  # report every collection's missing files at once, not one per try
    for corpus in corpora:
        try:
            check_available(corpus, query_source, qrels_given=qrels is not None, allow_download=allow_download)
        except InputError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError("\n\n".join(dict.fromkeys(problems)))
    judged = _qrels(qrels)
    topics = [load_topics(c, query_source, judged) for c in corpora]

    from .encoder import SplareEncoder
    from .outputs import check_not_input, check_not_written, check_output_dir

    output = Path(output) if output else Path("runs") / "evaluate" / slugify(name)
    # before the model loads: results, runs and indexes never go into (or replace) an input. The
    # output folder accumulates (it is never replaced as a whole), so it may hold an earlier run
    # given as --baseline-run, unless this command writes that very file.
    check_not_input(output, {"--collection": list(specs), "--queries-from": queries_from, "--model": model},
                    what="--output")
    file_inputs = {"--qrels": qrels, "--baseline-run": baseline_runs}
    check_not_input(output, file_inputs, what="--output", allow_contains=True)
    check_not_written(file_inputs, output, lambda rel: _evaluate_writes(rel, bm25, hybrid is not None),
                      what="--output")
    check_output_dir(output, what="--output")
    encoder = SplareEncoder.from_pretrained(model, device=device, dtype=dtype)
    output.mkdir(parents=True, exist_ok=True)
    reference = baseline_name if baseline_runs else "BM25" if bm25 else None
    rows: list[ResultRow] = []
    details: list[dict] = []
    for i, (corpus, topic) in enumerate(zip(corpora, topics)):
        if query_source is None:
            work = output / corpus.slug
        else:
            qslug = query_source.slug if isinstance(query_source, Collection) else slugify(Path(query_source).stem)
            work = output / f"{qslug}--on--{corpus.slug}"
        work.mkdir(parents=True, exist_ok=True)
        res = evaluate_collection(encoder, corpus, work, topics=topic, index_root=output / corpus.slug, k=k,
                                  threads=threads, batch_size=batch_size, model_name=name, measures=measures,
                                  reuse=reuse, progress=progress, keep_jsonl=keep_jsonl, backend=backend,
                                  backend_options=backend_options, search_options=search_options)
        per_system = {name: res.pop("per_query")}
        metrics = {name: res["metrics"]}
        bm25_run = None
        if bm25 or hybrid_system:
            bm25_run, res["bm25_run"] = _bm25_run(corpus, topic, work, output / corpus.slug / "bm25", k=k,
                                                  threads=threads)
        if bm25:
            metrics["BM25"], per_system["BM25"] = evaluate(bm25_run, topic.qrels, measures)
        if hybrid_system:
            from .fusion import fuse, run_tag
            from .ranking import write_trec_run

            fused = fuse([read_run(res["run_path"]), bm25_run], method=fusion, alpha=alpha, rrf_k=rrf_k, k=k)
            res["hybrid_run"] = str(work / "hybrid.trec")
            write_trec_run(fused, res["hybrid_run"], tag=run_tag(fusion))
            metrics[hybrid_system], per_system[hybrid_system] = evaluate(fused, topic.qrels, measures)
        if baseline_runs:
            wanted = {q.id for q in topic.queries}
            run = {q: hits for q, hits in baseline_hits[i].items() if q in wanted}
            if not run:
                raise InputError(f"the baseline run has none of the {len(wanted)} queries of {topic.name}",
                                 path=str(baseline_runs[i]))
            metrics[baseline_name], per_system[baseline_name] = evaluate(run, topic.qrels, measures)
        qids = [q.id for q in topic.queries]
        for system, values in metrics.items():
            p = None
            if reference and system != reference:
                p = paired_test(values_of(per_system[system], measures[0], qids),
                                values_of(per_system[reference], measures[0], qids), significance)
            rows.append(ResultRow(topic.name, system, values, len(qids), p, system == reference))
        write_per_query(work / "per_query.tsv", per_system)
        details.append({**res, "work_dir": str(work), "dataset_id": corpus.dataset_id, "language": corpus.language})
    rows += mean_rows(rows)
    test = f"{significance} vs {reference}" if reference else None
    markdown = markdown_table(rows, measures, test)
    files = {"markdown": output / "results.md", "csv": output / "results.csv", "json": output / "results.json"}
    files["markdown"].write_text(f"# {name}: retrieval effectiveness\n\n{markdown}", encoding="utf-8")
    write_csv(rows, measures, files["csv"])
    files["json"].write_text(json.dumps({
        "model": name, "model_path": str(model), "model_fingerprint": encoder.fingerprint,
        "signature": encoder.config.index_signature(), "measures": measures, "k": k,
        "significance": {"test": significance, "baseline": reference, "measure": measures[0]} if reference else None,
        "hybrid": {"system": hybrid_system, "with": hybrid, "fusion": fusion, "alpha": alpha, "rrf_k": rrf_k}
        if hybrid_system else None,
        "rows": [asdict(r) for r in rows], "collections": details}, indent=2) + "\n", encoding="utf-8")
    if plot:
        from .evaluate import plot_results

        files["plot"] = plot_results([r for r in rows if r.collection != "mean"], measures[0],
                                     output / "results.png")
    return EvaluationReport(rows, measures, markdown, output, files, details)


def _evaluate_writes(relative: Path, bm25: bool, hybrid: bool = False) -> bool:
    """Whether :func:`run_evaluation` writes (or replaces) ``relative``, a path under its output."""
    written = {"results.md", "results.csv", "results.json", "results.png", "run.trec", "per_query.tsv"}
    if bm25 or hybrid:
        written.add("bm25.trec")
    if hybrid:
        written.add("hybrid.trec")
    return relative.name in written or any(part.startswith(("index-", "seismic-", "jsonl-")) or part == "bm25"
                                           for part in relative.parts[:-1])


def _bm25_run(corpus, topic, work: Path, cache: Path, *, k: int, threads: int):
    """Pyserini/Anserini BM25 with the corpus language's analyzer: (ranked run, path of bm25.trec)."""
    from .bm25 import bm25_index, bm25_search
    from .fusion import pairs_to_run
    from .ranking import write_trec_run

    index = bm25_index(corpus.source, language=corpus.language, threads=threads, cache_dir=cache,
                       corpus_key=corpus.corpus_key)
    hits = bm25_search(index, {q.id: q.text for q in topic.queries}, k=k, threads=threads, language=corpus.language)
    run = pairs_to_run(hits)
    write_trec_run(run, work / "bm25.trec", tag=f"bm25-{corpus.language}")
    return run, str(work / "bm25.trec")


# -- hybrid retrieval (SPLARE fused with BM25) ----------------------------------------------------

HYBRID_SYSTEMS: tuple[str, ...] = ("bm25",)


def hybrid_name(model_name: str, fusion: str, *, alpha: float | None = None, rrf_k: int | None = None) -> str:
    """The system name of a hybrid row: ``<model>+BM25 rrf(k=60)`` or ``<model>+BM25 interp(alpha=0.5)``."""
    from .fusion import DEFAULT_ALPHA, DEFAULT_RRF_K

    if fusion == "rrf":
        return f"{model_name}+BM25 rrf(k={DEFAULT_RRF_K if rrf_k is None else rrf_k})"
    return f"{model_name}+BM25 interp(alpha={DEFAULT_ALPHA if alpha is None else alpha:g})"


def hybrid_search(index, queries, bm25_index_dir: str | os.PathLike, *, language: str = "en",
                  fusion: str = "rrf", alpha: float | None = None, rrf_k: int | None = None,
                  depth: int | None = None, k: int = 1000, threads: int = 1, progress: bool = True) -> dict:
    """SPLARE fused with BM25 for ``queries`` (a sequence of :class:`~splare_lucene.types.Query`).

    ``index``: an opened search index (:func:`splare_lucene.backends.open_index`);
    ``bm25_index_dir``: a plain Lucene index of the same documents' text
    (:func:`splare_lucene.bm25.bm25_index`), searched with ``language``'s analyzer. Each system
    returns ``depth`` hits (default ``max(k, 1000)``, Pyserini's fusion depth), fused by
    :func:`splare_lucene.fusion.fuse` (SPLARE first: ``alpha`` weights SPLARE) and cut at ``k``.
    Returns ``{query id: [ScoredDoc]}`` in the toolkit's order. Starts the JVM (BM25).
    """
    from .bm25 import bm25_search
    from .fusion import DEFAULT_DEPTH, check_fusion_parameters, fuse, pairs_to_run

    check_fusion_parameters(fusion, n_runs=2, alpha=alpha, rrf_k=rrf_k, depth=depth, k=k)
    depth = depth or max(k, DEFAULT_DEPTH)
    queries = list(queries)
    splare = index.search(queries, k=depth, threads=threads, progress=progress)
    bm25 = pairs_to_run(bm25_search(Path(bm25_index_dir), {q.id: q.text for q in queries}, k=depth,
                                    threads=threads, language=language))
    return fuse([splare, bm25], method=fusion, alpha=alpha, rrf_k=rrf_k, k=k)
