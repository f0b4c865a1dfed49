"""Host limits and failures with plain WAT guests (no JavaScript): each limit stops the run with an
error that names it, and the process (and the next sandbox) is fine afterwards."""

from __future__ import annotations

import asyncio
import re
import struct
from pathlib import Path

import pytest

from wapo.host import (GuestError, GuestLoadError, GuestModule, GuestTrap, Instance, LimitExceeded, Limits,
                       RunResult)
from wapo.host.limits import MIB

GUESTS = Path(__file__).parent / "guests"
OCALL_IMPORTS = """
  (import "wapo" "ocall" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))"""


@pytest.fixture(autouse=True, scope="module")
def _module_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAPO_CACHE_DIR", str(tmp_path_factory.mktemp("wapo-cache")))
        yield


def module(wat: str, name: str = "limits-test") -> GuestModule:
    return GuestModule(wat.encode(), name=name)


def run(mod: GuestModule, tmp_path: Path, **limits: object) -> RunResult:
    limits.setdefault("time", 10)

    async def main() -> RunResult:
        instance = Instance(mod, limits=Limits(**limits), data_dir=tmp_path)
        result = await instance.run()
        assert instance._state is not None and instance._state.host_faults == 0
        return result

    return asyncio.run(asyncio.wait_for(main(), timeout=30))


def assert_next_run_works(tmp_path: Path) -> None:
    """A normal guest (timer, log, output) still runs in this process."""
    result = run(GuestModule.from_file(GUESTS / "timer.wat"), tmp_path)
    assert result.error is None, result.error.describe()
    assert result.output == b"done"
    assert [(r.level, r.message) for r in result.logs] == [("info", "timer fired")]


def spin_guest(where: str = "poll") -> GuestModule:
    return module(f"""
(module
  (memory (export "memory") 1)
  (func $spin (loop $forever (br $forever)))
  (func (export "wapo_poll") (result i32) (call $spin) (i32.const 1)))""", name=f"spin-{where}")


# --- the normal guest -----------------------------------------------------------------------------

def test_the_timer_guest_runs(tmp_path: Path) -> None:
    result = run(GuestModule.from_file(GUESTS / "timer.wat"), tmp_path)
    assert result.ok and result.output == b"done"
    assert 0.009 <= result.duration < 5


# --- CPU: burst, time, fuel ----------------------------------------------------------------------

def test_burst_limit_stops_an_infinite_loop(tmp_path: Path) -> None:
    result = run(spin_guest(), tmp_path, burst=0.2)
    error = result.error
    assert isinstance(error, LimitExceeded)
    assert error.kind == "burst_limit" and error.limit == "burst"
    assert "burst" in error.message and "of 200 ms" in error.message
    used = int(re.search(r"used (\d+) ms", error.message).group(1))
    assert 150 <= used < 2000
    assert "spin" in error.stack                    # where it was stopped
    assert 0.15 <= result.duration < 2.5
    assert any("burst limit exceeded" in r.message for r in result.logs if r.level == "error")
    assert_next_run_works(tmp_path)


def test_time_limit_while_waiting_on_a_timer(tmp_path: Path) -> None:
    wat = f"""
(module {OCALL_IMPORTS}
  (memory (export "memory") 1)
  (global $t (mut i32) (i32.const -1))
  (func (export "wapo_poll") (result i32)
    (if (i32.lt_s (global.get $t) (i32.const 0))
      (then (global.set $t (i32.wrap_i64
        (call $fast (i32.const 0) (i32.const 201) (i32.const 5000) (i32.const 0) (i32.const 0) (i32.const 0))))))
    (if (i64.eq (call $fast (i32.const 0) (i32.const 103) (i32.const 0) (global.get $t) (i32.const 0) (i32.const 0))
                (i64.const 0x10000000b))
      (then (return (i32.const 0))))
    (i32.const 1)))"""
    result = run(module(wat), tmp_path, time=0.3)
    error = result.error
    assert isinstance(error, LimitExceeded)
    assert error.kind == "time_limit"
    assert "time limit exceeded" in error.message and "of 0.3 s" in error.message
    assert 0.25 <= result.duration < 2
    assert_next_run_works(tmp_path)


