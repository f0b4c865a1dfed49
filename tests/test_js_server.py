"""WapoServer.serve (prelude/server.js + host/services/app_http.py): JS apps answering HTTP
through a real gateway on 127.0.0.1 (``wapo deploy app.js``, then ``ANY /app/<id>/<path>``)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from wapo.gateway.apps import routes as apps_mod
from wapo.gateway.app import make_app
from wapo.store.apps import AppRecords
from wapo.gateway.config import GatewayConfig
from wapo.store import Store

TIMEOUT = 120

ECHO = """
WapoServer.serve(async (req) => new Response(
  JSON.stringify({method: req.method, url: req.url, body: await req.text()}),
  {headers: {'content-type': 'application/json', 'x-app': 'echo'}}));
"""

THROWER = """
WapoServer.serve(async (req) => {
  const url = new URL(req.url);
  if (url.pathname === '/boom') throw new Error('kaboom ' + url.search);
  if (url.pathname === '/not-a-response') return 'hello';
  return new Response('fine ' + url.pathname);
});
"""

STREAMER = """
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
WapoServer.serve(async (req) => {
  const url = new URL(req.url);
  const n = Number(url.searchParams.get('n') || 5);
  const size = Number(url.searchParams.get('size') || 0);
  const enc = new TextEncoder();
  let i = 0;
  const body = new ReadableStream({
    async pull(controller) {
      if (i === n) { controller.close(); return; }
      await sleep(2);
      controller.enqueue(size ? new Uint8Array(size).fill(97 + (i % 26)) : enc.encode(`chunk ${i};`));
      i++;
    },
  });
  if (url.pathname === '/fail') {
    let j = 0;
    return new Response(new ReadableStream({
      pull(c) { if (j++ < 2) c.enqueue(enc.encode('part;')); else c.error(new Error('stream broke')); },
    }));
  }
  return new Response(body, {status: 201, headers: {'content-type': 'text/plain'}});
});
"""

HONO_LIKE = """
class Mini {
  constructor() { this.routes = []; }
  on(method, path, h) {
    const keys = [];
    const re = new RegExp('^' + path.replace(/:([a-z]+)/g, (_, k) => { keys.push(k); return '([^/]+)'; }) + '$');
    this.routes.push({method, re, keys, h});
    return this;
  }
  get(p, h) { return this.on('GET', p, h); }
  post(p, h) { return this.on('POST', p, h); }
  async fetch(req) {
    const url = new URL(req.url);
    for (const r of this.routes) {
      const m = url.pathname.match(r.re);
      if (!m || r.method !== req.method) continue;
      const params = Object.fromEntries(r.keys.map((k, i) => [k, decodeURIComponent(m[i + 1])]));
      const c = {req, url, params,
                 json: (v, status = 200) => Response.json(v, {status}),
                 text: (t, status = 200) => new Response(t, {status})};
      return r.h(c);
    }
    return new Response('not found: ' + url.pathname, {status: 404});
  }
}
const app = new Mini()
  .get('/', (c) => c.text('home'))
  .get('/users/:id', (c) => c.json({id: c.params.id, q: c.url.searchParams.get('q')}))
  .post('/users', async (c) => c.json({created: await c.req.json()}, 201))
  .get('/headers', (c) => c.json({ua: c.req.headers.get('x-test')}));
