"""Node built-ins in bundled agents: ``node:x`` and ``x`` resolve to wapo's shims and pinned npm
polyfills (esbuild aliases), free ``Buffer``/``process``/``global`` are injected. The agent
(tests/agents/node_builtins.mjs) runs on Node too, and both answers must be equal."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from wapo.agent import AgentRequest, call_agent
from wapo.cli import bundling

pytestmark = pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                                reason="npm/node are not installed")

AGENT = Path(__file__).resolve().parent / "agents" / "node_builtins.mjs"


def on_node(agent: Path, tmp_path: Path) -> dict:
    runner = tmp_path / "run-node.mjs"
    runner.write_text(f'import agent from {json.dumps(str(agent))};\n'
                      'const res = await agent.fetch(new Request("http://localhost/"));\n'
                      'process.stdout.write(await res.text());\n')
    out = subprocess.run(["node", str(runner)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def on_wapo(agent: Path) -> tuple[dict, int]:
    built = bundling.bundle(agent, name="node_builtins.js")
    result = asyncio.run(call_agent(built.code.decode(), AgentRequest(), name=built.name))
    assert result.error is None, result.error
    return json.loads(result.response.body), len(built.code)


def test_node_builtins_answer_as_on_node(tmp_path):
    expected = on_node(AGENT, tmp_path)
    got, size = on_wapo(AGENT)
    assert set(got) == set(expected) == {"buffer", "events", "util", "nextTick", "crypto", "path", "url",
                                         "querystring", "assert", "string_decoder", "stream"}
    for module in expected:
        assert got[module] == expected[module], module
    assert got["stream"] == "ABCDEF" and got["nextTick"] == "ticked"
    assert got["crypto"][0] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")


def test_both_specifier_forms_resolve_to_the_same_module(tmp_path):
    agent = tmp_path / "forms.mjs"
    names = ["buffer", "events", "util", "crypto", "path", "url", "querystring", "assert", "string_decoder",
             "stream", "process"]
    imports = "\n".join(f'import * as a{i} from "{n}";\nimport * as b{i} from "node:{n}";' for i, n in enumerate(names))
    same = ", ".join(f"[{json.dumps(n)}, a{i} === b{i} || a{i}.default === b{i}.default]" for i, n in enumerate(names))
    agent.write_text(f"{imports}\nexport default {{ fetch: () => Response.json(Object.fromEntries([{same}])) }};\n")
    got, _ = on_wapo(agent)
    assert got == {n: True for n in names}
    assert on_node(agent, tmp_path) == got


def test_an_agent_without_node_globals_stays_small(tmp_path):
    agent = tmp_path / "small.ts"
    agent.write_text("export default { fetch: (r: Request) => new Response(new URL(r.url).pathname) };\n")
    built = bundling.bundle(agent)
    assert len(built.code) < 1000 and b"Buffer" not in built.code


def test_free_buffer_and_process_are_injected(tmp_path):
    agent = tmp_path / "globals.mjs"
    agent.write_text("export default { async fetch() {\n"
                     "  const tick = await new Promise((r) => process.nextTick(r, 'tick'));\n"
                     "  return Response.json([Buffer.from('hi').toString('base64'), tick, typeof global.setTimeout]);\n"
                     "} };\n")
    got, _ = on_wapo(agent)
    assert got == ["aGk=", "tick", "function"] == on_node(agent, tmp_path)


def test_unavailable_builtin_says_what_is_provided(tmp_path):
    agent = tmp_path / "fs.mjs"
    agent.write_text('import { readFileSync } from "node:fs";\nexport default { fetch: () => new Response(readFileSync("/x")) };\n')
    with pytest.raises(bundling.BundleError) as info:
        bundling.bundle(agent)
    message = str(info.value)
    assert 'Could not resolve "node:fs"' in message and "without fs" in message and "crypto" in message
