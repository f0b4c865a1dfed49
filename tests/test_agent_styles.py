"""Agents in styles B and C (spec section 5), built from the REAL npm packages, through a real gateway.

Style B: Hono + ``handle(app)`` of ``@phala/wapo-env/guest``, bundled by esbuild as CommonJS.
Style C: ``export default app`` (Hono) bundled as an ES module, and a hand-written
``export default { fetch(request, env, ctx) }`` (no npm needed).
The npm packages are pinned and installed once into a shared cache (see ``npm_agents``); the npm-based
tests skip only when ``npm`` is absent, and fail when npm is there but the install fails.

Each gateway test starts ``make_app(GatewayConfig(data_dir=...))`` under ``web.AppRunner`` on
127.0.0.1 inside ``asyncio.run`` and talks to it with aiohttp; the CLI tests run ``wapo call``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
import npm_agents  # noqa: E402

from wapo.gateway.app import make_app  # noqa: E402
from wapo.gateway.config import GatewayConfig  # noqa: E402
from wapo.store import Store  # noqa: E402

RID = "X-Request-Id"
SCENARIO_TIMEOUT = 180  # a shared, loaded machine; the guest may even be rebuilt on first use (~30 s)
FAIL_DETAIL = "SECRET-DETAIL-7c1e the database password is hunter2"
SSE_EVENTS = 4
SSE_SLEEP_MS = 300

# --- the agents -------------------------------------------------------------------------------------
# Every style answers the same routes the same way (only the style name and where secrets come from differ):
#   GET  /               {style, q, tags, header, url, path}          + x-agent-style header
#   GET  /users/:id      {id, q}
#   POST /items          201 {method, got: <JSON body>, contentType} + x-custom: created
#   PUT  /items/:id      {method, id, got: <JSON body>}
#   GET  /secret         {secret, raw?}   (B: JSON.parse(process.env.secret), raw = process.env.secret; C: env)
#   GET  /teapot         418 "short and stout", x-custom: v1, text/plain
#   GET  /fail           throws

HONO_ROUTES = """
app.get("/", (c) => c.json({style: STYLE, q: c.req.query("q") ?? null, tags: c.req.queries("tag") ?? [],
                            header: c.req.header("x-test") ?? null, url: c.req.url, path: c.req.path},
                           200, {"x-agent-style": STYLE}));
