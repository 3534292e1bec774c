"""glibc's allocator, tuned for one large inference at a time (a no-op where glibc is absent).

Decoding, features, request parsing and onnxruntime's arena all draw on malloc from many threads;
one arena, a 1 MiB mmap threshold and a trim after each request keep peak RSS down under load
(figures: docs/benchmarks.md#memory)."""

from __future__ import annotations

import ctypes
from functools import cache

M_ARENA_MAX = -8
M_MMAP_THRESHOLD = -3


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def limit_fragmentation() -> None:
    """One arena for every thread, and buffers over 1 MiB always mmapped so they go back to the OS
    when freed. Call first thing, before the server starts its threads."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, 1)
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (the small tensors of a finished inference)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
