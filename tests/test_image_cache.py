"""The disk cache of image modules (cache_dir()/images) is bounded: the least recently used
artifacts are pruned when one is written, a pruned or damaged artifact is only a cache miss
(compiled again, runs correct), processes pruning and loading one directory at once never fail,
and `wapo serve` exits without waiting for a background compile."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import wasmtime

from wapo.agent.request import AgentRequest
from wapo.agent.runner import call_agent
from wapo.host import cache_bound, module as host_module
from wapo.host.engine import EngineConfig, get_engine
from wapo.host.module import DIGEST_SUFFIX, load_keyed, read_verified
from wapo.host.snapshot.image_module import ImageModule
from wapo.js import precompiled
from wapo.js.runner import snapshots_enabled
from wapo.js.sandbox import wapojs_module

needs_snapshots = pytest.mark.skipif(not snapshots_enabled(), reason="images come from the snapshot (WAPO_SNAPSHOT=0)")
PAD = "\n" + "// padding to pass MIN_CODE\n" * 60


def agent(marker: str) -> str:
    return f"""
let calls = 0;
const big = new Array(20000).fill("{marker}");
async function main(request) {{
  calls++;
  big.push("x");
  return JSON.stringify({{status: 200, headers: {{}},
    body: JSON.stringify({{marker: "{marker}", calls, size: big.length}})}});
}}""" + PAD


def run(code: str) -> dict:
    result = asyncio.run(call_agent(code, AgentRequest(), name="agent.js",
                                    app_id=hashlib.sha256(code.encode()).hexdigest()))
    assert result.error is None, result.error
    return json.loads(result.response.body)


@pytest.fixture
def images(tmp_path, monkeypatch):
    """A cache directory of this test's own for image modules (the guest stays loaded in-process)."""
    monkeypatch.setenv(precompiled.PRECOMPILE_ENV, "1")
    wapojs_module(True)  # loaded from the user's cache before the cache directory moves
    monkeypatch.setenv("WAPO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache_bound, "_limits", {})
    precompiled.clear()
    yield tmp_path / "cache" / "images"
    precompiled.clear()


def compiled(code: str) -> ImageModule:
    image = precompiled.agent_image(code, "agent.js", "runAgent")
    assert image is not None
    module = precompiled.compile_module(image)
    assert isinstance(module, ImageModule)
    return module


def artifacts(module: ImageModule) -> list[Path]:
    return [p for p in module._paths if p.exists()]


def forget(module: ImageModule) -> None:
    """What a new process knows of it: nothing but the disk."""
    precompiled.clear()
    for memo_key in [k for k in host_module._loaded if k[1] == module.key]:
        del host_module._loaded[memo_key]


def size_of(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def intact(path: Path) -> bool:
    digest = path.with_name(path.name + DIGEST_SUFFIX)
    return digest.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == digest.read_text().strip()


@needs_snapshots
def test_pruning_keeps_the_bound_and_the_most_recently_used(images, monkeypatch):
    tag = os.urandom(4).hex()
    codes = {m: agent(f"{m}-{tag}") for m in ("a", "b", "c")}
    a, b = compiled(codes["a"]), compiled(codes["b"])
    assert artifacts(a) and artifacts(b)
    one = size_of(images) / 2  # an image's artifacts, with their digests
    cache_bound.set_limit("images", int(one * 2.5))
    now = time.time()
    for age, module in ((300, a), (200, b)):  # a written first, b after
        for p in module._paths:
            os.utime(p, (now - age, now - age))
    monkeypatch.setattr(cache_bound, "TOUCH_EVERY", 0.0)
    assert run(codes["a"]) == {"marker": f"a-{tag}", "calls": 1, "size": 20001}  # a run from a's module: a used last

    c = compiled(codes["c"])  # written: over the bound, the least recently used (b) goes
    assert size_of(images) <= int(one * 2.5)
    assert artifacts(a) == a._paths and artifacts(c) == c._paths
    assert artifacts(b) == [] and not any(p.with_name(p.name + DIGEST_SUFFIX).exists() for p in b._paths)
    assert not list(images.glob("*.tmp"))

    # b is compiled again on demand (a new process would find it gone), and runs correctly
    forget(b)
    monkeypatch.setattr(precompiled, "HOT_RUNS", 2)
    for _ in range(3):
        assert run(codes["b"]) == {"marker": f"b-{tag}", "calls": 1, "size": 20001}
    image = precompiled.agent_image(codes["b"], "agent.js", "runAgent")
    deadline = time.monotonic() + 180
    while not image.compiled and time.monotonic() < deadline:
        time.sleep(0.1)
    assert image.compiled, "the pruned image was not compiled again"
    assert all(intact(p) for p in b._paths)
    assert run(codes["b"]) == {"marker": f"b-{tag}", "calls": 1, "size": 20001}
    assert size_of(images) <= int(one * 2.5)  # its write pruned again (a, used least recently now)

    # an intact artifact is loaded from the disk, not compiled again (same file)
    inode = c._paths[0].stat().st_ino
    forget(c)
    again = compiled(codes["c"])
    assert again._paths[0].stat().st_ino == inode
    assert run(codes["c"]) == {"marker": f"c-{tag}", "calls": 1, "size": 20001}


@needs_snapshots
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_artifact_is_rejected_and_compiled_again(images, damage):
    code = agent(f"{damage}-{os.urandom(4).hex()}")
    module = compiled(code)
    path = module._paths[0]
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0x01
    # written beside and renamed over: this process maps the old file (an in-place write to a
    # mapped artifact is what wapo itself never does)
    tmp = path.with_name("damaged")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)
    assert read_verified(path, get_engine(EngineConfig())) is None
    assert not path.exists()  # rejected and removed
    assert read_verified(path, get_engine(EngineConfig())) is None  # and gone (as if pruned): a miss

    forget(module)
    again = compiled(code)
    assert again is not module and intact(path)
    assert run(code) == {"marker": code.split('"')[1], "calls": 1, "size": 20001}


WAT = '(module (memory (export "memory") 1) (func (export "f") (result i32) i32.const {n}))'
WORKER = textwrap.dedent("""
    import hashlib, os, random, sys, wasmtime
    from wapo.host import cache_bound, module as m
    from wapo.host.engine import EngineConfig, get_engine
    cache_bound.set_limit("test", int(sys.argv[2]))
    config = EngineConfig(pooled=False)
    WAT = sys.argv[3]
    rng = random.Random(int(sys.argv[1]))
    for i in range(int(sys.argv[4])):
        n = rng.randrange(12)
        m._loaded.clear()  # every load goes to the disk, as a fresh process's would
        module = m.load_keyed(hashlib.sha256(f"shared-{n}".encode()).hexdigest(), lambda: WAT.format(n=n).encode(),
                              config, kind="test")
        store = wasmtime.Store(get_engine(config))
        store.set_epoch_deadline(1 << 30)  # the engine interrupts by epochs
        assert wasmtime.Instance(store, module, []).exports(store)["f"](store) == n
    print("ok")
""")


def test_processes_pruning_and_loading_one_directory_never_fail(tmp_path):
    """Three processes load 12 modules in random orders from one directory bounded to about
    three of them: each load races the others' prunes and writes; every load must work."""
    env = dict(os.environ, WAPO_CACHE_DIR=str(tmp_path / "cache"))
    sample = subprocess.run([sys.executable, "-c", WORKER, "0", "0", WAT, "1"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert sample.returncode == 0, sample.stderr
    one = size_of(tmp_path / "cache" / "test")
    bound = int(one * 3.5)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(seed), str(bound), WAT, "150"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for seed in (1, 2, 3)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "ok", err
    files = list((tmp_path / "cache" / "test").iterdir())
    assert size_of(tmp_path / "cache" / "test") <= bound + 2 * one  # writes since the last prune may be on top
    assert not [p for p in files if p.name.endswith(".tmp")]
    for p in files:
        if p.suffix == ".cwasm" and p.with_name(p.name + DIGEST_SUFFIX).exists():
            assert intact(p)


def test_prune_removes_only_old_temporary_files_and_tolerates_vanished_ones(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    for name, size, age in (("old.cwasm", 100, 50), ("new.cwasm", 100, 10), ("left.tmp", 10, 3600),
                            ("writing.tmp", 10, 1), ("lone.cwasm.sha256", 64, 100)):
        (d / name).write_bytes(b"x" * size)
        os.utime(d / name, (time.time() - age, time.time() - age))
    (d / "old.cwasm.sha256").write_bytes(b"x" * 64)
    os.utime(d / "old.cwasm.sha256", (time.time() - 50, time.time() - 50))
    cache_bound.prune(d, 200, keep=d / "new.cwasm")
    assert sorted(p.name for p in d.iterdir()) == ["new.cwasm", "writing.tmp"]
    assert cache_bound.prune(tmp_path / "gone", 1) == 0


def test_the_bound_is_set_by_the_config_file_the_flag_and_the_environment(tmp_path, monkeypatch):
    from wapo.cli.main import make_parser
    from wapo.cli.serve_cmd import config_from
    from wapo.gateway.config import load_config

    monkeypatch.setattr(cache_bound, "_limits", {})
    monkeypatch.delenv(cache_bound.IMAGE_CACHE_ENV, raising=False)
    assert cache_bound.limit("images") == 1024 ** 3 and cache_bound.limit("modules") == 0
    monkeypatch.setenv(cache_bound.IMAGE_CACHE_ENV, "200MiB")
    assert cache_bound.limit("images") == 200 * 1024 ** 2
    toml = tmp_path / "wapo.toml"
    toml.write_text('image_cache_size = "512MiB"\n')
    assert load_config(toml).image_cache_size == 512 * 1024 ** 2
    args = make_parser().parse_args(["serve", "--config", str(toml), "--image-cache-size", "2GiB",
                                      "--data-dir", str(tmp_path / "data")])
    assert config_from(args).image_cache_size == 2 * 1024 ** 3
    cache_bound.set_limit("images", 0)
    assert cache_bound.limit("images") == 0  # no bound
    with pytest.raises(ValueError):
        cache_bound.set_limit("images", -1)


@needs_snapshots
def test_serve_exits_without_waiting_for_a_background_compile(tmp_path):
    """SIGTERM right after the request that made an image hot: the server exits with the compile
    abandoned (no artifact written: it did not wait ~1.5 s of Cranelift), and the next server
    compiles it whole and runs from it."""
    from test_gateway_process import Server, http
    from wapo.paths import cache_dir

    cache = tmp_path / "cache"  # the guest's build and modules copied: only the images are new
    for sub in ("guest", "snapshots", "modules"):
        if (cache_dir() / sub).is_dir():
            shutil.copytree(cache_dir() / sub, cache / sub)
    env = {"WAPO_CACHE_DIR": str(cache), "WAPO_IMAGE_MODULE_RUNS": "2"}
    marker = f"shutdown-{os.urandom(4).hex()}"
    (tmp_path / "agent.js").write_text(agent(marker))
    published = subprocess.run([sys.executable, "-m", "wapo.cli.main", "publish", str(tmp_path / "agent.js"),
                                "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=120,
                               env={**os.environ, **env})
    assert published.returncode == 0, published.stderr
    cid = published.stdout.strip().splitlines()[-1]
    images = cache / "images"

    server = Server(tmp_path / "data", env=env)
    try:
        for _ in range(2):  # the second run makes the image hot: its compile starts in the background
            status, _, body = http("GET", f"{server.base}/ipfs/{cid}")
            assert status == 200 and json.loads(body)["marker"] == marker, body
        os.killpg(server.proc.pid, signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0, "".join(server.output)
    finally:
        server.stop()
    assert not [p for p in images.glob("*.cwasm") if intact(p)], "the server waited for the compile"

    server = Server(tmp_path / "data", env=env)
    try:
        for _ in range(2):
            status, _, body = http("GET", f"{server.base}/ipfs/{cid}")
            assert status == 200, body
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (images.exists() and any(intact(p) for p in images.glob("*.cwasm"))):
            time.sleep(0.2)
        assert any(intact(p) for p in images.glob("*.cwasm")), "the hot image was not compiled"
        time.sleep(0.5)  # attached to its image just after the write
        status, _, body = http("GET", f"{server.base}/ipfs/{cid}")
        assert status == 200 and json.loads(body) == {"marker": marker, "calls": 1, "size": 20001}
    finally:
        server.stop()
