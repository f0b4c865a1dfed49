"""fetch: the host's HTTP client (aiohttp) behind host services, against a real aiohttp server on 127.0.0.1.

The server runs in its own thread and event loop (the guest's run blocks the
test's loop while wasm runs). Only 127.0.0.1 is contacted; the tests allow
127.0.0.1/32 explicitly, since loopback is denied by default.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web
from test_net_tcp import pki, server_context  # noqa: F401  (the test CA fixture)

from wapo.host import Limits
from wapo.host.net.policy import AddressPolicy, HttpLimits, NetworkPolicy
from wapo.host.net.fetch import open_counts
from wapo.js.runner import js_instance, run_js, run_js_async

ALLOW = ("127.0.0.1/32",)
CHUNK = bytes(range(256)) * 256  # 64 KiB


class Server:
    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: web.AppRunner | None = None
        self.port = 0

    # --- handlers ---
    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({
            "method": request.method, "path": request.path_qs,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode("latin-1"), "chunked": request.headers.get("Transfer-Encoding") == "chunked"},
            headers={"X-Reply": "yes", "Set-Cookie": "a=1"})

    async def raw(self, request: web.Request) -> web.Response:
        return web.Response(body=await request.read(), content_type=request.content_type)

    async def status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}")

    async def redirect(self, request: web.Request) -> web.Response:
        code, n = int(request.match_info["code"]), int(request.match_info["n"])
        target = f"/redirect/{code}/{n - 1}" if n > 1 else "/echo"
        return web.Response(status=code, headers={"Location": target})

    async def to(self, request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["url"]})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        total = int(request.match_info["n"])
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if request.query.get("declare"):
            resp.content_length = total
        await resp.prepare(request)
        sent = 0
        while sent < total:
            part = CHUNK[:min(len(CHUNK), total - sent)]
            await resp.write(part)
            sent += len(part)
        await resp.write_eof()
        return resp

    async def slow(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for part in (b"one,", b"two,", b"three"):
            await resp.write(part)
            await asyncio.sleep(0.15)
        await resp.write_eof()
        return resp

    async def endless(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                await resp.write(CHUNK[:16384])
                await asyncio.sleep(0.005)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def delay(self, request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "0.3")))
        return web.Response(text="late")

    async def busy(self, request: web.Request) -> web.Response:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(0.15)
        finally:
            self.active -= 1
        return web.Response(text="ok")

    def connections(self) -> int:
        assert self.runner is not None and self.runner.server is not None
        return len(self.runner.server.connections)

    # --- lifecycle ---
    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            self.loop = asyncio.new_event_loop()
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/echo", self.echo)
            app.router.add_route("*", "/raw", self.raw)
            app.router.add_route("*", "/status/{code}", self.status)
            app.router.add_route("*", "/redirect/{code}/{n}", self.redirect)
            app.router.add_get("/to", self.to)
            app.router.add_get("/stream/{n}", self.stream)
            app.router.add_get("/slow", self.slow)
            app.router.add_get("/endless", self.endless)
            app.router.add_get("/delay", self.delay)
            app.router.add_get("/busy", self.busy)
            self.runner = web.AppRunner(app, shutdown_timeout=0.5)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())
            self.loop.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert ready.wait(10), "the test server did not start"

    def stop(self) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def server():
    s = Server()
    s.start()
    yield s
    s.stop()


def run(server: Server, code: str, *, allow=ALLOW, http: HttpLimits | None = None, **limits):
    """Run ``code`` as a module (top-level await) with BASE = the server's URL."""
    limits.setdefault("time", 20)
    network = NetworkPolicy(allow=allow, http=http or HttpLimits())
    code = f"const BASE = 'http://127.0.0.1:{server.port}';\n" + code
    return run_js(code, limits=Limits(**limits), module=True, network=network)


def output(result) -> object:
    assert result.ok, result.error and result.error.describe()
    return json.loads(result.output)


# --- the address policy, without a guest ---------------------------------------------------

