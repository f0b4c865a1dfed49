"""Running the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import sys

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..paths import default_data_dir
from ..store import Store
from .context import CONFIG, REQUEST_ID_HEADER, error_response, new_request_id
from .app import make_app
from .apps.proxy import socket_path
from .config import GatewayConfig


BODY_RATE_WINDOW = 5.0  # seconds over which a request body must average min_body_rate (and its grace)


def _raw_answer(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, for the moments no aiohttp response exists."""
    request_id = new_request_id()
    body = json.dumps({"error": message, "requestId": request_id}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{REQUEST_ID_HEADER}: {request_id}\r\n"
            + ("Retry-After: 1\r\n" if status == 503 else "") + "\r\n").encode() + body


class _RequestHandler(RequestHandler):
    """aiohttp's connection handler, with what it lacks against slow or idle clients.

    Its own answers (a 400 for a request it cannot parse, which never reaches the app's
    middleware) are JSON with an X-Request-Id like every other answer. On top of aiohttp's idle
    keep-alive timeout (``keepalive_timeout``) it bounds:

    - the time to receive a request's headers (``header_timeout``), counted from the
      connection's start, or from the first byte of a later request on it (408, closed);
    - the rate of a request body while the gateway waits for it (``min_body_rate`` bytes a
      second over any BODY_RATE_WINDOW seconds, the first window being a grace; 408, closed);
    - the open connections of the process (``max_connections``): one more is answered 503
      and closed at once, the others are not disturbed.
    """

    _config: GatewayConfig

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cap = self._config.max_connections
        over = bool(cap) and len(self._manager.connections) >= cap  # type: ignore[union-attr]
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_bytes = 0
        super().connection_made(transport)
        if over:
            self._end(503, "Service Unavailable", f"this gateway process has {cap} open connections "
                                                  "(max_connections): try again")
            return
        self._arm_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if data:
            if self._body_timer is not None:
                self._body_bytes += len(data)
            elif not (self._request_in_progress or self._messages or self._upgraded):
                self._header_bytes += len(data)
                self._arm_header_timer()
        before = self._request_count
        super().data_received(data)
        if self._request_count != before and self._header_timer is not None:
            self._header_timer.cancel()  # the headers are in
            self._header_timer = None

    async def _handle_request(self, request, start_time, request_handler):  # type: ignore[no-untyped-def]
        if self._config.min_body_rate and not request.content.is_eof():
            self._body_bytes = 0
            samples = [(self._loop.time(), 0)]
            self._body_timer = self._loop.call_later(1.0, self._check_body_rate, request, samples)
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

    def _arm_header_timer(self) -> None:
        if self._config.header_timeout and self._header_timer is None:
            self._header_timer = self._loop.call_later(self._config.header_timeout, self._header_timed_out)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._request_in_progress or self._messages or self._upgraded:
            return  # the headers came in; this was a timer for bytes of a body read after its request
        if self._header_bytes:
            self._end(408, "Request Timeout", f"the request headers took over {self._config.header_timeout:g} s "
                                              "(header_timeout)")
        else:
            self.force_close()  # nothing was asked: nothing to answer
        self._header_bytes = 0

    def _check_body_rate(self, request: web.BaseRequest, samples: list[tuple[float, int]]) -> None:
        self._body_timer = None
        if self.transport is None or request.content.is_eof():
            return
        now = self._loop.time()
        if self._reading_paused:  # the gateway is not reading it (its buffer is full): not the client's fault
            samples[:] = [(now, self._body_bytes)]
        else:
            samples.append((now, self._body_bytes))
            while len(samples) > 1 and now - samples[1][0] >= BODY_RATE_WINDOW:
                samples.pop(0)
            then, bytes_then = samples[0]
            rate = self._config.min_body_rate
            if now - then >= BODY_RATE_WINDOW and self._body_bytes - bytes_then < rate * (now - then):
                if request.writer.output_size == 0:  # type: ignore[attr-defined]
                    self._end(408, "Request Timeout", f"the request body came slower than {rate} bytes a second "
                                                      "(min_body_rate)")
                else:
                    self.force_close()
                return
        self._body_timer = self._loop.call_later(1.0, self._check_body_rate, request, samples)

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None

    def _end(self, status: int, reason: str, message: str) -> None:
        if self.transport is not None:
            self.transport.write(_raw_answer(status, reason, message))
        self._cancel_timers()
        self.force_close()

    def handle_error(self, request, status=500, exc=None, message=None):  # type: ignore[no-untyped-def]
        text = super().handle_error(request, status, exc, message)
        request_id = text.headers.get(REQUEST_ID_HEADER) or new_request_id()
        response = error_response(status, (text.text or "").strip() or "error", request_id)
        response.force_close()
        return response


class _Server(web.Server):
    _config: GatewayConfig

    def __call__(self) -> RequestHandler:
        handler = _RequestHandler(self, loop=self._loop, **self._kwargs)
        handler._config = self._config
        return handler


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` with the handler above (aiohttp offers no hook for its error answers), its
    limits taken from the app's config (``keepalive_timeout``, ``shutdown_grace``...)."""

    def __init__(self, app: web.Application, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self._config = app.get(CONFIG) or GatewayConfig()
        kwargs.setdefault("keepalive_timeout", self._config.keepalive_timeout)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, one method more
        server._config = self._config  # type: ignore[attr-defined]
        return server


async def serve_forever(config: GatewayConfig, *, reuse_port: bool, ready=None) -> None:
    app = make_app(config)
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    if config.workers > 1 and multiprocessing.parent_process() is None:
        await _serve_apps_socket(runner, config)
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
        if config.workers > 1 and multiprocessing.parent_process() is None:
            socket_path(config).unlink(missing_ok=True)


async def _serve_apps_socket(runner: web.AppRunner, config: GatewayConfig) -> None:
    """The first process also answers on a Unix socket, where the other workers forward app requests."""
    path = socket_path(config)
    path.unlink(missing_ok=True)  # left by a gateway that was killed
    old_umask = os.umask(0o177)  # created 0600: only this user's processes may connect
    try:
        await web.UnixSite(runner, str(path)).start()
    finally:
        os.umask(old_umask)


def deploy_config_apps(config: GatewayConfig) -> None:
    """Deploy the config file's ``[app.<id>]`` entries (SystemExit with the reason if one cannot be)."""
    if not config.apps:
        return
    from ..store.apps import AppRecordError, AppRecords
    records = AppRecords(config.data_dir or default_data_dir())
    for entry in config.apps:
        try:
            records.deploy(entry.file, entry.id, on_demand=entry.on_demand, listen=entry.listen)
        except AppRecordError as exc:
            sys.exit(f"wapo serve: config app {entry.id!r}: {exc}")


def _worker(config: GatewayConfig) -> None:
    try:
        asyncio.run(serve_forever(config, reuse_port=True))
    except KeyboardInterrupt:
        pass


def run_server(config: GatewayConfig, ready=None) -> None:
    """Serve until SIGINT/SIGTERM; with workers > 1 the other processes are started first."""
    Store(config.data_dir).close()  # create the data directory and schema once, before the workers race
    deploy_config_apps(config)
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
