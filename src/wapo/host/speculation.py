"""Short first steps on the event loop, on trust, with a way back (docs/design.md, issue 12:
"Short steps on the loop, on trust").

Handing a step to a guest thread and back costs two thread wake-ups and the GIL twice; for a
request whose whole run is one ~0.2 ms step (a hello agent) that hand-off is most of its wall
time. So a run's *first* step (the instantiation and the first ``wapo_poll``) may run on the
event loop itself when its tenant has earned it, under three rules that keep the loop safe:

- **A budget the host sets.** The step's epoch deadline is ``BUDGET_TICKS`` ticks (2-12 ms: one
  more when the next is due within ``MIN_SLICE``), not the burst limit, and its Store's memory limit is ``SPECULATIVE_MEMORY`` (one
  ``memory.fill`` or ``memory.copy`` instruction and the Store's drop run past any deadline, in
  proportion to the memory): a step that runs longer or comes near that memory is stopped.
- **Nothing it does is seen outside the run until it succeeds.** Only host calls that touch no
  asyncio object, leave nothing outside the guest's state and do short host work whatever they
  are asked may run (inline ocalls reading at most ``ocalls.SPECULATIVE_BYTES``, not ``sign``;
  services marked ``quick``: hashes, HMAC, randomness, keys, output). Output and log lines are
  held until the step ends. Any other call (a timer, a fetch, a socket, a resource, a WASI wait,
  WebCrypto) stops the step before its handler runs.
- **A stopped step leaves no trace.** The request, argv and every resource the caller gave the
  run are untouched (no call that reads them was allowed); the state's output, logs and task
  queues go back to where they were, the sandbox is dropped, and the run starts again from
  nothing on a guest thread, as any other run. The guest cannot tell: it is a fresh sandbox.

A tenant earns it with ``streak`` first steps in a row (``STREAK`` at first) that each used less
than ``SHORT`` seconds of CPU and made no such call; every step that breaks the rule ends the
streak, and every stopped speculative step doubles the streak the tenant needs next (up to
``MAX_STREAK``); a stopped or long one takes one of the process's ``STOP_BUDGET`` stops per
second, past which no step runs on the loop until the budget refills. A new tenant (a new CID) never runs here before it
has run ``STREAK`` times on the guest threads. So the loop spends at most about ``STOP_BUDGET`` x
``BUDGET_TICKS`` ticks a second on steps that broke trust, whatever the tenants.
"""

from __future__ import annotations

import functools
import os
import resource
import threading
import time
from collections import OrderedDict

from .engine import MAX_WASM_STACK
from .errors import RunError
from .limits import MIB

SPECULATE_ENV = "WAPO_SPECULATE"
SHORT = 0.001  # seconds of CPU: a first step that used less is "short"
STREAK = 8  # short, loop-free first steps in a row before a tenant's first steps run on the loop
MAX_STREAK = 4096
BUDGET_TICKS = 1  # epoch ticks (engine.EPOCH_TICK each) a speculative step may run
# ... plus one more when the next tick is due within this: a step is given at least MIN_SLICE
# (a 0.3 ms step stopped by a tick that came right after it began is a run done twice)
MIN_SLICE = 0.002
# A speculative Store's memory limit: a single wasm instruction (memory.fill, memory.copy) runs
# past any epoch deadline and a Store's drop takes time in proportion to its memory, so the
# memory is what bounds them; a step whose guest heap ran out (the guest says so: the module's
# ``exhausted_export``) is stopped and run again on a guest thread with the run's own limit
SPECULATIVE_MEMORY = 8 * MIB
MAX_TENANTS = 4096  # tenants remembered (least recently seen forgotten first)
# Costly stops (a tenant's trust broken) allowed process-wide, refilled per second: past them no
# first step runs on the loop until the bucket refills (new CIDs cost nothing to make, so the
# per-tenant doubling alone does not bound what a stream of them costs the loop)
STOP_BUDGET = 5.0


class SpeculationEnded(RunError):
    """A step run on the loop on trust was stopped (too long, too much memory, or it needed the
    loop); the run starts again on a guest thread. Never the outcome of a run."""

    kind = "speculation_ended"