def test_time_limit_while_running(tmp_path: Path) -> None:
    """A time limit below the burst limit stops a busy guest as a time limit, not a burst."""
    result = run(spin_guest("time"), tmp_path, time=0.3, burst=5)
    assert isinstance(result.error, LimitExceeded)
    assert result.error.kind == "time_limit"
    assert 0.25 <= result.duration < 2
    assert_next_run_works(tmp_path)


def test_fuel_limit_stops_an_infinite_loop(tmp_path: Path) -> None:
    result = run(spin_guest("fuel"), tmp_path, fuel=100_000)
    error = result.error
    assert isinstance(error, LimitExceeded)
    assert error.kind == "fuel_limit"
    assert "fuel" in error.message and "100000" in error.message
    assert result.fuel_consumed == 100_000
    assert result.duration < 2
    assert_next_run_works(tmp_path)


def test_fuel_is_metered_for_a_normal_run(tmp_path: Path) -> None:
    result = run(GuestModule.from_file(GUESTS / "timer.wat"), tmp_path, fuel=10_000_000)
    assert result.ok and result.output == b"done"
    assert 0 < result.fuel_consumed < 10_000_000


def test_stack_overflow_is_a_stack_limit(tmp_path: Path) -> None:
    wat = """
(module
  (memory (export "memory") 1)
  (func $deeper (param i32) (result i32) (i32.add (call $deeper (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
  (func (export "wapo_poll") (result i32) (drop (call $deeper (i32.const 0))) (i32.const 1)))"""
    result = run(module(wat), tmp_path)
    assert isinstance(result.error, LimitExceeded)
    assert result.error.kind == "stack_limit"
    assert "stack" in result.error.message
    assert_next_run_works(tmp_path)


# --- memory ------------------------------------------------------------------------------------------

def test_memory_grow_beyond_the_limit_fails_in_the_guest(tmp_path: Path) -> None:
    """memory.grow answers -1 past Limits(memory=...); the guest sees it and carries on."""
    pages = (2 * MIB) // 0x10000  # 32 pages
    wat = f"""
(module {OCALL_IMPORTS}
  (memory (export "memory") 1)
  (func (export "wapo_poll") (result i32)
    (i32.store (i32.const 0) (memory.grow (i32.const 1000)))         ;; far beyond: -1
    (i32.store (i32.const 4) (memory.grow (i32.const {pages - 1})))  ;; up to exactly the limit: old size 1
    (i32.store (i32.const 8) (memory.grow (i32.const 1)))            ;; one page more: -1
    (i32.store (i32.const 12) (memory.size))
    (i32.store (i32.const 16) (memory.grow (i32.const 0)))
    (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0) (i32.const 20) (i32.const 0) (i32.const 0)))
    (i32.const 1)))"""
    result = run(module(wat), tmp_path, memory=2 * MIB)
    assert result.error is None, result.error.describe()
    assert struct.unpack("<5i", result.output) == (-1, 1, -1, pages, pages)
    assert_next_run_works(tmp_path)


def test_initial_memory_above_the_limit_is_a_load_error(tmp_path: Path) -> None:
    wat = """
(module
  (memory (export "memory") 64)
  (func (export "wapo_poll") (result i32) (i32.const 1)))"""
    mod = module(wat)  # compiles: the limit is per run
    failed = run(mod, tmp_path, memory=2 * MIB)  # a run that cannot start ends with an error, not a raise
    assert isinstance(failed.error, GuestLoadError) and "memory limit" in failed.error.message
    assert failed.error.kind == "load_error"
    result = run(mod, tmp_path, memory=8 * MIB)  # the same module fits a larger limit
    assert result.ok
    assert_next_run_works(tmp_path)


# --- traps and bad answers -------------------------------------------------------------------------

