"""The C-API sandbox (wapo.host.sandbox) and its bounds-checked memory: a bad offset is an
error, never a crash; a dropped sandbox refuses every use; crossings are counted."""

from __future__ import annotations

import asyncio

import pytest
import wasmtime

from wapo.host import GuestModule
from wapo.host.abi import ErrorCode, OcallError
from wapo.host.engine import EngineConfig, get_engine
from wapo.host.sandbox import crossings
from wapo.host.memory import GuestMemory
from wapo.host.sandbox import Sandbox, SandboxClosed
from wapo.js.runner import js_instance, snapshots_enabled

PAGE = 0x10000

# One page of memory; `grow` adds pages and returns the old size; `poll` answers 7.
GUEST = """
(module
  (memory (export "memory") 1 4)
  (global $g (mut i32) (i32.const 0))
  (data (i32.const 16) "hello")
  (func (export "wapo_poll") (result i32) (i32.const 7))
  (func (export "grow") (result i32) (memory.grow (i32.const 1)))
  (func (export "trap") (result i32) unreachable)
  (func (export "_initialize"))
)
"""


@pytest.fixture
def sandbox():
    module = GuestModule(wasmtime.wat2wasm(GUEST), name="t.wat")
    box = Sandbox(get_engine(EngineConfig()), args=["t.wat"], memory_limit=16 * PAGE)
    box.instantiate(module.instance_pre(EngineConfig()))
    assert box.memory() is not None
    box.set_epoch_deadline(1000)  # the default deadline (0) interrupts at once
    yield box
    box.close()


def test_call_and_memory_roundtrip(sandbox):
    poll = sandbox.func("wapo_poll")
    assert poll is not None and sandbox.call_i32(poll) == 7
    mem = GuestMemory(sandbox)
    assert mem.size() == PAGE
    assert mem.read(16, 5) == b"hello"
    mem.write(PAGE - 3, b"end")
    assert mem.read(PAGE - 3, 3) == b"end"
    assert mem.read(PAGE, 0) == b""


@pytest.mark.parametrize("ptr,length", [
    (PAGE, 1), (PAGE - 1, 2), (0, PAGE + 1), (0xFFFFFFFF, 1), (0xFFFFFFF0, 0x20), (-1, 4), (5, 0xFFFFFFFF),
    (-PAGE, PAGE),
])
def test_out_of_bounds_is_invalid_address(sandbox, ptr, length):
    """Guest pointers and lengths are u32s: they never wrap around into the memory."""
    mem = GuestMemory(sandbox)
    ops = [lambda: mem.read(ptr, length), lambda: mem.check(ptr, length)]
    if length <= PAGE + 1:
        ops.append(lambda: mem.write(ptr, b"x" * length))
    for op in ops:
        with pytest.raises(OcallError) as info:
            op()
        assert info.value.code == ErrorCode.INVALID_ADDRESS
    assert mem.read(16, 5) == b"hello"  # nothing was touched


def test_memory_growth_is_seen(sandbox):
    mem = GuestMemory(sandbox)
    with pytest.raises(OcallError):
        mem.read(PAGE + 10, 4)
    assert sandbox.call_i32(sandbox.func("grow")) == 1
    assert mem.size() == 2 * PAGE
    mem.write(PAGE + 10, b"abcd")
    assert mem.read(PAGE + 10, 4) == b"abcd"


def test_exports_are_kind_checked(sandbox):
    assert sandbox.func("memory") is None
    assert sandbox.memory("wapo_poll") is None
    assert sandbox.func("no_such_export") is None


def test_trap_raises_and_sandbox_stays_usable(sandbox):
    with pytest.raises(wasmtime.Trap):
        sandbox.call_i32(sandbox.func("trap"))
    assert sandbox.call_i32(sandbox.func("wapo_poll")) == 7


def test_closed_sandbox_refuses_everything(sandbox):
    poll = sandbox.func("wapo_poll")
    mem = GuestMemory(sandbox)
    sandbox.close()
    sandbox.close()  # idempotent
    assert sandbox.closed
    with pytest.raises(SandboxClosed):
        sandbox.call_i32(poll)
    with pytest.raises(SandboxClosed):
        sandbox.func("wapo_poll")
    with pytest.raises(SandboxClosed):
        mem.read(16, 5)
    with pytest.raises(SandboxClosed):
        sandbox.set_epoch_deadline(5)


def test_nul_in_wasi_arguments_is_refused():
    with pytest.raises(ValueError, match="NUL"):
        Sandbox(get_engine(EngineConfig()), args=["a\0b"], memory_limit=PAGE)
    with pytest.raises(ValueError, match="NUL"):
        Sandbox(get_engine(EngineConfig()), args=["a"], env=[("k", "v\0")], memory_limit=PAGE)


def test_memory_limit_below_the_module_minimum_fails_cleanly():
    module = GuestModule(wasmtime.wat2wasm(GUEST), name="t.wat")
    box = Sandbox(get_engine(EngineConfig()), args=["t.wat"], memory_limit=PAGE // 2)
    try:
        with pytest.raises(wasmtime.WasmtimeError):
            box.instantiate(module.instance_pre(EngineConfig()))
    finally:
        box.close()


def test_a_trivial_js_run_crosses_twice():
    """One host->guest call (wapo_poll; plus _initialize without a snapshot) and one ocall
    (emit_program_output) per trivial run."""
    async def run():
        instance = js_instance("scriptOutput = 'x'")
        before = (crossings.entries, crossings.ocalls)
        result = await instance.run()
        return result, (crossings.entries - before[0], crossings.ocalls - before[1])

    result, (entries, ocalls) = asyncio.run(run())
    assert result.ok and result.output == b"x"
    assert (entries, ocalls) == (1 if snapshots_enabled() else 2, 1)
