"""Hardening of the host (issue 13): bounded logs, bounded guest-grown host structures, the memory
limit on the on-demand engine, causes kept in errors, and per-app signing keys. Real wasmtime, real
guests: WAT guests inline, JS agents through ``run_js`` / ``js_instance``."""

from __future__ import annotations

import asyncio
import gc
import struct
import weakref
from pathlib import Path

import pytest

from wapo.host import GuestModule, Instance, Limits, RunResult
from wapo.host.limits import MAX_LOG_BYTES, MAX_LOG_LINE, MAX_LOG_LINES

OCALL_IMPORTS = """
  (import "wapo" "ocall" (func $ocall (param i32 i32 i32 i32 i32 i32) (result i64)))
  (import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))"""


@pytest.fixture(scope="module")
def wat_cache(tmp_path_factory: pytest.TempPathFactory):
    """WAT guests' compiled modules go to a temporary cache (JS tests keep the shared one: the
    WapoJS snapshot is slow to remake)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAPO_CACHE_DIR", str(tmp_path_factory.mktemp("wapo-cache")))
        yield


def module(wat: str, name: str = "hardening-test") -> GuestModule:
    return GuestModule(wat.encode(), name=name)


@pytest.fixture
def tmp(tmp_path: Path, wat_cache: None) -> Path:
    return tmp_path


def run(mod: GuestModule, tmp_path: Path, *, args: tuple[str, ...] = (), **limits: object) -> RunResult:
    limits.setdefault("time", 20)

    async def main() -> RunResult:
        instance = Instance(mod, args=args, limits=Limits(**limits), data_dir=tmp_path)
        result = await instance.run()
        assert instance._state is not None and instance._state.host_faults == 0
        return result

    return asyncio.run(asyncio.wait_for(main(), timeout=60))


# --- 1. logs: bounded per run, released with the run ----------------------------------------------

def test_a_js_agent_logging_megabytes_keeps_a_bounded_log() -> None:
    from wapo.js.runner import run_js

    result = run_js('const s = "x".repeat(1 << 20); for (let i = 0; i < 150; i++) console.log(s); '
                    'console.log("end")')
    assert result.error is None
    kept = sum(len(r.message.encode()) for r in result.logs)
    assert kept <= MAX_LOG_BYTES + 2 * MAX_LOG_LINE
    assert len(result.logs) <= MAX_LOG_LINES + 1
    assert all(len(r.message) <= MAX_LOG_LINE + 100 for r in result.logs)
    assert "[line cut: 983040 more bytes]" in result.logs[0].message   # a 1 MiB line is cut
    last = result.logs[-1]
    assert last.level == "warn" and "dropped" in last.message
    assert last.message.startswith(f"{151 - (len(result.logs) - 1)} log line(s)")


LOG_LOOP = f"""
(module {OCALL_IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 16) "a log line")
  (func (export "wapo_poll") (result i32)
    (local $i i32)
    (loop $more
      (drop (call $fast (i32.const 0) (i32.const 220) (i32.const 3) (i32.const 16) (i32.const 10) (i32.const 0)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 5000))))
    (unreachable)))"""


def test_log_line_count_is_capped_and_the_error_still_shows(tmp: Path) -> None:
    result = run(module(LOG_LOOP), tmp)
    assert result.error is not None and "unreachable" in result.error.message
    assert len(result.logs) == MAX_LOG_LINES + 2
    assert all(r.message == "a log line" for r in result.logs[:MAX_LOG_LINES])
    note, error = result.logs[-2:]
    assert note.level == "warn" and note.message.startswith(f"{5000 - MAX_LOG_LINES} log line(s) (")
    assert error.level == "error" and "unreachable" in error.message


def test_log_caps_are_limits(tmp: Path) -> None:
    result = run(module(LOG_LOOP), tmp, max_log_lines=10)
    assert len(result.logs) == 12 and result.logs[10].message.startswith("4990 log line(s)")
    result = run(module(LOG_LOOP), tmp, max_log_bytes=35)
    assert len(result.logs) == 5 and result.logs[3].message.startswith("4997 log line(s)")
    with pytest.raises(ValueError):
        Limits(max_log_lines=0)


def test_on_log_sees_the_kept_lines_or_with_log_past_caps_every_line(tmp_path: Path) -> None:
    """A run's listeners (live tail, OTLP, a terminal) stop where its stored logs do, and get the line
    saying how many were dropped; a long-running app's sink (log_past_caps) sees every line."""
    async def lines(**settings: object) -> list[str]:
        seen: list[str] = []
        instance = Instance(module(LOG_LOOP), limits=Limits(time=20, max_log_lines=10), data_dir=tmp_path,
                            on_log=lambda record: seen.append(record.message), **settings)
        await instance.run()
        return seen

    capped = asyncio.run(lines())
    assert capped[:10] == ["a log line"] * 10 and len(capped) == 12
    assert capped[10].startswith("4990 log line(s)") and "unreachable" in capped[11]
    every = asyncio.run(lines(log_past_caps=True))
    assert every[:5000] == ["a log line"] * 5000 and every[5000].startswith("4990 log line(s)")


