"""Pre-initialized snapshots: the wasm rewriter (host layer) and the WapoJS guest made from one."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import wasmtime

from wapo.host import Limits
from wapo.host.engine import get_engine
from wapo.host.limits import MIB
from wapo.host.snapshot import (SEC_DATACOUNT, SEC_START, SnapshotError, cached_snapshot, data_ranges, parse,
                                snapshot)

# --- the rewriter, on small WAT modules ---------------------------------------------------

STATE_WAT = r"""
(module
  (memory (export "memory") 1 10)
  (global $i (mut i32) (i32.const 0))
  (global $l (mut i64) (i64.const 0))
  (global $f (mut f32) (f32.const 0))
  (global $d (mut f64) (f64.const 0))
  (global $k i32 (i32.const 7))
  (global $inited (mut i32) (i32.const 0))
  (global $init_calls (mut i32) (i32.const 0))
  (data (i32.const 16) "original")
  (func (export "_initialize")
    (if (global.get $inited) (then unreachable))  ;; like a reactor's: traps when called twice
    (global.set $inited (i32.const 1)))
  (func (export "init")
    (if (i32.eqz (global.get $inited)) (then unreachable))  ;; _initialize must have run first
    (if (i32.lt_u (memory.size) (i32.const 3)) (then (drop (memory.grow (i32.const 2)))))
    (i32.store (i32.const 100) (i32.const 0x11223344))
    (i32.store (i32.const 140000) (i32.const -1))
    (i64.store (i32.const 196600) (i64.const 0x0102030405060708))  ;; the last bytes of page 3
    (i32.store8 (i32.const 16) (i32.const 79))  ;; "Original"
    (global.set $i (i32.const -5))
    (global.set $l (i64.const -1234567890123))
    (global.set $f (f32.const 1.5))
    (global.set $d (f64.const -2.25))
    (global.set $init_calls (i32.add (global.get $init_calls) (i32.const 1))))
  (func (export "init_calls") (result i32) (global.get $init_calls))
  (func (export "gi") (result i32) (global.get $i))
  (func (export "gl") (result i64) (global.get $l))
  (func (export "gf") (result f32) (global.get $f))
  (func (export "gd") (result f64) (global.get $d))
  (func (export "gk") (result i32) (global.get $k))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))
