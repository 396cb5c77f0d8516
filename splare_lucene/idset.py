"""Which ids of a stream were seen before, in 8 bytes per id: duplicate checks that scale.

Readers refuse a repeated document or query id (:mod:`splare_lucene.corpus`). Keeping every id
in a Python dict cost about 100 bytes per id (the string, the dict slot and the line number;
benchmarks/reader_ids.py): 0.1 MiB per 1,000 documents, 10 GB for a 100M-passage corpus, in every shard's process (each
reads the whole corpus to pick its 1/N). :class:`IdHashSet` keeps a 64-bit BLAKE2b hash of each
id instead, in sorted numpy ``uint64`` runs merged like a binary counter (a log-structured
merge): 8 bytes per id (800 MB at 100M ids), up to about three times that for a moment while
the largest runs merge, and ``O(log n)`` vectorised binary searches per batch of ids.

A hash says only "maybe seen": two distinct ids share a 64-bit hash with probability about
``n^2 / 2^65`` (3e-4 at 100M ids). Callers confirm a hit against the ids themselves (the corpus
reader re-reads the source up to that record) and treat a non-confirmed hit as a collision.
:mod:`splare_lucene.engines.ids` checks encoded files before indexing with the same hash.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

__all__ = ["id_digest", "IdHashSet"]


def id_digest(doc_id: str | bytes) -> bytes:
    """The 8-byte BLAKE2b digest of an id (of its UTF-8 bytes for a ``str``)."""
    data = doc_id.encode("utf-8", "surrogatepass") if isinstance(doc_id, str) else doc_id
    return hashlib.blake2b(data, digest_size=8).digest()


class IdHashSet:
    """A set of 64-bit id hashes, added batch by batch; each batch reports which of its ids may
    have been seen before (earlier in the same batch, or in an earlier one).

    Memory: 8 bytes per id added (``nbytes``), in ``O(log n)`` sorted runs; a merge briefly
    holds the merged runs and their concatenation. Batches of a few hundred ids or more keep the
    per-id cost at a few microseconds (numpy ``searchsorted`` per run, a stable sort per batch).
    """

    def __init__(self) -> None:
        self._runs: list = []  # sorted np.uint64 arrays, sizes non-increasing (largest first)
        self.size = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the hashes (8 per id added)."""
        return sum(run.nbytes for run in self._runs)

    def add(self, digests: Sequence[bytes]):
        """Add the ids whose :func:`id_digest` are ``digests`` (in stream order); return a
        numpy bool array, shape ``(len(digests),)``: True where that id's hash was added before
        (in an earlier batch, or earlier in this one), i.e. the id may be a repeat."""
        import numpy as np

        values = np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)
        seen = np.zeros(values.shape[0], dtype=bool)
        if values.shape[0] == 0:
            return seen
        for run in self._runs:
            where = np.searchsorted(run, values)
            np.minimum(where, run.shape[0] - 1, out=where)
            seen |= run[where] == values
        order = np.argsort(values, kind="stable")  # equal hashes keep stream order
        ordered = values[order]
        repeats = ordered[1:] == ordered[:-1]
        seen[order[1:][repeats]] = True  # the later occurrences of a hash within the batch
        self._runs.append(ordered)
        self.size += values.shape[0]
        # binary-counter merging: a run never sits after one no larger than itself, so there are
        # at most log2(n / batch) + 1 runs and each hash is copied O(log n) times in all
        while len(self._runs) > 1 and self._runs[-2].shape[0] <= self._runs[-1].shape[0]:
            last = self._runs.pop()
            merged = np.concatenate((self._runs.pop(), last))
            merged.sort(kind="stable")  # two sorted runs: timsort merges them in linear time
            self._runs.append(merged)
        return seen
