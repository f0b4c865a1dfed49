"""WASI calls the host serves itself instead of wasmtime: ``poll_oneoff``.

wasmtime's own ``poll_oneoff`` sleeps for as long as the guest asks, on whatever thread called
the guest, where no deadline can reach it: a guest asleep for a minute held the host (with
``--time-limit 3s``, still asleep at 20 s). Here a clock wait is a bounded sleep of the guest's
thread that ends early when the run's time limit comes (the guest is then stopped with the
time-limit error) or when the run is stopped from outside; the wait is a return to the host, so
the CPU burst starts again after it. Waits on file descriptors are not served (each such
subscription gets ENOTSUP at once): guests do their I/O through the Wapo ocalls.

A guest on the inline path (``--guest-threads 0``) sleeps on the event loop's thread: that
switch exists to compare against, not to serve tenants.
"""

from __future__ import annotations

import ctypes
import struct
import time
from typing import TYPE_CHECKING

from . import _capi
from .abi import OcallError
from .errors import LimitExceeded
from .state import current

if TYPE_CHECKING:
    from .state import GuestState

MODULE = "wasi_snapshot_preview1"
SUBSCRIPTION = 48
EVENT = 32
MAX_SUBSCRIPTIONS = 4096
# errno values of wasi_snapshot_preview1
SUCCESS, EFAULT, EINVAL, ENOTSUP = 0, 21, 28, 58
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
EVENT_CLOCK = 0
ABSTIME = 1
SLICE = 0.05  # the longest sleep between looks at the deadline and at a stop


def _deadline(st: GuestState, clock: int, timeout_ns: int, flags: int) -> float | None:
    """When (time.monotonic) a clock subscription is due; None for a clock we do not serve."""
    now = time.monotonic()
    if not flags & ABSTIME:
        return now + timeout_ns / 1e9
    if clock == CLOCK_MONOTONIC:  # wasmtime's monotonic clock is the OS's CLOCK_MONOTONIC
        return timeout_ns / 1e9
    if clock == CLOCK_REALTIME:
        return now + (timeout_ns / 1e9 - time.time())
    return None


def poll_oneoff(st: GuestState, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> int:
    """The WASI call; returns an errno. Raises ``LimitExceeded`` when the time limit ends the wait."""
    if count == 0 or count > MAX_SUBSCRIPTIONS:
        return EINVAL
    try:
        raw = st.memory.read(in_ptr, count * SUBSCRIPTION)
        st.memory.check(out_ptr, count * EVENT)
        st.memory.check(nevents_ptr, 4)
    except OcallError:
        return EFAULT
    events: list[bytes] = []
    due: float | None = None
    clocks: list[tuple[bytes, float]] = []
    for i in range(count):
        sub = raw[i * SUBSCRIPTION:(i + 1) * SUBSCRIPTION]
        userdata, tag = sub[:8], sub[8]
        if tag == EVENT_CLOCK:
            clock, timeout, _, flags = struct.unpack_from("<IQQH", sub, 16)
            when = _deadline(st, clock, timeout, flags)
            if when is None:
                events.append(struct.pack("<8sHB", userdata, EINVAL, EVENT_CLOCK).ljust(EVENT, b"\0"))
                continue
            clocks.append((userdata, when))
            due = when if due is None else min(due, when)
        else:  # fd_read / fd_write: not served here
            events.append(struct.pack("<8sHB", userdata, ENOTSUP, tag).ljust(EVENT, b"\0"))
    if not events and due is not None:
        _sleep_until(st, due)
        now = time.monotonic()
        events = [struct.pack("<8sHB", userdata, SUCCESS, EVENT_CLOCK).ljust(EVENT, b"\0")
                  for userdata, when in clocks if when <= now + 1e-4] or \
                 [struct.pack("<8sHB", clocks[0][0], SUCCESS, EVENT_CLOCK).ljust(EVENT, b"\0")]
    st.memory.write(out_ptr, b"".join(events))
    st.memory.write(nevents_ptr, struct.pack("<I", len(events)))
    return SUCCESS


def _sleep_until(st: GuestState, due: float) -> None:
    while True:
        now = time.monotonic()
        if st.run_deadline is not None and now >= st.run_deadline and due > st.run_deadline:
            limit = st.limits.time
            raise LimitExceeded("time", f"{limit:g} s", f"{limit:g} s",
                                stack="    (the guest was asleep in WASI poll_oneoff)",
                                hint="--time-limit raises it, 0 removes it")
        if now >= due:
            return
        end = min(due, st.run_deadline) if st.run_deadline is not None else due
        if st.stopping.wait(min(max(end - now, 0.0), SLICE)):
            raise LimitExceeded("time", "the run was stopped", "its caller",
                                stack="    (the guest was asleep in WASI poll_oneoff)")


def _entry(env: int, caller: int, values, count: int) -> int:
    """The raw import: four i32 arguments in, the errno out in the first slot; a stopped wait
    returns a trap (the instance reads why from the state)."""
    st = current.state
    if st is None or count < 4 or st.memory is None:
        values[0].i32 = ENOTSUP  # no run (a snapshot's init): nothing to wait for
        return 0
    if st.speculative:  # a wait is never run on the loop: the run starts over on a guest thread
        st.leave_speculation("WASI poll_oneoff")
        return _capi.new_trap("wapo: a wait in a speculative step")
    st.slow_calls += 1
    u = [values[i].i32 & 0xFFFFFFFF for i in range(4)]
    try:
        values[0].i32 = poll_oneoff(st, *u)
        st.restart_burst()
        return 0
    except LimitExceeded as exc:
        st.host_stop = exc
        return _capi.new_trap(f"wapo: {exc.message}")
    except BaseException:  # nothing may unwind into wasm
        st.host_faults += 1
        values[0].i32 = EFAULT
        return 0


_CALLBACK = _capi.UncheckedCallback(_entry)  # kept alive for the process: wasmtime holds it


def define(linker, functype) -> None:
    """Serve ``poll_oneoff`` on ``linker`` in place of wasmtime's (which ``define_wasi`` put there)."""
    _capi.linker_define_unchecked(linker, MODULE, "poll_oneoff", functype, _CALLBACK)


__all__ = ["define", "poll_oneoff"]
_ = ctypes  # the callback type comes from _capi
