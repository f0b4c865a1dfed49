"""Hypothesis drives the ocall ABI with arbitrary calls: nothing a guest passes may hurt the host.

The guest (tests/guests/abi_fuzz.wat) reads a batch of records (task, func,
p0..p3) from an input-channel message, makes each one an ocall and emits, per
record, the record as executed plus the i64 it got back. The host must answer
every call with Ok or a known error code, never fail an ocall itself
(``host_faults``), and never let an exception escape ``Instance.run``.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from wapo.host import GuestModule, GuestTrap, Instance, Limits
from wapo.host.abi import ErrorCode
from wapo.host.ocalls import HANDLERS, LOG_LEVELS, MAX_GETRANDOM
from wapo.host.scale import vec_u8

GUEST = Path(__file__).parent / "guests" / "abi_fuzz.wat"
PAGE = 0x10000
KNOWN_CODES = {int(c) for c in ErrorCode if c != ErrorCode.OK}
KNOWN_FUNCS = [0, *range(101, 114), *range(201, 205), *range(210, 216), 220, *range(240, 264), *range(1000, 1005)]
I32 = st.integers(-(2**31), 2**31 - 1)
INTERESTING = [0, 1, 2, 3, 4, 5, 7, -1, -2, 0x7FFFFFFF, -(2**31), 32, 64, 65, 256, 257,
               PAGE, PAGE - 1, PAGE - 8, PAGE - 32, PAGE + 1, 0x1000, 0x100, MAX_GETRANDOM, MAX_GETRANDOM + 1]

funcs = st.one_of(st.sampled_from(KNOWN_FUNCS), I32)
params = st.one_of(I32, st.sampled_from(INTERESTING), st.integers(0, 64), st.integers(PAGE - 300, PAGE + 16))
tasks = st.one_of(st.sampled_from([0, 0, 1, 7, -1]), I32)
records = st.lists(st.tuples(tasks, funcs, params, params, params, params), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    """The compiled guest and a data directory, shared by every example (compiled once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAPO_CACHE_DIR", str(tmp_path_factory.mktemp("wapo-cache")))
        module = GuestModule(GUEST.read_bytes(), name="abi_fuzz.wat")
        yield module, tmp_path_factory.mktemp("data")


def u32(v: int) -> int:
    return v & 0xFFFFFFFF


def in_memory(ptr: int, length: int) -> bool:
    return u32(ptr) + u32(length) <= PAGE


def run_batch(module: GuestModule, data_dir: Path, batch: list[tuple[int, ...]]):
    message = b"".join(struct.pack("<6i", *r) for r in batch)

    async def main():
        instance = Instance(module, limits=Limits(time=10, burst=5), data_dir=data_dir)
        instance.send_input(3, message)
        result = await instance.run()
        return instance, result

    instance, result = asyncio.run(main())
    assert instance._state is not None
    assert instance._state.host_faults == 0, "an ocall handler raised (a host bug): see the 'wapo.host' log"
    return instance, result


def parse_frames(output: bytes) -> list[tuple[tuple[int, ...], int, bytes]]:
    """[(record as executed, i64 result, bytes the call emitted itself)]"""
    frames, pos = [], 0
    while pos < len(output):
        assert pos + 32 <= len(output), f"truncated frame at {pos}: {output[pos:]!r}"
        record = struct.unpack_from("<6i", output, pos)
        pos += 24
        emitted = b""
        if record[1] == 243 and in_memory(record[2], record[3]):
            n = u32(record[3])
            emitted, pos = output[pos:pos + n], pos + n
        (value,) = struct.unpack_from("<Q", output, pos)
        pos += 8
        frames.append((record, value, emitted))
    return frames


def check(batch: list[tuple[int, ...]], instance: Instance, result) -> list[tuple[tuple[int, ...], int, bytes]]:
    frames = parse_frames(result.output)
    assert len(frames) == len(batch), "the guest did not get through the whole batch"
    reports = False
    for (task, func, p0, p1, p2, p3), value, _ in frames:
        tag, code = value >> 32, value & 0xFFFFFFFF
        assert tag in (0, 1), f"call {func} returned tag {tag}"
        if tag == 1:
            assert code in KNOWN_CODES, f"call {func} returned unknown error code {code}"
            assert code != ErrorCode.IO_ERROR  # only ever used for a host fault
        # a few answers that do not depend on earlier calls
        if func not in HANDLERS:
            assert value == (1 << 32) | ErrorCode.UNKNOWN_CALL_NUMBER
        elif func == 243:
            assert value == (0 if in_memory(p0, p1) else (1 << 32) | ErrorCode.INVALID_ADDRESS)
        elif func == 220:
            if p0 not in LOG_LEVELS:
                assert value == (1 << 32) | ErrorCode.INVALID_PARAMETER
            elif u32(p2) <= MAX_GETRANDOM:
                assert value == (0 if in_memory(p1, p2) else (1 << 32) | ErrorCode.INVALID_ADDRESS)
        elif func == 113:
            if u32(p1) > MAX_GETRANDOM:
                assert value == (1 << 32) | ErrorCode.INVALID_PARAMETER
            else:
                assert value == (0 if in_memory(p0, p1) else (1 << 32) | ErrorCode.INVALID_ADDRESS)
        elif func == 1001 and tag == 0:
            reports = True
    if result.error is not None:
        # the only way this guest can fail its run is to report a failure through wapojs_report
        assert reports, f"unexpected run error: {result.error.describe()}"
        assert not isinstance(result.error, GuestTrap)
    return frames


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=records)
def test_arbitrary_ocalls_never_hurt_the_host(env, batch) -> None:
    module, data_dir = env
    instance, result = run_batch(module, data_dir, batch)
    check(batch, instance, result)