@pytest.mark.parametrize("body, cause", [
    ("unreachable", "unreachable"),
    ("(i32.div_u (i32.const 1) (i32.const 0))", "divide by zero"),
    ("(i32.load (i32.const 0x20000))", "out of bounds"),
])
def test_a_trap_is_a_guest_trap(tmp_path: Path, body: str, cause: str) -> None:
    wat = f"""
(module
  (memory (export "memory") 1)
  (func $crash (result i32) {body})
  (func (export "wapo_poll") (result i32) (call $crash)))"""
    result = run(module(wat), tmp_path)
    assert isinstance(result.error, GuestTrap)
    assert result.error.kind == "trap"
    assert "trapped" in result.error.message and cause in result.error.message
    assert "crash" in result.error.stack
    assert_next_run_works(tmp_path)


def test_a_trap_after_waiting(tmp_path: Path) -> None:
    """The second wapo_poll (after a timer fired) traps: still a GuestTrap, output so far kept."""
    wat = f"""
(module {OCALL_IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 0) "before")
  (global $t (mut i32) (i32.const -1))
  (func (export "wapo_poll") (result i32)
    (if (i32.ge_s (global.get $t) (i32.const 0)) (then unreachable))
    (global.set $t (i32.wrap_i64
      (call $fast (i32.const 0) (i32.const 201) (i32.const 10) (i32.const 0) (i32.const 0) (i32.const 0))))
    (drop (call $fast (i32.const 0) (i32.const 103) (i32.const 0) (global.get $t) (i32.const 0) (i32.const 0)))
    (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0) (i32.const 6) (i32.const 0) (i32.const 0)))
    (i32.const 0)))"""
    result = run(module(wat), tmp_path)
    assert isinstance(result.error, GuestTrap)
    assert result.output == b"before"
    assert_next_run_works(tmp_path)


def test_a_trap_message_says_why(tmp_path: Path) -> None:
    """The cause, not wasmtime's first line ('error while executing at wasm backtrace:')."""
    wat = """
(module
  (memory (export "memory") 1)
  (func (export "wapo_poll") (result i32) unreachable))"""
    result = run(module(wat), tmp_path)
    assert isinstance(result.error, GuestTrap)
    assert "unreachable" in result.error.message


def test_a_trap_in_initialize(tmp_path: Path) -> None:
    wat = """
(module
  (memory (export "memory") 1)
  (func (export "_initialize") unreachable)
  (func (export "wapo_poll") (result i32) (i32.const 1)))"""
    result = run(module(wat), tmp_path)
    assert isinstance(result.error, GuestTrap)
    assert_next_run_works(tmp_path)


def test_wapo_poll_returning_an_unknown_status(tmp_path: Path) -> None:
    wat = """
(module
  (memory (export "memory") 1)
  (func (export "wapo_poll") (result i32) (i32.const 7)))"""
    result = run(module(wat), tmp_path)
    assert isinstance(result.error, GuestError)
    assert "wapo_poll returned 7" in result.error.message


def test_burst_limit_in_the_start_function_reports_a_sane_time(tmp_path: Path) -> None:
    """A start function runs inside instantiation; its burst is measured from there (not from 0)."""
    wat = """
(module
  (memory (export "memory") 1)
  (func $spin (loop $forever (br $forever)))
  (start $spin)
  (func (export "wapo_poll") (result i32) (i32.const 1)))"""
    result = run(module(wat), tmp_path, burst=0.2)
    assert isinstance(result.error, LimitExceeded) and result.error.kind == "burst_limit"
    used = int(re.search(r"used (\d+) ms", result.error.message).group(1))
    assert used < 5000, result.error.message


# --- modules that are not Wapo guests -------------------------------------------------------------------

@pytest.mark.parametrize("blob", [
    b"",
    b"not wasm at all",
    b"\x00asm\x01\x00\x00\x00garbage",
    b"(module (func (export \"wapo_poll\") (result i32)))",   # does not validate
])
def test_not_valid_wasm_is_a_load_error(blob: bytes) -> None:
    with pytest.raises(GuestLoadError):
        GuestModule(blob, name="broken")


def test_missing_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(GuestLoadError, match="cannot read"):
        GuestModule.from_file(tmp_path / "nope.wasm")