def enabled_from_env() -> bool:
    return os.environ.get(SPECULATE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class _Record:
    __slots__ = ("streak", "needed", "free_stop")

    def __init__(self) -> None:
        self.streak = 0
        self.needed = STREAK
        self.free_stop = False  # its last speculative step was stopped by an early tick, for free


class Speculation:
    """Which tenants' first steps run on the loop: their record of recent first steps, and the
    process's budget of broken trust."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._tenants: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()  # one loop per process as a rule; tests may run several
        self._tokens = STOP_BUDGET
        self._refilled = time.monotonic()
        self.ran = 0  # speculative steps that ran to their end
        self.ended = 0  # speculative steps stopped (the run went to a guest thread)
        self.last_stop = ""  # why the last one was stopped

    def allowed(self, tenant: str) -> bool:
        if not self.enabled:
            return False
        with self._lock:
            record = self._tenants.get(tenant)
            return (record is not None and record.streak >= record.needed
                    and (self._tokens >= 1.0 or self._refill() >= 1.0))

    def record(self, tenant: str, cpu: float, loop_free: bool) -> None:
        """A first step on a guest thread ended after ``cpu`` seconds of CPU; ``loop_free``: it
        made no call that needs the loop or waits."""
        with self._lock:
            record = self._record(tenant)
            if cpu < SHORT and loop_free:
                record.streak += 1
            else:
                record.streak = 0

    def ran_to_end(self, tenant: str, cpu: float) -> None:
        """A speculative step ran to its end after ``cpu`` seconds of CPU. Past ``SHORT`` (but
        within its budget: it was not stopped) it ends the tenant's streak and takes one of the
        process's stops, without doubling the next streak: a first run on the loop's thread
        often pays for cold caches and stack pages once."""
        self.ran += 1
        with self._lock:
            record = self._record(tenant)
            record.free_stop = False
            if cpu >= SHORT:
                record.streak = 0
                self._take_token()

    def stopped(self, tenant: str, cpu: float, *, trapped: bool, why: str) -> None:
        """A speculative step was stopped after ``cpu`` seconds of CPU, by a trap (``trapped``: the
        budget, or the guest's own fault) or for ``why``. A trap before ``SHORT`` is the epoch
        ticking just after the step began and costs the tenant nothing, once (two in a row count);
        any other stop costs it its streak, the next streak must be twice as long, and it takes
        one of the process's ``STOP_BUDGET`` stops a second."""
        self.ended += 1
        self.last_stop = why
        with self._lock:
            record = self._record(tenant)
            if trapped and cpu < SHORT and not record.free_stop:
                record.free_stop = True
                return
            record.free_stop = False
            self._penalize(record)

    def _penalize(self, record: _Record) -> None:
        record.streak = 0
        record.needed = min(record.needed * 2, MAX_STREAK)
        self._take_token()

    def _take_token(self) -> None:
        self._refill()
        self._tokens -= 1.0

    def _refill(self) -> float:
        now = time.monotonic()
        self._tokens = min(STOP_BUDGET, self._tokens + (now - self._refilled) * STOP_BUDGET)
        self._refilled = now
        return self._tokens

    def _record(self, tenant: str) -> _Record:
        record = self._tenants.get(tenant)
        if record is None:
            record = self._tenants[tenant] = _Record()
            if len(self._tenants) > MAX_TENANTS:
                self._tenants.popitem(last=False)
        else:
            self._tenants.move_to_end(tenant)
        return record


_speculation = Speculation(enabled_from_env())


def loop_stack_fits() -> bool:
    """The calling thread is the main thread and its stack holds a guest's (``MAX_WASM_STACK``)
    with room to spare: a guest's wasm stack lives on the stack of the thread that calls it, and
    the main thread's size is known (RLIMIT_STACK); another thread's is not."""
    return threading.get_ident() == _MAIN_THREAD and _main_stack_fits()


_MAIN_THREAD = threading.main_thread().ident


@functools.lru_cache(maxsize=1)
def _main_stack_fits() -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    return soft == resource.RLIM_INFINITY or soft >= 2 * MAX_WASM_STACK + 2 * MIB


def speculation() -> Speculation:
    """The process's record (one event loop's worth of tenants; used on the loop's thread only)."""
    return _speculation
