"""The Wapo ocall ABI, one call at a time, through tiny WAT guests.

Every guest here is built by ``guest()``: its ``wapo_poll`` runs a list of
"states" (WAT bodies) in order, each once, recording every i64 an ocall returns
into memory; at the end it emits the recorded results, a scratch area and the
count, and returns 1. A state may ``(return (i32.const 0))`` to wait for a
wake-up; it then runs again from its start on the next ``wapo_poll``
(``until_ready`` builds the usual "poll, return 0 while Pending" step).

Memory layout of a guest (one 64 KiB page):
    0x0000..0x0FFF  data segments of the test (messages, paths)
    0x1000..0x1FFF  recorded i64 results
    0x2000..0x3FFF  scratch buffers, BUF(k) = 0x2000 + 0x200 * k
    0x4000          the result count (emitted last)
"""

from __future__ import annotations

import asyncio
import inspect
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from wapo.host import GuestModule, Instance, Limits, RunResult
from wapo.host.abi import Call, ErrorCode
from wapo.host.keys import KEY_FILE, NodeKey
from wapo.host.resources import GuestReplyError

PAGE = 0x10000
RESULTS = 0x1000
SCRATCH = 0x2000
SCRATCH_SIZE = 0x2000
BUF_SIZE = 0x200
PENDING = (1 << 32) | int(ErrorCode.PENDING)


def BUF(k: int) -> int:
    return SCRATCH + BUF_SIZE * k


@pytest.fixture(autouse=True, scope="module")
def _module_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    """Compiled modules go to a temporary cache, never to the home directory."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAPO_CACHE_DIR", str(tmp_path_factory.mktemp("wapo-cache")))
        yield


# --- building guests -------------------------------------------------------------------

def _arg(value: int | str) -> str:
    if isinstance(value, str):
        return value
    value &= 0xFFFFFFFF
    if value >= 1 << 31:
        value -= 1 << 32
    return f"(i32.const {value})"


def call(func: int, *params: int | str, task: int | str | None = None, fast: bool = False) -> str:
    """A recorded ocall as a WAT expression of type i64."""
    args = [func, *params] + [0] * (4 - len(params))
    assert len(args) == 5, "an ocall has 4 parameters"
    if task is not None:
        return f"(call $oct {_arg(task)} {' '.join(_arg(a) for a in args)})"
    return f"(call {'$of' if fast else '$oc'} {' '.join(_arg(a) for a in args)})"


def C(func: int, *params: int | str, **kw: Any) -> str:
    """A recorded ocall as a statement (its result is dropped after being recorded)."""
    return f"(drop {call(func, *params, **kw)})"


def until_ready(func: int, *params: int | str, task: int | str = 0) -> str:
    """Call; while the result is Pending return 0 (the state runs again on the wake-up); record the rest."""
    args = [func, *params] + [0] * (4 - len(params))
    return (f"(local.set $r (call $ocall {_arg(task)} {' '.join(_arg(a) for a in args)}))\n"
            f"(if (call $pending (local.get $r)) (then (return (i32.const 0))))\n"
            f"(drop (call $rec (local.get $r)))")


def set_global(name: str, expr: str) -> str:
    """``$gN = low 32 bits of an i64 expression`` (e.g. the Ok value of a call)."""
    return f"(global.set ${name} (i32.wrap_i64 {expr}))"


def load_rid(name: str, buf: int) -> str:
    """``$gN = i32 at buf`` (the SCALE i32 a get_return wrote)."""
    return f"(global.set ${name} (i32.load (i32.const {buf})))"


def yield_next(index: int) -> str:
    """End state ``index`` and wait for a wake-up (the next state runs on the next wapo_poll)."""
    return f"(global.set $state (i32.const {index + 1})) (return (i32.const 0))"


def _wat_bytes(blob: bytes) -> str:
    return "".join("\\%02x" % b for b in blob)


def guest(*states: str, data: dict[int, bytes] | None = None, module: str = "wapo",
          ocall: str = "ocall", fast: str = "ocall_fast_return", poll: str = "wapo_poll",
          extra: str = "") -> str:
    segments = "\n".join(f'  (data (i32.const {offset}) "{_wat_bytes(blob)}")'
                         for offset, blob in (data or {}).items())
    blocks = []
    for index, body in enumerate(states):
        blocks.append(
            f"    (block $s{index}\n"
            f"      (br_if $s{index} (i32.gt_u (global.get $state) (i32.const {index})))\n"
            f"      {body}\n"
            f"      (global.set $state (i32.const {index + 1})))")
    nl = "\n"
    globals_ = "\n".join(f"  (global $g{i} (mut i32) (i32.const 0))" for i in range(8))
    return f"""
