"""Float pooled weights -> positive integer impacts. One function for queries and documents.

``impact = round(weight * scale)``; entries that round to 0 are dropped. Lucene stores impacts as
term frequencies, and Anserini's JsonVectorCollection truncates floats to int and skips documents
whose weights are all below 1, so the toolkit quantizes itself and records ``scale`` with the
model and the index (a query quantized with another scale would rank wrongly).
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError
from .types import ImpactVector, SparseVector


def quantize(vector: SparseVector, scale: float) -> ImpactVector:
    if not scale > 0:
        raise ConfigError(f"quantization scale must be > 0; got {scale}")
    weights = np.floor(np.asarray(vector.values, dtype=np.float64) * scale + 0.5).astype(np.int64)
    keep = weights > 0
    return ImpactVector(np.asarray(vector.indices)[keep], weights[keep])


def dequantize(vector: ImpactVector, scale: float) -> SparseVector:
    return SparseVector(vector.indices, (vector.weights / scale).astype(np.float32))
