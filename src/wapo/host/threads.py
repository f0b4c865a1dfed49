"""Guest steps on worker threads, shared fairly between tenants.

A *step* is anything whose duration a guest controls: one entry into ``wapo_poll``, an
instantiation (a start function, ``_initialize``, a memory image written in), an agent's
compilation, the drop of its Store. The event loop hands it to ``GuestThreads`` and awaits the
answer (the one exception: a trusted tenant's short first step, under a budget the host sets;
speculation.py). wasmtime releases the GIL while wasm runs (so do the
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
import functools
import logging
import os
import threading
import weakref
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


class Step:
    """One queued step. Its outcome reaches the awaiting side either through an asyncio future
    (``GuestThreads.start``: delivered on that loop in batches) or a concurrent future (``submit``)."""

    __slots__ = ("fn", "tenant", "future", "loop", "cfuture", "result", "error", "state", "after")

    def __init__(self, fn: Callable[[], object], tenant: str, future: "asyncio.Future | None" = None,
                 cfuture: concurrent.futures.Future | None = None) -> None:
        self.fn: Callable[[], object] | None = fn
        self.tenant = tenant
        self.future = future
        self.loop = future.get_loop() if future is not None else None
        self.cfuture = cfuture
        self.result: object = None
        self.error: BaseException | None = None
        self.state = _QUEUED
        self.after: list[Callable[[], None]] | None = None  # run on the step's thread when it ends

    def done(self) -> bool:
        """The step has returned (or will never run)."""
        return self.state == _FINISHED


_QUEUED, _RUNNING, _FINISHED = 0, 1, 2


class _Inbox:
    """Finished steps of one event loop, handed over in batches: one wake-up of the loop
    (``call_soon_threadsafe``) however many steps finish before it runs."""

    __slots__ = ("loop", "steps", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.steps: list[Step] = []
        self.scheduled = False


class GuestThreads:
    """``threads`` worker threads (started on first use) running guest steps, round-robin over
    tenants, at most ``per_tenant`` threads per tenant at once.

    What a hand-off costs is mostly the GIL: a guest thread that drops it (in a C call, or parked)
    waits to take it back while the event loop's thread runs Python. So a step takes it as few
    times as possible: a thread that finishes a step takes the next queued one at once (no
    parking), finished steps reach their loop in batches (one wake-up for all that finished
    before the loop looked), and no per-step lock, condition or concurrent future is made."""

    def __init__(self, threads: int, per_tenant: int | None = None) -> None:
        if threads < 1:
            raise ValueError("GuestThreads needs at least one thread (0 threads means: no GuestThreads)")
        self.threads = threads
        self.per_tenant = max(1, per_tenant if per_tenant is not None else threads // 4 or 1)
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Step]] = {}
        self._order: deque[str] = deque()       # tenants with waiting steps, next first
        self._running: dict[str, int] = {}
        self._waiting = 0
        self._idle: list[threading.Lock] = []    # parked workers, each blocked on its own held lock
        self._workers: list[threading.Thread] = []
        self._inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = weakref.WeakKeyDictionary()
        self.handoffs = 0                        # steps handed to a thread (bench/ reads it)
        self.wakeups = 0                         # wake-ups of an event loop for finished steps

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

    def _queue(self, step: Step) -> Step:
        with self._lock:
            if not self._workers:
                self._start()
            waiting = self._queues.get(step.tenant)
            if waiting is None:
                waiting = self._queues[step.tenant] = deque()
                self._order.append(step.tenant)
            waiting.append(step)
            self._waiting += 1
            self.handoffs += 1
            parked = self._idle.pop() if self._idle else None
        if parked is not None:
            parked.release()  # wakes that worker; a busy one takes the step when it is done otherwise
        return step

    def start(self, tenant: str, fn: Callable[[], T], future: asyncio.Future) -> Step:
        """Queue ``fn`` as a step of ``tenant``; ``future`` (of the running loop) gets its outcome
        on that loop. If ``future`` is cancelled before the step starts, the step does not run."""
        return self._queue(Step(fn, tenant, future))

    def submit(self, tenant: str, fn: Callable[[], T]) -> concurrent.futures.Future:
        """Queue ``fn`` as a step of ``tenant``; the returned future resolves on the worker thread
        (for callers without an event loop; a step whose future was cancelled does not run)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue(Step(fn, tenant, cfuture=future))
        return future

    def post(self, tenant: str, fn: Callable[[], None]) -> None:
        """Queue ``fn`` as a step of ``tenant`` that nobody waits for (a Store's drop); a failure
        is logged."""
        self._queue(Step(functools.partial(_call_quietly, fn), tenant))

    async def run(self, tenant: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` as a step of ``tenant`` and await its result. Cancelling the await does not
        stop a step that started: wasmtime cannot interrupt it except by its deadline."""
        future = asyncio.get_running_loop().create_future()
        self.start(tenant, fn, future)
        return await future

    def when_done(self, step: Step, callback: Callable[[], None]) -> bool:
        """Call ``callback`` on the step's thread once it ends; False (and no call) if it has ended."""
        with self._lock:
            if step.state == _FINISHED:
                return False
            if step.after is None:
                step.after = []
            step.after.append(callback)
            return True

    def _next(self) -> Step | None:
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
            self._waiting -= 1
            self._running[tenant] = self._running.get(tenant, 0) + 1
            step.state = _RUNNING
            return step
        return None

    def _work(self) -> None:
        park = threading.Lock()
        park.acquire()
        lock = self._lock
        step: Step | None = None
        while True:
            with lock:
                if step is not None:  # the step that just ended: its share goes back, its waiters run
                    left = self._running[step.tenant] - 1
                    if left:
                        self._running[step.tenant] = left
                    else:
                        del self._running[step.tenant]
                    step.state = _FINISHED
                    after, step.after = step.after, None
                else:
                    after = None
                nxt = self._next()
                if nxt is None:
                    self._idle.append(park)
            if step is not None:
                if after:
                    for callback in after:
                        _call_quietly(callback)
                self._deliver(step)
                step = None
            if nxt is None:
                park.acquire()  # until a step is queued (the queue releases it)
                continue
            step = nxt
            nxt = None
            self._execute(step)

    @staticmethod
    def _execute(step: Step) -> None:
        fn, step.fn = step.fn, None  # nothing of the run stays here
        future = step.future
        if future is not None and future.cancelled():
            return
        if step.cfuture is not None and not step.cfuture.set_running_or_notify_cancel():
            return
        try:
            step.result = fn()  # type: ignore[misc]
        except BaseException as exc:  # the awaiting side gets it
            step.error = exc
        fn = None

    def _deliver(self, step: Step) -> None:
        """Hand the outcome to whoever waits: a concurrent future at once, an asyncio one in its
        loop's next batch."""
        if step.cfuture is not None:
            cfuture, step.cfuture = step.cfuture, None
            if cfuture.running():
                if step.error is not None:
                    cfuture.set_exception(step.error)
                else:
                    cfuture.set_result(step.result)
            step.result = step.error = None
            return
        loop = step.loop
        if loop is None:
            return
        with self._lock:
            inbox = self._inboxes.get(loop)
            if inbox is None:
                inbox = self._inboxes[loop] = _Inbox(loop)
            inbox.steps.append(step)
            wake = not inbox.scheduled
            inbox.scheduled = True
        if wake:
            self.wakeups += 1
            try:
                loop.call_soon_threadsafe(self._arrive, inbox)
            except RuntimeError:  # the loop is closed: nobody is left to tell
                with self._lock:
                    inbox.steps.clear()
                    inbox.scheduled = False

    def _arrive(self, inbox: _Inbox) -> None:
        """On the loop's thread: the outcomes of the steps that finished since the last batch."""
        with self._lock:
            steps, inbox.steps = inbox.steps, []
            inbox.scheduled = False
        for step in steps:
            future, step.future, step.loop = step.future, None, None
            result, error, step.result, step.error = step.result, step.error, None, None
            if future is None or future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        steps.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"threads": self.threads, "per_tenant": self.per_tenant, "running": sum(self._running.values()),
                    "waiting": self._waiting}


def _call_quietly(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # a drop that failed must not end the worker
        log.exception("a step's completion callback failed")


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