def test_a_finished_run_is_freed_by_reference_counting(tmp_path: Path) -> None:
    """No reference cycle keeps a finished run (its logs, output, resources) alive: with the cycle
    collector off, dropping the Instance frees it and its GuestState at once."""
    from wapo.js.runner import js_instance

    code = ('console.log("x".repeat(1000)); setTimeout(() => {}, 1); '
            'const r = Wapo.run("console.log(1)"); Promise.resolve(r).then(() => {}); '
            'new Promise((ok) => setTimeout(ok, 5)).then(() => console.log("done"))')

    async def main() -> tuple[weakref.ref, weakref.ref]:
        instance = js_instance(code, data_dir=tmp_path)
        result = await instance.run()
        assert result.error is None, result.error.describe()
        refs = weakref.ref(instance), weakref.ref(instance._state)
        del instance, result
        return refs

    gc.collect()
    gc.disable()
    try:
        instance, state = asyncio.run(main())
        assert instance() is None and state() is None
    finally:
        gc.enable()


def test_a_finished_agent_run_is_freed_by_reference_counting(tmp_path: Path) -> None:
    from wapo.agent.request import AgentRequest
    from wapo.agent.runner import AgentRun

    code = ('export default { async fetch(request) { console.log("hi"); '
            'return new Response("ok", {headers: {"content-type": "text/plain"}}) } };')

    async def main() -> tuple[weakref.ref, ...]:
        agent = AgentRun(code, AgentRequest(), data_dir=tmp_path)
        result = await agent.run()
        assert result.error is None, result.error
        refs = weakref.ref(agent), weakref.ref(agent._instance), weakref.ref(agent._instance._state)
        del agent, result
        return refs

    gc.collect()
    gc.disable()
    try:
        refs = asyncio.run(main())
        assert [r() for r in refs] == [None, None, None]
    finally:
        gc.enable()


# --- 2. structures the guest grows are bounded ----------------------------------------------------

MARK_READY = f"""
(module {OCALL_IMPORTS}
  (memory (export "memory") 1)
  (func (export "wapo_poll") (result i32)
    (local $i i32) (local $r i64)
    (loop $more
      (local.set $r (call $fast (i32.const 0) (i32.const 109) (i32.add (local.get $i) (i32.const 1))
                          (i32.const 0) (i32.const 0) (i32.const 0)))
      (if (i64.ne (local.get $r) (i64.const 0))
        (then
          (i32.store (i32.const 0) (local.get $i))
          (i64.store (i32.const 8) (local.get $r))
          (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0) (i32.const 16) (i32.const 0) (i32.const 0)))
          (return (i32.const 1))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 2000000))))
    (i32.store (i32.const 0) (local.get $i))
    (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0) (i32.const 16) (i32.const 0) (i32.const 0)))
    (i32.const 1)))"""


def test_mark_task_ready_with_millions_of_ids_is_refused_past_the_cap(tmp: Path) -> None:
    from wapo.host.abi import ErrorCode
    from wapo.host.state import MAX_READY_TASKS

    async def main() -> tuple[RunResult, int]:
        instance = Instance(module(MARK_READY), limits=Limits(memory=2 * 1024 * 1024, time=20), data_dir=tmp)
        result = await instance.run()
        return result, len(instance._state.ready_tasks)

    result, queued = asyncio.run(main())
    assert result.error is None, result.error.describe()
    marked, code = struct.unpack("<I4xQ", result.output[:16])
    assert marked == MAX_READY_TASKS - 1                     # task 0 is queued at the start
    assert code == (1 << 32) | int(ErrorCode.RESOURCE_LIMITED)
    assert queued <= MAX_READY_TASKS


