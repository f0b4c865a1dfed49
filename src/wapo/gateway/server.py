"""Running the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys

from aiohttp import web

from ..store import Store
from .app import make_app
from .config import GatewayConfig


async def serve_forever(config: GatewayConfig, *, reuse_port: bool, ready=None) -> None:
    app = make_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    if ready is not None:
        ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _worker(config: GatewayConfig) -> None:
    try:
        asyncio.run(serve_forever(config, reuse_port=True))
    except KeyboardInterrupt:
        pass


def run_server(config: GatewayConfig, ready=None) -> None:
    """Serve until SIGINT/SIGTERM; with workers > 1 the other processes are started first."""
    Store(config.data_dir).close()  # create the data directory and schema once, before the workers race
    children = []
    if config.workers > 1:
        if not hasattr(__import__("socket"), "SO_REUSEPORT"):
            sys.exit("wapo serve: --workers needs SO_REUSEPORT, which this system lacks")
        ctx = multiprocessing.get_context("spawn")
        for _ in range(config.workers - 1):
            child = ctx.Process(target=_worker, args=(config,), daemon=True)
            child.start()
            children.append(child)
    try:
        asyncio.run(serve_forever(config, reuse_port=config.workers > 1, ready=ready))
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(timeout=5)
