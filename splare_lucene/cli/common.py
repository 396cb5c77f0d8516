"""Argument helpers shared by commands (no heavy imports)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from ..vocab import LUCENE_DEFAULT_MAX_CLAUSES
from .options import positive_int

logger = logging.getLogger(__name__)


def add_runtime(p: argparse.ArgumentParser, *, batch_size_default: int | None = 16,
                batch_size_help: str = "texts per forward pass", batch_size: bool = True) -> None:
    """--device, --dtype and (unless ``batch_size=False``, for commands that encode one text at a
    time) --batch-size. ``--dtype auto`` (the default) is resolved once the device is known
    (``backbone.resolve_dtype``): bfloat16 on CUDA GPUs that support it, float32 on CPU and MPS."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="where the model runs (default auto: CUDA if available, then MPS, else CPU)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="backbone weights and activations (default auto: bfloat16 on CUDA where "
                   "supported, else float32); the SAE, scores and losses stay float32")
    if batch_size:
        p.add_argument("--batch-size", type=positive_int, default=batch_size_default, help=batch_size_help)


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default",
                   help="model directory, hub id, or 'default' (the built-in model)")


def check_output(path: str | Path, overwrite: bool, what: str = "output", *,
                 kinds: Sequence[str] = ("model",), remove: bool = True) -> Path:
    """Refuse to clobber an existing path unless --overwrite, and even then unless it is an empty
    directory or one of ``kinds`` (:data:`splare_lucene.outputs.KINDS`: what the toolkit wrote);
    check that it can be written. ``remove``: delete it now (else the caller replaces it once
    its work is done). Raises ConfigError naming the path and the fix."""
    from ..outputs import check_output_dir, check_replaceable, safe_replace_dir

    path = Path(path)
    if os.path.lexists(path):
        if not overwrite:
            raise ConfigError(f"{what} {path} already exists; pass --overwrite to replace it")
        check_replaceable(path, kinds, what=what)
    check_output_dir(path, what=what)
    if remove:
        safe_replace_dir(path, kinds, what=what)
    return path


def warn_query_top_k(top_k: int, width: int | None = None) -> None:
    """Log what a query top-k of 0 (no cut) or above Lucene's default clause limit means; silent
    when the model's ``width`` (latents) is itself within the limit, as no query can exceed it."""
    if width is not None and width <= LUCENE_DEFAULT_MAX_CLAUSES:
        return
    if top_k == 0:
        what = "0 (no cut): every non-zero latent becomes a query term"
    elif top_k > LUCENE_DEFAULT_MAX_CLAUSES:
        what = f"{top_k}, above Lucene's default limit of {LUCENE_DEFAULT_MAX_CLAUSES} query terms"
    else:
        return
    logger.warning(
        "query top-k is %s. A SPLARE query can have thousands of non-zero latents (an untrained "
        "model's do), and every one is a posting list to search, so search slows down; "
        "`splare-lucene search`/`evaluate` and the Python API raise Lucene's clause limit to the "
        "model's width, but Anserini's SearchCollection and Pyserini's command line refuse "
        "queries of more than %d terms (TooManyClauses). Pass --query-top-k to cut queries: 40 "
        "is the paper's, 100 the built-in default's (chosen on dev splits, docs/training.md).",
        what, LUCENE_DEFAULT_MAX_CLAUSES)
