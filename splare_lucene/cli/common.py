"""Argument helpers shared by commands (no heavy imports)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..errors import ConfigError


def add_runtime(p: argparse.ArgumentParser, *, batch_size_default: int | None = 16,
                batch_size_help: str = "texts per forward pass") -> None:
    """--device, --dtype and --batch-size. ``--dtype auto`` (the default) is resolved once the
    device is known (``backbone.resolve_dtype``): bfloat16 on CUDA GPUs that support it, float32
    on CPU and MPS."""
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="backbone weights and activations (default auto: bfloat16 on CUDA where "
                   "supported, else float32); the SAE, scores and losses stay float32")
    p.add_argument("--batch-size", type=int, default=batch_size_default, help=batch_size_help)


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default",
                   help="model directory, hub id, or 'default' (the built-in model)")


def check_output(path: str | Path, overwrite: bool, what: str = "output") -> Path:
    """Refuse to clobber an existing path unless --overwrite; then remove it."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise ConfigError(f"{what} {path} already exists; pass --overwrite to replace it")
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return path