"""


def wasm_of(wat: str) -> bytes:
    return wasmtime.wat2wasm(wat)


def instantiate(wasm: bytes) -> tuple[wasmtime.Store, dict]:
    engine = get_engine()
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1000)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, wasm), [])
    return store, instance.exports(store)


def test_memory_and_globals_are_captured() -> None:
    snap = snapshot(wasm_of(STATE_WAT), "init")
    mod = parse(snap)
    assert mod.memory_limits == (1, 3, 10)  # minimum = the grown size; maximum kept
    assert "_initialize" not in {name for name, _, _ in mod.exports}
    store, ex = instantiate(snap)  # no _initialize, no init: the state is in the image
    assert ex["init_calls"](store) == 1
    assert ex["gi"](store) == -5
    assert ex["gl"](store) == -1234567890123
    assert ex["gf"](store) == 1.5
    assert ex["gd"](store) == -2.25
    assert ex["gk"](store) == 7
    assert ex["load"](store, 100) == 0x11223344
    assert ex["load"](store, 140000) == -1
    assert ex["load"](store, 196604) == 0x01020304
    mem = ex["memory"]
    assert mem.read(store, 16, 24) == b"Original"
    assert mem.size(store) == 3


def test_snapshot_of_a_snapshot_is_stable() -> None:
    once = snapshot(wasm_of(STATE_WAT), "init")
    twice = snapshot(once, "init")
    store, ex = instantiate(twice)
    assert ex["init_calls"](store) == 2  # the init ran again, on the snapshotted state
    # an idempotent init gives the same module back
    idem = wasm_of(STATE_WAT.replace("(i32.add (global.get $init_calls) (i32.const 1))", "(i32.const 1)"))
    a = snapshot(idem, "init")
    assert snapshot(a, "init") == a


def test_data_ranges_merge_small_gaps() -> None:
    mem = bytearray(1000)
    mem[10:12] = b"ab"
    mem[20:22] = b"cd"    # gap of 8: merged
    mem[500:501] = b"e"   # far away: its own segment
    assert data_ranges(bytes(mem), gap=64) == [(10, 22), (500, 501)]
    assert data_ranges(bytes(mem), gap=4) == [(10, 12), (20, 22), (500, 501)]
    assert data_ranges(bytes(1000)) == []
    # too many segments: the gap grows until they fit
    many = bytes(b"x\0\0" * 100)
    assert len(data_ranges(many, gap=2, max_segments=10)) <= 10


def test_passive_segments_datacount_start_and_names() -> None:
    wat = r"""
    (module $m
      (memory $mem 1)
      (global $starts (mut i32) (i32.const 0))
      (data $passive "passive!")
      (data $active (i32.const 64) "active")
      (func $start (global.set $starts (i32.add (global.get $starts) (i32.const 1))))
      (start $start)
      (func (export "init") (i32.store (i32.const 8) (i32.const 42)))
      (func (export "starts") (result i32) (global.get $starts))
      (func (export "copy") (memory.init $passive (i32.const 200) (i32.const 0) (i32.const 8)))
      (func (export "load") (param i32) (result i32) (i32.load (local.get 0))))
    """
    original = wasm_of(wat)
    assert any(sid == SEC_DATACOUNT for sid, _ in parse(original).sections)
    snap = snapshot(original, "init")
    mod = parse(snap)
    assert not any(sid == SEC_START for sid, _ in mod.sections)  # the start function already ran
    assert mod.segments[0].mode == 1  # the passive segment keeps its index
    count = [p for sid, p in mod.sections if sid == SEC_DATACOUNT][0]
    assert count[0] == len(mod.segments)
    store, ex = instantiate(snap)
    assert ex["starts"](store) == 1
    assert ex["load"](store, 8) == 42
    ex["copy"](store)
    mem = wasmtime.Memory  # noqa: F841  (the memory is not exported: read it through load)
    assert ex["load"](store, 200).to_bytes(4, "little") == b"pass"
    assert ex["load"](store, 64).to_bytes(4, "little") == b"acti"


@pytest.mark.parametrize("data, message", [
    (b"", "not a wasm binary"),
    (b"hello world", "not a wasm binary"),
    (b"\0asm\x0d\0\x01\0", "unsupported wasm binary version"),
    (b"\0asm\x01\0\0\0\x05\x10\x01", "malformed wasm"),              # truncated section
    (b"\0asm\x01\0\0\0\x05\x03\x01\x00\xff", "malformed wasm"),       # LEB128 runs off the end
    (b"\0asm\x01\0\0\0\x2a\x00", "unknown section id"),
])
def test_malformed_input_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        snapshot(data, "init")


def test_unsupported_or_failing_modules() -> None:
    with pytest.raises(SnapshotError, match="no memory"):
        snapshot(wasm_of('(module (func (export "init")))'), "init")
    with pytest.raises(SnapshotError, match="imports its memory"):
        snapshot(wasm_of('(module (import "env" "memory" (memory 1)) (func (export "init")))'), "init")
    with pytest.raises(SnapshotError, match="exports no 'init'"):
        snapshot(wasm_of("(module (memory 1))"), "init")
    with pytest.raises(SnapshotError, match="the init trapped"):
        snapshot(wasm_of('(module (memory 1) (func (export "init") unreachable))'), "init")
    with pytest.raises(SnapshotError, match="takes no arguments"):
        snapshot(wasm_of('(module (memory 1) (func (export "init") (param i32)))'), "init")


def test_cached_snapshot_is_reused(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    wasm = wasm_of(STATE_WAT)
    first = cached_snapshot(wasm, "init")
    assert first == snapshot(wasm, "init")
    assert cached_snapshot(wasm, "init") == first


# --- the WapoJS guest from a snapshot ------------------------------------------------------

def run(code: str, args=(), *, snapshot: bool = True, limits: Limits = Limits()):
    from wapo.js.runner import js_instance
    return asyncio.run(js_instance(code, args, limits=limits, snapshot=snapshot).run())


def test_the_guest_snapshot_has_no_initialize() -> None:
    from wapo.js.runner import wapojs_module
    mod = parse(wapojs_module(True).wasm)
    names = {name for name, _, _ in mod.exports}
    assert "_initialize" not in names and {"wapojs_init", "wapo_poll", "memory"} <= names
    assert "_initialize" in {name for name, _, _ in parse(wapojs_module(False).wasm).exports}


PROBE = """
scriptOutput = JSON.stringify({
  random: [Math.random(), Math.random()],
  bytes: Array.from(crypto.getRandomValues(new Uint8Array(16))),
  perf: performance.now(),
  now: Date.now(),
  args: scriptArgs,
  map: new Map([["a", 1], [2, "b"], [{}, 3]]).get(2),
});
"""


@pytest.mark.parametrize("snap", [True, False], ids=["snapshot", "scratch"])
def test_each_sandbox_is_fresh(snap: bool) -> None:
    outs = []
    for i in range(2):
        r = run(PROBE, [f"arg{i}"], snapshot=snap)
        assert r.ok, r.error
        outs.append(json.loads(r.output))
    a, b = outs
    assert a["random"] != b["random"]
    assert a["bytes"] != b["bytes"]
    for o, i in ((a, 0), (b, 1)):
        assert 0 <= o["perf"] < 1000, o["perf"]  # from this sandbox's start, not the snapshot's
        assert abs(o["now"] - time.time() * 1000) < 10_000
        assert o["args"] == [f"arg{i}"]
        assert o["map"] == "b"


def test_memory_limit_still_applies_from_a_snapshot() -> None:
    code = "const a = []; for (;;) a.push('x'.repeat(1000) + a.length);"
    r = run(code, limits=Limits(memory=8 * MIB))
    assert r.error is not None and "memory limit" in r.error.describe()
    ok = run("scriptOutput = 'x'.repeat(20e6).length.toString()", limits=Limits(memory=64 * MIB))
    assert ok.ok and ok.output == b"20000000"


def test_per_run_settings_are_read_after_the_snapshot() -> None:
    r = run("function f() { return f() + 1 } f()")  # the JS stack limit: a RangeError, not a trap
    assert r.error is not None and "RangeError" in r.error.describe()
    r = run("for (;;) {}", limits=Limits(burst=0.2))
    assert r.error is not None and "burst" in r.error.describe()


def test_the_snapshot_holds_the_whole_prelude_loaded() -> None:
    """Web APIs are plain globals in a sandbox from the snapshot (loaded once, before it was taken)."""
    probe = ("scriptOutput = JSON.stringify(['URL', 'Request', 'ReadableStream', 'TextEncoder', 'Wapo', 'process']"
             ".map((n) => typeof Object.getOwnPropertyDescriptor(globalThis, n).value))")
    r = run(probe, snapshot=True)
    assert r.ok, r.error
    assert json.loads(r.output) == ["function"] * 4 + ["object"] * 2


@pytest.mark.parametrize("snap", [True, False], ids=["snapshot", "scratch"])
def test_changes_to_prelude_objects_do_not_leak_between_sandboxes(snap: bool) -> None:
    first = run("URL.prototype.leak = 1; Headers.prototype.get = () => 'hijacked';"
                "globalThis.fetch = () => 'hijacked'; scriptOutput = 'changed'", snapshot=snap)
    assert first.ok and first.output == b"changed"
    second = run("scriptOutput = JSON.stringify([URL.prototype.leak, new Headers({a: 'b'}).get('a'), "
                 "String(fetch).includes('hijacked')])", snapshot=snap)
    assert second.ok, second.error
    assert json.loads(second.output) == [None, "b", False]
