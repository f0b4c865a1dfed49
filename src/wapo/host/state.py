"""What the ocall handlers and host services see of the running guest: ``GuestState``.

One ``GuestState`` per instance. It holds the guest's resources, its task and waker queues, its
output and logs, and what it reported; it knows nothing of how the instance is driven. The
running guest's state is found through the thread-local ``current``, set around every call into
wasm (an ocall arrives on the thread that made that call).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .abi import ErrorCode, OcallError, ReportKind
from .keys import NodeKey, node_key
from .limits import MAX_LOG_LINE, format_size
from .options import RunOptions
from .resources import InputChannels, ResourceTable
from .speculation import SpeculationEnded

if TYPE_CHECKING:
    from .memory import GuestMemory
    from .sandbox import Sandbox

MAX_OUTPUT = 64 * 1024 * 1024
T = TypeVar("T")
# distinct task ids queued by mark_task_ready at once (more: ResourceLimited); the host's own
# wake-ups are bounded by the resources (one waiter each) and always get in
MAX_READY_TASKS = 16384
# Output and log lines of a guest step waiting for the step to end: past this many bytes they go to
# the loop at once (a log-flooding or streaming step otherwise held all it wrote, up to the burst limit)
DEFERRED_BYTES = 1024 * 1024


@dataclass
class LogRecord:
    level: str  # error | warn | info | debug | trace
    message: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class GuestReport:
    """The guest's own account of why it failed (turned into a ``RunError`` by the instance)."""

    kind: ReportKind | int
    text: str


