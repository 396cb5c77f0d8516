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


# Lucene stores an impact as a term frequency, a Java int: 2**31 - 1 at most.
MAX_IMPACT = 2**31 - 1


def quantize(vector: SparseVector, scale: float) -> ImpactVector:
    """(n,) float weights -> the kept ids and their int64 impacts, ``1 <= impact <= MAX_IMPACT``.

    ``impact = round_half_up(x)`` with ``x = float64(weight) * scale``: ``floor(x)``, plus 1 when
    ``x - floor(x) >= 0.5``. (Not ``floor(x + 0.5)``: for x = 0.49999999999999994 the addition
    rounds up to 1.0 and gives impact 1 for x < 0.5.) Entries with ``x < 0.5`` (impact 0, and
    negative weights, which pooled log(1 + ReLU) activations never are) are dropped with their
    ids; every other entry is kept, in input order.

    Raises ConfigError when ``scale`` is not a finite number > 0, when a weight is not finite
    (NaN/inf from the model, which used to vanish silently through int64 overflow), or when an
    impact would exceed MAX_IMPACT (a scale too large for the weights: lower it).
    """
    if not (scale > 0 and np.isfinite(scale)):
        raise ConfigError(f"quantization scale must be > 0 and finite; got {scale}")
    x = np.asarray(vector.values, dtype=np.float64) * scale
    bad = ~np.isfinite(x) | (x >= MAX_IMPACT + 0.5)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        latent, weight = np.asarray(vector.indices)[i], np.asarray(vector.values)[i]
        if np.isfinite(weight):  # finite, but x scale too large (or overflowing to inf)
            raise ConfigError(f"latent {latent}: weight {weight} x quantization scale {scale} = {x[i]:.4g} "
                              f"exceeds the largest impact Lucene stores ({MAX_IMPACT}); use a smaller scale")
        raise ConfigError(f"latent {latent} has weight {weight} (x scale {scale} = {x[i]}): impacts need "
                          "finite weights; the model produced a bad activation")
    whole = np.floor(x)
    weights = (whole + (x - whole >= 0.5)).astype(np.int64)
    keep = weights > 0
    return ImpactVector(np.asarray(vector.indices)[keep], weights[keep])


def dequantize(vector: ImpactVector, scale: float) -> SparseVector:
    """Impacts -> float32 weights ``impact / scale`` (the same ids).

    ``quantize(dequantize(q, s), s) == q`` for impacts below 2**23: float32 keeps 24 significant
    bits, so ``impact / scale`` comes back within ``impact * 2**-24 < 0.5`` of the impact.
    """
    return SparseVector(vector.indices, (vector.weights / scale).astype(np.float32))
