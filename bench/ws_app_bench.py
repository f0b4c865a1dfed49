#!/usr/bin/env python3
"""WebSocket echo round trip to a long-running JS app (issue #5), against a plain aiohttp echo.

    .venv/bin/python bench/ws_app_bench.py [--messages 200] [--repeats 3]

In one process: a gateway (wapo.gateway.app on an aiohttp runner) with a JS app deployed that
echoes every WebSocket message (`WapoServer.upgradeWebSocket`) and also listens on its own port,
and a plain aiohttp echo server started in the same run as the baseline. An aiohttp client sends
one message at a time and waits for its echo; prints the median and p90 round trip per path
(through the gateway's /app/<id>/, over the app's own port, the baseline) and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from wapo.gateway.app import make_app  # noqa: E402
from wapo.store.apps import AppRecords  # noqa: E402
from wapo.gateway.config import GatewayConfig  # noqa: E402
from wapo.store import Store  # noqa: E402

ECHO_APP = """
WapoServer.serve((request) => {
  const { socket, response } = WapoServer.upgradeWebSocket(request);
  socket.onmessage = (event) => socket.send(event.data);
  return response;
}, { port: PORT });
"""
WARM_UP = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def round_trips(session: aiohttp.ClientSession, url: str, messages: int) -> list[float]:
    """Milliseconds per message, one message in flight at a time."""
    async with session.ws_connect(url) as ws:
        for _ in range(WARM_UP):
            await ws.send_str("warm")
            await ws.receive_str()
        times = []
        for i in range(messages):
            started = time.perf_counter()
            await ws.send_str(f"ping {i}")
            if await ws.receive_str() != f"ping {i}":
                raise SystemExit(f"{url}: wrong echo")
            times.append((time.perf_counter() - started) * 1000)
    return times


async def plain_echo_server() -> tuple[web.AppRunner, int]:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


async def gateway_with_app(tmp: Path, app_port: int) -> tuple[web.AppRunner, Store, int]:
    data = tmp / "data"
    source = tmp / "echo.js"
    source.write_text(ECHO_APP.replace("PORT", str(app_port)))
    AppRecords(data).deploy(source, "echo", listen=app_port)
    store = Store(data)
    runner = web.AppRunner(make_app(GatewayConfig(data_dir=data), store), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, store, runner.addresses[0][1]


async def wait_running(session: aiohttp.ClientSession, status_url: str) -> None:
    for _ in range(200):
        async with session.get(status_url) as r:
            if r.status == 200 and (await r.json())["state"] == "running":
                return
        await asyncio.sleep(0.1)
    raise SystemExit("the echo app did not start")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    app_port = free_port()
    gateway, store, gateway_port = await gateway_with_app(Path(tempfile.mkdtemp()), app_port)
    plain, plain_port = await plain_echo_server()
    paths = {"gateway /app/echo/": f"ws://127.0.0.1:{gateway_port}/app/echo/",
             "app's own port": f"ws://127.0.0.1:{app_port}/",
             "plain aiohttp echo": f"ws://127.0.0.1:{plain_port}/"}
    medians: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as session:
            await wait_running(session, f"http://127.0.0.1:{gateway_port}/app/echo")
            for label, url in paths.items():
                runs = [await round_trips(session, url, args.messages) for _ in range(args.repeats)]
                samples = sorted(t for run in runs for t in run)
                medians[label] = statistics.median(samples)
                print(f"{label:22s} median {medians[label]:.3f} ms  p90 {samples[int(len(samples) * 0.9)]:.3f} ms"
                      f"  ({args.repeats} x {args.messages} messages)")
    finally:
        await plain.cleanup()
        await gateway.cleanup()
        store.close()
    base = medians["plain aiohttp echo"]
    for label in ("gateway /app/echo/", "app's own port"):
        print(f"ratio {label} / plain: {medians[label] / base:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
