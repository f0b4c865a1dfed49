"""Native memory that the process freed goes back to the system, now and then.

glibc's malloc keeps what a thread frees in that thread's arena (heaps of up to 64 MiB each) for
reuse, and gives it back to the system only from the top of a heap. wasmtime allocates on the
guest threads and on its compile threads, so after bursts (a background image compile, a run
buffering a large answer, a spike of concurrent sandboxes) the gateway's RSS stayed at its high
mark: in bench/soak.py a gateway's RSS rose 148 -> 230 MB after the worker kill and stayed there,
and one ``malloc_trim(0)`` (called from gdb) dropped it 286 -> 166 MB at once, so the memory was
free, not leaked. ``malloc_trim`` returns the free pages of every arena (``madvise``); it runs on
a thread of its own every TRIM_EVERY seconds, never on the event loop. On a C library without it
(musl, macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import time
from typing import Callable

log = logging.getLogger("wapo.gateway")

TRIM_EVERY = float(os.environ.get("WAPO_TRIM_EVERY", "10"))  # seconds; 0 turns trimming off


def native_trim() -> Callable[[], int] | None:
    """glibc's ``malloc_trim(0)`` as a callable (the GIL is released while it runs), or None."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc is among them
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


async def keep_trimmed(stop: asyncio.Event, every: float = TRIM_EVERY) -> None:
    """Trim the native heap every ``every`` seconds until ``stop`` is set."""
    trim = native_trim()
    if trim is None or every <= 0:
        return
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            start = time.perf_counter()
            await asyncio.to_thread(trim)
            log.debug("malloc_trim took %.1f ms", (time.perf_counter() - start) * 1000)
