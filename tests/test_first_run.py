"""The first-run rough edges of issue 15: every error a new user met names its fix, the gateway
prints a line per request, the examples answer. Real guests, real gateway on 127.0.0.1, real CLI."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from wapo import __version__
from wapo.agent import AgentRequest, call_agent

from test_gateway import Client, publish, serve, store  # noqa: F401  (store: a fixture)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def call(code: str, request: AgentRequest | None = None, name: str = "agent.js"):
    return asyncio.run(call_agent(code, request or AgentRequest(), name=name))


def test_main_returning_a_number_names_what_main_must_return():
    result = call("async function main(request) { return 5 }")
    assert result.response is None
    assert "main(request) must return" in result.error and "JSON.stringify({status, headers, body})" in result.error
    assert "it returned 5" in result.error


def test_no_main_and_no_default_export_names_the_three_styles():
    result = call("const x = 1;")
    assert result.response is None
    for style in ("async function main(request)", "handle(app)", "export default { fetch(request, env, ctx) }"):
        assert style in result.error


def test_loopback_fetch_refusal_names_allow_address(js):
    result = js("""
        fetch('http://127.0.0.1:9/').then(() => { scriptOutput = 'resolved' }, (e) => { scriptOutput = e.message })
    """)
    message = result.output.decode()
    assert "is not allowed (loopback)" in message and "--allow-address 127.0.0.1/32" in message


def test_exec_of_an_es_module_suggests_module_or_call(wapo_cli, tmp_path):
    agent = tmp_path / "agent.js"
    agent.write_text('export default { fetch() { return new Response("hi") } }\n')
    out = wapo_cli("exec", str(agent))
    assert out.returncode == 1
    err = out.stderr.decode()
    assert f"wapo exec --module {agent}" in err and f"wapo call {agent}" in err


def test_exec_without_a_file_says_what_to_give(wapo_cli):
    out = wapo_cli("exec")
    assert out.returncode == 2
    err = out.stderr.decode()
    assert "usage: wapo exec" in err and "give a FILE to run" in err and "ARG is required" not in err


def test_version(wapo_cli):
    out = wapo_cli("--version")
    assert out.returncode == 0 and out.stdout.decode().strip() == f"wapo {__version__}"


def test_failing_agent_500_points_to_its_logs_and_the_access_log_prints_it(tmp_path, store, capsys):
    cid = publish(store, 'async function main() { console.log("before"); throw new Error("boom-7") }')
    ok = publish(store, (EXAMPLES / "style_a.js").read_text())

    async def scenario(c: Client):
        status, headers, body = await c.json("GET", f"/ipfs/{cid}/x")
        logs_status, _, logs = await c.get(body["logs"] + "&format=text")
        await c.get(f"/ipfs/{ok}?name=a")
        return status, headers, body, logs_status, logs.decode()

    status, headers, body, logs_status, logs = serve(tmp_path, scenario, store)
    rid = headers["X-Request-Id"]
    assert status == 500 and body["requestId"] == rid
    assert body["logs"] == f"/logs/all/ipfs/{cid}?requestId={rid}"
    assert body["logs"] in body["error"] and rid in body["error"] and "--debug" in body["error"]
    assert logs_status == 200 and "boom-7" in logs and "before" in logs
    lines = capsys.readouterr().out.splitlines()
    failed = [line for line in lines if f"/ipfs/{cid}/x" in line]
    assert len(failed) == 1
    assert re.search(rf"GET /ipfs/{cid}/x 500 \d+\.\dms id={rid} : .*boom-7", failed[0])
    assert any(re.search(rf"GET /ipfs/{ok} 200 \d+\.\dms id=[0-9a-f]{{32}}$", line) for line in lines)


def test_quiet_gateway_prints_no_access_log(tmp_path, store, capsys):
    cid = publish(store, (EXAMPLES / "style_a.js").read_text())

    async def scenario(c: Client):
        return (await c.get(f"/ipfs/{cid}"))[0]

    assert serve(tmp_path, scenario, store, access_log=False) == 200
    assert f"/ipfs/{cid}" not in capsys.readouterr().out


def test_serve_quiet_flag_and_config_key(tmp_path):
    from wapo.cli.main import make_parser
    from wapo.cli.serve_cmd import config_from
    from wapo.gateway.config import load_config
    args = make_parser().parse_args(["serve", "--quiet", "--data-dir", str(tmp_path)])
    assert config_from(args).access_log is False
    toml = tmp_path / "wapo.toml"
    toml.write_text("access_log = false\n")
    assert load_config(toml).access_log is False


# --- the examples, one per style -------------------------------------------------------------------

def test_example_style_a():
    request = AgentRequest(query=[("name", "you"), ("name", "two")], url="http://localhost/?name=you&name=two")
    result = call((EXAMPLES / "style_a.js").read_text(), request)
    assert result.error is None and result.response.status == 200
    assert json.loads(result.response.body) == {"hello": "you", "method": "GET", "path": "/"}


def test_example_style_c():
    code = (EXAMPLES / "style_c.js").read_text()
    result = call(code, AgentRequest(method="POST", path="/hi", url="http://localhost/hi?name=c", body=b"x"))
    assert result.error is None
    assert json.loads(result.response.body) == {"hello": "c", "method": "POST", "path": "/hi", "style": "C"}
    stream = call(code, AgentRequest(path="/stream", url="http://localhost/stream"))
    assert stream.response.body == b"data: 1\n\ndata: 2\n\ndata: 3\n\n"


def test_example_style_b_bundled_with_the_pinned_packages():
    import npm_agents
    try:
        root = npm_agents.ensure_installed()
    except npm_agents.NpmMissing:
        pytest.skip("npm is not installed")
    bundle = npm_agents.build(root, (EXAMPLES / "style_b.js").read_text(), "cjs", "style_b.js")
    result = call(bundle, AgentRequest(url="http://localhost/?name=b", query=[("name", "b")]))
    assert result.error is None, result.error
    assert json.loads(result.response.body) == {"hello": "b", "style": "B"}


def test_every_config_key_is_documented():
    """docs/config.md is the reference of the config file: a new GatewayConfig field must be in it."""
    from dataclasses import fields
    from wapo.gateway.config import GatewayConfig
    doc = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    as_tables = {"limits": "[limits]", "max_limits": "[max_limits]", "cid_limits": "[cid.", "apps": "[app.",
                 "sni_host": "sni_port", "database_url": "[database]", "cluster_key_file": "[cluster]",
                 "cron": "[cron."}  # sni_host is the HOST of sni_port = "HOST:PORT"
    missing = [f.name for f in fields(GatewayConfig) if as_tables.get(f.name, f"`{f.name}`") not in doc]
    assert not missing, f"document these GatewayConfig fields in docs/config.md: {missing}"


def test_example_style_b_through_wapo_bundling(tmp_path):
    """As its comment says: `wapo publish examples/style_b.js` in a folder with the packages installed."""
    import npm_agents
    from wapo.cli import bundling
    try:
        root = npm_agents.ensure_installed()
    except npm_agents.NpmMissing:
        pytest.skip("npm is not installed")
    (tmp_path / "node_modules").symlink_to(root / "node_modules", target_is_directory=True)
    (tmp_path / "package.json").write_text('{"name": "b", "private": true}\n')
    agent = tmp_path / "style_b.js"
    agent.write_text((EXAMPLES / "style_b.js").read_text())
    assert bundling.needs_bundle(agent)
    built = bundling.bundle(agent)
    result = call(built.code.decode(), AgentRequest(url="http://localhost/?name=esm", query=[("name", "esm")]))
    assert result.error is None, result.error
    assert json.loads(result.response.body) == {"hello": "esm", "style": "B"}
