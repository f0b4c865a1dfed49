"""Per-agent snapshots (wapo.js.precompiled, wapo.host.image): an agent run from its image
behaves like one compiled from source, and nothing of one run leaks into the next."""

from __future__ import annotations

import asyncio
import json

import pytest
import wasmtime

from wapo.agent.request import AgentRequest
from wapo.agent.runner import call_agent
from wapo.host import GuestModule, Limits
from wapo.host.snapshot.image import ImageError, capture_image, diff_runs
from wapo.js import precompiled
from wapo.js.runner import snapshots_enabled

needs_snapshots = pytest.mark.skipif(not snapshots_enabled(), reason="images come from the snapshot (WAPO_SNAPSHOT=0)")

PAD = "\n" + "// padding to pass MIN_CODE\n" * 60  # images are for code of 1 KiB or more


def agent(body: str) -> str:
    return body + PAD


def run(code: str, request: AgentRequest | None = None, **kw):
    return asyncio.run(call_agent(code, request or AgentRequest(), name="agent.js", app_id="t", **kw))


@pytest.fixture(autouse=True)
def fresh_images(monkeypatch):
    monkeypatch.setenv(precompiled.PRECOMPILE_ENV, "1")
    precompiled.clear()
    yield
    precompiled.clear()


def both_ways(monkeypatch, code: str, request: AgentRequest | None = None):
    image = precompiled.agent_image(code, "agent.js", "runAgent")
    from_image = run(code, request)
    monkeypatch.setenv(precompiled.PRECOMPILE_ENV, "0")
    from_source = run(code, request)
    monkeypatch.setenv(precompiled.PRECOMPILE_ENV, "1")
    return image, from_image, from_source


STYLE_A = agent("""
let calls = 0;
async function main(request) {
  calls++;
  const req = JSON.parse(request);
  return JSON.stringify({status: 200, headers: {"x-calls": String(calls)}, body: req.method + " " + req.path});
}""")

STYLE_C = agent("""
export default {
  async fetch(request) {
    return new Response("C " + new URL(request.url).pathname, {headers: {"content-type": "text/plain"}});
  }
};""")


@needs_snapshots
@pytest.mark.parametrize("code,body", [(STYLE_A, b"POST /x"), (STYLE_C, b"C /x")])
def test_same_answer_from_image_and_source(monkeypatch, code, body):
    request = AgentRequest(method="POST", path="/x", body=b"{}", url="http://localhost/x")
    image, a, b = both_ways(monkeypatch, code, request)
    assert image is not None and image.runs
    assert a.error is None and b.error is None
    assert a.response.body == b.response.body == body
    assert a.response.status == b.response.status == 200


@needs_snapshots
def test_top_level_code_runs_per_request(monkeypatch):
    """The image holds compiled code, not its effects: module state starts fresh each time."""
    precompiled.agent_image(STYLE_A, "agent.js", "runAgent")
    for _ in range(3):
        result = run(STYLE_A)
        assert dict(result.response.headers)["x-calls"] == "1"


@needs_snapshots
def test_sandboxes_from_one_image_get_fresh_randomness():
    code = agent("""async function main() {
      const b = new Uint8Array(16); crypto.getRandomValues(b);
      return JSON.stringify({status: 200, headers: {}, body: JSON.stringify([Math.random(), Array.from(b),
        performance.now() >= 0 && performance.now() < 10000])});
    }""")
    assert precompiled.agent_image(code, "agent.js", "runAgent") is not None
    first, second = (json.loads(run(code).response.body) for _ in range(2))
    assert first[0] != second[0] and first[1] != second[1]
    assert first[2] is True and second[2] is True


@needs_snapshots
def test_syntax_error_gets_no_image_and_the_run_reports_it(monkeypatch):
    code = agent("async function main( { return 1 }")
    assert precompiled.agent_image(code, "agent.js", "runAgent") is None
    assert precompiled.agent_image(code, "agent.js", "runAgent") is None  # remembered
    result = run(code)
    assert result.response is None and "SyntaxError" in result.error