app.get("/users/:id", (c) => c.json({id: c.req.param("id"), q: c.req.query("q") ?? null}));
app.post("/items", async (c) => {
  const got = await c.req.json();
  return c.json({method: c.req.method, got, contentType: c.req.header("content-type")}, 201, {"x-custom": "created"});
});
app.put("/items/:id", async (c) => c.json({method: c.req.method, id: c.req.param("id"), got: await c.req.json()}));
app.get("/teapot", (c) => c.text("short and stout", 418, {"x-custom": "v1"}));
app.get("/fail", (c) => { throw new Error(%s); });
""" % json.dumps(FAIL_DETAIL)

STYLE_B_SRC = """\
import { Hono } from "hono";
import { handle } from "@phala/wapo-env/guest";
const STYLE = "B";
const app = new Hono();
%s
app.get("/secret", (c) => c.json({secret: JSON.parse(process.env.secret), raw: process.env.secret}));
export default handle(app);
""" % HONO_ROUTES

STYLE_C_HONO_SRC = """\
import { Hono } from "hono";
const STYLE = "C-hono";
const app = new Hono();
%s
app.get("/secret", (c) => c.json({secret: c.env}));
app.get("/config", (c) => c.json({apiKey: c.env.API_KEY ?? null}));
export default app;
""" % HONO_ROUTES

STYLE_C_PLAIN = """\
const STYLE = "C-plain";
function json(obj, status = 200, headers = {}) {
  return new Response(JSON.stringify(obj), {status, headers: {"content-type": "application/json", ...headers}});
}
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const path = url.pathname;
    const q = url.searchParams;
    let m;
    if (request.method === "GET" && path === "/") {
      return json({style: STYLE, q: q.get("q"), tags: q.getAll("tag"), header: request.headers.get("x-test"),
                   url: request.url, path}, 200, {"x-agent-style": STYLE});
    }
    if (request.method === "GET" && (m = path.match(/^\\/users\\/([^/]+)$/))) {
      return json({id: decodeURIComponent(m[1]), q: q.get("q")});
    }
    if (request.method === "POST" && path === "/items") {
      const got = await request.json();
      return json({method: request.method, got, contentType: request.headers.get("content-type")}, 201,
                  {"x-custom": "created"});
    }
    if (request.method === "PUT" && (m = path.match(/^\\/items\\/([^/]+)$/))) {
      return json({method: request.method, id: decodeURIComponent(m[1]), got: await request.json()});
    }
    if (path === "/secret") return json({secret: env});
    if (path === "/teapot") {
      return new Response("short and stout", {status: 418, headers: {"x-custom": "v1", "content-type": "text/plain; charset=utf-8"}});
    }
    if (path === "/fail") throw new Error(%s);
    return json({error: "not found"}, 404);
  }
};
""" % json.dumps(FAIL_DETAIL)

SSE_HONO_SRC = """\
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
const app = new Hono();
app.get("/events", (c) => streamSSE(c, async (s) => {
  for (let i = 0; i < %d; i++) {
    await s.writeSSE({data: JSON.stringify({i, t: Date.now()}), event: "tick", id: String(i)});
    await s.sleep(%d);
  }
}));
export default app;
""" % (SSE_EVENTS, SSE_SLEEP_MS)

SSE_PLAIN = """\
export default {
  fetch(request, env, ctx) {
    const enc = new TextEncoder();
    const stream = new ReadableStream({
      async start(controller) {
        for (let i = 0; i < %d; i++) {
          controller.enqueue(enc.encode("event: tick\\nid: " + i + "\\ndata: " + JSON.stringify({i, t: Date.now()}) + "\\n\\n"));
          await new Promise((r) => setTimeout(r, %d));
        }
        controller.close();
      },
    });
    return new Response(stream, {headers: {"content-type": "text/event-stream", "cache-control": "no-cache"}});
  }
};
""" % (SSE_EVENTS, SSE_SLEEP_MS)

# Streams forever; logs 'aborted' when the client goes away (request.signal). The test also runs it
# without the source's cancel(): then the interval's next enqueue into the cancelled stream throws.
ABORT_PLAIN = """\
export default {
  fetch(request, env, ctx) {
    request.signal.addEventListener("abort", () => console.log("aborted"));
    const enc = new TextEncoder();
    let timer;
    let n = 0;
    const stream = new ReadableStream({
      start(controller) {
        timer = setInterval(() => controller.enqueue(enc.encode("tick " + n++ + "\\n")), 100);
      },
      cancel() { clearInterval(timer); },
    });
    return new Response(stream, {headers: {"content-type": "text/plain"}});
  }
};
"""

ABORT_NO_CANCEL = ABORT_PLAIN.replace("cancel() { clearInterval(timer); },", "")
assert ABORT_NO_CANCEL != ABORT_PLAIN

STYLES = ["B", "C-hono", "C-plain"]
NPM_STYLES = {"B": (STYLE_B_SRC, "cjs"), "C-hono": (STYLE_C_HONO_SRC, "esm"), "sse-hono": (SSE_HONO_SRC, "esm")}


# --- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def npm_root():
    """The pinned npm toolchain: skipped only without npm; a failed install fails the tests."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: styles B and C-with-Hono are built from the real npm packages "
                    f"({', '.join(f'{k}@{v}' for k, v in npm_agents.PINNED.items())})")
    try:
        return npm_agents.ensure_installed()
    except npm_agents.NpmInstallFailed as exc:
        pytest.fail(f"npm is present but the pinned packages could not be installed: {exc}", pytrace=False)


_built: dict[str, str] = {}


