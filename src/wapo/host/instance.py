"""A guest run: a fresh Store and instance, driven through ``wapo_poll`` from asyncio.

``GuestModule`` is the compiled code (shared, cached); ``Instance`` is one
sandbox (never reused after it ends or traps). The host calls ``wapo_poll``
when the run starts and again whenever a resource the guest waits on becomes
ready, until the guest says it is finished, fails, or a limit stops it.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import wasmtime

from . import _capi
from .abi import OcallError, ReportKind
from .engine import EPOCH_TICK, MAX_SANDBOXES, MAX_WASM_STACK, EngineConfig, get_engine, last_tick
from .fault_around import no_fault_around
from .errors import CapacityExceeded, GuestError, GuestLoadError, GuestTrap, LimitExceeded, RunError, UnhandledRejection
from .limits import MIB, format_size
from .memory import QUICK_COPY, GuestMemory
from .module import GuestModule
from .options import RunOptions
from .resources import Oneshot
from .sandbox import QUICK_DROP_BYTES, Sandbox
from .snapshot.image import MemoryImage, apply_image
from .speculation import (BUDGET_TICKS, MIN_SLICE, SPECULATIVE_MEMORY, SpeculationEnded, loop_stack_fits,
                          speculation)
from .state import GuestReport, GuestState, LogRecord, current
from .threads import Step, guest_threads
from .traps import error_cause, exit_error, trap_cause, wasm_frames

T = TypeVar("T")


@dataclass
class RunResult:
    output: bytes
    logs: list[LogRecord]
    error: RunError | None
    duration: float
    fuel_consumed: int | None = None
    longest_burst: float = 0.0  # the longest time inside the guest between two returns to the host
    memory_peak: int = 0  # bytes of linear memory at the end (wasm memory never shrinks)

    @property
    def ok(self) -> bool:
        return self.error is None


# An unhandled rejection with one of these reasons, when the guest's memory has grown to at least
# this share of the limit, is reported as the memory limit (see _failure_from_report).
_OOM_REJECTIONS = ("Uncaught (in promise) null", "Uncaught (in promise) InternalError: out of memory")
OOM_NEAR_LIMIT = 0.75

_live = 0  # sandboxes alive in this process (pool and on-demand); MAX_SANDBOXES caps it
_live_lock = threading.Lock()


def _count_sandbox(change: int) -> None:
    global _live
    with _live_lock:
        if change > 0 and _live >= MAX_SANDBOXES:
            raise CapacityExceeded(f"too many sandboxes at once: {MAX_SANDBOXES} live in this process "
                                   f"(WAPO_MAX_SANDBOXES); try again later")
        _live += change


def _drop(sandbox: Sandbox, quick: bool = False) -> None:
    sandbox.close(quick)
    _count_sandbox(-1)


class Instance:
    """One sandbox. Create, ``await run()``, read the result; never reused."""

    def __init__(self, module: GuestModule, *, args: Sequence[str] = (), options: RunOptions | None = None,
                 memory_image: MemoryImage | None = None, **settings: Any) -> None:
        """``options`` says how to run; keyword ``settings`` (``limits=...``, ``data_dir=...``)
        change single fields of it. ``memory_image`` is written into memory before the first call."""
        self.module = module
        self.options = (options or RunOptions()).with_settings(**settings)
        self.memory_image = memory_image
        self.args = [module.name, *args]
        self.limits = self.options.limits
        self.app_address = self.options.app_address or module.default_address()
        self._config = EngineConfig(fuel=self.limits.fuel is not None)
        self._sandbox: Sandbox | None = None
        self._state: GuestState | None = None
        self._poll: _capi.Func | None = None
        self._started = 0.0
        self._poll_started = 0.0
        self._longest_burst = 0.0
        self._memory_peak = 0
        self._done = False
        self._threads = guest_threads()
        self._tenant = self.options.tenant or module.name
        self._in_step: Step | None = None  # a step queued or running on a guest thread
        self._fuel: int | None = None  # fuel used, read when the last step ends
        self._first_cpu = 0.0  # CPU seconds of the first step (instantiation and first poll)
        self._trapped = False  # a call into the guest trapped
        self._heap_ran_out = False  # the guest's heap ran out in a speculative step

    # --- host API for input (queries, requests, tests) ---------------------------
    def send_input(self, kind: int, message: bytes) -> None:
        """Deliver a message on input channel ``kind`` (buffered until the guest opens it)."""
        self._require_state().inputs.deliver(kind, bytes(message))

    def cancel(self) -> None:
        """Tell the guest its caller is gone (e.g. an HTTP client disconnected); it may watch for this."""
        st = self._require_state()
        if not st.cancelled.done():
            st.cancelled.set_result(None)

    def end_input(self, kind: int) -> None:
        """No more messages on channel ``kind`` (the guest reads EndOfFile after the queued ones)."""
        self._require_state().inputs.end(kind)

    @property
    def elapsed(self) -> float:
        """Seconds since the run started (0 before)."""
        return time.monotonic() - self._started if self._started else 0.0

    @property
    def finished(self) -> bool:
        """The run ended (or was discarded): the guest takes no more input."""
        return self._done

    def add_resource(self, resource) -> int:
        """Give the guest a host-made resource (a reply slot, a body stream); returns its id."""
        return self._require_state().resources.add(resource)

    def close_resource(self, rid: int) -> None:
        """Free a resource the host gave the guest, if it is still open."""
        try:
            self._require_state().resources.close(rid)
        except OcallError:  # already closed by the guest, or never opened
            pass

    def discard(self) -> None:
        """Drop the sandbox now: for a run cancelled from outside, which never reaches its own cleanup."""
        st = self._state
        self._done = True
        if st is not None:
            st.stopping.set()
            st.resources.close_all()
            self._release(st)

    def new_oneshot(self) -> tuple[int, asyncio.Future[bytes]]:
        st = self._require_state()
        future: asyncio.Future[bytes] = st.loop.create_future()
        return st.resources.add(Oneshot(future)), future

    def _require_state(self) -> GuestState:
        if self._state is None:
            self._state = GuestState(self.options, self.app_address, owner=self)
        return self._state

    # --- the run -------------------------------------------------------------------
    async def run(self) -> RunResult:
        if self._done or self._sandbox is not None:
            raise RuntimeError("an Instance runs once; create a new one")
        st = self._require_state()
        st.loop = asyncio.get_running_loop()
        st.loop_thread = threading.get_ident()
        self._started = time.monotonic()
        st.run_deadline = self._started + self.limits.time if self.limits.time else None
        error: RunError | None = None
        try:
            error = await self._drive(st)
        except RunError as exc:
            error = exc
        finally:
            self._done = True
            st.stopping.set()
            st.resources.close_all()
        st.finish_logs()
        if error is not None:
            st.add_log("error", error.describe(), final=True)
        fuel = self._fuel if self.limits.fuel is not None else None
        result = RunResult(bytes(st.output), st.logs, error, time.monotonic() - self._started, fuel,
                           self._longest_burst, self._memory_peak)
        self._release(st)
        return result

    async def _step(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a call into the guest, or anything whose duration the guest controls) on a
        guest thread, or here with ``--guest-threads 0``."""
        threads = self._threads
        if threads is None:
            return fn()
        future = self._state.loop.create_future() if self._state is not None else \
            asyncio.get_running_loop().create_future()
        step = threads.start(self._tenant, fn, future)
        self._in_step = step
        try:
            return await future
        finally:
            if step.done():
                self._in_step = None
                if self._state is not None:
                    self._state.run_deferred()

    def _release(self, st: GuestState, here: bool = False) -> None:
        """Drop the sandbox: ``here`` (from the guest's own step), at once if no step is running in
        it, else when that step returns (a Store must not be dropped under a running guest). From
        the loop, the drop itself (the pool's reset of the slot) goes to a guest thread."""
        st.memory = None  # type: ignore[assignment]
        st.sandbox = None
        sandbox, self._sandbox, self._poll = self._sandbox, None, None
        if sandbox is None:
            return
        if here:
            _drop(sandbox, 0 < self._memory_peak <= QUICK_DROP_BYTES)
            return
        step = self._in_step
        if step is not None and self._threads is not None and self._threads.when_done(step, lambda: _drop(sandbox)):
            return
        if self._threads is not None:
            self._threads.post(self._tenant, lambda: _drop(sandbox))
        else:
            _drop(sandbox)

    def _new_sandbox(self) -> Sandbox:
        """A Store with the instance, in a pool slot if one is free, else on the on-demand engine."""
        for config in (self._config, self._config.overflow()) if self._config.uses_pool else (self._config,):
            _count_sandbox(+1)
            try:
                sandbox = self._new_sandbox_on(config)
            except BaseException:
                if self._sandbox is None:  # else it is counted until _release drops it
                    _count_sandbox(-1)
                raise
            if sandbox is not None:
                return sandbox
            _count_sandbox(-1)  # the pool is full: the on-demand engine takes it
        raise AssertionError("unreachable")

    def _new_sandbox_on(self, config: EngineConfig) -> Sandbox | None:
        """The sandbox on ``config``'s engine; None if its pool is full."""
        try:
            speculative = self._state is not None and self._state.speculative
            sandbox = Sandbox(get_engine(config), args=self.args, env=self.options.env,
                              memory_limit=self._speculative_memory() if speculative else self.limits.memory,
                              fuel=self.limits.fuel,
                              inherit_stdio=self.options.inherit_stdio)
        except ValueError as exc:
            raise GuestLoadError(f"cannot start {self.module.name}: {exc}") from None
        self._sandbox = sandbox
        self._set_deadline()
        self._poll_started = time.monotonic()  # a start function runs inside instantiate
        try:
            sandbox.instantiate(self.module.instance_pre(config), self.module.quick_instantiate)
        except wasmtime.WasmtimeError as exc:
            if config.uses_pool and "maximum concurrent" in str(exc):
                self._sandbox = None
                sandbox.close()
                return None
            raise
        self._config = config
        return sandbox

    def _instantiate(self, st: GuestState) -> None:
        try:
            sandbox = self._new_sandbox()
        except wasmtime.Trap as exc:
            raise self._trap_error(exc, st) from None
        except wasmtime.ExitTrap as exc:  # proc_exit in the start function
            raise exit_error(exc) from None
        except wasmtime.WasmtimeError as exc:
            reason = error_cause(exc)
            raise GuestLoadError(f"cannot instantiate {self.module.name} with a {format_size(self.limits.memory)} "
                                 f"memory limit: {reason}") from exc
        if sandbox.memory() is None:
            raise GuestLoadError(f"{self.module.name} exports no memory")
        st.sandbox = sandbox
        st.memory = GuestMemory(sandbox)
        no_fault_around(*sandbox.memory_base_and_size(),  # the image's read faults: one page each
                        pooled_module=self.module if self._config.uses_pool else None)
        if self.memory_image is not None:
            try:
                apply_image(st.memory, self.memory_image, sandbox.grow_memory)
            except (OcallError, wasmtime.WasmtimeError) as exc:
                raise GuestLoadError(f"cannot apply the memory image to {self.module.name}: {exc}") from None
        self._poll = sandbox.func(self.module.poll_export)
        if self._poll is None:
            raise GuestLoadError(f"{self.module.name} exports no {self.module.poll_export}")
        if self.module.has_initialize:
            initialize = sandbox.func("_initialize")
            if initialize is not None:
                self._enter(initialize, st, returns=False)

    def _set_deadline(self) -> None:
        assert self._sandbox is not None
        grace = self.module.burst_grace
        budget = self.limits.burst + grace
        if self.limits.time:
            remaining = self.limits.time - (time.monotonic() - self._started)
            budget = min(budget, max(remaining, 0.0) + grace)
        if self._state is not None and self._state.speculative:
            # at least MIN_SLICE before the deadline: the next tick may be due in a moment
            soon = time.monotonic() - last_tick() > EPOCH_TICK - MIN_SLICE
            self._sandbox.set_epoch_deadline(BUDGET_TICKS + soon)
            return
        self._sandbox.set_epoch_deadline(max(1, math.ceil(budget / EPOCH_TICK)) + 1)

    def restart_burst(self) -> None:
        """A new CPU burst from now (the guest waited in a host call, on its own thread)."""
        if self._sandbox is not None:
            self._set_deadline()
            now = time.monotonic()
            self._longest_burst = max(self._longest_burst, now - self._poll_started)
            self._poll_started = now

    def _enter(self, func: _capi.Func, st: GuestState, returns: bool = True) -> int:
        """Call into the guest with the limits armed; a trap becomes a RunError."""
        sandbox = self._sandbox
        assert sandbox is not None
        self._set_deadline()
        previous = current.state
        current.state = st
        self._poll_started = time.monotonic()
        try:
            return sandbox.call_i32(func) if returns else sandbox.call_void(func) or 0
        except wasmtime.ExitTrap as exc:
            if st.host_stop is not None:  # a host call stopped the guest, and said why
                raise st.host_stop from None
            if exc.code == 0 and returns:
                return 1  # WASI proc_exit(0) in wapo_poll: the guest finished
            raise exit_error(exc) from None
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            if st.host_stop is not None:  # a host call stopped the guest, and said why
                raise st.host_stop from None
            self._trapped = True
            if st.speculative:  # over its budget, or a fault the guest thread's run will report
                raise SpeculationEnded("the speculative step trapped") from None
            if isinstance(exc, wasmtime.Trap):
                raise self._trap_error(exc, st) from None
            raise GuestTrap(f"the guest failed: {error_cause(exc)}") from None
        finally:
            current.state = previous
            self._longest_burst = max(self._longest_burst, time.monotonic() - self._poll_started)

    async def _drive(self, st: GuestState) -> RunError | None:
        """Poll until the guest is done. One step per poll; the first also instantiates and the last
        also drops the Store, so a run that finishes in one poll costs one hand-off to a thread
        (none when its tenant's first steps run on the loop: ``_speculate``)."""
        st.begin_step()
        outcome = self._speculate(st) if self._may_speculate() else None
        if outcome is None:
            outcome = await self._step(functools.partial(self._first_step, st))
            speculation().record(self._tenant, self._first_cpu, st.slow_calls == 0 and not self._trapped)
        while True:
            status, error = outcome
            if status is None:
                return error
            if not st.poll_requested:
                await self._wait_for_wake(st)
            st.begin_step()
            outcome = await self._step(functools.partial(self._poll_step, st, False))

    def _may_speculate(self) -> bool:
        """The first step may run on the loop (speculation.py): its tenant earned it, the guest
        says whether its heap ran out (it runs under a smaller memory limit here), its
        instantiation runs no guest code and copies at most ``QUICK_COPY`` bytes of image (and,
        capped by the speculative memory limit, at most that much of data segments), and nothing
        of it reaches the host's own stdio (which a stopped step could not take back)."""
        image, module = self.memory_image, self.module
        return (self._threads is not None and module.exhausted_export is not None and not module.starts_with_code
                and not module.has_initialize and not self.options.inherit_stdio
                and speculation().allowed(self._tenant) and loop_stack_fits()
                and (image is None or image.nbytes <= QUICK_COPY))

    def _speculate(self, st: GuestState) -> tuple[int | None, RunError | None] | None:
        """Run the first step here, on the loop, within ``BUDGET_TICKS`` and ``SPECULATIVE_MEMORY``;
        None if it was stopped (too long, too much memory, or at a call that needs the loop): then
        nothing of it remains and the caller runs the step again on a guest thread."""
        mark, config = st.checkpoint(), self._config
        st.speculative = True
        try:
            status, error = self._first_step(st)
        finally:
            st.speculative = False
        if not isinstance(error, SpeculationEnded):
            if isinstance(error, GuestLoadError):  # e.g. an image larger than the speculative memory
                error = SpeculationEnded(f"it could not start here: {error}")
            elif self._heap_ran_out and self._speculative_memory() < self.limits.memory:
                error = SpeculationEnded("its memory reached the speculative limit")
            if isinstance(error, SpeculationEnded) and self._sandbox is not None:  # a pending run's
                self._release(st, here=True)
        if isinstance(error, SpeculationEnded):
            st.rollback(mark)
            st.begin_step()
            speculation().stopped(self._tenant, self._first_cpu, trapped=self._trapped, why=str(error))
            self._longest_burst, self._memory_peak, self._fuel, self._trapped = 0.0, 0, None, False
            self._heap_ran_out = False
            self._config = config  # a pool that was full then is tried again
            return None
        speculation().ran_to_end(self._tenant, self._first_cpu)
        st.run_deferred()
        return status, error

    def _speculative_memory(self) -> int:
        return min(self.limits.memory, SPECULATIVE_MEMORY)

    def _guest_heap_ran_out(self) -> bool:
        """Whether the guest's heap ran out in this run: the byte at the address its
        ``exhausted_export`` gives (asked once per module). True when it cannot say (a speculative
        step then starts over: the safe side)."""
        sandbox, module = self._sandbox, self.module
        if sandbox is None or not module.exhausted_export:
            return True
        address = module.exhausted_address
        if address is None:
            func = sandbox.func(module.exhausted_export)
            if func is None:
                return True
            sandbox.set_epoch_deadline(2)  # the step's own deadline may have passed as it returned
            try:
                address = module.exhausted_address = sandbox.call_i32(func) & 0xFFFFFFFF
            except (wasmtime.Trap, wasmtime.WasmtimeError):
                return True
        base, size = sandbox.memory_base_and_size()
        return address >= size or ctypes.c_uint8.from_address(base + address).value != 0

    def _first_step(self, st: GuestState) -> tuple[int | None, RunError | None]:
        """The instantiation and the first poll, with the CPU time they took (``_first_cpu``: CPU,
        not wall time, so that a loaded machine does not make every step look long)."""
        started = time.thread_time()
        try:
            return self._poll_step(st, True)
        finally:
            self._first_cpu = time.thread_time() - started

    def _poll_step(self, st: GuestState, first: bool) -> tuple[int | None, RunError | None]:
        """One guest step: (0, None) while pending; (None, error or None) when the run is over, in
        which case the sandbox is already dropped (here, on the step's thread)."""
        try:
            if first:
                self._instantiate(st)
            assert self._poll is not None
            status = self._enter(self._poll, st)
            error = self._outcome(st, status)
        except RunError as exc:
            status, error = None, exc
        if st.speculative:  # read while the sandbox lives (a finished run's is dropped below)
            self._heap_ran_out = self._guest_heap_ran_out()
        if status is not None and status == 0 and error is None:
            return 0, None
        self._fuel = self.fuel_consumed() if self.limits.fuel is not None else None
        self._memory_peak = self._memory_used() or self._memory_peak
        self._release(st, here=True)
        return None, error

    def _outcome(self, st: GuestState, status: int) -> RunError | None:
        if st.host_faults:
            return GuestTrap(f"the host failed {st.host_faults} ocall(s); see the host log")
        if st.report is not None:
            return self._failure_from_report(st.report)
        if status in (0, 1):
            return None
        return GuestError(f"wapo_poll returned {status} (0 = pending, 1 = finished)")

    async def _wait_for_wake(self, st: GuestState) -> None:
        if not self.limits.time:
            await st.wake_event.wait()
            return
        remaining = self.limits.time - (time.monotonic() - self._started)
        try:
            await asyncio.wait_for(st.wake_event.wait(), timeout=max(remaining, 0.0))
        except asyncio.TimeoutError:
            raise LimitExceeded(
                "time", f"{time.monotonic() - self._started:.2f} s", f"{self.limits.time:g} s",
                stack="    (the guest was waiting, not running: no stack)",
                hint="--time-limit raises it, 0 removes it") from None

    # --- errors ---------------------------------------------------------------------
    def _guest_backtrace(self, st: GuestState) -> str:
        """Ask the guest where it was stopped (WapoJS exports an allocation-free backtrace)."""
        sandbox = self._sandbox
        if not self.module.backtrace_export or sandbox is None or sandbox.closed:
            return ""
        try:
            func = sandbox.func(self.module.backtrace_export)
            if func is None:
                return ""
            sandbox.set_epoch_deadline(20)
            if self.limits.fuel is not None:
                sandbox.set_fuel(10_000_000)
            ptr = sandbox.call_i32(func)
            return st.memory.read_cstr(ptr).rstrip("\n")
        except (wasmtime.Trap, wasmtime.WasmtimeError, OcallError):
            return ""

    def _trap_error(self, trap: wasmtime.Trap, st: GuestState) -> RunError:
        code = trap.trap_code
        now = time.monotonic()
        if code == wasmtime.TrapCode.INTERRUPT:
            stack = self._guest_backtrace(st) or wasm_frames(trap)
            ran = now - self._poll_started
            if self.limits.time and now - self._started >= self.limits.time:
                return LimitExceeded("time", f"{now - self._started:.2f} s", f"{self.limits.time:g} s", stack=stack,
                                     hint="--time-limit raises it, 0 removes it")
            return LimitExceeded("burst", f"{ran * 1000:.0f} ms", f"{self.limits.burst * 1000:.0f} ms", stack=stack,
                                 hint="time inside the guest without returning to the host; --burst-limit raises it")
        if code == wasmtime.TrapCode.OUT_OF_FUEL:
            stack = self._guest_backtrace(st) or wasm_frames(trap)
            return LimitExceeded("fuel", f"{self.limits.fuel}", f"{self.limits.fuel} units", stack=stack,
                                 hint="--fuel raises it")
        if code == wasmtime.TrapCode.STACK_OVERFLOW:
            stack = self._guest_backtrace(st) or wasm_frames(trap)
            return LimitExceeded("stack", "all", f"the {MAX_WASM_STACK // MIB} MiB wasm stack", stack=stack,
                                 hint="recursion too deep, e.g. deeply nested data")
        return GuestTrap(f"the guest trapped: {trap_cause(trap)}", stack=wasm_frames(trap))

    def _memory_used(self) -> int:
        """Bytes of the guest's linear memory now (0 before it has one: instantiation failed)."""
        st = self._state
        return st.memory.size() if st is not None and st.memory is not None else 0

    def _failure_from_report(self, report: GuestReport) -> RunError:
        head, _, stack = report.text.partition("\n")
        kind = report.kind
        if kind == ReportKind.UNHANDLED_REJECTION:
            used = self._memory_used()
            if head in _OOM_REJECTIONS and used >= self.limits.memory * OOM_NEAR_LIMIT:
                # with the heap full the engine cannot even make the error object and rejects with
                # null (QuickJS's JS_ThrowError2): that is the memory limit, not the script's null
                return LimitExceeded("memory", format_size(used), format_size(self.limits.memory), stack=stack,
                                     hint="out of memory inside a promise; --memory-limit raises it")
            return UnhandledRejection(head, stack=stack)
        if kind == ReportKind.BURST_LIMIT:
            ran = time.monotonic() - self._poll_started
            return LimitExceeded("burst", f"{ran * 1000:.0f} ms", f"{self.limits.burst * 1000:.0f} ms", stack=stack,
                                 hint="time inside the guest without returning to the host; --burst-limit raises it")
        if kind == ReportKind.TIME_LIMIT:
            return LimitExceeded("time", f"{time.monotonic() - self._started:.2f} s", f"{self.limits.time:g} s",
                                 stack=stack, hint="--time-limit raises it, 0 removes it")
        if kind == ReportKind.MEMORY_LIMIT:
            used = self._memory_used()
            return LimitExceeded("memory", format_size(used), format_size(self.limits.memory), stack=stack,
                                 hint=f"{head}; --memory-limit raises it")
        return GuestError(head, stack=stack)

    def fuel_consumed(self) -> int:
        if self._fuel is not None:  # the sandbox is gone: what it used at its end
            return self._fuel
        return self._state.fuel_consumed() if self._state is not None else 0