def test_policy_denies_special_ranges_and_allows_cidrs():
    p = AddressPolicy()
    for addr, why in [("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
                      ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd12::1", "private"),
                      ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
                      ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
                      ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
                      ("::ffff:127.0.0.1", "loopback"), ("64:ff9b::a00:1", "private")]:
        assert p.reason(addr) == why, addr
    for addr in ("8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1"):
        assert p.reason(addr) is None, addr
    allowed = AddressPolicy.from_cidrs(["127.0.0.1/32", "10.0.0.0/8"])
    assert allowed.reason("127.0.0.1") is None and allowed.reason("10.9.9.9") is None
    assert allowed.reason("127.0.0.2") == "loopback" and allowed.reason("::1") == "loopback"


# --- requests and responses -------------------------------------------------------------------

def test_get_text_with_headers_both_ways(server):
    r = run(server, """
        const res = await fetch(BASE + '/echo?x=1', {headers: {'X-Custom': 'abc', 'Accept': 'application/json'}});
        const body = await res.json();
        scriptOutput = JSON.stringify({status: res.status, ok: res.ok, statusText: res.statusText,
            reply: res.headers.get('x-reply'), type: res.headers.get('content-type'), url: res.url,
            redirected: res.redirected, body});
    """)
    out = output(r)
    assert out["status"] == 200 and out["ok"] and out["statusText"] == "OK"
    assert out["reply"] == "yes" and out["type"].startswith("application/json")
    assert out["url"] == f"http://127.0.0.1:{server.port}/echo?x=1" and out["redirected"] is False
    assert out["body"]["method"] == "GET" and out["body"]["path"] == "/echo?x=1"
    assert out["body"]["headers"]["x-custom"] == "abc"
    assert out["body"]["headers"]["accept"] == "application/json"


def test_post_text_json_and_bytes_bodies(server):
    r = run(server, """
        const a = await (await fetch(BASE + '/echo', {method: 'POST', body: 'héllo'})).json();
        const b = await (await fetch(BASE + '/echo', {method: 'PUT', body: JSON.stringify({k: [1, 2]}),
                                                       headers: {'content-type': 'application/json'}})).json();
        const bytes = new Uint8Array(300).map((_, i) => i & 255);
        const raw = new Uint8Array(await (await fetch(BASE + '/raw', {method: 'POST', body: bytes})).arrayBuffer());
        scriptOutput = JSON.stringify({a, b, same: raw.length === 300 && raw.every((v, i) => v === (i & 255))});
    """)
    out = output(r)
    assert out["a"]["method"] == "POST" and out["a"]["body"].encode("latin-1").decode() == "héllo"
    assert out["a"]["headers"]["content-type"].startswith("text/plain")
    assert out["b"]["method"] == "PUT" and json.loads(out["b"]["body"]) == {"k": [1, 2]}
    assert out["b"]["headers"]["content-type"] == "application/json"
    assert out["same"] is True


def test_404_passes_through(server):
    out = output(run(server, """
        const res = await fetch(BASE + '/status/404');
        scriptOutput = JSON.stringify([res.status, res.ok, await res.text()]);
    """))
    assert out == [404, False, "status 404"]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_follow_with_fetch_method_rules(server, code):
    out = output(run(server, f"""
        const get = await fetch(BASE + '/redirect/{code}/2');
        const post = await fetch(BASE + '/redirect/{code}/1', {{method: 'POST', body: 'data'}});
        const g = await get.json(), p = await post.json();
        scriptOutput = JSON.stringify({{get: [get.status, get.redirected, get.url, g.method],
                                        post: [p.method, p.body]}});
    """))
    assert out["get"] == [200, True, f"http://127.0.0.1:{server.port}/echo", "GET"]
    if code in (307, 308):
        assert out["post"] == ["POST", "data"]
    else:
        assert out["post"] == ["GET", ""]


def test_redirect_cap_manual_and_error_modes(server):
    out = output(run(server, """
        const results = {};
        const ok = await fetch(BASE + '/redirect/302/20');
        results.twenty = ok.status;
        try { await fetch(BASE + '/redirect/302/21'); results.cap = 'resolved' }
        catch (e) { results.cap = [e.constructor.name, e.message] }
        const manual = await fetch(BASE + '/redirect/301/1', {redirect: 'manual'});
        results.manual = [manual.status, manual.headers.get('location')];
        try { await fetch(BASE + '/redirect/307/1', {redirect: 'error'}); results.error = 'resolved' }
        catch (e) { results.error = [e.constructor.name, e.message] }
        scriptOutput = JSON.stringify(results);
    """))
    assert out["twenty"] == 200
    assert out["cap"][0] == "TypeError" and "more than 20 redirects" in out["cap"][1]
    assert out["manual"] == [301, "/echo"]
    assert out["error"][0] == "TypeError" and "redirect" in out["error"][1]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_refused_address_when_not_allowed(server, host):
    out = output(run(server, f"""
        try {{ await fetch('http://{host}:' + BASE.split(':')[2] + '/echo'); scriptOutput = 'resolved' }}
        catch (e) {{ scriptOutput = JSON.stringify([e.constructor.name, e.message]) }}
    """, allow=()))
    assert out[0] == "TypeError"
    assert "fetch failed: address" in out[1] and "127.0.0.1" in out[1] and "is not allowed (loopback)" in out[1]


def test_policy_checked_on_every_redirect_hop(server):
    # allowed: 127.0.0.1; the redirect goes to 127.0.0.2 (loopback, not allowed)
    out = output(run(server, f"""
        try {{ await fetch(BASE + '/to?url=' + encodeURIComponent('http://127.0.0.2:{server.port}/echo'));
              scriptOutput = '"resolved"' }}
        catch (e) {{ scriptOutput = JSON.stringify([e.constructor.name, e.message]) }}
    """))
    assert out[0] == "TypeError" and out[1].startswith("fetch failed: address 127.0.0.2 is not allowed (loopback)")
    assert "--allow-address 127.0.0.2/32" in out[1]


def test_unsupported_scheme_is_a_type_error(server):
    out = output(run(server, """
        try { await fetch('ftp://example.com/x'); scriptOutput = '"resolved"' }
        catch (e) { scriptOutput = JSON.stringify([e.constructor.name, e.message]) }
    """))
    assert out[0] == "TypeError"


def test_timeout(server):
    started = time.monotonic()
    out = output(run(server, """
        try { await fetch(BASE + '/delay?s=3'); scriptOutput = '"resolved"' }
        catch (e) { scriptOutput = JSON.stringify([e.constructor.name, e.message]) }
    """, http=HttpLimits(timeout=0.3)))
    assert time.monotonic() - started < 2.5
    assert out[0] == "TypeError" and "0.3 s fetch timeout" in out[1]


@pytest.mark.parametrize("declare", [True, False])
def test_oversized_response_is_a_type_error(server, declare):
    q = "?declare=1" if declare else ""
    out = output(run(server, f"""
        try {{ const res = await fetch(BASE + '/stream/3000000{q}'); await res.arrayBuffer();
              scriptOutput = '"resolved"' }}
        catch (e) {{ scriptOutput = JSON.stringify([e.constructor.name, e.message]) }}
    """, http=HttpLimits(max_response_size=1_000_000)))
    assert out[0] == "TypeError" and "exceeds the 976.6 KiB limit" in out[1]


def test_slow_body_delivered_in_pieces(server):
    out = output(run(server, """
        const res = await fetch(BASE + '/slow');
        const reader = res.body.getReader();
        const pieces = [];
        const dec = new TextDecoder();
        for (;;) { const {value, done} = await reader.read(); if (done) break; pieces.push(dec.decode(value)); }
        scriptOutput = JSON.stringify(pieces);
    """))
    assert "".join(out) == "one,two,three" and len(out) >= 3


def test_streamed_request_body(server):
    out = output(run(server, """
        let i = 0;
        const stream = new ReadableStream({
            pull(controller) {
                if (i === 50) { controller.close(); return; }
                controller.enqueue(new TextEncoder().encode('part' + (i++) + ';'));
            },
        });
        const res = await fetch(BASE + '/echo', {method: 'POST', body: stream, duplex: 'half'});
        const j = await res.json();
        scriptOutput = JSON.stringify([j.chunked, j.body.length, j.body.slice(0, 12)]);
    """))
    assert out == [True, len("".join(f"part{i};" for i in range(50))), "part0;part1;"]


def test_concurrent_fetches_are_limited(server):
    server.max_active = 0
    out = output(run(server, """
        const all = await Promise.all(Array.from({length: 8}, () => fetch(BASE + '/busy').then(r => r.text())));
        scriptOutput = JSON.stringify(all);
    """, http=HttpLimits(max_concurrent=3)))
    assert out == ["ok"] * 8
    assert server.max_active == 3


# --- aborts -----------------------------------------------------------------------------------

def test_abort_before_start_and_mid_body(server):
    out = output(run(server, """
        const results = {};
        const c1 = new AbortController(); c1.abort();
        try { await fetch(BASE + '/echo', {signal: c1.signal}); } catch (e) { results.before = [e.name, e instanceof DOMException]; }
        const c2 = new AbortController();
        const p = fetch(BASE + '/delay?s=2', {signal: c2.signal});
        setTimeout(() => c2.abort(), 50);
        try { await p } catch (e) { results.head = e.name; }
        const c3 = new AbortController();
        const res = await fetch(BASE + '/endless', {signal: c3.signal});
        const reader = res.body.getReader();
        let got = 0;
        try {
            for (;;) { const {value, done} = await reader.read(); if (done) break; got += value.length;
                       if (got > 100000) c3.abort(new Error('enough')); }
        } catch (e) { results.mid = e.message; }
        results.got = got > 100000;
        scriptOutput = JSON.stringify(results);
    """))
    assert out == {"before": ["AbortError", True], "head": "AbortError", "mid": "enough", "got": True}


def test_a_thousand_aborted_fetches_leave_nothing_open(server):
    seen = []
    code = f"const BASE = 'http://127.0.0.1:{server.port}';\n" + """
        const sleep = (ms) => new Promise(r => setTimeout(r, ms));
        await sleep(1);  // the guest's own timer resource exists from here on
        // log, then wait: the host sees the line when the step ends, in both thread modes
        console.log('before');
        await sleep(1);
        for (let i = 0; i < 1000; i++) {
            const c = new AbortController();
            const kind = i % 3;
            try {
                if (kind === 0) { c.abort(); await fetch(BASE + '/echo', {signal: c.signal}); }
                else if (kind === 1) { const p = fetch(BASE + '/delay?s=0.5', {signal: c.signal});
                                       await sleep(1); c.abort(); await p; }
                else { const res = await fetch(BASE + '/endless', {signal: c.signal});
                       const r = res.body.getReader(); await r.read(); c.abort(); await r.read(); }
            } catch (e) { if (e.name !== 'AbortError') throw e; }
        }
        await sleep(200);
        console.log('after');
        await sleep(1);
    """
    inst = js_instance(code, limits=Limits(time=50), module=True, network=NetworkPolicy(allow=ALLOW),
                       on_log=lambda rec: seen.append((rec.message, len(inst._state.resources), open_counts())))
    result = asyncio.run(inst.run())
    assert result.ok, result.error and result.error.describe()
    (m1, res_before, counts_before), (m2, res_after, counts_after) = seen
    assert (m1, m2) == ("before", "after")
    assert res_after == res_before, "guest resources leaked"
    assert counts_after == counts_before == {"fetches": 0, "sessions": 0}
    deadline = time.monotonic() + 5
    while server.connections() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.connections() == 0


# --- big bodies, bounded memory ---------------------------------------------------------------

def test_fifty_megabytes_stream_through_a_small_guest(server):
    size = 50 * 1000 * 1000
    peak = []
    code = f"const BASE = 'http://127.0.0.1:{server.port}';\n" + f"""
        const res = await fetch(BASE + '/stream/{size}');
        const reader = res.body.getReader();
        let n = 0, chunks = 0;
        for (;;) {{ const {{value, done}} = await reader.read(); if (done) break; n += value.length; chunks++; }}
        console.log('done');
        await new Promise(r => setTimeout(r, 1));  // the line is seen at the end of this step
        scriptOutput = JSON.stringify([n, chunks]);
    """
    inst = js_instance(code, limits=Limits(memory=32 * 1024 * 1024, time=40), module=True,
                       network=NetworkPolicy(allow=ALLOW),
                       on_log=lambda rec: peak.append(inst._state.memory.size()))
    result = asyncio.run(inst.run())
    out = output(result)
    assert out[0] == size and out[1] > 50
    print(f"50 MB streamed; guest linear memory at the end: {peak[0] / 2**20:.1f} MiB")
    assert peak[0] <= 32 * 1024 * 1024


# --- an extra CA (--tls-ca) -----------------------------------------------------------

def test_fetch_trusts_the_extra_ca_only_when_given(pki: dict[str, Path]) -> None:
    """NetworkPolicy.tls_extra_ca (--tls-ca) also covers fetch: an HTTPS server signed by the test
    CA answers with it, and fails verification without it."""
    async def scenario() -> tuple[object, object]:
        async def hello(request: web.Request) -> web.Response:
            return web.Response(text="secure hello")

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(pki))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        code = f"""
          fetch("https://localhost:{port}/").then(r => r.text()).then(t => {{ scriptOutput = t; }},
                                                                     e => {{ scriptOutput = "failed: " + e.message; }});
        """
        try:
            with_ca = await run_js_async(code, limits=Limits(time=20), network=NetworkPolicy(
                allow=("127.0.0.0/8",), tls_extra_ca=str(pki["ca"])))
            without = await run_js_async(code, limits=Limits(time=20), network=NetworkPolicy(allow=("127.0.0.0/8",)))
        finally:
            await runner.cleanup()
        return with_ca, without

    with_ca, without = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert with_ca.output == b"secure hello", with_ca
    assert without.output.startswith(b"failed: ") and b"certificate" in without.output.lower(), without