def test_a_module_without_wapo_poll_is_a_load_error() -> None:
    with pytest.raises(GuestLoadError, match="wapo_poll"):
        module('(module (memory (export "memory") 1) (func (export "main") (result i32) (i32.const 1)))')


def test_a_module_without_memory_is_a_load_error() -> None:
    with pytest.raises(GuestLoadError, match="memory"):
        module('(module (func (export "wapo_poll") (result i32) (i32.const 1)))')


def test_a_module_importing_something_unknown_is_a_load_error() -> None:
    with pytest.raises(GuestLoadError, match="imports"):
        module("""
(module
  (import "wapo" "teleport" (func))
  (memory (export "memory") 1)
  (func (export "wapo_poll") (result i32) (i32.const 1)))""")


@pytest.mark.parametrize("export", [
    '(global (export "wapo_poll") i32 (i32.const 1))',
    '(func (export "wapo_poll") (param i32) (result i32) (i32.const 1))',
    '(func (export "wapo_poll") (result i64) (i64.const 1))',
    '(func (export "wapo_poll"))',
    '(func (export "sidevm_poll") (result i32 i32) (i32.const 1) (i32.const 1))',
])
def test_wapo_poll_that_is_not_a_function_returning_i32(export: str) -> None:
    """Caught at load time (a global named wapo_poll once made Instance.run raise TypeError)."""
    with pytest.raises(GuestLoadError, match="wapo_poll"):
        module(f'(module (memory (export "memory") 1) {export})')


def test_initialize_that_is_not_a_plain_function() -> None:
    with pytest.raises(GuestLoadError, match="_initialize"):
        module("""
(module
  (memory (export "memory") 1)
  (func (export "_initialize") (result i32) (i32.const 0))
  (func (export "wapo_poll") (result i32) (i32.const 1)))""")


def test_memory_that_is_not_a_memory(tmp_path: Path) -> None:
    """Caught at load time (it once loaded, and every memory ocall then failed inside the host)."""
    wat = f"""
(module {OCALL_IMPORTS}
  (memory 1)
  (func (export "memory"))
  (func (export "wapo_poll") (result i32)
    (drop (call $fast (i32.const 0) (i32.const 220) (i32.const 3) (i32.const 0) (i32.const 2) (i32.const 0)))
    (i32.const 1)))"""
    with pytest.raises(GuestLoadError, match="memory"):
        module(wat)


def test_legacy_sidevm_poll_export_is_accepted(tmp_path: Path) -> None:
    wat = """
(module
  (import "env" "sidevm_ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "legacy")
  (func (export "sidevm_poll") (result i32)
    (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0) (i32.const 6) (i32.const 0) (i32.const 0)))
    (i32.const 1)))"""
    result = run(module(wat), tmp_path)
    assert result.ok and result.output == b"legacy"


# --- an Instance runs once ---------------------------------------------------------------------------

def test_an_instance_cannot_run_twice(tmp_path: Path) -> None:
    mod = GuestModule.from_file(GUESTS / "timer.wat")

    async def main() -> None:
        instance = Instance(mod, data_dir=tmp_path, limits=Limits(time=5))
        first = await instance.run()
        assert first.ok and first.output == b"done"
        with pytest.raises(RuntimeError, match="once"):
            await instance.run()

    asyncio.run(main())


def test_a_failed_instance_cannot_run_again(tmp_path: Path) -> None:
    async def main() -> None:
        instance = Instance(spin_guest("twice"), data_dir=tmp_path, limits=Limits(time=5, burst=0.1))
        first = await instance.run()
        assert isinstance(first.error, LimitExceeded)
        with pytest.raises(RuntimeError):
            await instance.run()

    asyncio.run(main())
    assert_next_run_works(tmp_path)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="memory"):
        Limits(memory=1 * MIB)
    with pytest.raises(ValueError):
        Limits(burst=0)
    with pytest.raises(ValueError):
        Limits(fuel=0)
    with pytest.raises(ValueError):
        Limits(time=-1)