def test_an_agent_answer_larger_than_the_body_cap_is_not_kept(tmp_path: Path) -> None:
    """A style A agent printing far more than ``max_body`` is refused without the host keeping it all."""
    from wapo.agent.request import AgentRequest
    from wapo.agent.runner import AgentRun

    code = ('async function main(request) { const s = "y".repeat(1 << 20); '
            'return JSON.stringify({status: 200, body: s.repeat(6)}); }')

    async def main() -> tuple[object, int]:
        agent = AgentRun(code, AgentRequest(), data_dir=tmp_path, max_body=1024 * 1024)
        result = await agent.run()
        return result, len(agent._buffer)

    result, kept = asyncio.run(main())
    assert result.error_kind == "answer_too_large"
    assert kept <= 1024 * 1024


# --- 3. the memory limit holds on the on-demand engine ---------------------------------------------

ON_DEMAND_SCRIPT = r'''
import asyncio, json, sys
from wapo.host import GuestModule, Instance, Limits
from wapo.host import engine

assert engine.POOL_SLOTS == 0  # every sandbox is on the on-demand engine
IMPORT = '(import "wapo" "ocall_fast_return" (func $fast (param i32 i32 i32 i32 i32 i32) (result i64)))'
EMIT = '(drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0) (i32.const 4) (i32.const 0) (i32.const 0)))'
GUESTS = {
    "table_grow": f"""(module {IMPORT} (memory (export "memory") 1) (table $t 1 funcref)
        (func (export "wapo_poll") (result i32)
          (i32.store (i32.const 0) (table.grow $t (ref.null func) (i32.const 50000000))) {EMIT} (i32.const 1)))""",
    "table_grow_small": f"""(module {IMPORT} (memory (export "memory") 1) (table $t 1 funcref)
        (func (export "wapo_poll") (result i32)
          (i32.store (i32.const 0) (table.grow $t (ref.null func) (i32.const 1000))) {EMIT} (i32.const 1)))""",
    "two_memories": f"""(module {IMPORT} (memory (export "memory") 1) (memory $extra 100)
        (func (export "wapo_poll") (result i32) (i32.const 1)))""",
    "two_tables": f"""(module {IMPORT} (memory (export "memory") 1) (table 1 funcref) (table 100000 funcref)
        (func (export "wapo_poll") (result i32) (i32.const 1)))""",
}

async def main():
    out = {}
    for name, wat in GUESTS.items():
        inst = Instance(GuestModule(wat.encode(), name=name), limits=Limits(memory=10 * 1000 * 1000, time=20))
        result = await inst.run()
        out[name] = {"error": result.error.describe() if result.error else None,
                     "value": int.from_bytes(result.output, "little", signed=True) if result.output else None}
    return out

print(json.dumps(asyncio.run(main())))
'''