(module
  (import "{module}" "{ocall}" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "{module}" "{fast}" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (global $state (mut i32) (i32.const 0))
  (global $n (mut i32) (i32.const 0))
{globals_}
{segments}
  (func $rec (param $r i64) (result i64)
    (i64.store (i32.add (i32.const {RESULTS}) (i32.shl (global.get $n) (i32.const 3))) (local.get $r))
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (local.get $r))
  (func $oc (param i32 i32 i32 i32 i32) (result i64)
    (call $rec (call $ocall (i32.const 0) (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4))))
  (func $of (param i32 i32 i32 i32 i32) (result i64)
    (call $rec (call $fast (i32.const 0) (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4))))
  (func $oct (param i32 i32 i32 i32 i32 i32) (result i64)
    (call $rec (call $ocall (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4) (local.get 5))))
  (func $pending (param i64) (result i32) (i64.eq (local.get 0) (i64.const {PENDING})))
  (func $emit (param i32 i32)
    (drop (call $fast (i32.const 0) (i32.const 243) (local.get 0) (local.get 1) (i32.const 0) (i32.const 0))))
  (func $finish
    (call $emit (i32.const {RESULTS}) (i32.shl (global.get $n) (i32.const 3)))
    (call $emit (i32.const {SCRATCH}) (i32.const {SCRATCH_SIZE}))
    (i32.store (i32.const 0x4000) (global.get $n))
    (call $emit (i32.const 0x4000) (i32.const 4)))
{extra}
  (func (export "{poll}") (result i32)
    (local $r i64)
{nl.join(blocks)}
    (call $finish)
    (i32.const 1)))
"""


# --- running them ------------------------------------------------------------------------

@dataclass
class Outcome:
    instance: Instance
    result: RunResult
    calls: list[tuple[int, int]]  # (tag, value) of every recorded ocall
    scratch: bytes
    prefix: bytes  # what the guest emitted itself before the final report
    extra: Any = None

    def buf(self, k: int, length: int) -> bytes:
        return self.scratch[BUF_SIZE * k:BUF_SIZE * k + length]

    @property
    def logs(self) -> list[tuple[str, str]]:
        return [(r.level, r.message) for r in self.result.logs]


def decode(output: bytes) -> tuple[list[tuple[int, int]], bytes, bytes]:
    assert len(output) >= 4 + SCRATCH_SIZE, f"the guest did not finish its report: {output!r}"
    (n,) = struct.unpack("<I", output[-4:])
    scratch = output[-4 - SCRATCH_SIZE:-4]
    raw = output[-4 - SCRATCH_SIZE - 8 * n:-4 - SCRATCH_SIZE]
    prefix = output[:len(output) - 4 - SCRATCH_SIZE - 8 * n]
    calls = [((v >> 32) & 0xFFFFFFFF, v & 0xFFFFFFFF) for v in struct.unpack(f"<{n}Q", raw)]
    return calls, scratch, prefix


def run(wat: str, tmp_path: Path, *, setup: Callable[[Instance], Any] | None = None,
        limits: Limits = Limits(time=5), expect_ok: bool = True, **kw: Any) -> Outcome:
    module = GuestModule(wat.encode(), name="abi-test")

    async def main() -> Outcome:
        instance = Instance(module, limits=limits, data_dir=tmp_path, **kw)
        extra = setup(instance) if setup else None
        if inspect.isawaitable(extra):
            extra = await extra
        result = await instance.run()
        if expect_ok:
            assert result.error is None, result.error.describe()
        assert instance._state is not None and instance._state.host_faults == 0
        if expect_ok or len(result.output) >= 4 + SCRATCH_SIZE:
            calls, scratch, prefix = decode(result.output)
        else:  # the run failed before the guest reported
            calls, scratch, prefix = [], b"", result.output
        return Outcome(instance, result, calls, scratch, prefix, extra)

    return asyncio.run(asyncio.wait_for(main(), timeout=20))


def Ok(value: int = 0) -> tuple[int, int]:
    return (0, value & 0xFFFFFFFF)


def Err(code: ErrorCode) -> tuple[int, int]:
    return (1, int(code))


def compact(n: int) -> bytes:
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return struct.pack("<H", (n << 2) | 1)
    return struct.pack("<I", (n << 2) | 2)


def decode_vec_u8(blob: bytes) -> bytes:
    mode = blob[0] & 3
    if mode == 0:
        n, head = blob[0] >> 2, 1
    elif mode == 1:
        n, head = struct.unpack("<H", blob[:2])[0] >> 2, 2
    else:
        assert mode == 2
        n, head = struct.unpack("<I", blob[:4])[0] >> 2, 4
    return blob[head:head + n]


E = ErrorCode


# --- close ---------------------------------------------------------------------------------------

def test_close(tmp_path: Path) -> None:
    out = run(guest(
        set_global("g0", call(Call.CREATE_TIMER, 1000))
        + C(Call.CLOSE, "(global.get $g0)")
        + C(Call.CLOSE, "(global.get $g0)")          # already closed
        + C(Call.CLOSE, 12345)                       # never existed
        + C(Call.CLOSE, -1)
        + C(Call.POLL_READ, 1, "(global.get $g0)", BUF(0), 0)   # a closed timer is gone
        + C(Call.CREATE_TIMER, 1000),               # the id is reused
    ), tmp_path)
    rid = out.calls[0][1]
    assert out.calls == [Ok(rid), Ok(0), Err(E.NOT_FOUND), Err(E.NOT_FOUND), Err(E.NOT_FOUND),
                         Err(E.NOT_FOUND), Ok(rid)]


# --- input channels and poll -------------------------------------------------------------------

def _channel_guest(polls: int) -> str:
    states = [
        C(Call.CREATE_INPUT_CHANNEL, 3) + C(Call.GET_RETURN, BUF(0), BUF_SIZE, fast=True) + load_rid("g0", BUF(0)),
    ]
    for k in range(polls):
        states.append(until_ready(Call.POLL, 7, "(global.get $g0)")
                      + f"(if (i64.eqz (i64.shr_u (local.get $r) (i64.const 32))) (then "
                      + C(Call.GET_RETURN, BUF(k + 1), BUF_SIZE, fast=True) + "))")
    return guest(*states)


def test_poll_input_channel_delivers_messages_in_order_then_end_of_file(tmp_path: Path) -> None:
    messages = [b"first", b"x" * 100, b""]

    def setup(instance: Instance) -> None:
        for m in messages:
            instance.send_input(3, m)
        # the channel is open once the first wapo_poll ran; end it while the guest waits
        asyncio.get_running_loop().call_later(0.1, instance.end_input, 3)

    out = run(_channel_guest(len(messages) + 1), tmp_path, setup=setup)
    assert out.calls[:2] == [Ok(4), Ok(4)]
    rid = struct.unpack("<i", out.buf(0, 4))[0]
    assert rid >= 0
    k = 2
    for index, message in enumerate(messages):
        encoded = compact(len(message)) + message
        assert out.calls[k:k + 2] == [Ok(len(encoded)), Ok(len(encoded))]
        assert out.buf(index + 1, len(encoded)) == encoded
        assert decode_vec_u8(out.buf(index + 1, len(encoded))) == message
        k += 2
    assert out.calls[k:] == [Err(E.END_OF_FILE)]


def test_poll_input_channel_message_sent_while_the_guest_waits(tmp_path: Path) -> None:
    def setup(instance: Instance) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, instance.send_input, 3, b"late")
        loop.call_later(0.1, instance.end_input, 3)

    out = run(_channel_guest(2), tmp_path, setup=setup)
    assert out.calls[2:] == [Ok(5), Ok(5), Err(E.END_OF_FILE)]
    assert out.buf(1, 5) == compact(4) + b"late"


def test_end_input_before_the_guest_opens_the_channel(tmp_path: Path) -> None:
    def setup(instance: Instance) -> None:
        instance.send_input(3, b"only")
        instance.end_input(3)   # before the guest opened the channel: kept until it does

    out = run(_channel_guest(2), tmp_path, setup=setup, limits=Limits(time=2))
    assert out.calls[2:] == [Ok(5), Ok(5), Err(E.END_OF_FILE)]


def test_poll_errors(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.POLL, 1, 99)                                           # no such resource
        + set_global("g0", call(Call.CREATE_TIMER, 1000))
        + C(Call.POLL, 1, "(global.get $g0)")                         # a timer is not a channel
    ), tmp_path)
    assert out.calls == [Err(E.NOT_FOUND), Ok(out.calls[1][1]), Err(E.UNSUPPORTED_OPERATION)]


# --- timers -------------------------------------------------------------------------------------

def test_poll_read_on_a_timer(tmp_path: Path) -> None:
    out = run(guest(
        set_global("g0", call(Call.CREATE_TIMER, 50))
        + C(Call.POLL_READ, 1, "(global.get $g0)", BUF(0), 0)
        + yield_next(0),
        until_ready(Call.POLL_READ, 1, "(global.get $g0)", BUF(0), 0)
        + C(Call.POLL_READ, 1, "(global.get $g0)", BUF(0), 16)     # a fired timer reads 0 bytes, always
        + C(Call.POLL_READ, 1, 77, BUF(0), 0)                      # no such resource
        + C(Call.LOG, 3, 0, 11),
        data={0: b"timer fired"},
    ), tmp_path)
    rid = out.calls[0][1]
    assert out.calls == [Ok(rid), Err(E.PENDING), Ok(0), Ok(0), Err(E.NOT_FOUND), Ok(0)]
    assert ("info", "timer fired") in out.logs
    assert out.result.duration >= 0.045


def test_create_timer_and_reset_timer(tmp_path: Path) -> None:
    out = run(guest(
        set_global("g0", call(Call.CREATE_TIMER, 60_000))        # far away...
        + C(Call.POLL_READ, 1, "(global.get $g0)", BUF(0), 0)
        + C(Call.RESET_TIMER, "(global.get $g0)", 30)             # ...brought near
        + set_global("g1", call(Call.CREATE_TIMER, 0))            # fires on the next turn of the host loop
        + C(Call.CREATE_TIMER, -1)                                # 0xffffffff ms: out of range
        + C(Call.CREATE_TIMER, 0x80000000)
        + C(Call.RESET_TIMER, 4242, 10)                           # no such timer
        + C(Call.RESET_TIMER, "(global.get $g1)", -5)
        + C(Call.POLL_READ, 2, "(global.get $g1)", BUF(0), 0)
        + yield_next(0),
        until_ready(Call.POLL_READ, 2, "(global.get $g1)", BUF(0), 0),
        until_ready(Call.POLL_READ, 1, "(global.get $g0)", BUF(0), 0),
    ), tmp_path)
    t0, t1 = out.calls[0][1], out.calls[3][1]
    assert t0 != t1
    assert out.calls[:8] == [Ok(t0), Err(E.PENDING), Ok(0), Ok(t1),
                             Err(E.INVALID_PARAMETER), Err(E.INVALID_PARAMETER), Err(E.NOT_FOUND),
                             Err(E.INVALID_PARAMETER)]
    # a 0 ms timer is either ready at once or fires on the next turn of the loop
    assert out.calls[8] in (Ok(0), Err(E.PENDING))
    assert out.calls[9:] == [Ok(0), Ok(0)]
    assert 0.025 <= out.result.duration < 5


def test_reset_timer_on_something_else_is_invalid(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.CREATE_INPUT_CHANNEL, 4) + C(Call.GET_RETURN, BUF(0), 4, fast=True) + load_rid("g0", BUF(0))
        + C(Call.RESET_TIMER, "(global.get $g0)", 10)
    ), tmp_path)
    assert out.calls == [Ok(4), Ok(4), Err(E.INVALID_PARAMETER)]


# --- tasks -----------------------------------------------------------------------------------------

def test_mark_task_ready_and_next_ready_task(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.NEXT_READY_TASK)            # task 0 (main) is ready at the start
        + C(Call.NEXT_READY_TASK)          # then nothing
        + C(Call.MARK_TASK_READY, 5)
        + C(Call.MARK_TASK_READY, 3)
        + C(Call.MARK_TASK_READY, 5)       # already queued: not twice
        + C(Call.NEXT_READY_TASK)
        + C(Call.NEXT_READY_TASK)
        + C(Call.NEXT_READY_TASK)
        + C(Call.MARK_TASK_READY, 9)
        + yield_next(0),                   # a ready task makes the host poll again, no waker needed
        C(Call.NEXT_READY_TASK) + C(Call.NEXT_READY_TASK),
    ), tmp_path)
    assert out.calls == [Ok(0), Err(E.NOT_FOUND), Ok(0), Ok(0), Ok(0), Ok(5), Ok(3), Err(E.NOT_FOUND),
                         Ok(0), Ok(9), Err(E.NOT_FOUND)]


def test_a_woken_waker_queues_its_task(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.NEXT_READY_TASK)
        + set_global("g0", call(Call.CREATE_TIMER, 20))
        + C(Call.POLL_READ, 3, "(global.get $g0)", BUF(0), 0, task=7)
        + yield_next(0),
        C(Call.NEXT_READY_TASK) + C(Call.NEXT_READY_TASK),
    ), tmp_path)
    assert out.calls[0] == Ok(0)
    assert out.calls[2] == Err(E.PENDING)
    assert out.calls[3:] == [Ok(7), Err(E.NOT_FOUND)]


def test_awake_wakers(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.AWAKE_WAKERS) + C(Call.GET_RETURN, BUF(0), BUF_SIZE, fast=True)   # nothing woken yet
        + set_global("g0", call(Call.CREATE_TIMER, 20))
        + set_global("g1", call(Call.CREATE_TIMER, 20))
        + C(Call.POLL_READ, 42, "(global.get $g0)", BUF(0), 0)
        + C(Call.POLL_READ, 43, "(global.get $g1)", BUF(0), 0)
        # sleep past both timers, then look at the wakers
        + set_global("g2", call(Call.CREATE_TIMER, 150))
        + C(Call.POLL_READ, 99, "(global.get $g2)", BUF(0), 0)
        + yield_next(0),
        until_ready(Call.POLL_READ, 99, "(global.get $g2)", BUF(0), 0),
        C(Call.AWAKE_WAKERS) + C(Call.GET_RETURN, BUF(1), BUF_SIZE, fast=True)
        + C(Call.AWAKE_WAKERS) + C(Call.GET_RETURN, BUF(2), BUF_SIZE, fast=True),   # taken: empty again
    ), tmp_path)
    assert out.calls[:2] == [Ok(1), Ok(1)]
    assert out.buf(0, 1) == b"\x00"
    assert out.calls[4:6] == [Err(E.PENDING)] * 2
    assert out.calls[7:9] == [Err(E.PENDING), Ok(0)]
    tail = out.calls[9:]
    assert tail[2:] == [Ok(1), Ok(1)]
    assert out.buf(2, 1) == b"\x00"
    n = tail[0][1]
    assert tail[:2] == [Ok(n), Ok(n)]
    blob = out.buf(1, n)
    count = blob[0] >> 2
    assert blob[0] & 3 == 0 and n == 1 + 4 * count
    wakers = list(struct.unpack(f"<{count}i", blob[1:]))
    assert sorted(wakers) == [42, 43, 99]


# --- tracing, randomness, logs ------------------------------------------------------------------

def test_enable_ocall_trace(tmp_path: Path) -> None:
    seen = []
    out = run(guest(
        C(Call.GETRANDOM, BUF(0), 4)           # not traced
        + C(Call.ENABLE_OCALL_TRACE, 1)
        + C(Call.GETRANDOM, BUF(0), 8)
        + C(Call.ENABLE_OCALL_TRACE, 0)
        + C(Call.GETRANDOM, BUF(0), 16)        # not traced
    ), tmp_path, on_log=seen.append)
    assert out.calls == [Ok(0)] * 5
    traces = [m for level, m in out.logs if level == "trace"]
    assert any("func=111" in m for m in traces)
    assert [m for m in traces if "func=113" in m] == [
        m for m in traces if "func=113" in m and f"args=({BUF(0)}, 8," in m]
    assert len([m for m in traces if "func=113" in m]) == 1
    assert [r.message for r in seen if r.level == "trace"] == traces


def test_getrandom(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.GETRANDOM, BUF(0), 32)
        + C(Call.GETRANDOM, BUF(1), 32)
        + C(Call.GETRANDOM, BUF(2), 0)
        + C(Call.GETRANDOM, BUF(2), (1 << 20) + 1)     # more than a call may ask for
        + C(Call.GETRANDOM, BUF(2), -1)
        + C(Call.GETRANDOM, PAGE - 16, 32)              # past the end of memory
    ), tmp_path)
    assert out.calls == [Ok(0), Ok(0), Ok(0), Err(E.INVALID_PARAMETER), Err(E.INVALID_PARAMETER),
                         Err(E.INVALID_ADDRESS)]
    a, b = out.buf(0, 32), out.buf(1, 32)
    assert a != b and a != bytes(32) and b != bytes(32)
    assert out.buf(2, 16) == bytes(16)


def test_log_levels(tmp_path: Path) -> None:
    seen = []
    text = b"E-W-I-D-T-\xff!"
    out = run(guest(
        C(Call.LOG, 1, 0, 2) + C(Call.LOG, 2, 2, 2) + C(Call.LOG, 3, 4, 2) + C(Call.LOG, 4, 6, 2)
        + C(Call.LOG, 5, 8, 2)
        + C(Call.LOG, 0, 0, 2) + C(Call.LOG, 6, 0, 2) + C(Call.LOG, -1, 0, 2)
        + C(Call.LOG, 3, 10, 2)                # not UTF-8: replaced, not refused
        + C(Call.LOG, 3, 0, 0),
        data={0: text},
    ), tmp_path, on_log=seen.append)
    assert out.calls == [Ok(0)] * 5 + [Err(E.INVALID_PARAMETER)] * 3 + [Ok(0), Ok(0)]
    assert out.logs == [("error", "E-"), ("warn", "W-"), ("info", "I-"), ("debug", "D-"), ("trace", "T-"),
                        ("info", "\ufffd!"), ("info", "")]
    assert [(r.level, r.message) for r in seen] == out.logs


# --- oneshots ---------------------------------------------------------------------------------------

def test_oneshot_send_and_send_error(tmp_path: Path) -> None:
    def setup(instance: Instance):
        shots = [instance.new_oneshot() for _ in range(3)]
        assert [rid for rid, _ in shots] == [0, 1, 2]  # the guest below uses these ids
        return shots

    out = run(guest(
        C(Call.ONESHOT_SEND, 0, 0, 5)               # "reply"
        + C(Call.ONESHOT_SEND, 0, 0, 5)             # twice
        + C(Call.ONESHOT_SEND_ERROR, 1, 5, 4)       # "boom"
        + C(Call.ONESHOT_SEND_ERROR, 1, 5, 4)
        + C(Call.ONESHOT_SEND_ERROR, 2, 9, 1)       # not UTF-8
        + C(Call.ONESHOT_SEND, 55, 0, 5)            # no such resource
        + C(Call.ONESHOT_SEND, 0, PAGE - 1, 5)      # bad buffer
        + set_global("g0", call(Call.CREATE_TIMER, 1000))
        + C(Call.ONESHOT_SEND, "(global.get $g0)", 0, 5)   # a timer is not a oneshot
        # oneshot 2 is never answered
        ,
        data={0: b"replyboom\xff"},
    ), tmp_path, setup=setup)
    shots = out.extra
    assert out.calls == [Ok(0), Err(E.ALREADY_EXISTS), Ok(0), Err(E.ALREADY_EXISTS), Err(E.INVALID_ENCODING),
                         Err(E.NOT_FOUND), Err(E.INVALID_ADDRESS), Ok(3), Err(E.INVALID_PARAMETER)]
    (_, f0), (_, f1), (_, f2) = shots
    assert f0.result() == b"reply"
    assert isinstance(f1.exception(), GuestReplyError) and str(f1.exception()) == "boom"
    assert isinstance(f2.exception(), GuestReplyError)  # dropped when the run ended
    assert "without answering" in str(f2.exception())


# --- input channel creation ---------------------------------------------------------------------

def test_create_input_channel(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.CREATE_INPUT_CHANNEL, 5)
        + C(Call.CREATE_INPUT_CHANNEL, 0)
        + C(Call.CREATE_INPUT_CHANNEL, -1)
        + C(Call.CREATE_INPUT_CHANNEL, 3) + C(Call.GET_RETURN, BUF(0), 4, fast=True)
        + C(Call.CREATE_INPUT_CHANNEL, 3)
        + C(Call.CREATE_INPUT_CHANNEL, 4) + C(Call.GET_RETURN, BUF(1), 3, fast=True)   # buffer too small
        + C(Call.GET_RETURN, BUF(1), 4, fast=True)
        + C(Call.GET_RETURN, BUF(1), 4, fast=True)                                       # nothing left
    ), tmp_path)
    assert out.calls == [Err(E.INVALID_PARAMETER)] * 3 + [Ok(4), Ok(4), Err(E.ALREADY_EXISTS), Ok(4),
                                                           Err(E.INVALID_PARAMETER), Ok(4), Err(E.NOT_FOUND)]
    r3, r4 = struct.unpack("<i", out.buf(0, 4))[0], struct.unpack("<i", out.buf(1, 4))[0]
    assert r3 >= 0 and r4 >= 0 and r3 != r4


# --- identity, output, keys ----------------------------------------------------------------------

def test_app_address(tmp_path: Path) -> None:
    address = bytes(range(100, 132))
    out = run(guest(C(Call.APP_ADDRESS) + C(Call.GET_RETURN, BUF(0), 32, fast=True)),
              tmp_path, app_address=address)
    assert out.calls == [Ok(32), Ok(32)]
    assert out.buf(0, 32) == address

    out = run(guest(C(Call.APP_ADDRESS) + C(Call.GET_RETURN, BUF(0), 32, fast=True)), tmp_path)
    assert out.buf(0, 32) == out.instance.app_address and len(out.instance.app_address) == 32


def test_emit_program_output(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.EMIT_PROGRAM_OUTPUT, 0, 6)
        + C(Call.EMIT_PROGRAM_OUTPUT, 6, 0)
        + C(Call.EMIT_PROGRAM_OUTPUT, 6, 5)
        + C(Call.EMIT_PROGRAM_OUTPUT, PAGE - 2, 5)
        + C(Call.EMIT_PROGRAM_OUTPUT, 0, -1),
        data={0: b"hello world"},
    ), tmp_path)
    assert out.calls == [Ok(0), Ok(0), Ok(0), Err(E.INVALID_ADDRESS), Err(E.INVALID_ADDRESS)]
    assert out.prefix == b"hello world"


def test_sign_verifies_with_worker_pubkey(tmp_path: Path) -> None:
    message = b"sign me, wapo"
    out = run(guest(
        C(Call.SIGN, 0, len(message)) + C(Call.GET_RETURN, BUF(0), BUF_SIZE, fast=True)
        + C(Call.WORKER_PUBKEY) + C(Call.GET_RETURN, BUF(1), BUF_SIZE, fast=True)
        + C(Call.SIGN, PAGE - 4, 8),
        data={0: message},
    ), tmp_path)
    n = out.calls[0][1]
    assert out.calls == [Ok(n), Ok(n), Ok(32), Ok(32), Err(E.INVALID_ADDRESS)]
    signature = decode_vec_u8(out.buf(0, n))
    assert len(signature) == 64 and n == len(compact(64)) + 64
    pubkey = out.buf(1, 32)
    Ed25519PublicKey.from_public_bytes(pubkey).verify(signature, message)  # raises if wrong
    with pytest.raises(Exception):
        Ed25519PublicKey.from_public_bytes(pubkey).verify(signature, message + b"!")


def test_worker_pubkey_is_stable_per_data_dir(tmp_path: Path) -> None:
    wat = guest(C(Call.WORKER_PUBKEY) + C(Call.GET_RETURN, BUF(0), 32, fast=True))
    first = run(wat, tmp_path / "a").buf(0, 32)
    second = run(wat, tmp_path / "a").buf(0, 32)
    other = run(wat, tmp_path / "b").buf(0, 32)
    assert first == second and first != other
    key_file = tmp_path / "a" / KEY_FILE
    assert key_file.is_file() and len(key_file.read_bytes()) == 32
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    # the file is the node key; a guest sees its app's key derived from it (docs/design.md, "Hardening")
    app = GuestModule(wat.encode(), name="abi-test").default_address()
    assert NodeKey.load_or_create(tmp_path / "a").app_key(app).public == first


def test_sgx_quote_is_none_outside_a_tee(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.SGX_QUOTE, 0, 64) + C(Call.GET_RETURN, BUF(0), 8, fast=True)
        + C(Call.SGX_QUOTE, 0, 0) + C(Call.GET_RETURN, BUF(1), 8, fast=True)
        + C(Call.SGX_QUOTE, 0, 65)
        + C(Call.SGX_QUOTE, PAGE - 8, 16),
        data={0: bytes(range(64))},
    ), tmp_path)
    assert out.calls == [Ok(1), Ok(1), Ok(1), Ok(1), Err(E.INVALID_PARAMETER), Err(E.INVALID_ADDRESS)]
    assert out.buf(0, 1) == b"\x00" and out.buf(1, 1) == b"\x00"


def test_app_gas_consumed(tmp_path: Path) -> None:
    wat = guest(C(Call.APP_GAS_CONSUMED) + C(Call.GET_RETURN, BUF(0), 16, fast=True))
    out = run(wat, tmp_path)
    assert out.calls == [Ok(16), Ok(16)]
    assert struct.unpack("<QQ", out.buf(0, 16)) == (0, 0)   # no metering without a fuel limit

    burn = """
  (func $burn (local $i i32)
    (loop $l
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 200000)))))"""
    wat = guest("(call $burn)" + C(Call.APP_GAS_CONSUMED) + C(Call.GET_RETURN, BUF(0), 16, fast=True),
                extra=burn)
    out = run(wat, tmp_path, limits=Limits(time=5, fuel=50_000_000))
    assert out.calls == [Ok(16), Ok(16)]
    gas, token = struct.unpack("<QQ", out.buf(0, 16))
    assert 0 < gas <= out.result.fuel_consumed // 1024
    assert token == 0


def test_derive_secret(tmp_path: Path) -> None:
    paths = {0: b"a", 1: b"b", 2: b"p" * 256, 3: b"p" * 257}
    data = {0x100: paths[0], 0x200: paths[1], 0x300: paths[2], 0x500: paths[3]}
    wat = guest(
        C(Call.DERIVE_SECRET, 0x100, 1) + C(Call.GET_RETURN, BUF(0), 64, fast=True)
        + C(Call.DERIVE_SECRET, 0x200, 1) + C(Call.GET_RETURN, BUF(1), 64, fast=True)
        + C(Call.DERIVE_SECRET, 0x100, 1) + C(Call.GET_RETURN, BUF(2), 64, fast=True)
        + C(Call.DERIVE_SECRET, 0x300, 256) + C(Call.GET_RETURN, BUF(3), 64, fast=True)
        + C(Call.DERIVE_SECRET, 0x500, 257)
        + C(Call.DERIVE_SECRET, PAGE - 1, 2),
        data=data,
    )
    out = run(wat, tmp_path)
    assert out.calls == [Ok(64)] * 8 + [Err(E.INVALID_PARAMETER), Err(E.INVALID_ADDRESS)]
    a, b, a2, long = (out.buf(k, 64) for k in range(4))
    assert a == a2 and a != b and long not in (a, b)
    assert len({a, b, long}) == 3
    # the same node key and app give the same secret in another run; another app does not
    again = run(wat, tmp_path)
    assert again.buf(0, 64) == a
    other_app = run(wat, tmp_path, app_address=bytes(32))
    assert other_app.buf(0, 64) != a


# --- unknown and unimplemented calls ------------------------------------------------------------

@pytest.mark.parametrize("func", [7777, 244, 253, 260, 261, 262, 263,
                                  1, 100, 107, 108, 114, 200, -1, 0x7FFFFFFF])
def test_unknown_call_numbers(tmp_path: Path, func: int) -> None:
    out = run(guest(C(func, 0, 0, 0, 0) + C(func, 1, 2, 3, 4, fast=True)), tmp_path)
    assert out.calls == [Err(E.UNKNOWN_CALL_NUMBER)] * 2


def test_stream_calls_on_a_timer_are_unsupported(tmp_path: Path) -> None:
    out = run(guest(
        set_global("g0", call(Call.CREATE_TIMER, 1000))
        + C(Call.POLL_WRITE, 1, "(global.get $g0)", 0, 4)
        + C(Call.POLL_SHUTDOWN, 1, "(global.get $g0)")
        + C(Call.POLL_RES, 1, "(global.get $g0)")
        + C(Call.POLL_RES, 1, 333)
        + C(Call.POLL_WRITE, 1, 333, 0, 4)
    ), tmp_path)
    assert out.calls[1:] == [Err(E.UNSUPPORTED_OPERATION)] * 3 + [Err(E.NOT_FOUND)] * 2


def test_get_return_without_a_result(tmp_path: Path) -> None:
    out = run(guest(C(Call.GET_RETURN, BUF(0), 64, fast=True)), tmp_path)
    assert out.calls == [Err(E.NOT_FOUND)]


# --- legacy names --------------------------------------------------------------------------------

def test_sidevm_aliases(tmp_path: Path) -> None:
    wat = guest(
        C(Call.LOG, 3, 0, 6)
        + C(Call.APP_ADDRESS) + C(Call.GET_RETURN, BUF(0), 32, fast=True)
        + set_global("g0", call(Call.CREATE_TIMER, 10))
        + C(Call.POLL_READ, 1, "(global.get $g0)", BUF(1), 0)
        + yield_next(0),
        until_ready(Call.POLL_READ, 1, "(global.get $g0)", BUF(1), 0),
        data={0: b"legacy"},
        module="env", ocall="sidevm_ocall", fast="sidevm_ocall_fast_return", poll="sidevm_poll",
    )
    assert '"wapo"' not in wat and "wapo_poll" not in wat
    out = run(wat, tmp_path)
    assert out.calls == [Ok(0), Ok(32), Ok(32), Ok(out.calls[3][1]), Err(E.PENDING), Ok(0)]
    assert ("info", "legacy") in out.logs
    assert out.buf(0, 32) == out.instance.app_address


# --- addresses -----------------------------------------------------------------------------------

def test_pointers_outside_memory_are_invalid_address(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.LOG, 3, PAGE, 1)
        + C(Call.LOG, 3, PAGE - 1, 2)
        + C(Call.LOG, 3, -16, 32)                          # would wrap around in 32 bits
        + C(Call.EMIT_PROGRAM_OUTPUT, PAGE, 1)
        + C(Call.EMIT_PROGRAM_OUTPUT, 1, -1)
        + C(Call.GETRANDOM, PAGE, 1)
        + C(Call.GETRANDOM, -4, 8)
        + set_global("g0", call(Call.CREATE_TIMER, 1))
        + C(Call.POLL_READ, 1, "(global.get $g0)", PAGE, 1)       # checked before the timer is
        + C(Call.POLL_READ, 1, "(global.get $g0)", PAGE - 1, 2)
        + C(Call.APP_ADDRESS)
        + C(Call.GET_RETURN, PAGE, 32, fast=True)
        + C(Call.GET_RETURN, PAGE - 16, 32, fast=True)
        + C(Call.GET_RETURN, -1, 32, fast=True)
        + C(Call.POLL_READ, 1, "(global.get $g0)", BUF(0), 0)
        + yield_next(0),
        until_ready(Call.POLL_READ, 1, "(global.get $g0)", PAGE, 1)
        + C(Call.POLL_READ, 1, "(global.get $g0)", PAGE, 0),      # an empty buffer at the very end is fine
    ), tmp_path)
    e = Err(E.INVALID_ADDRESS)
    assert out.calls == [e, e, e, e, e, e, e, Ok(out.calls[7][1]), e, e, Ok(32), e, e, e,
                         Err(E.PENDING), e, Ok(0)]
    assert not any(m for _, m in out.logs)
    assert out.prefix == b""


# --- resource limit --------------------------------------------------------------------------------

def test_resource_limit(tmp_path: Path) -> None:
    out = run(guest(
        C(Call.CREATE_TIMER, 1000)
        + C(Call.CREATE_TIMER, 1000)
        + C(Call.CREATE_TIMER, 1000)            # the third one is over the limit
        + C(Call.CREATE_INPUT_CHANNEL, 3)
        + C(Call.CLOSE, 0)
        + C(Call.CREATE_TIMER, 1000)            # room again, lowest id first
        + C(Call.CREATE_TIMER, 1000)
    ), tmp_path, limits=Limits(time=5, max_resources=2))
    assert out.calls == [Ok(0), Ok(1), Err(E.RESOURCE_LIMITED), Err(E.RESOURCE_LIMITED), Ok(0), Ok(0),
                         Err(E.RESOURCE_LIMITED)]


def test_pending_input_survives_a_resource_limited_create_input_channel(tmp_path: Path) -> None:
    wat = guest(
        set_global("g1", call(Call.CREATE_TIMER, 1000))
        + C(Call.CREATE_INPUT_CHANNEL, 3)                      # ResourceLimited
        + C(Call.CLOSE, "(global.get $g1)")
        + C(Call.CREATE_INPUT_CHANNEL, 3) + C(Call.GET_RETURN, BUF(0), 4, fast=True) + load_rid("g0", BUF(0)),
        until_ready(Call.POLL, 7, "(global.get $g0)") + C(Call.GET_RETURN, BUF(1), BUF_SIZE, fast=True),
    )
    out = run(wat, tmp_path, setup=lambda inst: inst.send_input(3, b"kept"),
              limits=Limits(time=2, max_resources=1))
    assert out.calls[:2] == [Ok(0), Err(E.RESOURCE_LIMITED)]
    assert out.buf(1, 5) == compact(4) + b"kept"


def test_emit_program_output_is_capped(tmp_path: Path) -> None:
    """Output beyond 64 MiB answers ResourceLimited; what was emitted before is kept."""
    from wapo.host.state import MAX_OUTPUT

    calls = MAX_OUTPUT // PAGE + 2
    wat = f"""
