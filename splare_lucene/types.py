"""Typed records that travel along the pipeline (text -> vectors -> runs)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Document(NamedTuple):
    """A corpus entry. ``text`` is what the encoder sees (BEIR title and text joined)."""

    id: str
    text: str


class Query(NamedTuple):
    id: str
    text: str


class SparseVector(NamedTuple):
    """A pooled float vector: latent ids (int64) and their weights (float32), weight-descending."""

    indices: np.ndarray
    values: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    def to_dict(self) -> dict[int, float]:
        return {int(i): float(v) for i, v in zip(self.indices, self.values)}


class ImpactVector(NamedTuple):
    """A quantized vector: latent ids and positive integer impacts (what Lucene stores)."""

    indices: np.ndarray
    weights: np.ndarray

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])


class ScoredDoc(NamedTuple):
    """One hit of one query, as in a TREC run."""

    query_id: str
    doc_id: str
    score: float
    rank: int
