"""The gateway gives freed native memory back (wapo.gateway.heap): glibc keeps what threads free."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
import threading

import pytest

from wapo.gateway.heap import keep_trimmed, native_trim

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or native_trim() is None,
                                reason="malloc_trim is glibc's")

BLOCK = 64 * 1024      # under glibc's mmap threshold: carved from the thread's arena
BLOCKS = 2048          # 128 MiB


def rss_anon() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def fragment_a_thread_arena() -> None:
    """Touch 128 MiB in another thread's arena, free all of it but the last block (which keeps the
    arena's top in use, so free() alone cannot give the rest back)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    blocks = []
    for _ in range(BLOCKS):
        p = libc.malloc(BLOCK)
        assert p
        libc.memset(p, 1, BLOCK)
        blocks.append(p)
    for p in blocks[:-1]:
        libc.free(p)


def test_a_trim_gives_back_what_a_thread_freed() -> None:
    native_trim()()   # free memory that earlier tests left resident would hide the rise
    before = rss_anon()
    t = threading.Thread(target=fragment_a_thread_arena)
    t.start()
    t.join()
    freed_but_resident = rss_anon()
    assert freed_but_resident - before > BLOCK * BLOCKS // 2    # free() kept it
    trim = native_trim()
    assert trim is not None
    trim()
    assert freed_but_resident - rss_anon() > BLOCK * BLOCKS // 2  # the trim gave it back


def test_the_trimmer_runs_and_ends_with_its_stop_event() -> None:
    async def main() -> int:
        native_trim()()
        t = threading.Thread(target=fragment_a_thread_arena)
        t.start()
        await asyncio.to_thread(t.join)
        high = rss_anon()                       # freed, still resident: no trimmer ran yet
        stop = asyncio.Event()
        task = asyncio.create_task(keep_trimmed(stop, every=0.01))
        for _ in range(500):   # a trim comes within ~10 ms; give it up to 5 s on a loaded machine
            await asyncio.sleep(0.01)
            if high - rss_anon() > BLOCK * BLOCKS // 2:
                break
        dropped = high - rss_anon()
        stop.set()
        await asyncio.wait_for(task, 10)
        return dropped

    assert asyncio.run(main()) > BLOCK * BLOCKS // 2


def test_no_trimmer_when_turned_off() -> None:
    async def main() -> None:
        await asyncio.wait_for(keep_trimmed(asyncio.Event(), every=0), 5)   # returns at once
    asyncio.run(main())
