"""Argument helpers shared by commands (no heavy imports)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from ..errors import ConfigError


def add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--batch-size", type=int, default=16, help="texts per forward pass")


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