class GuestState:
    """The host side of one running guest."""

    def __init__(self, options: RunOptions, app_address: bytes, owner: Any = None) -> None:
        self.options = options
        # what drives this guest (an Instance), held weakly: no reference cycle keeps a finished
        # run's memory, logs and output alive
        self.owner: Callable[[], Any] = weakref.ref(owner) if owner is not None else (lambda: None)
        self.limits = options.limits
        self.app_address = app_address
        self.network = options.network
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop()
        self.loop_thread = threading.get_ident()  # the thread that owns every asyncio object here
        self._tasks_lock = threading.Lock()  # the task and waker queues: the loop wakes, the guest pops
        self._deferred: list[tuple[Callable[..., Any], Any]] = []  # output and log callbacks of a step
        self._deferred_bytes = 0
        self.sandbox: Sandbox | None = None  # set at instantiation, cleared when dropped
        self.memory: GuestMemory = None  # type: ignore[assignment]  # set at instantiation
        # the table wakes the guest through a weak reference: no cycle through the resources
        self.resources = ResourceTable(_weak_wake(self), options.limits.max_resources)
        self.inputs = InputChannels()
        self.pending_return: bytes | None = None
        self.ready_tasks: dict[int, None] = {0: None}
        self.woken: list[int] = []
        self._woken_set: set[int] = set()
        self.poll_requested = True
        self.wake_event = asyncio.Event()
        self.trace = False
        self.output = bytearray()
        self.logs: list[LogRecord] = []
        self.log_bytes = 0  # bytes of the messages in ``logs``
        self.logs_dropped = 0  # lines past the cap (limits.max_log_lines / max_log_bytes)
        self.log_bytes_dropped = 0
        self.report: GuestReport | None = None
        self.host_faults = 0
        self.run_deadline: float | None = None  # time.monotonic() when the time limit ends the run
        self.stopping = threading.Event()  # the run is over or stopped: a host call waiting must end
        self.host_stop: Exception | None = None  # why a host call stopped the guest (a trap follows)
        self.cancelled: asyncio.Future[None] = self.loop.create_future()  # the caller went away
        # a step on the loop on trust (speculation.py): only inline calls, output and logs held
        self.speculative = False
        self.slow_calls = 0  # calls that needed the loop's thread or waited (a step with none is "loop-free")

    # threads: the guest runs on a worker thread, asyncio objects live on the loop's
    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self.loop_thread

    def call_on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the event loop's thread and wait for it (the guest is paused in
        an ocall meanwhile, so its memory and state are touched by one thread at a time)."""
        self.slow_calls += 1
        done = threading.Event()
        box: list[Any] = [None, None]

        def run() -> None:
            try:
                box[0] = fn(*args)
            except BaseException as exc:  # raised again on the guest's thread
                box[1] = exc
            finally:
                done.set()

        try:
            self.loop.call_soon_threadsafe(run)
        except RuntimeError:  # the loop is closed: the host is shutting down
            raise OcallError(ErrorCode.IO_ERROR, "the host is shutting down") from None
        while not done.wait(1.0):
            if self.loop.is_closed():
                raise OcallError(ErrorCode.IO_ERROR, "the host is shutting down")
        value, error = box
        box.clear()  # the exception's traceback holds this frame: no cycle through box
        if error is not None:
            try:
                raise error
            finally:
                del error
        return value

    def _on_loop_soon(self, fn: Callable[..., Any], arg: Any, size: int) -> None:
        """Call ``fn(arg)`` on the loop's thread, in order, without waiting (output, log lines of
        ``size`` bytes): from a guest thread, when the step ends (``run_deferred``): one wake-up of
        the loop per step, not one per line, and the step's result comes after what it wrote. A
        step that writes more than DEFERRED_BYTES hands what it wrote so far to the loop at once,
        so one step cannot hold more than that (a step may run for the whole burst limit)."""
        if self.speculative:  # held until the step ends, dropped if it is stopped
            self._deferred.append((fn, arg))
            return
        if self.on_loop_thread():
            fn(arg)
            return
        self._deferred.append((fn, arg))
        self._deferred_bytes += size
        if self._deferred_bytes >= DEFERRED_BYTES:
            batch, self._deferred, self._deferred_bytes = self._deferred, [], 0
            try:
                self.loop.call_soon_threadsafe(_run_calls, batch)  # before the step's result: scheduled first
            except RuntimeError:  # the loop is closed: nobody is left to read what the guest wrote
                pass

    def run_deferred(self) -> None:
        """On the loop's thread, after a step: what the guest wrote during it, in order."""
        batch, self._deferred, self._deferred_bytes = self._deferred, [], 0
        _run_calls(batch)

    def leave_speculation(self, what: str) -> None:
        """A speculative step reached a call it may not make (``what``): it stops at once (the
        caller returns a trap) and the run starts again on a guest thread."""
        self.host_stop = SpeculationEnded(f"{what} needs the event loop's thread")

    def checkpoint(self) -> tuple:
        """What a speculative step may change here, as it is before the step (see ``rollback``)."""
        return (dict(self.ready_tasks), list(self.woken), set(self._woken_set), self.poll_requested,
                len(self.output), len(self.logs), self.log_bytes, self.logs_dropped, self.log_bytes_dropped,
                self.pending_return, self.report, self.host_faults, self.trace, self.slow_calls)

    def rollback(self, mark: tuple) -> None:
        """Undo a stopped speculative step: its output, logs and task queue changes, what it
        reported; resources and input were out of its reach."""
        (ready, woken, woken_set, self.poll_requested, output, logs, self.log_bytes, self.logs_dropped,
         self.log_bytes_dropped, self.pending_return, self.report, self.host_faults, self.trace,
         self.slow_calls) = mark
        with self._tasks_lock:
            self.ready_tasks, self.woken, self._woken_set = ready, woken, woken_set
        del self.output[output:]
        del self.logs[logs:]
        self._deferred, self._deferred_bytes = [], 0
        self.host_stop = None

    # tasks and wakers
    def wake(self, task: int, waker: int) -> None:
        with self._tasks_lock:
            if waker not in self._woken_set:
                self._woken_set.add(waker)
                self.woken.append(waker)
        self.queue_task(task)

    def queue_task(self, task: int, *, from_guest: bool = False) -> None:
        with self._tasks_lock:
            if from_guest and len(self.ready_tasks) >= MAX_READY_TASKS and task not in self.ready_tasks:
                raise OcallError(ErrorCode.RESOURCE_LIMITED, f"{MAX_READY_TASKS} tasks already marked ready")
            self.ready_tasks[task] = None
            self.poll_requested = True
        if self.on_loop_thread():  # during a step the driver looks at poll_requested afterwards
            self.wake_event.set()

    def pop_ready_task(self) -> int | None:
        with self._tasks_lock:
            if not self.ready_tasks:
                return None
            task = next(iter(self.ready_tasks))
            del self.ready_tasks[task]
            return task

    def take_woken(self) -> list[int]:
        with self._tasks_lock:
            woken, self.woken = self.woken, []
            self._woken_set.clear()
            return woken

    def begin_step(self) -> None:
        """Before a step: no wake-up is pending (the driver waits for the next one after it)."""
        with self._tasks_lock:
            self.poll_requested = False
        self.wake_event.clear()

    # input
    def open_input(self, kind: int) -> int:
        """Open input channel ``kind`` (3 queries, 4 HTTP) as a resource; returns its id."""
        return self.inputs.create(kind, self.resources)

    # results
    def add_log(self, level: str, message: str, *, final: bool = False) -> None:
        """Keep a log line, within the run's caps: a line longer than ``MAX_LOG_LINE`` bytes is cut;
        past ``limits.max_log_lines`` lines or ``limits.max_log_bytes`` bytes the rest are only
        counted (``finish_logs`` adds one line saying how many). ``final`` lines (the host's own
        account of how the run ended) are kept past the cap. ``on_log`` sees the kept lines (cut),
        or every line with ``options.log_past_caps``: a flooding run's live tail, OTLP logs and
        terminal stop where its stored logs do (a run that printed 64 KiB lines in a loop for 3 s
        took a gateway past 3 GB through them)."""
        data = message.encode("utf-8", "replace")
        size = original = len(data)
        if size > MAX_LOG_LINE:
            message = f"{data[:MAX_LOG_LINE].decode('utf-8', 'ignore')}... [line cut: {size - MAX_LOG_LINE} more bytes]"
            size = MAX_LOG_LINE + 40
        del data
        record = LogRecord(level, message)
        limits = self.limits
        kept = final or not (self.logs_dropped or len(self.logs) >= limits.max_log_lines
                             or self.log_bytes + size > limits.max_log_bytes)
        if kept:
            self.logs.append(record)
            self.log_bytes += size
        else:
            self.logs_dropped += 1
            self.log_bytes_dropped += original
        if self.options.on_log is not None and (kept or self.options.log_past_caps):
            self._on_loop_soon(self.options.on_log, record, len(record.message))

    def finish_logs(self) -> None:
        """The run is over: say how many log lines the caps dropped (one line, if any were)."""
        if self.logs_dropped:
            dropped, self.logs_dropped = self.logs_dropped, 0
            self.add_log("warn", f"{dropped} log line(s) ({format_size(self.log_bytes_dropped)}) dropped: a run "
                                 f"keeps at most {self.limits.max_log_lines} lines and "
                                 f"{format_size(self.limits.max_log_bytes)} of logs", final=True)

    def emit_output(self, data: bytes) -> None:
        if self.options.on_output is not None:  # streamed to the caller as it is produced
            self._on_loop_soon(self.options.on_output, bytes(data), len(data))
            return
        if len(self.output) + len(data) > MAX_OUTPUT:
            raise OcallError(ErrorCode.RESOURCE_LIMITED, f"program output is capped at {format_size(MAX_OUTPUT)}")
        self.output += data

    def guest_report(self, kind: int, text: str) -> None:
        if self.report is None:
            try:
                kind = ReportKind(kind)
            except ValueError:
                pass
            self.report = GuestReport(kind, text)

    def restart_burst(self) -> None:
        """The guest waited in a host call (a WASI clock wait): its CPU burst starts again."""
        owner = self.owner()
        if owner is not None:
            owner.restart_burst()

    def fuel_consumed(self) -> int:
        fuel = self.limits.fuel
        sandbox = self.sandbox
        if fuel is None or sandbox is None or sandbox.closed:
            return 0
        try:
            return fuel - sandbox.get_fuel()
        except Exception:  # wasmtime refused (no fuel configured): nothing consumed
            return 0

    def gas_consumed(self) -> int:
        return self.fuel_consumed() // 1024

    def node_key(self) -> NodeKey:
        return node_key(self.options.data_dir)


def _run_calls(calls: list[tuple[Callable[..., Any], Any]]) -> None:
    for fn, arg in calls:
        fn(arg)


def _weak_wake(st: GuestState) -> Callable[[int, int], None]:
    ref = weakref.ref(st)

    def wake(task: int, waker: int) -> None:
        state = ref()
        if state is not None:
            state.wake(task, waker)
    return wake


class _Current(threading.local):
    state: GuestState | None = None


current = _Current()
