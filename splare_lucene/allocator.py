"""glibc's malloc, set for long encodes: a fixed mmap threshold, so freed tensors go back to the OS.

Why: glibc serves an allocation of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start) with
its own ``mmap`` and unmaps it on free, but by default the threshold is *dynamic*: each time such
a block is freed, glibc raises the threshold to that block's size (up to 32 MiB on 64-bit). After
the first batches, a forward pass's activations (hundreds of KiB to a few MiB each, with sizes
that change with every batch's length) are therefore carved out of the heap instead, and the
heap keeps what it once held. Measured with the default model, one thread, batches of 16 SQuAD
questions (benchmarks/encode_scale.py, benchmarks/README.md "Memory over a long encode"):
anonymous resident memory grew by about 70 MiB over 20,000 documents in steps (+41, +16, +6 MiB);
with the threshold fixed at 1 MiB (or with jemalloc preloaded) it stayed flat over a 1,600-document
diagnostic, and the 20,000-document benchmark is rerun with it (its result: the README). Setting the
threshold explicitly turns the dynamic adjustment off (glibc ``mallopt(3)``: "setting this
parameter ... disables the dynamic adjustment").

Cost: one ``mmap``/``munmap`` and the page faults of a fresh mapping for every tensor of 1 MiB or
more (not measured apart yet: the encode rate of the benchmark run is in its result). The setting
is process-wide and stays after the encode returns (an API user's process included); set
``MALLOC_MMAP_THRESHOLD_`` yourself to choose another value (``GLIBC_TUNABLES`` is not read here).

Only glibc on Linux is changed; elsewhere (macOS, musl) this is a no-op. A user's own
``MALLOC_MMAP_THRESHOLD_`` environment variable wins: it is left as set.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20  # 1 MiB: flat in the measurement above, fewer mmaps than 128 KiB

_applied: int | None = None


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold to ``threshold`` bytes (which stops its dynamic raising);
    returns True when the setting is in force. Idempotent and process-wide; False (nothing done)
    off glibc, or when the user set ``MALLOC_MMAP_THRESHOLD_`` (theirs is kept).

    Raises ValueError for a threshold below 1 or above glibc's 32 MiB maximum on 64-bit."""
    global _applied
    if not 1 <= threshold <= 32 << 20:
        raise ValueError(f"mmap threshold must be 1..{32 << 20} bytes; got {threshold}")
    if _applied == threshold:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl has mallopt but ignores it
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, int(threshold)) != 1:
        logger.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
        return False
    _applied = threshold
    logger.debug("glibc mmap threshold fixed at %d bytes", threshold)
    return True


def release_free_memory() -> bool:
    """Give the free memory glibc keeps in its arenas back to the OS (``malloc_trim(0)``: since
    glibc 2.8 it releases free pages inside the heap too, not only at its top); True when called.

    Why: with the threshold fixed, what still moved over a long encode was free memory kept in the
    arenas (mallinfo2's ``fordblks``; live allocations stayed flat): activation buffers of varying
    sizes leave holes the next batches only partly reuse, so resident memory wandered by some
    10 MiB with no trend (benchmarks/README.md, "Memory over a long encode"). The engines call
    this once per part (every few thousand documents): a few milliseconds against minutes of
    encoding. No-op (False) off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
        libc.gnu_get_libc_version  # glibc only
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
