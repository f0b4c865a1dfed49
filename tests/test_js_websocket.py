"""The WebSocket global against a real aiohttp WebSocket server on 127.0.0.1.

The server runs in its own thread and event loop. Loopback is denied by default: the runs
allow 127.0.0.1/32 explicitly.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
from aiohttp import WSMsgType, web

from wapo.host import Limits
from wapo.host.net.policy import NetworkPolicy
from wapo.host.net import websocket as ws_service
from wapo.js.runner import js_instance, run_js

ALLOW = ("127.0.0.1/32",)


class Server:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port = 0
        # close codes by the connection's ?tag= (a late close of an earlier test's socket cannot mix in)
        self.closed_by_tag: dict[str, list[int | None]] = {}

    async def echo(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat", "superchat"), max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                if msg.data.startswith("close-me:"):
                    _, code, reason = msg.data.split(":", 2)
                    await ws.close(code=int(code), message=reason.encode())
                    break
                if msg.data.startswith("send-big:"):
                    await ws.send_bytes(b"x" * int(msg.data.split(":")[1]))
                    continue
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        self.closed_by_tag.setdefault(request.query.get("tag", ""), []).append(ws.close_code)
        return ws

    async def bye(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hi")
        await ws.close(code=4001, message=b"bye now")
        return ws

    async def plain(self, request: web.Request) -> web.Response:
        return web.Response(text="not a websocket")

    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            self.loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/echo", self.echo)
            app.router.add_get("/bye", self.bye)
            app.router.add_get("/plain", self.plain)
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
        assert ready.wait(10)

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


PRELUDE = """
const events = (ws) => new Promise((resolve) => {
    const log = [];
    ws.onopen = () => log.push(['open', ws.readyState, ws.protocol]);
    ws.onmessage = (e) => log.push(['message', typeof e.data === 'string' ? e.data
        : e.data instanceof ArrayBuffer ? 'ab:' + e.data.byteLength : 'blob:' + e.data.size]);
    ws.onerror = (e) => log.push(['error', String(e.message)]);
    ws.onclose = (e) => { log.push(['close', e.code, e.reason, e.wasClean, ws.readyState]); resolve(log); };
});
const opened = (ws) => new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, {once: true});
    ws.addEventListener('close', (e) => reject(new Error('closed ' + e.code)), {once: true});
});
const next = (ws) => new Promise((resolve) => ws.addEventListener('message', (e) => resolve(e.data), {once: true}));
"""


def run(server: Server, code: str, *, allow=ALLOW, **limits):
    limits.setdefault("time", 20)
    prefix = f"const BASE = 'ws://127.0.0.1:{server.port}';\n" + PRELUDE
    return run_js(prefix + code, limits=Limits(**limits), module=True, network=NetworkPolicy(allow=allow))


def wait_codes(server: Server, tag: str, n: int = 1) -> list:
    """The close codes the server saw on the connections to /echo?tag=``tag`` (its handler records
    one after the client's run may end)."""
    deadline = time.monotonic() + 5
    while len(server.closed_by_tag.get(tag, ())) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.closed_by_tag.get(tag, [])


def output(result):
    assert result.ok, result.error and result.error.describe()
    return json.loads(result.output)


def test_text_and_binary_round_trip(server):
    out = output(run(server, """
        const ws = new WebSocket(BASE + '/echo', ['superchat']);
        const res = {state0: ws.readyState, url: ws.url, binaryType: ws.binaryType};
        await opened(ws);
        res.open = [ws.readyState, ws.protocol, ws.extensions];
        ws.send('héllo');
        res.text = await next(ws);
        ws.binaryType = 'arraybuffer';
        ws.send(new Uint8Array([1, 2, 3, 250]));
        res.ab = Array.from(new Uint8Array(await next(ws)));
        ws.send(new Uint16Array([1, 2]).subarray(1));
        res.view = Array.from(new Uint8Array(await next(ws)));
        ws.binaryType = 'blob';
        ws.send(new Blob(['blob ', 'body']));
        ws.send('after the blob');
        const blob = await next(ws);
        res.blob = [blob instanceof Blob, await blob.text()];
        res.order = await next(ws);
        ws.binaryType = 'nonsense';
        res.bt = ws.binaryType;
        res.buffered = ws.bufferedAmount;
        res.consts = [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED, ws.OPEN];
        ws.close();
        res.closing = ws.readyState;
        scriptOutput = JSON.stringify(res);
    """))
    assert out["state0"] == 0 and out["url"].endswith("/echo") and out["binaryType"] == "blob"
    assert out["open"] == [1, "superchat", ""]
    assert out["text"] == "héllo"
    assert out["ab"] == [1, 2, 3, 250] and out["view"] == [2, 0]
    assert out["blob"] == [True, "blob body"] and out["order"] == "after the blob"
    assert out["bt"] == "blob" and out["buffered"] == 0
    assert out["consts"] == [0, 1, 2, 3, 1] and out["closing"] == 2


def test_client_close_codes_and_validation(server):
    out = output(run(server, """
        const res = {};
        const bad = (f) => { try { f(); return 'ok' } catch (e) { return e.name } };
        res.ctor = ['ftp://x/', BASE + '/echo#frag', 'not a url'].map((u) => bad(() => new WebSocket(u)));
        res.proto = [['a b'], ['x', 'x'], ['']].map((p) => bad(() => new WebSocket(BASE + '/echo', p)));
        const ws = new WebSocket(BASE.replace('ws:', 'http:') + '/echo?tag=codes');
        res.url = ws.url.slice(0, 6);
        res.sendEarly = bad(() => ws.send('x'));
        const log = events(ws);
        await opened(ws);
        res.codes = [1001, 2999, 5000, 0].map((c) => bad(() => ws.close(c)));
        res.reason = bad(() => ws.close(1000, 'x'.repeat(124)));
        ws.close(4000, 'done');
        ws.close(4001, 'ignored');
        ws.send('after close');
        res.bufferedAfterClose = ws.bufferedAmount;
        res.log = await log;
        scriptOutput = JSON.stringify(res);
    """))
    assert out["ctor"] == ["SyntaxError"] * 3
    assert out["proto"] == ["SyntaxError"] * 3
    assert out["url"] == "ws://1" and out["sendEarly"] == "InvalidStateError"
    assert out["codes"] == ["InvalidAccessError"] * 4 and out["reason"] == "SyntaxError"
    assert out["bufferedAfterClose"] == len("after close")
    # the event has the code of the server's close frame: aiohttp answers 1000 (it does not echo)
    assert out["log"][-1] == ["close", 1000, "", True, 3]
    assert ["error"] not in [e[:1] for e in out["log"]]
    assert wait_codes(server, "codes") == [4000]


def test_server_initiated_close(server):
    out = output(run(server, """
        const ws = new WebSocket(BASE + '/bye');
        scriptOutput = JSON.stringify(await events(ws));
    """))
    assert out == [["open", 1, ""], ["message", "hi"], ["close", 4001, "bye now", True, 3]]
    out = output(run(server, """
        const ws = new WebSocket(BASE + '/echo');
        const log = events(ws);
        await opened(ws);
        ws.send('close-me:4321:server says so');
        scriptOutput = JSON.stringify(await log);
    """))
    assert out[-1] == ["close", 4321, "server says so", True, 3]


def test_message_over_the_size_limit_closes_1009(server, monkeypatch):
    monkeypatch.setattr(ws_service, "LIMITS", ws_service.WebSocketLimits(max_message_size=1024 * 1024))
    out = output(run(server, """
        const ws = new WebSocket(BASE + '/echo?tag=big');
        ws.binaryType = 'arraybuffer';
        const log = events(ws);
        await opened(ws);
        ws.send('send-big:' + (1024 * 1024));
        ws.send('send-big:' + (1024 * 1024 + 1));
        scriptOutput = JSON.stringify(await log);
    """))
    assert out[0][0] == "open" and out[1] == ["message", "ab:1048576"]
    assert out[2][0] == "error" and "larger than the limit (1048576 bytes)" in out[2][1]
    assert out[3] == ["close", 1009, "", False, 3]
    assert wait_codes(server, "big") == [1009]


def test_default_limit_is_16_mib(server):
    out = output(run(server, """
        const ws = new WebSocket(BASE + '/echo');
        const log = events(ws);
        await opened(ws);
        ws.send('send-big:' + (16 * 1024 * 1024));
        ws.send('send-big:' + (16 * 1024 * 1024 + 1));
        scriptOutput = JSON.stringify(await log);
    """, memory=256 * 1024 * 1024))
    assert out[1] == ["message", f"blob:{16 * 1024 * 1024}"]
    assert out[2][0] == "error" and out[3][:2] == ["close", 1009]


def test_refused_address_and_connection_failures(server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    out = output(run(server, f"""
        const res = {{}};
        res.denied = await events(new WebSocket(BASE + '/echo'));
        res.localhost = await events(new WebSocket('ws://localhost:{server.port}/echo'));
        scriptOutput = JSON.stringify(res);
    """, allow=()))
    for key in ("denied", "localhost"):
        (ev, msg), close = out[key]
        assert ev == "error" and "not allowed (loopback)" in msg, out
        assert close == ["close", 1006, "", False, 3]
    out = output(run(server, f"""
        const res = {{}};
        res.refused = await events(new WebSocket('ws://127.0.0.1:{closed_port}/'));
        res.plain = await events(new WebSocket(BASE + '/plain'));
        const early = new WebSocket(BASE + '/echo');
        const log = events(early);
        early.close();
        res.early = [early.readyState, await log];
        scriptOutput = JSON.stringify(res);
    """))
    assert out["refused"][0][0] == "error" and "cannot connect" in out["refused"][0][1]
    assert out["refused"][1] == ["close", 1006, "", False, 3]
    assert out["plain"][0][0] == "error" and "upgrade" in out["plain"][0][1]
    assert out["early"][0] == 2 and out["early"][1][0][0] == "error"
    assert out["early"][1][1] == ["close", 1006, "", False, 3]


def test_event_classes():
    out = output(run_js("""
        const m = new MessageEvent('message', {data: 5, origin: 'o'});
        const c = new CloseEvent('close', {code: 4000, reason: 'r', wasClean: true});
        scriptOutput = JSON.stringify([m.data, m.origin, m.lastEventId, m.ports.length, m instanceof Event,
            c.code, c.reason, c.wasClean, c instanceof Event, String(new CloseEvent('x').code),
            Object.prototype.toString.call(WebSocket.prototype)]);
    """, limits=Limits(time=10)))
    assert out == [5, "o", "", 0, True, 4000, "r", True, True, "0", "[object WebSocket]"]


def test_echo_round_trip_latency(server):
    out = output(run(server, """
        const ws = new WebSocket(BASE + '/echo');
        await opened(ws);
        const times = [];
        for (let i = 0; i < 200; i++) {
            const t0 = performance.now();
            ws.send('ping ' + i);
            const got = await next(ws);
            if (got !== 'ping ' + i) throw new Error('out of order: ' + got);
            times.push(performance.now() - t0);
        }
        ws.close();
        times.sort((a, b) => a - b);
        scriptOutput = JSON.stringify({median: times[100], p90: times[180], max: times[199]});
    """))
    print(f"\nWebSocket echo round trip from JS (200 messages): median {out['median']:.3f} ms, "
          f"p90 {out['p90']:.3f} ms, max {out['max']:.3f} ms")
    assert out["median"] < 50


def test_resources_are_freed(server):
    seen = []
    code = f"const BASE = 'ws://127.0.0.1:{server.port}';\n" + PRELUDE + """
        const sleep = (ms) => new Promise(r => setTimeout(r, ms));
        await sleep(1);
        console.log('before');
        for (let i = 0; i < 60; i++) {
            const ws = new WebSocket(BASE + '/echo');
            const log = events(ws);
            if (i % 3 === 0) ws.close();
            else { await opened(ws); ws.send('x'); if (i % 3 === 1) ws.close(); else ws.send('close-me:4000:x'); }
            await log;
        }
        await sleep(50);
        console.log('after');
    """
    inst = js_instance(code, limits=Limits(time=30), module=True, network=NetworkPolicy(allow=ALLOW),
                       on_log=lambda rec: seen.append((len(inst._state.resources), dict(ws_service.STATS))))
    result = asyncio.run(inst.run())
    assert result.ok, result.error and result.error.describe()
    assert seen[0] == seen[1], "guest resources leaked"
    assert seen[1][1] == {"websockets": 0}


def test_wss_with_the_policy_extra_ca(server, tmp_path):
    import ssl

    from test_js_sockets import make_ca_and_server_cert

    ca, cert, key = make_ca_and_server_cert()
    (tmp_path / "ca.pem").write_bytes(ca)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def start_tls_site():
        site = web.TCPSite(server.runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    assert server.loop is not None
    port = asyncio.run_coroutine_threadsafe(start_tls_site(), server.loop).result(10)
    code = PRELUDE + f"""
        const ws = new WebSocket('wss://localhost:{port}/echo');
        const log = events(ws);
        ws.onopen = () => ws.send('over tls');
        ws.onmessage = (e) => ws.close(1000, 'thanks');
        scriptOutput = JSON.stringify(await log);
    """
    ok = output(run_js(code, limits=Limits(time=20), module=True,
                       network=NetworkPolicy(allow=ALLOW, tls_extra_ca=str(tmp_path / "ca.pem"))))
    assert ok[-1][:2] == ["close", 1000] and ok[-1][3] is True, ok
    bad = output(run_js(code, limits=Limits(time=20), module=True, network=NetworkPolicy(allow=ALLOW)))
    assert bad[0][0] == "error" and "certificate" in bad[0][1].lower(), bad
    assert bad[1] == ["close", 1006, "", False, 3]


def test_reference_callback_api(server):
    """Wapo.wsOpen / wsSend / wsClose, the reference's callback-style names, over the same machinery."""
    out = output(run(server, """
        const log = [];
        await new Promise((resolve) => {
            const h = Wapo.wsOpen({url: BASE + '/echo'}, (cmd, msg) => {
                if (cmd === 'open') { Wapo.wsSend(msg, {kind: 'text', data: 'hi'}); Wapo.wsSend(msg, new Uint8Array([1, 2])); }
                else if (cmd === 'message' && msg.kind === 'text') log.push(['text', msg.data]);
                else if (cmd === 'message' && msg.kind === 'binary') { log.push(['binary', Array.from(msg.data)]); Wapo.wsClose(h, 1000, 'done'); }
                else if (cmd === 'message' && msg.kind === 'close') { log.push(['close', msg.code]); resolve(); }
                else log.push([cmd, String(msg)]);
            });
        });
        scriptOutput = JSON.stringify(log);
    """))
    assert out == [["text", "hi"], ["binary", [1, 2]], ["close", 1000]]


def test_the_message_limit_is_a_flag_of_exec(server, tmp_path):
    """`wapo exec --ws-max-message SIZE` sets the limit: one byte over it closes with 1009."""
    import subprocess
    import sys

    script = tmp_path / "big.mjs"
    script.write_text(f"const BASE = 'ws://127.0.0.1:{server.port}';\n" + PRELUDE + """
        const ws = new WebSocket(BASE + '/echo');
        ws.binaryType = 'arraybuffer';
        const log = events(ws);
        await opened(ws);
        ws.send('send-big:1000');
        ws.send('send-big:1001');
        scriptOutput = JSON.stringify(await log);
    """)
    p = subprocess.run([sys.executable, "-m", "wapo.cli.main", "exec", str(script), "--ws-max-message", "1000B",
                        "--allow-address", "127.0.0.1/32", "--time-limit", "20s"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out[1] == ["message", "ab:1000"] and out[3][:2] == ["close", 1009], out
    bad = subprocess.run([sys.executable, "-m", "wapo.cli.main", "exec", str(script), "--ws-max-message", "lots"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--ws-max-message" in bad.stderr