def test_the_on_demand_engine_bounds_tables_and_memories(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, WAPO_POOL_SLOTS="0", WAPO_CACHE_DIR=str(tmp_path / "cache"),
               WAPO_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.run([sys.executable, "-c", ON_DEMAND_SCRIPT], capture_output=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out["table_grow"] == {"error": None, "value": -1}      # refused, not 450 MB of host memory
    assert out["table_grow_small"] == {"error": None, "value": 1}  # an ordinary grow still works
    assert "cannot instantiate" in out["two_memories"]["error"]    # a second memory would escape the limit
    assert "cannot instantiate" in out["two_tables"]["error"]


# --- 4. errors keep their cause -------------------------------------------------------------------

def wasi_guest(body: str, import_: str) -> GuestModule:
    return module(f"""
(module {import_}
  (memory (export "memory") 1)
  (func (export "wapo_poll") (result i32) {body} (i32.const 1)))""")


PROC_EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
RANDOM_GET = '(import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))'


def test_wasi_proc_exit_says_the_status(tmp: Path) -> None:
    from wapo.host import GuestError

    result = run(wasi_guest("(call $exit (i32.const 7))", PROC_EXIT), tmp)
    assert isinstance(result.error, GuestError)
    assert result.error.message == "the guest exited with status 7 (WASI proc_exit)"
    result = run(wasi_guest("(call $exit (i32.const 0))", PROC_EXIT), tmp)
    assert result.error is None                                  # exit(0) is a normal end


def test_an_over_large_random_get_says_why(tmp: Path) -> None:
    result = run(wasi_guest("(drop (call $random (i32.const 0) (i32.const 0x7fffffff)))", RANDOM_GET), tmp)
    assert result.error is not None
    message = result.error.message
    assert "wasm backtrace" not in message
    assert "get-random-bytes" in message and "exceeds limit" in message, message


@pytest.mark.parametrize("code", [
    'async function f() { await null; const m = new Map(); for (let i = 0; ; i++) m.set(i, {i}); } f();',
    'const keep = []; function step() { keep.push(new Array(100).fill(1)); return Promise.resolve().then(step); } '
    'Promise.resolve().then(step);',
])
def test_out_of_memory_in_a_promise_is_the_memory_limit(code: str) -> None:
    from wapo.host import LimitExceeded
    from wapo.js.runner import run_js

    for memory in (8_000_000, 20_000_000):
        result = run_js(code, limits=Limits(memory=memory, time=30))
        assert isinstance(result.error, LimitExceeded), result.error.describe()
        assert result.error.kind == "memory_limit"
        assert "null" not in result.error.message


def test_a_script_rejecting_with_null_is_still_a_rejection() -> None:
    from wapo.host.errors import UnhandledRejection
    from wapo.js.runner import run_js

    result = run_js("Promise.reject(null)", limits=Limits(memory=8_000_000))
    assert isinstance(result.error, UnhandledRejection)
    assert result.error.message == "Uncaught (in promise) null"


# --- 5. sign: per app, as derive_secret ------------------------------------------------------------

SIGNER = f"""
(module {OCALL_IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 0) "the same message")
  (func (export "wapo_poll") (result i32)
    ;; sign(0, 16) -> EO Vec<u8> (compact 64: 2 bytes, then the signature) into 0x100; worker_pubkey -> 0x200
    (drop (call $ocall (i32.const 0) (i32.const 250) (i32.const 0) (i32.const 16) (i32.const 0) (i32.const 0)))
    (drop (call $fast (i32.const 0) (i32.const 0) (i32.const 0x100) (i32.const 66) (i32.const 0) (i32.const 0)))
    (drop (call $ocall (i32.const 0) (i32.const 251) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))
    (drop (call $fast (i32.const 0) (i32.const 0) (i32.const 0x200) (i32.const 32) (i32.const 0) (i32.const 0)))
    (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0x102) (i32.const 64) (i32.const 0) (i32.const 0)))
    (drop (call $fast (i32.const 0) (i32.const 243) (i32.const 0x200) (i32.const 32) (i32.const 0) (i32.const 0)))
    (i32.const 1)))"""


def test_sign_is_per_app_and_verifies_with_worker_pubkey(tmp: Path) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from wapo.host.keys import NodeKey

    message = b"the same message"

    def signed_by(app: bytes) -> tuple[bytes, bytes]:
        async def main() -> RunResult:
            return await Instance(module(SIGNER), limits=Limits(time=10), data_dir=tmp, app_address=app).run()

        result = asyncio.run(main())
        assert result.error is None, result.error.describe()
        return result.output[:64], result.output[64:96]

    sig_a, pub_a = signed_by(b"\1" * 32)
    sig_b, pub_b = signed_by(b"\2" * 32)
    Ed25519PublicKey.from_public_bytes(pub_a).verify(sig_a, message)   # worker_pubkey matches sign
    Ed25519PublicKey.from_public_bytes(pub_b).verify(sig_b, message)
    assert pub_a != pub_b
    with pytest.raises(InvalidSignature):   # app B's signature is not app A's
        Ed25519PublicKey.from_public_bytes(pub_a).verify(sig_b, message)
    node = NodeKey.load_or_create(tmp)
    with pytest.raises(InvalidSignature):   # and no app signs with the node's own key
        Ed25519PublicKey.from_public_bytes(node.public).verify(sig_a, message)
    assert node.app_key(b"\1" * 32).public == pub_a and signed_by(b"\1" * 32)[1] == pub_a
