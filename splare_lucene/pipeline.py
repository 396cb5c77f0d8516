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
