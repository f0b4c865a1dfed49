"""Image modules (wapo.host.snapshot.image_module): a hot agent's memory image compiled into a
module of its own. Runs from it behave like runs from the copied image, each agent sees only its
own state, nothing of a run reaches the next, and the compiled artifact on disk is trusted only
when intact."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time

import pytest
import wasmtime

from wapo.agent.request import AgentRequest
from wapo.agent.runner import call_agent
from wapo.host.engine import EngineConfig, get_engine
from wapo.host.module import DIGEST_SUFFIX, load_keyed, private_dir, read_verified, store_verified
from wapo.host.snapshot.image import apply_image
from wapo.host.snapshot.image_module import ImageModule, image_wasm
from wapo.host.snapshot.wasm import SnapshotError
from wapo.js import precompiled
from wapo.js.runner import snapshots_enabled
from wapo.js.sandbox import wapojs_module

needs_snapshots = pytest.mark.skipif(not snapshots_enabled(), reason="images come from the snapshot (WAPO_SNAPSHOT=0)")
PAD = "\n" + "// padding to pass MIN_CODE\n" * 60


def agent(marker: str) -> str:
    """An agent whose top level and requests write state: a counter, a big array, a global."""
    return f"""
let calls = 0;
const big = new Array(20000).fill("{marker}");
async function main(request) {{
  calls++;
  const seen = globalThis.leftBehind || "nothing";
  globalThis.leftBehind = "{marker}-" + Math.random();
  big.push("x");
  return JSON.stringify({{status: 200, headers: {{}},
    body: JSON.stringify({{marker: "{marker}", calls, seen, size: big.length, first: big[0]}})}});
}}""" + PAD


def run(code: str):
    result = asyncio.run(call_agent(code, AgentRequest(), name="agent.js", app_id=hashlib.sha256(code.encode()).hexdigest()))
    assert result.error is None, result.error
    return json.loads(result.response.body)


@pytest.fixture(autouse=True)
def fresh_images(monkeypatch):
    monkeypatch.setenv(precompiled.PRECOMPILE_ENV, "1")
    precompiled.clear()
    yield
    precompiled.clear()


@needs_snapshots
def test_two_agents_each_see_only_their_own_state_and_no_run_sees_the_last():
    codes = {m: agent(m) for m in ("alpha", "beta")}
    for marker, code in codes.items():
        image = precompiled.agent_image(code, "agent.js", "runAgent")
        assert image is not None
        module = precompiled.compile_module(image)
        assert isinstance(module, ImageModule) and image.compiled == [module]
    for _ in range(3):
        for marker, code in codes.items():
            answer = run(code)
            assert answer == {"marker": marker, "calls": 1, "seen": "nothing", "size": 20001, "first": marker}


@needs_snapshots
def test_image_module_starts_with_the_memory_of_an_applied_image():
    code = agent("gamma")
    image = precompiled.agent_image(code, "agent.js", "runAgent")
    base = wapojs_module(True)
    module = precompiled.compile_module(image)

    def memory_of(guest, apply=None) -> bytes:
        store = wasmtime.Store(get_engine(EngineConfig(pooled=False)))
        store.set_wasi(wasmtime.WasiConfig())
        instance = guest.instance_pre(EngineConfig(pooled=False)).instantiate(store)
        memory = instance.exports(store)["memory"]
        if apply is not None:
            class View:  # the bounds-checked writer apply_image expects, on wasmtime-py objects
                def size(self):
                    return memory.data_len(store)

                def write(self, offset, data):
                    memory.write(store, data, offset)
            apply_image(View(), apply, lambda pages: memory.grow(store, pages))
        return bytes(memory.read(store, 0, memory.data_len(store)))

    assert memory_of(module) == memory_of(base, image)


@needs_snapshots
def test_hot_image_is_compiled_in_the_background(monkeypatch):
    monkeypatch.setattr(precompiled, "HOT_RUNS", 3)
    code = agent("delta")
    for _ in range(4):
        assert run(code)["calls"] == 1
    image = precompiled.agent_image(code, "agent.js", "runAgent")
    deadline = time.monotonic() + 120
    while not image.compiled and time.monotonic() < deadline:
        time.sleep(0.1)
    assert image.compiled, "the hot image was not compiled"
    assert run(code) == {"marker": "delta", "calls": 1, "seen": "nothing", "size": 20001, "first": "delta"}


@needs_snapshots
def test_image_outside_the_module_is_refused():
    from wapo.host.snapshot.image import MemoryImage
    base = wapojs_module(True)
    with pytest.raises(SnapshotError):
        image_wasm(base.wasm, MemoryImage(65536, ((1000 * 65536, b"x" * 20),)))  # past its own size


WAT = '(module (memory (export "memory") 1) (data (i32.const 16) "hi") (func (export "f") (result i32) i32.const 7))'


def test_cache_file_is_used_only_when_intact(tmp_path, monkeypatch):
    monkeypatch.setenv("WAPO_CACHE_DIR", str(tmp_path / "cache"))
    config = EngineConfig(pooled=False)
    key = hashlib.sha256(b"test-cache:" + os.urandom(8)).hexdigest()
    made = []

    def make() -> bytes:
        made.append(1)
        return WAT.encode()

    load_keyed(key, make, config, kind="test")
    files = sorted((tmp_path / "cache" / "test").iterdir())
    cwasm = [p for p in files if p.suffix == ".cwasm"]
    assert len(cwasm) == 1 and cwasm[0].with_name(cwasm[0].name + DIGEST_SUFFIX).exists()
    assert (tmp_path / "cache" / "test").stat().st_mode & 0o077 == 0
    engine = get_engine(config)
    assert read_verified(cwasm[0], engine) is not None

    # a flipped byte: not loaded, the file removed
    data = bytearray(cwasm[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    cwasm[0].write_bytes(bytes(data))
    assert read_verified(cwasm[0], engine) is None
    assert not cwasm[0].exists()

    # a file without its digest: not loaded
    module = wasmtime.Module(engine, WAT)
    assert store_verified(cwasm[0], module)
    cwasm[0].with_name(cwasm[0].name + DIGEST_SUFFIX).unlink()
    assert read_verified(cwasm[0], engine) is None

    # a directory others may write to is made private again before use; another user's is refused
    assert store_verified(cwasm[0], module)
    os.chmod(cwasm[0].parent, 0o777)
    assert read_verified(cwasm[0], engine) is not None
    assert cwasm[0].parent.stat().st_mode & 0o077 == 0
    os.chmod(tmp_path / "cache", 0o777)  # writable by others, no sticky bit
    assert not private_dir(cwasm[0].parent)
    assert read_verified(cwasm[0], engine) is None
