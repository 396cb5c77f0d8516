"""Compositions of the pipeline steps: corpus -> encoder -> quantized JSONL -> index."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .corpus import read_documents
from .jsonl import JsonVectorWriter, WriteSummary

logger = logging.getLogger(__name__)


def encoding_meta(encoder, model_name: str) -> dict:
    return {"model": model_name, "model_fingerprint": encoder.fingerprint,
            "signature": encoder.config.index_signature(), "config": encoder.config.to_dict()}


def encode_corpus(encoder, source: str, output_dir: str | os.PathLike, *, shards: int = 1,
                  batch_size: int = 16, allow_empty: bool = False, model_name: str = "",
                  progress: bool = True) -> WriteSummary:
    """Stream ``source`` through the encoder into JsonVectorCollection shards."""
    docs = read_documents(source, allow_empty=allow_empty)
    with JsonVectorWriter(output_dir, shards=shards) as writer:
        writer.summary.extra = encoding_meta(encoder, model_name)
        for doc, vector in encoder.encode_stream(docs, kind="document", batch_size=batch_size,
                                                 progress=progress):
            writer.write(doc.id, doc.text, encoder.terms(vector))
    logger.info("wrote %s: %s", output_dir, writer.summary.describe())
    return writer.summary


def index_corpus(encoder, source: str, index_dir: str | os.PathLike, *, threads: int = 1,
                 batch_size: int = 16, allow_empty: bool = False, model_name: str = "",
                 keep_jsonl: str | os.PathLike | None = None, overwrite: bool = False,
                 progress: bool = True) -> dict:
    """Encode + write + index. The JSONL goes to ``keep_jsonl`` or a temporary directory."""
    import shutil
    import tempfile

    from .errors import ConfigError
    from .index import build_index

    index_dir = Path(index_dir)
    if index_dir.exists() and not overwrite:  # fail before encoding, not after
        raise ConfigError(f"index directory {index_dir} already exists; pass --overwrite to replace it")
    workdir = None
    if keep_jsonl is None:
        workdir = Path(tempfile.mkdtemp(prefix="splare-jsonl-"))
        jsonl_dir = workdir / "jsonl"
    else:
        jsonl_dir = Path(keep_jsonl)
    try:
        summary = encode_corpus(encoder, source, jsonl_dir, shards=threads, batch_size=batch_size,
                                allow_empty=allow_empty, model_name=model_name, progress=progress)
        meta = {**summary.extra, "corpus": str(source), "encoding": {
            k: v for k, v in summary.to_dict().items() if k not in ("extra", "empty_ids")}}
        return build_index(jsonl_dir, index_dir, threads=threads, meta=meta, overwrite=overwrite)
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def directory_size(path: str | os.PathLike) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def evaluate_collection(encoder, collection: str, work_dir: str | os.PathLike, *, split: str = "test",
                        k: int = 1000, threads: int = 1, batch_size: int = 16, model_name: str = "",
                        measures=None, reuse: bool = True, progress: bool = True) -> dict:
    """Encode + index a BEIR folder's corpus, search its queries, score with its qrels.

    The index lives in ``work_dir/index`` and is reused when its ``splare_index.json`` names the
    same model fingerprint and quantization; a mismatched index is rebuilt, never mixed.
    """
    import time

    from .corpus import read_queries
    from .evaluate import DEFAULT_MEASURES, evaluate, read_qrels
    from .index import read_index_meta
    from .search import SplareQueryEncoder, batch_search, open_searcher, write_trec_run

    work_dir = Path(work_dir)
    index_dir = work_dir / "index"
    meta = read_index_meta(index_dir) if index_dir.is_dir() else None
    fresh = not (reuse and meta and meta.get("model_fingerprint") == encoder.fingerprint
                 and meta.get("signature") == encoder.config.index_signature())
    start = time.time()
    if fresh:
        index_corpus(encoder, collection, index_dir, threads=threads, batch_size=batch_size, allow_empty=True,
                     model_name=model_name, overwrite=True, progress=progress)
        meta = read_index_meta(index_dir)
    index_seconds = time.time() - start
    qrels = read_qrels(Path(collection) / "qrels" / f"{split}.tsv")
    queries = [q for q in read_queries(collection) if q.id in qrels]
    searcher = open_searcher(index_dir, SplareQueryEncoder(encoder, batch_size=batch_size))
    start = time.time()
    searcher.query_encoder.prime([q.text for q in queries], progress=progress)
    q_nnz = [len(searcher.query_encoder.encode(q.text)) for q in queries]
    run = batch_search(searcher, queries, k=k, threads=threads, progress=False)
    search_seconds = time.time() - start
    searcher.close()
    write_trec_run(run, work_dir / "run.trec", tag=model_name or "splare")
    aggregate, per_query = evaluate(run, qrels, measures or DEFAULT_MEASURES)
    return {"metrics": aggregate, "per_query": per_query, "queries": len(queries),
            "documents": meta["counters"].get("indexed", 0), "doc_nnz_mean": meta["encoding"]["mean_nnz"],
            "query_nnz_mean": sum(q_nnz) / max(1, len(q_nnz)), "index_bytes": directory_size(index_dir),
            "index_seconds": round(index_seconds, 1), "search_seconds": round(search_seconds, 1),
            "reused_index": not fresh}
