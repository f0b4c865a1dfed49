"""Guest steps on worker threads, shared fairly between tenants.

A *step* is anything whose duration a guest controls: one entry into ``wapo_poll``, an
instantiation (a start function, ``_initialize``, a memory image written in), an agent's
compilation, the drop of its Store. The event loop never runs one; it hands it to
``GuestThreads`` and awaits the answer. wasmtime releases the GIL while wasm runs (so do the
ctypes calls of the per-run path), so steps of different guests run on different cores.

wasmtime cannot pause a running guest and resume it later, so a step, once started, holds its
thread until it returns (at most the burst limit). Fairness is therefore in the choice of the
next step: runnable steps wait in one queue per tenant (an agent's CID, an app's id), a free
thread takes the oldest step of the next tenant in round-robin order, and no tenant holds more
than ``per_tenant`` threads at once; the OS time-slices the threads, so a short step runs
beside long ones instead of after them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
from collections import deque
from typing import Callable, TypeVar

log = logging.getLogger("wapo.host")

T = TypeVar("T")
GUEST_THREADS_ENV = "WAPO_GUEST_THREADS"
THREAD_STACK = 16 * 1024 * 1024  # a guest's wasm stack (2 MiB) lives on its thread's stack


def default_threads() -> int:
    """Four threads per core: more than cores, so a short step finds a thread beside long ones
    (docs/design.md, "Tenants that cannot stall each other")."""
    return 4 * (os.cpu_count() or 1)


def threads_from_env() -> int:
    text = os.environ.get(GUEST_THREADS_ENV, "").strip()
    if not text:
        return default_threads()
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{GUEST_THREADS_ENV}={text!r}: a number of threads (0 = run guests on the event loop)") \
            from None
    if not 0 <= value <= 1024:
        raise ValueError(f"{GUEST_THREADS_ENV}={value}: 0..1024 threads")
    return value


class _Step:
    __slots__ = ("fn", "future", "tenant")

    def __init__(self, fn: Callable[[], object], tenant: str) -> None:
        self.fn = fn
        self.tenant = tenant
        self.future: concurrent.futures.Future = concurrent.futures.Future()


class GuestThreads:
    """``threads`` worker threads (started on first use) running guest steps, round-robin over
    tenants, at most ``per_tenant`` threads per tenant at once."""

    def __init__(self, threads: int, per_tenant: int | None = None) -> None:
        if threads < 1:
            raise ValueError("GuestThreads needs at least one thread (0 threads means: no GuestThreads)")
        self.threads = threads
        self.per_tenant = max(1, per_tenant if per_tenant is not None else threads // 4 or 1)
        self._lock = threading.Lock()
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()  # one per chance of a runnable step
        self._queues: dict[str, deque[_Step]] = {}
        self._order: deque[str] = deque()       # tenants with waiting steps, next first
        self._running: dict[str, int] = {}
        self._workers: list[threading.Thread] = []
        self.handoffs = 0                        # steps handed to a thread (bench/ reads it)

    def _start(self) -> None:
        old = threading.stack_size()
        threading.stack_size(THREAD_STACK)
        try:
            for i in range(self.threads):
                worker = threading.Thread(target=self._work, name=f"wapo-guest-{i}", daemon=True)
                worker.start()
                self._workers.append(worker)
        finally:
            threading.stack_size(old)

    def submit(self, tenant: str, fn: Callable[[], T]) -> concurrent.futures.Future:
        """Queue ``fn`` as a step of ``tenant``; its future resolves on the worker thread."""
        step = _Step(fn, tenant)
        with self._lock:
            if not self._workers:
                self._start()
            waiting = self._queues.get(tenant)
            if waiting is None:
                waiting = self._queues[tenant] = deque()
                self._order.append(tenant)
            waiting.append(step)
            self.handoffs += 1
        self._tokens.put(None)  # wakes one idle thread (a SimpleQueue: cheaper than a Condition)
        return step.future

    async def run(self, tenant: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` as a step of ``tenant`` and await its result. Cancelling the await does not
        stop a step that started: wasmtime cannot interrupt it except by its deadline."""
        return await asyncio.wrap_future(self.submit(tenant, fn))

    def _next(self) -> _Step | None:
        """The next step to run, or None if every tenant with waiting steps is at its share."""
        for _ in range(len(self._order)):
            tenant = self._order[0]
            self._order.rotate(-1)
            if self._running.get(tenant, 0) >= self.per_tenant:
                continue
            queue = self._queues[tenant]
            step = queue.popleft()
            if not queue:
                del self._queues[tenant]
                self._order.remove(tenant)
            self._running[tenant] = self._running.get(tenant, 0) + 1
            return step
        return None

    def _work(self) -> None:
        while True:
            self._tokens.get()
            with self._lock:
                step = self._next()
            if step is None:
                continue  # every waiting tenant is at its share: a step that ends hands a token on
            fn, step.fn = step.fn, None  # type: ignore[assignment]  # nothing of the run stays here
            try:
                if step.future.set_running_or_notify_cancel():
                    try:
                        result = fn()
                        fn = None
                        step.future.set_result(result)
                        result = None
                    except BaseException as exc:  # the awaiting side gets it
                        fn = None
                        step.future.set_exception(exc)
                        del exc
            finally:
                fn = None
                with self._lock:
                    left = self._running[step.tenant] - 1
                    if left:
                        self._running[step.tenant] = left
                    else:
                        del self._running[step.tenant]
                    waiting = bool(self._queues)
                if waiting:
                    self._tokens.put(None)  # a step held back by its tenant's share may run now
                step = None  # type: ignore[assignment]  # an idle thread holds no finished run

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"threads": self.threads, "per_tenant": self.per_tenant, "running": sum(self._running.values()),
                    "waiting": sum(len(q) for q in self._queues.values())}


_pool: GuestThreads | None = None
_configured: int | None = None
_lock = threading.Lock()


def configure(threads: int | None, per_tenant: int | None = None) -> None:
    """Set this process's guest threads before the first run (``wapo serve --guest-threads``);
    0 runs guests on the event loop itself (the inline path, for comparison); None: the
    environment (``WAPO_GUEST_THREADS``) or the default."""
    global _pool, _configured
    with _lock:
        wanted = threads_from_env() if threads is None else threads
        if _pool is not None and _pool._workers:
            if wanted == _configured:
                return
            raise RuntimeError("guest threads are already running: configure them before the first run")
        _configured = wanted
        _pool = GuestThreads(_configured, per_tenant) if _configured else None


def guest_threads() -> GuestThreads | None:
    """The process's guest threads, or None for the inline path."""
    global _pool, _configured
    if _configured is None:
        with _lock:
            if _configured is None:
                _configured = threads_from_env()
                _pool = GuestThreads(_configured) if _configured else None
    return _pool


async def run_step(tenant: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` as a guest step of ``tenant``: on the guest threads, or here on the inline path."""
    pool = guest_threads()
    if pool is None:
        return fn()
    return await pool.run(tenant, fn)
