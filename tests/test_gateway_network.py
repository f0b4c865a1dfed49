"""The address policy reaches agents: denied by default, allowed by configuration (gateway and `wapo call`)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

from wapo.gateway.app import make_app
from wapo.gateway.config import GatewayConfig, load_config
from wapo.store import Store

FETCHER = """\
async function main(request) {
  const req = JSON.parse(request);
  try {
    const r = await fetch(req.queries.target[0]);
    return JSON.stringify({status: 200, body: "got " + (await r.text())});
  } catch (e) {
    return JSON.stringify({status: 502, body: e.name + ": " + e.message});
  }
}
"""


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def _pong_app() -> web.Application:
    app = web.Application()

    async def pong(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    app.router.add_get("/", pong)
    return app


def _through_gateway(tmp_path, allow: tuple[str, ...]) -> tuple[int, str]:
    async def scenario() -> tuple[int, str]:
        store = Store(tmp_path / "data")
        cid = store.put_code(FETCHER.encode())
        upstream, upstream_port = await _start(_pong_app())
        gateway, port = await _start(make_app(GatewayConfig(data_dir=tmp_path / "data", allow_addresses=allow), store))
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}/ipfs/{cid}"
                async with session.get(url, params={"target": f"http://127.0.0.1:{upstream_port}/"}) as r:
                    return r.status, await r.text()
        finally:
            await gateway.cleanup()
            await upstream.cleanup()

    return asyncio.run(asyncio.wait_for(scenario(), 120))


def test_gateway_denies_loopback_by_default(tmp_path):
    status, body = _through_gateway(tmp_path, ())
    assert status == 502
    assert body.startswith("TypeError:") and "127.0.0.1" in body and "not allowed" in body


def test_gateway_allows_configured_addresses(tmp_path):
    assert _through_gateway(tmp_path, ("127.0.0.1/32",)) == (200, "got pong")


def test_wapo_call_allow_address(tmp_path):
    agent = tmp_path / "fetcher.js"
    agent.write_text(FETCHER)

    async def scenario() -> list[subprocess.CompletedProcess]:
        upstream, upstream_port = await _start(_pong_app())
        try:
            results = []
            for extra in ([], ["--allow-address", "127.0.0.1/32"]):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "wapo.cli.main", "call", str(agent), "--body-only",
                    "--query", f"target=http://127.0.0.1:{upstream_port}/", "--data-dir", str(tmp_path / "d"), *extra,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                out, err = await asyncio.wait_for(proc.communicate(), 120)
                results.append((proc.returncode, out.decode(), err.decode()))
            return results
        finally:
            await upstream.cleanup()

    (rc1, out1, _), (rc2, out2, err2) = asyncio.run(scenario())
    assert rc1 == 0 and out1.startswith("TypeError:") and "not allowed" in out1
    assert rc2 == 0 and out2 == "got pong", err2


def test_config_file(tmp_path):
    from wapo.gateway.config import load_config
    from wapo.host import Limits
    path = tmp_path / "wapo.toml"
    path.write_text('port = 8124\nlog_max_per_cid = 50\nlog_max_age = "2d"\nallow_addresses = ["127.0.0.1/32"]\n'
                    '[limits]\nmemory = "64MB"\nburst = "500ms"\n'
                    '[cid."QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"]\ntime = "5s"\n')
    c = load_config(path)
    assert (c.port, c.log_max_per_cid, c.log_max_age, c.allow_addresses) == (8124, 50, 172800.0, ("127.0.0.1/32",))
    assert c.limits == Limits(memory=64_000_000, burst=0.5)
    assert c.limits_for("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o").time == 5.0
    path.write_text("port = [")
    import pytest
    with pytest.raises(ValueError, match="cannot read config"):
        load_config(path)


def test_full_pool_overflows_and_the_sandbox_cap_is_a_clear_error(tmp_path):
    """Beyond the pool's slots sandboxes run on the on-demand engine; beyond WAPO_MAX_SANDBOXES a
    run ends with CapacityExceeded (the gateway answers 503), and the process goes on."""
    import subprocess
    code = r'''
import asyncio, json
from wapo.js.runner import js_instance
async def main():
    runs = [js_instance("setTimeout(() => { scriptOutput = 'ok' }, 300)").run() for _ in range(7)]
    results = await asyncio.gather(*runs)
    after = await js_instance("scriptOutput = 'after'").run()
    print(json.dumps([[r.output.decode(), r.error.kind if r.error else None] for r in results + [after]]))
asyncio.run(main())
'''
    env = dict(__import__("os").environ, WAPO_POOL_SLOTS="2", WAPO_MAX_SANDBOXES="5")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    import json
    results = json.loads(p.stdout.strip().splitlines()[-1])
    assert results[:7].count(["ok", None]) == 5  # 2 in the pool, 3 on the on-demand engine
    assert results[:7].count(["", "capacity"]) == 2
    assert results[7] == ["after", None]


def test_config_app_entries(tmp_path):
    import pytest

    path = tmp_path / "wapo.toml"
    path.write_text('[app.one]\nfile = "a.js"\nlisten = 8088\n[app.two]\nfile = "/abs/b.wasm"\non_demand = true\n')
    apps = load_config(path).apps
    assert [(a.id, a.file, a.listen, a.on_demand) for a in apps] == [
        ("one", (tmp_path / "a.js").resolve(), 8088, False), ("two", Path("/abs/b.wasm"), None, True)]
    for bad, message in (('[app.x]\nlisten = 1\n', "file"), ('[app.x]\nfile = "a"\nlisten = 70000\n', "1..65535"),
                         ('[app.x]\nfile = "a"\nport = 1\n', "unknown key"),
                         ('[app.x]\nfile = "a"\non_demand = "yes"\n', "true or false"), ('app = 3\n', "tables")):
        path.write_text(bad)
        with pytest.raises(ValueError, match=message):
            load_config(path)


def test_config_websocket_message_limit(tmp_path):
    path = tmp_path / "wapo.toml"
    path.write_text('ws_max_message = "1MiB"\n')
    assert load_config(path).ws_max_message == 1024 * 1024
    assert GatewayConfig().ws_max_message is None  # the 16 MiB default of WebSocketLimits
