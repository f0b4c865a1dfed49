"""JS apps on their own port and with WebSockets (WapoServer.serve(handler, {port}),
WapoServer.upgradeWebSocket): a real gateway and real aiohttp clients on 127.0.0.1.

The same handler answers through the gateway (``/app/<id>/...``) and over the app's own port
(``wapo deploy --listen PORT``); both are checked with the same exchanges.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp
import pytest

from test_js_server import Client, run_gateway
from wapo.store.apps import AppRecords
from wapo.host import Limits
from wapo.host.net.policy import NetworkPolicy
from wapo.host import services
from wapo.host.net import websocket as ws_service
from wapo.js.runner import js_instance

WS_APP = """
const PORT = __PORT__;
const closes = [];
WapoServer.serve(async (req) => {
  const url = new URL(req.url);
  const path = url.pathname;
  if (path === '/closes') return Response.json(closes);
  if (path === '/crash') { setTimeout(() => { throw new Error('crash on purpose'); }); return new Response('crashing'); }
  if (path === '/ws' || path === '/chat' || path === '/refuse') {
    const { socket, response } = WapoServer.upgradeWebSocket(req, path === '/chat' ? { protocol: 'chat' } : undefined);
    socket.onopen = () => socket.send(`open ${socket.protocol} ${socket.readyState} ${socket.binaryType}`);
    socket.onmessage = (e) => {
      if (typeof e.data !== 'string') return socket.send(e.data);  // binary echo (an ArrayBuffer)
      if (e.data.startsWith('close:')) {
        const [, code, reason] = e.data.split(':');
        return socket.close(Number(code), reason);
      }
      if (e.data === 'blob') return socket.send(new Blob(['blob ', new Uint8Array([98, 121, 116, 101, 115])]));
      if (e.data === 'view') return socket.send(new Uint16Array([1, 2]));
      socket.send('echo:' + e.data);
    };
    socket.addEventListener('close', (e) => closes.push([path, e.code, e.reason, e.wasClean]));
    if (path === '/refuse') return new Response('no sockets here', { status: 403 });
    return response;
  }
  if (path === '/not-upgrade' || path === '/foreign') {
    const r = path === '/foreign' ? new Request('http://x/', { headers: { upgrade: 'websocket' } }) : req;
    try { WapoServer.upgradeWebSocket(r); return new Response('upgraded?!'); }
    catch (e) { return new Response(`${e.name}: ${e.message}`, { status: 400 }); }
  }
  return new Response(`http ${req.method} ${path}${url.search} ${await req.text()}`);
}, PORT ? { port: PORT } : undefined);
"""

UPGRADE = ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deploy(tmp_path, app_id: str, code: str, listen: int | None = None):
    data = tmp_path / "data"
    source = tmp_path / f"{app_id}.js"
    source.write_text(code)
    AppRecords(data).deploy(source, app_id, listen=listen)
    return data


async def wait_for(probe, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def closes(session: aiohttp.ClientSession, base: str) -> list:
    async with session.get(base + "/closes") as r:
        return await r.json()


async def exercise(session: aiohttp.ClientSession, base: str) -> None:
    """HTTP and WebSocket exchanges against one base URL (the gateway's app route or the own port)."""
    async with session.post(base + "/some/path?q=1", data=b"body") as r:
        assert r.status == 200 and await r.text() == "http POST /some/path?q=1 body"
    ws_base = "ws" + base[len("http"):]
    before = len(await closes(session, base))
    # echo, text and binary; the client closes
    async with session.ws_connect(ws_base + "/ws") as ws:
        assert await ws.receive_str(timeout=10) == "open  1 arraybuffer"
        for text in ("hi", "", "é" * 1000):
            await ws.send_str(text)
            assert await ws.receive_str(timeout=10) == "echo:" + text
        for data in (b"\x00\x01\xff", bytes(range(256)) * 300):
            await ws.send_bytes(data)
            assert await ws.receive_bytes(timeout=10) == data
        await ws.send_str("blob")
        assert await ws.receive_bytes(timeout=10) == b"blob bytes"
        await ws.send_str("view")
        assert await ws.receive_bytes(timeout=10) == b"\x01\x00\x02\x00"
        await ws.close(code=4000, message=b"client bye")
    # a subprotocol; the app closes
    async with session.ws_connect(ws_base + "/chat", protocols=("other", "chat")) as ws:
        assert ws.protocol == "chat"
        assert await ws.receive_str(timeout=10) == "open chat 1 arraybuffer"
        await ws.send_str("close:4001:app bye")
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 4001 and msg.extra == "app bye"
    # the app sees both closes, clean (the code of the peer's close frame: aiohttp's client answers 1000)
    seen = (await wait_for(lambda: _closes_of(session, base, before + 2), "two close events"))[before:]
    assert seen[0] == ["/ws", 4000, "client bye", True], seen
    assert seen[1][0] == "/chat" and seen[1][1] in (4001, 1000) and seen[1][3] is True, seen


async def _closes_of(session, base, n):
    got = await closes(session, base)
    return got if len(got) >= n else None


def test_websocket_and_http_through_the_gateway_and_the_own_port(tmp_path):
    port = free_port()
    data = deploy(tmp_path, "wsapp", WS_APP.replace("__PORT__", str(port)), listen=port)

    async def scenario(c: Client):
        await c.wait_state("wsapp", "running")
        await exercise(c.session, c.base + "/app/wsapp")
        await exercise(c.session, f"http://127.0.0.1:{port}")
        # the gateway's answers carry its request id; the own port's do not
        async with c.session.get(c.base + "/app/wsapp/x") as r:
            assert r.status == 200 and "X-Request-Id" in r.headers
        async with c.session.get(f"http://127.0.0.1:{port}/x") as r:
            assert r.status == 200 and "X-Request-Id" not in r.headers
        _, body = await c.json("GET", "/app/wsapp")
        assert body["restarts"] == 0 and body["state"] == "running", body

    run_gateway(data, scenario)


def test_upgrade_refusals(tmp_path):
    data = deploy(tmp_path, "wsapp", WS_APP.replace("__PORT__", "0"))

    async def scenario(c: Client):
        await c.wait_state("wsapp", "running")
        base = c.base + "/app/wsapp"
        # upgradeWebSocket on a plain request, or on a request the server did not give: TypeError
        status, _, body = await c.request("GET", "/app/wsapp/not-upgrade")
        assert status == 400 and body.decode().startswith(
            "TypeError: WapoServer.upgradeWebSocket: not a WebSocket upgrade request (no 'Upgrade: websocket' header)")
        status, _, body = await c.request("POST", "/app/wsapp/not-upgrade", headers={"Upgrade": "websocket"})
        assert status == 400 and b"it is POST, not GET" in body
        status, _, body = await c.request("GET", "/app/wsapp/foreign")
        assert status == 400 and b"the request must be one WapoServer.serve gave the handler" in body
        # a plain GET to a path that upgrades: the handler throws, the request answers 500
        status, _, _ = await c.request("GET", "/app/wsapp/ws")
        assert status == 500
        # the handler upgrades but answers something else: the client gets that, the socket fails
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await c.session.ws_connect("ws" + base[4:] + "/refuse")
        assert info.value.status == 403
        seen = await wait_for(lambda: _closes_of(c.session, base, 1), "the refused socket's close")
        assert seen[0] == ["/refuse", 1006, "", False], seen
        # the app is still serving
        status, _, body = await c.request("GET", "/app/wsapp/fine")
        assert status == 200 and body == b"http GET /fine "
        _, status_body = await c.json("GET", "/app/wsapp")
        assert status_body["restarts"] == 0, status_body

    run_gateway(data, scenario)


def test_a_message_over_the_limit_closes_with_1009(tmp_path, monkeypatch):
    monkeypatch.setattr(ws_service, "LIMITS", ws_service.WebSocketLimits(max_message_size=4096))
    data = deploy(tmp_path, "wsapp", WS_APP.replace("__PORT__", "0"))

    async def scenario(c: Client):
        await c.wait_state("wsapp", "running")
        base = c.base + "/app/wsapp"
        async with c.session.ws_connect("ws" + base[4:] + "/ws") as ws:
            await ws.receive_str(timeout=10)
            await ws.send_bytes(b"x" * 4096)  # at the limit: fine
            assert len(await ws.receive_bytes(timeout=10)) == 4096
            await ws.send_bytes(b"x" * 4097)
            msg = await ws.receive(timeout=10)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1009, msg
        seen = await wait_for(lambda: _closes_of(c.session, base, 1), "the app's close event")
        assert seen[0][:2] == ["/ws", 1009] and seen[0][3] is False, seen
        async with c.session.ws_connect("ws" + base[4:] + "/ws") as ws:  # the next socket is fine
            await ws.receive_str(timeout=10)
            await ws.send_str("again")
            assert await ws.receive_str(timeout=10) == "echo:again"

    run_gateway(data, scenario)


def test_a_client_that_vanishes_gives_the_app_a_close_event(tmp_path):
    data = deploy(tmp_path, "wsapp", WS_APP.replace("__PORT__", "0"))

    async def scenario(c: Client):
        await c.wait_state("wsapp", "running")
        port = int(c.base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(UPGRADE.replace("GET /ws", "GET /app/wsapp/ws").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        writer.transport.abort()  # no close frame
        seen = await wait_for(lambda: _closes_of(c.session, c.base + "/app/wsapp", 1), "the close event")
        assert seen[0] == ["/ws", 1006, "", False], seen

    run_gateway(data, scenario)


def test_stop_closes_sockets_and_frees_the_port_and_a_restart_binds_again(tmp_path):
    port = free_port()
    data = deploy(tmp_path, "wsapp", WS_APP.replace("__PORT__", str(port)), listen=port)
    own = f"http://127.0.0.1:{port}"

    async def port_refuses() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            return True
        writer.close()
        return False

    async def own_port_answers(c: Client) -> bool:
        try:
            async with c.session.get(own + "/alive") as r:
                return r.status == 200 and await r.text() == "http GET /alive "
        except aiohttp.ClientConnectionError:
            return False

    async def scenario(c: Client):
        await c.wait_state("wsapp", "running")
        ws_gw = await c.session.ws_connect("ws" + c.base[4:] + "/app/wsapp/ws")
        ws_own = await c.session.ws_connect(f"ws://127.0.0.1:{port}/ws")
        for ws in (ws_gw, ws_own):
            assert (await ws.receive_str(timeout=10)).startswith("open")
        status, body = await c.json("POST", "/app/wsapp/stop")
        assert status == 200 and body["state"] == "stopped", body
        for ws in (ws_gw, ws_own):  # the app stopping closes its sockets: 1001, going away
            msg = await ws.receive(timeout=10)
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001, msg
            await ws.close()
        assert body["lastExit"]["kind"] == "exit" and body["lastExit"]["error"] is None, body  # it finished by itself
        assert await port_refuses()
        await c.json("POST", "/app/wsapp/start")
        await c.wait_state("wsapp", "running")
        await wait_for(lambda: own_port_answers(c), "the own port after a start")
        # a crash: its sockets are closed (1001) and the restarted run binds the port again
        ws = await c.session.ws_connect(f"ws://127.0.0.1:{port}/ws")
        assert (await ws.receive_str(timeout=10)).startswith("open")
        status, _, body = await c.request("GET", "/app/wsapp/crash")
        assert status == 200 and body == b"crashing"
        msg = await ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1001 and msg.extra == "the app ended", msg
        await ws.close()
        await wait_for(lambda: _restarted(c), "a restart")
        await c.wait_state("wsapp", "running")
        await wait_for(lambda: own_port_answers(c), "the own port after a crash")
        _, body = await c.json("GET", "/app/wsapp")
        assert body["lastExit"]["kind"] != "exit" and "crash on purpose" in body["lastExit"]["error"], body

    run_gateway(data, scenario, backoff=0.1)


async def _restarted(c: Client) -> bool:
    _, body = await c.json("GET", "/app/wsapp")
    return body["restarts"] >= 1


REFUSED_APP = """
const results = [];
for (const options of [{ port: __BAD__ }, { port: __BUSY__ }, { port: 0 }, { port: '80' }, { port: __BUSY__, hostname: 'example.com' }]) {
  try { WapoServer.serve(() => new Response('no'), options); results.push('served?!'); }
  catch (e) { results.push(`${e.name}: ${e.message}`); }
}
WapoServer.serve(() => Response.json(results));  // after all those refusals it still serves
"""


def test_ports_outside_the_range_or_in_use_are_refused(tmp_path):
    busy, bad = free_port(), free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", busy))
    blocker.listen(1)
    code = REFUSED_APP.replace("__BAD__", str(bad)).replace("__BUSY__", str(busy))
    data = deploy(tmp_path, "refused", code, listen=busy)

    async def scenario(c: Client):
        await c.wait_state("refused", "running")
        status, results = await c.json("GET", "/app/refused/")
        assert status == 200, results
        assert results[0] == f"Error: WapoServer: port {bad} is not allowed: the allowed listen ports are {busy}-{busy}"
        assert results[1] == f"Error: WapoServer: 127.0.0.1:{busy} is already in use"
        assert results[2] == "TypeError: WapoServer.serve: port must be an integer 1..65535, not 0"
        assert results[3] == "TypeError: WapoServer.serve: port must be an integer 1..65535, not 80"
        assert results[4] == "TypeError: WapoServer: hostname 'example.com' is not an IP address or 'localhost'"

    try:
        run_gateway(data, scenario)
    finally:
        blocker.close()


def test_an_app_without_a_listen_port_may_not_listen(tmp_path):
    bad = free_port()
    data = deploy(tmp_path, "nolisten", REFUSED_APP.replace("__BAD__", str(bad)).replace("__BUSY__", str(bad)))

    async def scenario(c: Client):
        await c.wait_state("nolisten", "running")
        _, results = await c.json("GET", "/app/nolisten/")
        assert results[0] == (f"Error: WapoServer: port {bad} is not allowed: this app may not listen on any port "
                              "(deploy it with --listen PORT)")

    run_gateway(data, scenario)


OWN_PORT_ONLY = """
const server = WapoServer.serve(async (req) => {
  const path = new URL(req.url).pathname;
  if (path === '/quit') queueMicrotask(() => server.close());
  if (path === '/ws') {
    const { socket, response } = WapoServer.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  }
  return new Response(`own ${path} ${JSON.stringify(server.addr)}`);
}, { port: __PORT__, hostname: 'localhost' });
"""


def test_a_script_run_with_a_listen_range_serves_its_own_port():
    """No gateway: a JS run (as `wapo exec` makes) given NetworkPolicy.listen_ports."""
    port = free_port()

    async def main():
        instance = js_instance(OWN_PORT_ONLY.replace("__PORT__", str(port)), limits=Limits(time=60),
                               network=NetworkPolicy(listen_ports=(port, port + 1 if port < 65535 else port)))
        run = asyncio.create_task(instance.run())
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async def answers():
                try:
                    async with session.get(base + "/a") as r:
                        return await r.text()
                except aiohttp.ClientConnectionError:
                    return None

            assert await wait_for(answers, "the own port") == f'own /a {{"port":{port},"hostname":"localhost"}}'
            async with session.ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send_str("ping")
                assert await ws.receive_str(timeout=10) == "ping"
                await ws.close()
            async with session.get(base + "/quit") as r:
                assert r.status == 200
        result = await asyncio.wait_for(run, 30)  # nothing left to wait for: the run ends
        assert result.error is None, result.error
        with socket.socket() as s:  # the port is free again (as a restarted app binds it: SO_REUSEADDR)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(1)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_raw_guests_101_is_not_honoured(tmp_path):
    """Only the app.http.upgrade service accepts a socket: a 101 head written by a guest itself is a 502."""
    wat = (Path(__file__).parent / "guests" / "http_app.wat").read_text()
    head_200 = '(data (i32.const 0x0020) "\\c8\\00'
    assert head_200 in wat
    source = tmp_path / "raw101.wat"
    source.write_text(wat.replace(head_200, '(data (i32.const 0x0020) "\\65\\00'))  # status 101
    data = tmp_path / "data"
    AppRecords(data).deploy(source, "raw101")

    async def scenario(c: Client):
        await c.wait_state("raw101", "running")
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await c.session.ws_connect("ws" + c.base[4:] + "/app/raw101/ws")
        assert info.value.status == 502
        status, body = await c.json("GET", "/app/raw101/x")
        assert status == 502 and "answered 101 without accepting a WebSocket" in body["error"], body
        _, body = await c.json("GET", "/app/raw101")
        assert body["state"] == "running" and body["restarts"] == 0, body

    run_gateway(data, scenario)


def test_malformed_service_calls_are_clear_errors():
    """What a guest calling the services by hand gets for bad input: an error, never a host fault."""
    async def main():
        instance = js_instance("", network=NetworkPolicy(listen_ports=(1, 1)))
        st = instance._require_state()
        cases = [
            ("app.http.listen", b"nope", "TypeError: app.http.listen: JSON {port, hostname} expected"),
            ("app.http.listen", b'{"port": 70000}', "TypeError: WapoServer: port must be an integer 1..65535, not 70000"),
            ("app.http.listen", b'{"port": 1, "hostname": 5}', "TypeError: WapoServer: hostname must be a string"),
            ("app.http.websocket", b'{"protocol": "a b"}',
             "SyntaxError: WapoServer.upgradeWebSocket: the subprotocol 'a b' is invalid"),
            ("app.http.websocket", b"[1]", "TypeError: app.http.websocket: JSON {protocol} expected"),
            ("app.http.upgrade", b"\x01", "TypeError: app.http: a reply id is expected"),
            ("app.http.upgrade", b"\x09\0\0\0\0\0\0\0", "TypeError: app.http: NOT_FOUND: no resource 9"),
            ("app.query.next", b"", "TypeError: app.query: a channel id is expected"),
            ("app.query.reply", b"\x05\0\0\0", "TypeError: app.query: NOT_FOUND: no resource 5"),
            ("app.query.error", b"", "TypeError: app.query: a reply id is expected"),
        ]
        try:
            for method, payload, expected in cases:
                assert services.call(st, method, payload) == b"\1" + expected.encode(), method
            assert services.call(st, "app.query.open", b"")[0] == 0
            again = services.call(st, "app.query.open", b"")
            assert again.startswith(b"\1Error: WapoServer: the app already serves queries"), again
            assert st.host_faults == 0
        finally:
            st.resources.close_all()

    asyncio.run(asyncio.wait_for(main(), 30))
