"""Long-running apps (wapo.gateway.apps) through a real gateway on 127.0.0.1.

The app is tests/guests/http_app.wat (a WAT guest of the ABI): it opens channel 4 and answers
each HttpRequest 200 with "METHOD URL\\n" + the request body, and channel 3 answering queries
with "path|payload" (the path "fail" with an error); the url "/crash" makes it trap.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from wapo.gateway.apps import routes as apps_mod, supervisor
from wapo.gateway.app import make_app
from wapo.store.apps import AppRecordError, AppRecords
from wapo.gateway.config import GatewayConfig
from wapo.host import GuestModule, Instance, Limits
from wapo.host.apps.channel import AppNotAnswering, QueryFailed, http_request, query
from wapo.host.apps.messages import HttpRequest, HttpResponseHead, QueryRequest, ScaleError
from wapo.store import Store

GUEST = Path(__file__).parent / "guests" / "http_app.wat"
TIMEOUT = 120
_CACHE_DIR = os.environ.get("WAPO_CACHE_DIR")  # the JS test uses the usual cache (compiling WapoJS takes ~20 s)


@pytest.fixture(autouse=True, scope="module")
def _module_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAPO_CACHE_DIR", str(tmp_path_factory.mktemp("wapo-cache")))
        yield


@dataclass
class Client:
    session: aiohttp.ClientSession
    base: str
    app: web.Application

    async def request(self, method: str, path: str, **kw):
        async with self.session.request(method, self.base + path, **kw) as r:
            return r.status, r.headers, await r.read()

    async def json(self, method: str, path: str, **kw):
        status, headers, body = await self.request(method, path, **kw)
        return status, json.loads(body)

    async def wait_state(self, app_id: str, *states: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.json("GET", f"/app/{app_id}")
            assert status == 200, body
            if body["state"] in states:
                return body
            assert time.monotonic() < deadline, f"app {app_id} never reached {states}: {body}"
            await asyncio.sleep(0.05)


def serve(data_dir: Path, scenario, *, backoff: float = 0.2, poll: float = 0.0):
    async def main():
        store = Store(data_dir)
        app = make_app(GatewayConfig(data_dir=data_dir), store)
        manager = app[apps_mod.APPS]
        manager.backoff_initial = backoff
        manager.poll_interval = poll
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session:
                return await asyncio.wait_for(scenario(Client(session, f"http://127.0.0.1:{port}", app)), TIMEOUT)
        finally:
            await runner.cleanup()
            store.close()

    return asyncio.run(main())


def deploy(data_dir: Path, app_id: str = "echo", source: Path = GUEST, **kw):
    return AppRecords(data_dir).deploy(source, app_id, **kw)


# --- SCALE shapes ----------------------------------------------------------------------------------

def test_scale_shapes_round_trip_and_bytes():
    req = HttpRequest("GET", "/a?b=1", [("host", "x"), ("é", "ü")], 3, 7)
    raw = req.encode()
    assert raw[:4] == b"\x0cGET" and raw[-8:] == b"\x03\x00\x00\x00\x07\x00\x00\x00"
    assert HttpRequest.decode(raw) == req
    head = HttpResponseHead(200, [("content-type", "text/plain")])
    assert head.encode() == b"\xc8\x00\x04\x30content-type\x28text/plain"
    assert HttpResponseHead.decode(head.encode()) == head
    q = QueryRequest(bytes(range(32)), "p", b"\x00\x01", 5)
    assert q.encode()[0] == 1 and QueryRequest.decode(q.encode()) == q
    assert QueryRequest(None, "p", b"", 1).encode() == b"\x00\x04p\x00\x01\x00\x00\x00"
    long = HttpResponseHead(404, [("x", "y" * 300)])
    assert HttpResponseHead.decode(long.encode()) == long
    for bad in (head.encode()[:-1], head.encode() + b"\x00", b"\xc8\x00\x04\x30\xff\xfe", b"\x02p"):
        with pytest.raises(ScaleError):
            HttpResponseHead.decode(bad)
    with pytest.raises(ScaleError):
        QueryRequest.decode(b"\x02" + q.encode()[1:])


# --- the host API, without the gateway -----------------------------------------------------------------

def test_http_request_and_query_on_an_instance():
    async def main():
        instance = Instance(GuestModule(GUEST.read_bytes(), name="http_app"), limits=Limits(time=0))
        run = asyncio.create_task(instance.run())

        async def body():
            yield b"hello "
            await asyncio.sleep(0.01)
            yield b"world"

        status, headers, chunks = await http_request(instance, "POST", "/echo?x=1", [("a", "b")], body())
        assert (status, headers) == (200, [("content-type", "text/plain")])
        assert b"".join([c async for c in chunks]) == b"POST /echo?x=1\nhello world"
        big = bytes(range(256)) * 1200  # 300 KiB: more than the stream buffer both ways

        async def big_body():
            for i in range(0, len(big), 50_000):
                yield big[i:i + 50_000]

        status, _, chunks = await http_request(instance, "PUT", "/big", [], big_body())
        assert b"".join([c async for c in chunks]) == b"PUT /big\n" + big
        answers = await asyncio.gather(*(http_request(instance, "GET", f"/{i}", [], None) for i in range(5)))
        for i, (status, _, chunks) in enumerate(answers):
            assert b"".join([c async for c in chunks]) == f"GET /{i}\n".encode()
        assert await query(instance, "p", b"payload") == b"p|payload"
        assert await query(instance, "o", b"", origin=bytes(32)) == b"o|"
        with pytest.raises(QueryFailed, match="query failed: fail"):
            await query(instance, "fail")
        with pytest.raises(AppNotAnswering):
            await http_request(instance, "GET", "/crash", [], None)
        result = await run
        assert result.error is not None and result.error.kind == "trap"
        with pytest.raises(AppNotAnswering):  # the instance has ended: no hang
            await http_request(instance, "GET", "/late", [], None)
        with pytest.raises(AppNotAnswering):
            await query(instance, "late")

    asyncio.run(main())


def test_guest_finishes_when_the_host_ends_its_channels():
    async def main():
        instance = Instance(GuestModule(GUEST.read_bytes(), name="http_app"), limits=Limits(time=5))
        run = asyncio.create_task(instance.run())
        assert await query(instance, "a", b"b") == b"a|b"
        instance.end_input(3)
        instance.end_input(4)
        result = await run
        assert result.error is None

    asyncio.run(main())


# --- through the gateway ----------------------------------------------------------------------------

def test_http_and_queries_through_the_gateway(tmp_path):
    data = tmp_path / "data"
    deploy(data)

    async def scenario(c: Client):
        status, headers, body = await c.request("GET", "/app/echo/hello/world?x=1&y=2")
        assert status == 200 and body == b"GET /hello/world?x=1&y=2\n"
        assert headers["Content-Type"] == "text/plain" and headers["X-Request-Id"]
        status, _, body = await c.request("POST", "/app/echo/", data=b"a body")
        assert (status, body) == (200, b"POST /\na body")
        payload = bytes(range(256)) * 1000

        async def chunked():
            for i in range(0, len(payload), 10_000):
                yield payload[i:i + 10_000]

        status, _, body = await c.request("PUT", "/app/echo/up", data=chunked())
        assert (status, body) == (200, b"PUT /up\n" + payload)
        results = await asyncio.gather(*(c.request("GET", f"/app/echo/n{i}") for i in range(8)))
        assert [r[2] for r in results] == [f"GET /n{i}\n".encode() for i in range(8)]
        # queries
        status, _, body = await c.request("POST", "/app/echo/query/greet", data=b"hi")
        assert (status, body) == (200, b"greet|hi")
        status, _, body = await c.request("POST", "/app/echo/query/a/b", data=b"",
                                          headers={"X-Wapo-Origin": "ab" * 32})
        assert (status, body) == (200, b"a/b|")
        status, body = await c.json("POST", "/app/echo/query/fail", data=b"x")
        assert status == 500 and body["appError"] == "query failed: fail"
        status, body = await c.json("POST", "/app/echo/query/x", headers={"X-Wapo-Origin": "zz"})
        assert status == 400
        # status
        status, body = await c.json("GET", "/app/echo")
        assert status == 200
        assert body["running"] is True and body["restarts"] == 0 and body["mode"] == "long-running"
        assert body["startedAt"].endswith("Z") and body["kind"] == "wasm"
        status, body = await c.json("GET", "/apps")
        assert [a["id"] for a in body["apps"]] == ["echo"]
        # logs, kept like agents' logs under the app id (flushed every second)
        deadline = time.monotonic() + 10
        while True:
            status, body = await c.json("GET", "/apps/echo/logs?format=json")
            messages = [r["message"] for r in body["logs"]]
            if "GET /hello/world?x=1&y=2" in messages or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert "GET /hello/world?x=1&y=2" in messages and "http_app: ready" in messages
        assert any(m.startswith("App echo: run 1 started") for m in messages)

    serve(data, scenario)


def test_unknown_app_is_404(tmp_path):
    data = tmp_path / "data"
    deploy(data)

    async def scenario(c: Client):
        for method, path in (("GET", "/app/nope"), ("GET", "/app/nope/x"), ("POST", "/app/nope/query/q"),
                             ("POST", "/app/nope/stop"), ("GET", "/apps/nope/logs"), ("DELETE", "/app/nope/")):
            status, body = await c.json(method, path)
            assert status == 404 and "nope" in body["error"], (method, path, body)

    serve(data, scenario)


def test_a_crashing_app_is_restarted_with_back_off(tmp_path):
    data = tmp_path / "data"
    deploy(data)

    async def scenario(c: Client):
        await c.wait_state("echo", "running")
        status, body = await c.json("GET", "/app/echo/crash")
        assert status == 502 and "did not answer" in body["error"]
        body = await c.wait_state("echo", "backoff", "running")
        assert body["restarts"] == 1 and body["backoffSeconds"] == pytest.approx(0.2)
        assert body["lastExit"]["kind"] == "trap" and "unreachable" in body["lastExit"]["error"]
        # a request during the back-off waits for the restart
        status, _, answer = await c.request("GET", "/app/echo/again")
        assert (status, answer) == (200, b"GET /again\n")
        await c.request("GET", "/app/echo/crash")
        body = await c.wait_state("echo", "backoff", "running")
        assert body["restarts"] == 2 and body["backoffSeconds"] == pytest.approx(0.4)  # doubled
        body = await c.wait_state("echo", "running")
        assert body["runs"] == 3
        status, _, answer = await c.request("POST", "/app/echo/third", data=b"ok")
        assert (status, answer) == (200, b"POST /third\nok")

    serve(data, scenario)


def test_back_off_is_capped(tmp_path):
    data = tmp_path / "data"
    deploy(data)

    async def scenario(c: Client):
        c.app[apps_mod.APPS].backoff_max = 0.3
        for expected in (0.2, 0.3, 0.3):
            await c.wait_state("echo", "running")
            await c.request("GET", "/app/echo/crash")
            body = await c.wait_state("echo", "backoff", "running")
            assert body["backoffSeconds"] == pytest.approx(expected)

    serve(data, scenario)


def test_stop_and_start(tmp_path):
    data = tmp_path / "data"
    deploy(data)

    async def scenario(c: Client):
        await c.wait_state("echo", "running")
        status, body = await c.json("POST", "/app/echo/stop")
        assert status == 200 and body["state"] == "stopped" and body["running"] is False
        assert body["lastExit"]["kind"] == "exit"  # the guest saw its channels end and finished
        status, body = await c.json("GET", "/app/echo/x")
        assert status == 503 and "stopped" in body["error"]
        assert AppRecords(data).load()["echo"].stopped  # recorded: a reload keeps it stopped
        await c.json("POST", "/apps/reload")
        assert (await c.json("GET", "/app/echo"))[1]["state"] == "stopped"
        status, body = await c.json("POST", "/app/echo/start")
        assert status == 200
        await c.wait_state("echo", "running")
        status, _, answer = await c.request("GET", "/app/echo/back")
        assert (status, answer) == (200, b"GET /back\n")
        assert (await c.json("GET", "/app/echo"))[1]["restarts"] == 0  # a stop is not a crash

    serve(data, scenario)


def test_on_demand_mode(tmp_path):
    data = tmp_path / "data"
    deploy(data, "od", on_demand=True)

    async def scenario(c: Client):
        status, body = await c.json("GET", "/app/od")
        assert body["mode"] == "on-demand" and body["running"] is False and body["runs"] == 0
        status, headers, answer = await c.request("POST", "/app/od/a?b=c", data=b"xyz")
        assert (status, answer) == (200, b"POST /a?b=c\nxyz")
        request_id = headers["X-Request-Id"]
        status, _, answer = await c.request("POST", "/app/od/query/q", data=b"p")
        assert (status, answer) == (200, b"q|p")
        results = await asyncio.gather(*(c.request("GET", f"/app/od/{i}") for i in range(4)))
        assert sorted(r[2] for r in results) == sorted(f"GET /{i}\n".encode() for i in range(4))
        for _ in range(100):  # the answers are complete before the instances have ended
            status, body = await c.json("GET", "/app/od")
            if body["live"] == 0:
                break
            await asyncio.sleep(0.05)
        assert body["runs"] == 6 and body["live"] == 0 and body["running"] is False and body["restarts"] == 0
        assert body["lastExit"]["kind"] == "exit"  # each instance ended when its channels were closed
        status, body = await c.json("GET", f"/apps/od/logs?format=json&requestId={request_id}")
        messages = [r["message"] for r in body["logs"]]
        assert "POST /a?b=c" in messages and any(m.startswith("Request: Duration") for m in messages)
        status, body = await c.json("GET", "/app/od/crash")
        assert status == 502
        status, _, answer = await c.request("GET", "/app/od/fine")
        assert (status, answer) == (200, b"GET /fine\n")

    serve(data, scenario)


def test_new_deployments_are_picked_up(tmp_path):
    data = tmp_path / "data"
    Store(data).close()

    async def scenario(c: Client):
        status, body = await c.json("GET", "/app/late")
        assert status == 404
        deploy(data, "late")
        status, body = await c.json("POST", "/apps/reload")
        assert body["apps"] == ["late"]
        await c.wait_state("late", "running")
        status, _, answer = await c.request("GET", "/app/late/x")
        assert (status, answer) == (200, b"GET /x\n")
        # polling: a deployment shows up without a reload call
        c.app[apps_mod.APPS].poll_interval = 0.2
        c.app[apps_mod.APPS]._poller = asyncio.create_task(c.app[apps_mod.APPS]._poll())
        deploy(data, "polled", on_demand=True)
        deadline = time.monotonic() + 10
        while (status := (await c.request("GET", "/app/polled"))[0]) == 404 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert status == 200
        AppRecords(data).remove("late")
        deadline = time.monotonic() + 10
        while (status := (await c.request("GET", "/app/late"))[0]) == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert status == 404

    serve(data, scenario)


def test_a_js_app_that_throws_is_restarted(tmp_path, monkeypatch):
    if _CACHE_DIR is None:
        monkeypatch.delenv("WAPO_CACHE_DIR")
    else:
        monkeypatch.setenv("WAPO_CACHE_DIR", _CACHE_DIR)
    data = tmp_path / "data"
    source = tmp_path / "boom.js"
    source.write_text('console.log("starting"); throw new Error("boom");\n')
    deploy(data, "thrower", source=source)

    async def scenario(c: Client):
        deadline = time.monotonic() + 60
        while True:
            status, body = await c.json("GET", "/app/thrower")
            if body["restarts"] >= 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert body["kind"] == "js" and body["restarts"] >= 2, body
        assert "boom" in body["lastExit"]["error"]
        assert body["backoffSeconds"] >= 0.4

    serve(data, scenario)


# --- deployment records and the CLI -----------------------------------------------------------------------

def test_deploy_cli_records_apps(tmp_path, capsys):
    from wapo.cli.main import main
    data = tmp_path / "data"
    assert main(["deploy", str(GUEST), "--data-dir", str(data)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["id"] == "http_app" and out["kind"] == "wasm" and out["mode"] == "long-running"
    assert main(["deploy", str(GUEST), "--id", "x1", "--on-demand", "--listen", "9123", "--data-dir", str(data)]) == 0
    records = AppRecords(data).load()
    assert records["x1"].on_demand and records["x1"].listen == 9123 and records["x1"].file == "x1.wat"
    assert (data / "apps" / "x1.wat").read_bytes() == GUEST.read_bytes()
    capsys.readouterr()
    assert main(["deploy", "--list", "--data-dir", str(data)]) == 0
    assert "x1\twasm\ton-demand" in capsys.readouterr().out
    assert main(["deploy", str(GUEST), "--id", "bad id", "--data-dir", str(data)]) == 2
    assert main(["deploy", str(GUEST), "--id", "bafy", "--data-dir", str(data)]) == 2  # looks like a CID
    assert main(["deploy", "--remove", "x1", "--data-dir", str(data)]) == 0
    assert "x1" not in AppRecords(data).load() and not (data / "apps" / "x1.wat").exists()
    with pytest.raises(AppRecordError):
        AppRecords(data).deploy(tmp_path / "missing.wasm")


def test_deploy_without_an_id_records_the_app_under_its_file_name(tmp_path):
    """The id derived from the file is the record's key (it was stored under None, and a second
    deploy then failed sorting the records)."""
    data = tmp_path / "data"
    first = AppRecords(data).deploy(GUEST)
    AppRecords(data).deploy(GUEST)  # again: replaces it
    records = AppRecords(data).load()
    assert list(records) == [first.id] == ["http_app"]
    assert (data / "apps" / records["http_app"].file).read_bytes() == GUEST.read_bytes()


def test_stop_forces_an_app_that_ignores_its_channels(tmp_path, monkeypatch):
    monkeypatch.setattr(supervisor, "STOP_GRACE", 0.3)
    data = tmp_path / "data"
    idle = tmp_path / "idle.wat"  # never opens a channel, never finishes
    idle.write_text('(module (memory (export "memory") 1) (func (export "wapo_poll") (result i32) (i32.const 0)))')
    deploy(data, "idle", source=idle)

    async def scenario(c: Client):
        await c.wait_state("idle", "running")
        status, body = await c.json("POST", "/app/idle/stop")
        assert status == 200 and body["state"] == "stopped" and body["lastExit"]["kind"] == "stopped"
        assert body["restarts"] == 0

    serve(data, scenario)