(module
  (import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (func (export "wapo_poll") (result i32)
    (local $i i32) (local $r i64) (local $ok i32) (local $first_err i64)
    (loop $again
      (local.set $r (call $fast (i32.const 0) (i32.const 243) (i32.const 0) (i32.const {PAGE}) (i32.const 0) (i32.const 0)))
      (if (i64.eqz (local.get $r))
        (then (local.set $ok (i32.add (local.get $ok) (i32.const 1))))
        (else (if (i64.eqz (local.get $first_err)) (then (local.set $first_err (local.get $r))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const {calls}))))
    ;; the report itself no longer fits either: leave it in memory for the log below
    (i32.store (i32.const 0) (local.get $ok))
    (i64.store (i32.const 8) (local.get $first_err))
    (drop (call $fast (i32.const 0) (i32.const 220) (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 0)))
    (i32.const 1)))"""

    async def main() -> tuple[RunResult, Instance]:
        instance = Instance(GuestModule(wat.encode(), name="cap"), data_dir=tmp_path, limits=Limits(time=20))
        return await instance.run(), instance

    result, instance = asyncio.run(main())
    assert result.error is None and instance._state.host_faults == 0
    assert len(result.output) == MAX_OUTPUT
    # the 16 report bytes are all < 0x80, so the log text holds them exactly
    (report,) = [r.message.encode() for r in result.logs if r.level == "info"]
    ok_calls, _, first_error = struct.unpack("<IIQ", report)
    assert ok_calls == MAX_OUTPUT // PAGE
    assert first_error == (1 << 32) | ErrorCode.RESOURCE_LIMITED