@needs_snapshots
def test_errors_name_the_agent_file(monkeypatch):
    code = agent("async function main() { throw new Error('boom'); }")
    assert precompiled.agent_image(code, "agent.js", "runAgent") is not None
    result = run(code)
    assert "boom" in result.error and "agent.js" in result.error


@needs_snapshots
def test_run_limits_are_not_baked_in():
    """The image is made without the run's limits: a small memory limit still applies."""
    code = agent("""async function main() {
      const parts = []; for (let i = 0; i < 400; i++) parts.push(new Uint8Array(1 << 20).fill(1));
      return JSON.stringify({status: 200, headers: {}, body: String(parts.length)});
    }""")
    assert precompiled.agent_image(code, "agent.js", "runAgent") is not None
    result = run(code, limits=Limits(memory=64 * 1024 * 1024))
    assert result.response is None and "memory" in (result.error or "")
    assert run(code, limits=Limits(memory=1024 * 1024 * 1024)).response.body == b"400"


def test_small_code_is_compiled_per_run():
    assert precompiled.agent_image("async function main() {}", "agent.js", "runAgent") is None


@needs_snapshots
def test_images_are_cached_and_bounded(monkeypatch):
    monkeypatch.setattr(precompiled, "MAX_IMAGES", 2)
    codes = [agent(f"async function main() {{ return JSON.stringify({{status: 200, body: '{i}'}}); }}")
             for i in range(3)]
    first = precompiled.agent_image(codes[0], "agent.js", "runAgent")
    assert precompiled.agent_image(codes[0], "agent.js", "runAgent") is first
    precompiled.agent_image(codes[1], "agent.js", "runAgent")
    precompiled.agent_image(codes[2], "agent.js", "runAgent")
    assert len(precompiled._images) == 2
    assert precompiled.agent_image(codes[0], "agent.js", "runAgent") is not first  # evicted, made again
    assert run(codes[2]).response.body == b"2"


def test_diff_runs_merges_adjacent_blocks():
    before = bytes(16 * 4096)
    after = bytearray(before)
    after[5] = 1
    after[4096 + 7] = 2
    after[3 * 4096] = 3
    after += b"\x09" * 10  # grown memory
    runs = diff_runs(before, bytes(after))
    assert [(o, len(d)) for o, d in runs] == [(0, 8192), (3 * 4096, 4096), (16 * 4096, 10)]
    assert runs[0][1][5] == 1 and runs[-1][1] == b"\x09" * 10


INIT_GUEST = """
(module
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 0))
  (export "__wapo_snapshot_global_0" (global $g))
  (func (export "wapo_poll") (result i32) (i32.const 1))
  (func (export "ok") (result i32) (i32.store (i32.const 8192) (i32.const 7)) (i32.const 1))
  (func (export "declines") (result i32) (i32.const 0))
  (func (export "moves_global") (result i32) (global.set $g (i32.const 5)) (i32.const 1))
  (func (export "traps") (result i32) unreachable)
)
"""


def test_capture_image_checks_the_init():
    module = GuestModule(wasmtime.wat2wasm(INIT_GUEST), name="init.wat")
    image = capture_image(module, "ok", ["init.wat"])
    assert image.size == 65536 and [(o, d[:4]) for o, d in image.runs] == [(8192, b"\x07\0\0\0")]
    for export, reason in (("declines", "declined"), ("moves_global", "global"), ("traps", "failed"),
                           ("missing", "exports no")):
        with pytest.raises(ImageError, match=reason):
            capture_image(module, export, ["init.wat"])


@pytest.mark.skipif(snapshots_enabled(), reason="checks the WAPO_SNAPSHOT=0 side")
def test_no_images_without_snapshots():
    """With snapshots off an agent is compiled in every sandbox, and still answers."""
    assert precompiled.agent_image(STYLE_A, "agent.js", "runAgent") is None
    assert run(STYLE_A).response.body == b"GET /"