WapoServer.serve(app);
"""

CLOSER = """
const server = WapoServer.serve(async (req) => {
  if (new URL(req.url).pathname === '/close') { queueMicrotask(() => server.close()); return new Response('closing'); }
  return new Response('open');
});
server.finished.then(() => console.log('server finished'));
"""


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(self, method: str, path: str, **kw):
        async with self.session.request(method, self.base + path, **kw) as r:
            return r.status, r.headers, await r.read()

    async def json(self, method: str, path: str, **kw):
        status, _, body = await self.request(method, path, **kw)
        return status, json.loads(body)

    async def wait_state(self, app_id: str, *states: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.json("GET", f"/app/{app_id}")
            assert status == 200, body
            if body["state"] in states:
                return body
            assert time.monotonic() < deadline, f"app {app_id} never reached {states}: {body}"
            await asyncio.sleep(0.05)


def run_gateway(data_dir: Path, scenario, *, backoff: float = 0.2):
    async def main():
        store = Store(data_dir)
        app = make_app(GatewayConfig(data_dir=data_dir), store)
        manager = app[apps_mod.APPS]
        manager.backoff_initial = backoff
        manager.poll_interval = 0.0
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
                return await asyncio.wait_for(scenario(Client(session, f"http://127.0.0.1:{port}")), TIMEOUT)
        finally:
            await runner.cleanup()
            store.close()

    return asyncio.run(main())


def deploy_js(tmp_path: Path, app_id: str, code: str) -> Path:
    data = tmp_path / "data"
    source = tmp_path / f"{app_id}.js"
    source.write_text(code)
    AppRecords(data).deploy(source, app_id)
    return data


async def logs_of(c: Client, app_id: str) -> str:
    status, body = await c.json("GET", f"/apps/{app_id}/logs?format=json&limit=100")
    assert status == 200, body
    return "\n".join(r["message"] for r in body["logs"])


def test_get_and_post_reach_the_js_handler(tmp_path):
    data = deploy_js(tmp_path, "echo", ECHO)

    async def scenario(c: Client):
        await c.wait_state("echo", "running")
        status, headers, body = await c.request("GET", "/app/echo/hello/world?x=1&y=a%20b")
        assert status == 200, body
        assert headers["content-type"] == "application/json" and headers["x-app"] == "echo"
        assert json.loads(body) == {"method": "GET", "url": "http://localhost/hello/world?x=1&y=a%20b", "body": ""}
        status, answer = await c.json("POST", "/app/echo/submit", data="hé there".encode())
        assert status == 200 and answer == {"method": "POST", "url": "http://localhost/submit", "body": "hé there"}
        status, answer = await c.json("PUT", "/app/echo/", data=b"")
        assert status == 200 and answer == {"method": "PUT", "url": "http://localhost/", "body": ""}
        # a body bigger than the host's 256 KiB buffer, streamed by the client
        big = ("0123456789abcdef" * 64) * 400  # 400 KiB

        async def chunks():
            for i in range(0, len(big), 32 * 1024):
                yield big[i:i + 32 * 1024].encode()
                await asyncio.sleep(0)

        status, answer = await c.json("POST", "/app/echo/big", data=chunks())
        assert status == 200 and answer["body"] == big
        # concurrent requests
        answers = await asyncio.gather(*(c.json("POST", f"/app/echo/{i}", data=str(i).encode()) for i in range(20)))
        for i, (status, answer) in enumerate(answers):
            assert status == 200 and answer == {"method": "POST", "url": f"http://localhost/{i}", "body": str(i)}
        status, body = await c.json("GET", "/app/echo")
        assert body["restarts"] == 0 and body["state"] == "running", body

    run_gateway(data, scenario)


def test_a_throwing_handler_gives_500_for_that_request_only(tmp_path):
    data = deploy_js(tmp_path, "thrower", THROWER)

    async def scenario(c: Client):
        await c.wait_state("thrower", "running")
        for _ in range(2):
            status, _, body = await c.request("GET", "/app/thrower/boom?a=1")
            assert status == 500 and body == b"Internal Server Error"
            status, _, body = await c.request("GET", "/app/thrower/ok")
            assert status == 200 and body == b"fine /ok"
        status, _, body = await c.request("GET", "/app/thrower/not-a-response")
        assert status == 500
        status, body = await c.json("GET", "/app/thrower")
        assert body["restarts"] == 0 and body["state"] == "running", body
        deadline = time.monotonic() + 10
        while True:  # logs are written every second
            text = await logs_of(c, "thrower")
            if "kaboom ?a=1" in text and "not a Response" in text or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert "the handler failed for GET /boom?a=1" in text and "kaboom ?a=1" in text
        assert "not a Response" in text

    run_gateway(data, scenario)


def test_streamed_response_bodies_arrive_complete(tmp_path):
    data = deploy_js(tmp_path, "streamer", STREAMER)

    async def scenario(c: Client):
        await c.wait_state("streamer", "running")
        status, headers, body = await c.request("GET", "/app/streamer/s?n=6")
        assert status == 201 and headers["content-type"] == "text/plain"
        assert body == b"".join(f"chunk {i};".encode() for i in range(6))
        # more than the host's 256 KiB buffer: the writer waits for the gateway to drain it
        size, n = 48 * 1024, 12
        status, _, body = await c.request("GET", f"/app/streamer/big?n={n}&size={size}")
        assert status == 201 and len(body) == size * n
        assert body == b"".join(bytes([97 + i]) * size for i in range(n))
        # a body stream that errors midway: the connection is cut, never a complete-looking answer
        failed = False
        try:
            status, _, body = await c.request("GET", "/app/streamer/fail")
        except aiohttp.ClientPayloadError:
            failed = True
        assert failed, (status, body)
        status, _, body = await c.request("GET", "/app/streamer/again?n=2")
        assert status == 201 and body == b"chunk 0;chunk 1;"
        status, body = await c.json("GET", "/app/streamer")
        assert body["restarts"] == 0, body

    run_gateway(data, scenario)


def test_a_hono_like_app(tmp_path):
    data = deploy_js(tmp_path, "hono", HONO_LIKE)

    async def scenario(c: Client):
        await c.wait_state("hono", "running")
        status, _, body = await c.request("GET", "/app/hono/")
        assert status == 200 and body == b"home"
        status, body = await c.json("GET", "/app/hono/users/a%20b?q=z")
        assert status == 200 and body == {"id": "a b", "q": "z"}
        status, body = await c.json("POST", "/app/hono/users", json={"name": "ann"})
        assert status == 201 and body == {"created": {"name": "ann"}}
        status, body = await c.json("GET", "/app/hono/headers", headers={"X-Test": "yes"})
        assert status == 200 and body == {"ua": "yes"}
        status, _, body = await c.request("GET", "/app/hono/nowhere")
        assert status == 404 and body == b"not found: /nowhere"
        status, _, body = await c.request("DELETE", "/app/hono/users")
        assert status == 404

    run_gateway(data, scenario)


def test_close_stops_serving_and_the_gateway_stop_ends_the_run(tmp_path):
    data = deploy_js(tmp_path, "closer", CLOSER)

    async def scenario(c: Client):
        await c.wait_state("closer", "running")
        status, _, body = await c.request("GET", "/app/closer/x")
        assert status == 200 and body == b"open"
        status, _, body = await c.request("GET", "/app/closer/close")
        assert status == 200 and body == b"closing"
        # nothing is watched any more: the run ends normally and the gateway restarts it
        deadline = time.monotonic() + 30
        while True:
            _, status_body = await c.json("GET", "/app/closer")
            if status_body["restarts"] >= 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status_body["lastExit"]["error"] is None, status_body
        await c.wait_state("closer", "running")
        status, _, body = await c.request("GET", "/app/closer/y")
        assert status == 200 and body == b"open"
        # stopping ends channel 4: the server finishes by itself (not forced after the grace time)
        status, body = await c.json("POST", "/app/closer/stop")
        assert status == 200 and body["state"] == "stopped"
        assert body["lastExit"]["kind"] == "exit" and body["lastExit"]["error"] is None, body
        assert "server finished" in await logs_of(c, "closer")

    run_gateway(data, scenario)


def test_on_demand_js_app(tmp_path):
    data = tmp_path / "data"
    source = tmp_path / "od.js"
    source.write_text(ECHO)
    AppRecords(data).deploy(source, "od", on_demand=True)

    async def scenario(c: Client):
        for i in range(2):
            status, answer = await c.json("POST", f"/app/od/r{i}", data=b"payload")
            assert status == 200 and answer == {"method": "POST", "url": f"http://localhost/r{i}", "body": "payload"}
        deadline = time.monotonic() + 10
        while True:  # each run ends once its request is answered (the channel's end finishes the server)
            _, body = await c.json("GET", "/app/od")
            if body["live"] == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert body["live"] == 0 and body["runs"] == 2, body
        assert body["lastExit"]["kind"] == "exit", body  # finished by itself, not stopped after the grace time

    run_gateway(data, scenario)


QUERIES = """
const decode = (b) => new TextDecoder().decode(b);
const queries = WapoServer.serveQueries(async ({ path, payload, origin }) => {
  if (path === 'fail') throw new Error('no such thing: ' + decode(payload));
  if (path === 'bin') return new Uint8Array([0, 1, 255]);
  if (path === 'buffer') return new Uint16Array([1, 2]).buffer;
  if (path === 'bad') return 42;
  if (path === 'slow') await new Promise((r) => setTimeout(r, 20));
  return JSON.stringify({ path, payload: decode(payload), size: payload.length,
                          origin: origin && Array.from(origin, (b) => b.toString(16).padStart(2, '0')).join('') });
});
let again;
try { WapoServer.serveQueries(() => 'x'); again = 'twice?!'; } catch (e) { again = `${e.name}: ${e.message}`; }
WapoServer.serve(() => new Response(`http too; served ${queries.served}; ${again}`));
queries.finished.then(() => console.log('queries finished'));
"""


def test_js_app_answers_queries(tmp_path):
    data = deploy_js(tmp_path, "q", QUERIES)

    async def scenario(c: Client):
        await c.wait_state("q", "running")
        status, body = await c.json("POST", "/app/q/query/hello/wörld", data="data é".encode())
        assert status == 200 and body == {"path": "hello/wörld", "payload": "data é", "size": 7, "origin": None}
        origin = bytes(range(32)).hex()
        status, body = await c.json("POST", "/app/q/query/o", data=b"", headers={"X-Wapo-Origin": origin})
        assert status == 200 and body["origin"] == origin
        status, headers, body = await c.request("POST", "/app/q/query/bin")
        assert status == 200 and body == b"\x00\x01\xff" and headers["content-type"] == "application/octet-stream"
        status, _, body = await c.request("POST", "/app/q/query/buffer")
        assert status == 200 and body == b"\x01\x00\x02\x00"
        big = bytes(range(256)) * 1024
        status, body = await c.json("POST", "/app/q/query/big", data=big)
        assert status == 200 and body["size"] == len(big)
        # a handler that throws (or answers something that is not bytes): 500 with the app's message
        status, body = await c.json("POST", "/app/q/query/fail", data=b"x")
        assert status == 500 and body["appError"] == "no such thing: x", body
        status, body = await c.json("POST", "/app/q/query/bad")
        assert status == 500 and body["appError"] == \
            "WapoServer: a query reply must be a Uint8Array, ArrayBuffer or string, not number", body
        answers = await asyncio.gather(*(c.json("POST", "/app/q/query/slow", data=str(i).encode()) for i in range(20)))
        assert [a for a in answers] == [(200, {"path": "slow", "payload": str(i), "size": len(str(i)), "origin": None})
                                        for i in range(20)]
        status, _, body = await c.request("GET", "/app/q/")
        assert status == 200 and body == (b"http too; served 27; Error: WapoServer: the app already serves queries "
                                          b"(input channel 3 was opened before in this run)")
        deadline = time.monotonic() + 10
        while True:  # logs are written every second
            text = await logs_of(c, "q")
            if "no such thing: x" in text or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert 'the query handler failed for "fail"' in text and "no such thing: x" in text
        # stopping ends channel 3 too: the app finishes by itself
        status, body = await c.json("POST", "/app/q/stop")
        assert body["lastExit"]["kind"] == "exit" and body["lastExit"]["error"] is None, body
        assert "queries finished" in await logs_of(c, "q")
        assert body["restarts"] == 0

    run_gateway(data, scenario)


SIGNAL_APP = """
const aborted = [];
WapoServer.serve(async (req) => {
  const path = new URL(req.url).pathname;
  if (path === '/aborted') return Response.json(aborted);
  req.signal.addEventListener('abort', () => aborted.push([path, req.signal.reason.name]));
  if (path === '/slow') await new Promise((resolve) => setTimeout(resolve, 3000));
  return new Response('done ' + path);
});
"""


def test_request_signal_aborts_when_the_client_leaves(tmp_path):
    """A client that disconnects while the app works on its request aborts request.signal; one
    that waits for its answer does not."""
    data = deploy_js(tmp_path, "sig", SIGNAL_APP)

    async def scenario(c: Client):
        await c.wait_state("sig", "running")
        status, _, body = await c.request("GET", "/app/sig/fast")
        assert (status, body) == (200, b"done /fast")
        try:
            await asyncio.wait_for(c.request("GET", "/app/sig/slow"), 0.5)
        except asyncio.TimeoutError:
            pass  # the client gives up: its connection closes
        deadline = time.monotonic() + 10
        while True:
            status, aborted = await c.json("GET", "/app/sig/aborted")
            if aborted or time.monotonic() > deadline:
                return aborted

    assert run_gateway(data, scenario) == [["/slow", "AbortError"]]
