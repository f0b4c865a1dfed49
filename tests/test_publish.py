"""``wapo publish``: the checks that refuse code which cannot work as an agent, bundling with the
pinned esbuild (real npm), source maps stored by CID and used to map stack traces in logs, the
``--debug`` answer and ``wapo call``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wapo.agent.sourcemap import SourceMap, map_stack
from wapo.store import Store, compute_cid
from wapo.store.sourcemaps import load_source_map, map_reference

from test_gateway import Client, serve

needs_npm = pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                               reason="npm/node are not installed")

TS_AGENT = """\
interface Greeting { hello: string }

function greet(name: string): Greeting {
  if (name === "boom") {
    throw new Error("boom from TS");
  }
  return { hello: name };
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    return Response.json(greet(url.searchParams.get("name") ?? "world"));
  },
};
"""


def wapo(tmp_path: Path, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    import os
    env = dict(os.environ, WAPO_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run([sys.executable, "-m", "wapo.cli.main", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("name,text,reason", [
    ("empty.js", "", "is empty"),
    ("blank.js", "\n  \n", "is empty"),
    ("notes.md", "# My agent\n\nIt says hello.\n", "is not JavaScript (a .md file)"),
    ("readme.js", "# My agent\n\nIt says hello.\n", "does not compile: SyntaxError"),
    ("broken.js", "async function main(request) {\n  return JSON.stringify({status: 200\n}\n", "does not compile"),
    ("nostyle.js", "const x = 1;\nconsole.log(x);\n", "no recognisable agent style"),
    ("imports.js", 'import { x } from "./missing-module.js";\nexport default { fetch() {} }\n', "does not compile"),
])
def test_publish_refuses_with_the_reason_and_force_publishes(tmp_path, name, text, reason):
    path = tmp_path / name
    path.write_text(text)
    out = wapo(tmp_path, "publish", "--no-bundle", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    assert reason in out.stderr and "--force" in out.stderr
    assert out.stdout == ""
    forced = wapo(tmp_path, "publish", "--no-bundle", "--force", str(path))
    assert forced.returncode == 0, forced.stderr
    cid = forced.stdout.splitlines()[-1]
    assert cid == compute_cid(text.encode())
    assert "warning" in forced.stderr and reason in forced.stderr


def test_publish_accepts_each_example_style(tmp_path):
    examples = Path(__file__).resolve().parent.parent / "examples"
    for name in ("style_a.js", "style_c.js"):
        out = wapo(tmp_path, "publish", str(examples / name))
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == compute_cid((examples / name).read_bytes())


def test_source_map_decoding_and_stack_mapping():
    # generated line 1: col 0 -> a.ts 1:0; col 6 -> a.ts 2:4. line 2: col 2 -> b.ts 10:1 (names ignored)
    raw = json.dumps({"version": 3, "sources": ["a.ts", "b.ts"], "names": ["f"],
                      "mappings": "AAAA,MACI;ECQJ,AAAAA"})
    sm = SourceMap(raw)
    assert str(sm.lookup(1, 1)) == "a.ts:1:1"
    assert str(sm.lookup(1, 9)) == "a.ts:2:5"
    assert str(sm.lookup(2, 3)) == "b.ts:10:1"
    assert sm.lookup(3, 1) is None
    text = "Error: x\n    at f (bundle.js:1:7)\n    at g (wapo:agent.js:1:1)\n    at other.js:1:1"
    assert map_stack(text, sm, "bundle.js") == (
        "Error: x\n    at f (bundle.js:1:7 -> a.ts:2:5)\n    at g (wapo:agent.js:1:1)\n    at other.js:1:1")


@needs_npm
def test_publish_a_ts_project_bundles_maps_and_the_gateway_shows_the_ts_position(tmp_path):
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "index.ts").write_text(TS_AGENT)
    (project / "package.json").write_text('{"name": "proj", "private": true}\n')
    out = wapo(tmp_path, "publish", str(project))
    assert out.returncode == 0, out.stderr
    cid = out.stdout.splitlines()[-1]
    assert "bundled" in out.stderr and "bytes" in out.stderr and "esbuild 0.28.2" in out.stderr
    store = Store(tmp_path / "data")
    bundle = store.get_code(cid)
    assert compute_cid(bundle) == cid and b"interface" not in bundle
    map_cid = map_reference(bundle)  # the bundle's last line names its map, a blob in the store
    assert bundle.endswith(f"\n//# sourceMappingURL=ipfs://{map_cid}\n".encode())
    source_map = json.loads(load_source_map(store, bundle))
    assert source_map["sources"] == ["src/index.ts"] and compute_cid(store.get_code(map_cid)) == map_cid

    async def scenario(c: Client):
        ok = await c.json("GET", f"/ipfs/{cid}?name=ts")
        status, headers, body = await c.json("GET", f"/ipfs/{cid}?name=boom")
        logs = (await c.get(f"/logs/all/ipfs/{cid}?requestId={headers['X-Request-Id']}"))[2].decode()
        return ok, status, body, logs

    ok, status, body, logs = serve(tmp_path, scenario, store, debug=True)
    assert ok[0] == 200 and ok[2] == {"hello": "ts"}
    assert status == 500 and "boom from TS" in body["detail"]
    assert re.search(rf"{cid}\.js:\d+:15 -> src/index\.ts:5:15\)", body["detail"])  # greet's throw, line 5 of the TS
    assert "src/index.ts:5:15" in logs and "src/index.ts:13:" in logs  # and its caller, fetch

    called = wapo(tmp_path, "call", cid, "--query", "name=boom")
    assert called.returncode == 1 and "src/index.ts:5:15" in called.stderr
    direct = wapo(tmp_path, "call", str(project / "src" / "index.ts"), "--query", "name=boom")
    assert direct.returncode == 1 and "-> src/index.ts:5:15" in direct.stderr


@needs_npm
def test_publish_a_ts_file_and_a_js_file_with_imports(tmp_path):
    (tmp_path / "lib.ts").write_text('export const answer = (n: number): string => `n=${n}`;\n')
    (tmp_path / "agent.ts").write_text('import { answer } from "./lib";\n'
                                       'export default { fetch: () => new Response(answer(42)) };\n')
    out = wapo(tmp_path, "publish", str(tmp_path / "agent.ts"))
    assert out.returncode == 0, out.stderr
    cid = out.stdout.splitlines()[-1]
    called = wapo(tmp_path, "call", cid, "--body-only")
    assert called.returncode == 0 and called.stdout == "n=42"
    (tmp_path / "main.js").write_text('import { answer } from "./lib.ts";\n'
                                      'export default { fetch: () => new Response(answer(7)) };\n')
    out = wapo(tmp_path, "publish", str(tmp_path / "main.js"))
    assert out.returncode == 0, out.stderr
    assert wapo(tmp_path, "call", out.stdout.splitlines()[-1], "--body-only").stdout == "n=7"


@needs_npm
def test_bundle_error_is_reported(tmp_path):
    (tmp_path / "bad.ts").write_text("export default { fetch( };\n")
    out = wapo(tmp_path, "publish", str(tmp_path / "bad.ts"))
    assert out.returncode == 2 and "esbuild could not bundle" in out.stderr and "bad.ts:1" in out.stderr


def test_bundling_without_node_says_what_to_install(tmp_path):
    import os
    (tmp_path / "agent.ts").write_text("export default { fetch: () => new Response('x') };\n")
    env = dict(os.environ, WAPO_DATA_DIR=str(tmp_path / "data"), WAPO_CACHE_DIR=str(tmp_path / "cache"),
               PATH=str(Path(sys.executable).parent))
    out = subprocess.run([sys.executable, "-m", "wapo.cli.main", "publish", str(tmp_path / "agent.ts")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 2
    assert "node/npm are not on PATH" in out.stderr and "install Node.js" in out.stderr


@needs_npm
def test_exec_runs_typescript_with_mapped_errors(tmp_path):
    script = tmp_path / "s.ts"
    script.write_text('const n: number = Number(scriptArgs[0]);\n'
                      'function fail(x: number): never {\n  throw new Error("ts exec " + x);\n}\n'
                      'if (n > 5) fail(n);\n(globalThis as any).scriptOutput = `n*2=${n * 2}`;\n')
    ok = wapo(tmp_path, "exec", str(script), "4")
    assert ok.returncode == 0 and ok.stdout == "n*2=8", ok.stderr
    failed = wapo(tmp_path, "exec", str(script), "9")
    assert failed.returncode == 1 and "ts exec 9" in failed.stderr
    assert re.search(r"at fail \(s\.bundle\.js:\d+:\d+ -> s\.ts:3:\d+\)", failed.stderr), failed.stderr