def agent_code(request: pytest.FixtureRequest, style: str) -> str:
    """The bundle for ``style`` (built once per session with esbuild, or hand-written)."""
    if style == "C-plain":
        return STYLE_C_PLAIN
    if style == "sse-plain":
        return SSE_PLAIN
    if style not in _built:
        root = request.getfixturevalue("npm_root")
        source, fmt = NPM_STYLES[style]
        _built[style] = npm_agents.build(root, source, fmt, name=f"{style}.js")
    return _built[style]


@pytest.fixture
def code_for(request):
    return lambda style: agent_code(request, style)


def serve(tmp_path: Path, codes: list[str], scenario, **config):
    """Publish ``codes`` and run ``await scenario(session, base, cids)`` against a real gateway on 127.0.0.1."""
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    try:
        cids = [store.put_code(code.encode()) for code in codes]
    finally:
        store.close()

    async def main():
        app = make_app(GatewayConfig(data_dir=data_dir, **config))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            timeout = aiohttp.ClientTimeout(total=SCENARIO_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                return await asyncio.wait_for(scenario(session, base, cids), SCENARIO_TIMEOUT)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


async def fetch(session: aiohttp.ClientSession, method: str, url: str, **kw):
    async with session.request(method, url, **kw) as r:
        return r.status, r.headers, await r.read()


def assert_no_leak(body: bytes) -> None:
    text = body.decode("utf-8", "replace")
    assert "SECRET-DETAIL" not in text and "hunter2" not in text, text
    assert "    at " not in text and ".js:" not in text, f"a stack trace reached the client: {text!r}"


# --- requests in, answers out (gateway) ---------------------------------------------------------------------

@pytest.mark.parametrize("style", STYLES)
def test_request_reaches_agent_and_answer_comes_back(tmp_path, code_for, style):
    code = code_for(style)

    async def scenario(session, base, cids):
        cid = cids[0]
        out = {}
        out["root"] = await fetch(session, "GET", f"{base}/ipfs/{cid}/?q=hello%20world&tag=a&tag=b",
                                  headers={"X-Test": "from-the-client"})
        out["root_noslash"] = await fetch(session, "GET", f"{base}/ipfs/{cid}?q=1")
        out["user"] = await fetch(session, "GET", f"{base}/ipfs/{cid}/users/7?q=x")
        out["post"] = await fetch(session, "POST", f"{base}/ipfs/{cid}/items",
                                  json={"name": "widget", "n": [1, 2, 3], "ok": True, "uni": "h\u00e9llo \u2603"})
        out["put"] = await fetch(session, "PUT", f"{base}/ipfs/{cid}/items/42", data=json.dumps({"price": 9.5}),
                                 headers={"content-type": "application/json"})
        out["teapot"] = await fetch(session, "GET", f"{base}/ipfs/{cid}/teapot")
        out["missing"] = await fetch(session, "GET", f"{base}/ipfs/{cid}/no/such/route")
        return out

    out = serve(tmp_path, [code], scenario)

    status, headers, body = out["root"]
    assert status == 200, body
    assert headers["x-agent-style"] == style
    assert headers["content-type"].startswith("application/json")
    assert headers.get(RID)
    got = json.loads(body)
    assert got["style"] == style
    assert got["q"] == "hello world"
    assert got["tags"] == ["a", "b"]
    assert got["header"] == "from-the-client"
    assert got["path"] == "/"
    assert got["url"].startswith("http://127.0.0.1:") and "/ipfs/" not in got["url"], got["url"]

    status, _, body = out["root_noslash"]
    assert status == 200 and json.loads(body)["q"] == "1", body

    status, _, body = out["user"]
    assert status == 200, body
    assert json.loads(body) == {"id": "7", "q": "x"}

    status, headers, body = out["post"]
    assert status == 201, body
    assert headers["x-custom"] == "created"
    got = json.loads(body)
    assert got["method"] == "POST"
    assert got["got"] == {"name": "widget", "n": [1, 2, 3], "ok": True, "uni": "h\u00e9llo \u2603"}
    assert got["contentType"].startswith("application/json")

    status, _, body = out["put"]
    assert status == 200, body
    assert json.loads(body) == {"method": "PUT", "id": "42", "got": {"price": 9.5}}

    status, headers, body = out["teapot"]
    assert status == 418
    assert body == b"short and stout"
    assert headers["x-custom"] == "v1"
    assert headers["content-type"].startswith("text/plain")
    assert headers.get(RID)

    status, _, body = out["missing"]
    assert status == 404, body


@pytest.mark.parametrize("style", STYLES)
def test_vault_secrets_reach_the_agent(tmp_path, code_for, style):
    code = code_for(style)
    data = {"API_KEY": "k-123", "nested": {"a": 1}}

    async def scenario(session, base, cids):
        cid = cids[0]
        async with session.post(f"{base}/vaults", json={"cid": cid, "data": data}) as r:
            assert r.status == 200, await r.text()
            vault = await r.json()
        assert vault["succeed"] is True
        key = vault["key"]
        with_key = await fetch(session, "GET", f"{base}/ipfs/{cid}/secret?key={key}")
        without = await fetch(session, "GET", f"{base}/ipfs/{cid}/secret")
        # the key is not part of what the agent sees
        root = await fetch(session, "GET", f"{base}/ipfs/{cid}/?q=v&key={key}")
        wrong = await fetch(session, "GET", f"{base}/ipfs/{cid}/secret?key=0123456789abcdef")
        return with_key, without, root, wrong

    with_key, without, root, wrong = serve(tmp_path, [code], scenario)
    status, _, body = with_key
    assert status == 200, body
    got = json.loads(body)
    assert got["secret"] == data
    if style == "B":
        assert isinstance(got["raw"], str) and json.loads(got["raw"]) == data

    status, _, body = without
    assert status == 200, body
    got = json.loads(body)
    if style == "B":
        assert got["raw"] == '""' and got["secret"] == ""
    else:
        assert got["secret"] == {}

    status, _, body = root
    assert status == 200, body
    got = json.loads(body)
    assert got["q"] == "v"
    assert "key" not in got["url"], got["url"]

    assert wrong[0] == 403


def test_style_c_hono_reads_env_api_key(tmp_path, code_for):
    """The spec's style C example: `c.env.API_KEY` from the vault."""
    code = code_for("C-hono")

    async def scenario(session, base, cids):
        cid = cids[0]
        async with session.post(f"{base}/vaults", json={"cid": cid, "data": {"API_KEY": "sk-live-1"}}) as r:
            key = (await r.json())["key"]
        return (await fetch(session, "GET", f"{base}/ipfs/{cid}/config?key={key}"),
                await fetch(session, "GET", f"{base}/ipfs/{cid}/config"))

    (s1, _, b1), (s2, _, b2) = serve(tmp_path, [code], scenario)
    assert (s1, json.loads(b1)) == (200, {"apiKey": "sk-live-1"})
    assert (s2, json.loads(b2)) == (200, {"apiKey": None})


@pytest.mark.parametrize("style", STYLES)
def test_failing_route_is_a_500_without_stack(tmp_path, code_for, style):
    code = code_for(style)

    async def scenario(session, base, cids):
        r = await fetch(session, "GET", f"{base}/ipfs/{cids[0]}/fail")
        ok = await fetch(session, "GET", f"{base}/ipfs/{cids[0]}/users/1")  # the gateway is still fine
        return r, ok

    (status, headers, body), ok = serve(tmp_path, [code], scenario)
    assert status == 500, body
    assert headers.get(RID), dict(headers)
    assert_no_leak(body)
    if style == "C-plain":  # the agent itself failed: the gateway's JSON error
        got = json.loads(body)
        assert got["requestId"] == headers[RID]
    else:  # Hono's own error handler answered
        assert body == b"Internal Server Error"
    assert ok[0] == 200


# --- streaming (style C) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["sse-hono", "sse-plain"])
def test_sse_events_arrive_one_by_one(tmp_path, code_for, style):
    code = code_for(style)

    async def scenario(session, base, cids):
        arrivals: list[tuple[float, dict]] = []
        async with session.get(f"{base}/ipfs/{cids[0]}/events") as r:
            status, headers = r.status, r.headers
            while True:
                line = await r.content.readline()
                if not line:
                    break
                if line.startswith(b"data:"):
                    arrivals.append((time.monotonic(), json.loads(line[5:].strip())))
        return status, headers, arrivals

    status, headers, arrivals = serve(tmp_path, [code], scenario)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream"), dict(headers)
    assert headers.get(RID)
    assert [data["i"] for _, data in arrivals] == list(range(SSE_EVENTS))
    produced = arrivals[-1][1]["t"] - arrivals[0][1]["t"]  # ms, by the agent's clock
    assert produced >= (SSE_EVENTS - 1) * SSE_SLEEP_MS - 50, produced
    # Had the answer been buffered, every event would arrive at once at the end.
    spread = arrivals[-1][0] - arrivals[0][0]
    assert spread >= (2 * SSE_SLEEP_MS - 100) / 1000, f"events arrived together ({spread:.3f} s apart)"


@pytest.mark.parametrize("agent", [ABORT_PLAIN, ABORT_NO_CANCEL],
                         ids=["source-cancel-clears-interval", "no-cancel-callback"])
def test_client_disconnect_aborts_request_signal(tmp_path, agent):
    """The client leaves mid-stream: request.signal aborts, the prelude cancels the body (its source's
    cancel() runs, or the next enqueue throws), the run ends and its logs, with 'aborted', are kept."""
    async def scenario(session, base, cids):
        cid = cids[0]
        async with session.get(f"{base}/ipfs/{cid}/") as r:
            assert r.status == 200
            first = await r.content.readany()
            assert first.startswith(b"tick")
            r.close()  # drop the connection mid-stream
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            async with session.get(f"{base}/logs/all/ipfs/{cid}") as r:
                text = await r.text()
            if "aborted" in text:
                break
        return text

    text = serve(tmp_path, [agent], scenario)
    assert "aborted" in text, text


# --- `wapo call` ---------------------------------------------------------------------------------------------

def parse_call(stdout: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@pytest.mark.parametrize("style", STYLES)
def test_wapo_call(tmp_path, code_for, wapo_cli, style):
    agent = tmp_path / f"{style}.js"
    agent.write_text(code_for(style))

    def call(*argv):
        out = wapo_cli("call", str(agent), *argv, timeout=SCENARIO_TIMEOUT)
        return out

    r = call("--path", "/", "--query", "q=hi there", "--query", "tag=a", "--query", "tag=b",
             "-H", "X-Test: cli-header")
    assert r.returncode == 0, r.stderr
    status, headers, body = parse_call(r.stdout)
    assert status == 200 and headers["x-agent-style"] == style
    got = json.loads(body)
    assert (got["q"], got["tags"], got["header"], got["path"]) == ("hi there", ["a", "b"], "cli-header", "/")

    r = call("--path", "/users/7", "--query", "q=x")
    assert r.returncode == 0, r.stderr
    assert json.loads(parse_call(r.stdout)[2]) == {"id": "7", "q": "x"}

    r = call("-X", "POST", "--path", "/items", "-H", "Content-Type: application/json", "-d", '{"a": [1, 2]}')
    assert r.returncode == 0, r.stderr
    status, headers, body = parse_call(r.stdout)
    assert status == 201 and headers["x-custom"] == "created"
    assert json.loads(body)["got"] == {"a": [1, 2]}

    r = call("--path", "/secret", "--secret", '{"API_KEY": "cli-key"}', "--body-only")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["secret"] == {"API_KEY": "cli-key"}

    r = call("--path", "/teapot")
    assert r.returncode == 0, r.stderr
    status, headers, body = parse_call(r.stdout)
    assert r.stdout.startswith(b"HTTP/1.1 418")
    assert (status, headers["x-custom"], body) == (418, "v1", b"short and stout")

    r = call("--path", "/fail")
    if style == "C-plain":
        assert r.returncode == 1
        assert b"500" in r.stderr
    else:
        assert r.returncode == 0, r.stderr
        assert parse_call(r.stdout)[:1] == (500,)
        assert_no_leak(parse_call(r.stdout)[2])