def test_the_fuzz_guest_reports_every_known_call(env) -> None:
    """The harness itself: every known id, with all-zero and with out-of-memory parameters."""
    module, data_dir = env
    batch = [(0, f, 0, 0, 0, 0) for f in KNOWN_FUNCS if f != 1001]
    batch += [(0, f, PAGE - 1, 16, PAGE, 8) for f in KNOWN_FUNCS if f != 1001]
    batch += [(0, 243, 0x100, 4, 0, 0)]
    instance, result = run_batch(module, data_dir, batch)
    assert result.error is None, result.error.describe()
    frames = check(batch, instance, result)
    assert [f[0] for f in frames] == batch  # nothing here writes over the records
    by_call = {(r[1], r[2]): v for r, v, _ in frames}
    assert by_call[(110, 0)] == 0                       # next_ready_task: main task 0
    assert by_call[(214, 0)] == (1 << 32) | ErrorCode.INVALID_ENCODING  # an empty EI tuple is truncated SCALE
    assert by_call[(255, PAGE - 1)] == (1 << 32) | ErrorCode.INVALID_ADDRESS
    assert by_call[(255, 0)] == 64                       # derive_secret of the empty path
    assert frames[-1][2] == struct.pack("<i", 0)        # emitted the frame scratch (task 0 of itself)


def test_input_message_encoding_is_what_the_guest_decodes(env) -> None:
    """More than 63 bytes of records: the guest must skip a 2-byte compact prefix (and 4 beyond 16 KiB)."""
    module, data_dir = env
    for n in (2, 3, 700):
        batch = [(0, 7777, i, 0, 0, 0) for i in range(n)]
        assert len(vec_u8(b"x" * 24 * n)) - 24 * n == (1 if 24 * n < 64 else 2 if 24 * n < 2**14 else 4)
        if 24 * n + 4 > 0x8000:
            continue
        instance, result = run_batch(module, data_dir, batch)
        frames = check(batch, instance, result)
        assert [f[0] for f in frames] == batch
