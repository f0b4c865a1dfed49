"""Running the gateway: one process, or N worker processes sharing the port (SO_REUSEPORT)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..host.keys import node_key
from ..paths import default_data_dir
from ..store import Store
from ..host import cache_bound
from ..host import threads as guest_threads
from ..host.services import crypto as crypto_services
from .context import CONFIG, REQUEST_ID_HEADER, error_response, new_request_id
from .app import make_app
from .apps.proxy import socket_path
from .config import GatewayConfig
from .heap import keep_trimmed
from .metrics import prepare_shared_metrics, worker_gone

log = logging.getLogger("wapo.gateway")


GC_THRESHOLD = 20_000
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
        kwargs.setdefault("shutdown_timeout", self._config.shutdown_grace)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, one method more
        server._config = self._config  # type: ignore[attr-defined]
        return server


async def serve_forever(config: GatewayConfig, *, reuse_port: bool, ready=None,
                        workers: "_Workers | None" = None) -> None:
    """Serve until SIGINT/SIGTERM (or, in a worker, until the parent process is gone), then drain.

    Draining: the listening sockets close at once (no new connection is accepted), idle
    connections are closed, and requests in flight, streamed answers included, have
    ``shutdown_grace`` seconds to finish before they are cancelled. The first process also
    supervises ``workers``: one that dies is started again (with back-off), and on shutdown they
    are told to drain too and waited for.
    """
    guest_threads.configure(config.guest_threads)  # this process's threads for guest steps
    crypto_services.warm_up()
    if config.image_cache_size is not None:  # else $WAPO_IMAGE_CACHE_SIZE or the default
        cache_bound.set_limit("images", config.image_cache_size)
    app = make_app(config)
    runner = GatewayRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    settle_garbage_collector()
    first = multiprocessing.parent_process() is None
    if config.workers > 1 and first:
        await _serve_apps_socket(runner, config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a worker ends with the process that started it, even a killed one
        loop.add_reader(parent.sentinel, stop.set)
    trimmer = asyncio.create_task(keep_trimmed(stop))
    supervisor = None
    if workers is not None:
        workers.start_all()
        supervisor = asyncio.create_task(workers.supervise(stop))
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        stop.set()  # also when cancelled: the supervisor and the trimmer end
        await trimmer
        if supervisor is not None:
            await supervisor
        if workers is not None:
            workers.terminate()  # they drain at the same time as this process
        await runner.cleanup()
        if workers is not None:
            await asyncio.to_thread(workers.join, config.shutdown_grace + 5)
        if config.workers > 1 and first:
            socket_path(config).unlink(missing_ok=True)


def settle_garbage_collector() -> None:
    """What exists once the gateway is up (modules, wasmtime's objects, the app) lives as long as
    the process: moved out of the collector's sight (``gc.freeze``), the collections that requests
    trigger no longer walk it; and the youngest generation collects every GC_THRESHOLD allocations
    instead of 700 (a request allocates a few hundred objects, nearly all freed by reference counts)."""
    gc.collect()
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)


class _Workers:
    """The other worker processes of ``--workers N``, started and supervised by the first one."""

    BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
    STABLE = 30.0  # a worker that ran this long restarts at once, without the back-off it had

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.ctx = multiprocessing.get_context("spawn")
        n = config.workers - 1
        self.procs: list = [None] * n
        self.started = [0.0] * n
        self.backoff = [0.0] * n
        self.due = [0.0] * n

    def _start(self, slot: int) -> None:
        proc = self.ctx.Process(target=_worker, args=(self.config,), daemon=True, name=f"wapo-worker-{slot + 1}")
        proc.start()
        self.procs[slot], self.started[slot] = proc, time.monotonic()

    def start_all(self) -> None:
        for slot in range(len(self.procs)):
            self._start(slot)

    async def supervise(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = time.monotonic()
            for slot, proc in enumerate(self.procs):
                if proc is not None and proc.exitcode is not None:
                    lived = now - self.started[slot]
                    self.backoff[slot] = 0.0 if lived >= self.STABLE else \
                        min(self.BACKOFF_MAX, max(self.BACKOFF_MIN, self.backoff[slot] * 2))
                    self.due[slot] = now + self.backoff[slot]
                    self.procs[slot] = None
                    worker_gone(proc.pid)
                    how = (f"killed by signal {-proc.exitcode}" if proc.exitcode < 0
                           else f"exited with status {proc.exitcode}")
                    log.warning("wapo serve: worker %d (pid %d) %s after %.1f s; starting a new one in %.1f s",
                                slot + 1, proc.pid, how, lived, self.backoff[slot])
                if self.procs[slot] is None and now >= self.due[slot]:
                    try:
                        self._start(slot)
                    except OSError as exc:
                        self.backoff[slot] = min(self.BACKOFF_MAX, max(self.BACKOFF_MIN, self.backoff[slot] * 2))
                        self.due[slot] = now + self.backoff[slot]
                        log.warning("wapo serve: cannot start worker %d: %s", slot + 1, exc)
                        continue
                    log.warning("wapo serve: worker %d started again (pid %d)", slot + 1, self.procs[slot].pid)
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except asyncio.TimeoutError:
                pass

    def terminate(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.exitcode is None:
                try:
                    os.kill(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            if proc is not None:
                proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self.procs:
            if proc is not None and proc.exitcode is None:
                log.warning("wapo serve: worker pid %d did not stop within the grace: killing it", proc.pid)
                proc.kill()
                proc.join(5)


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
    store = None
    if config.database_url:  # a cluster: into the database, where every node sees them
        from ..store.pgapps import PgAppRecords
        from .storage import open_gateway_store
        store = open_gateway_store(config)
        records = PgAppRecords(store)
    else:
        records = AppRecords(config.data_dir or default_data_dir())
    try:
        for entry in config.apps:
            try:
                records.deploy(entry.file, entry.id, on_demand=entry.on_demand, listen=entry.listen)
            except AppRecordError as exc:
                sys.exit(f"wapo serve: config app {entry.id!r}: {exc}")
    finally:
        if store is not None:
            store.close()


def _worker(config: GatewayConfig) -> None:
    try:
        asyncio.run(serve_forever(config, reuse_port=True))
    except KeyboardInterrupt:
        pass


def prepare_data_dir(config: GatewayConfig) -> None:
    """Create what every process must share before there are several: the database schema, the
    vault key and the node key (each worker creating its own would give each other secrets)."""
    if config.database_url:  # a cluster: the schema is migrated once, keys come from the cluster key
        from .storage import open_gateway_store
        open_gateway_store(config).close()
        return
    data_dir = Path(config.data_dir or default_data_dir())
    Store(data_dir).close()  # the schema and vault.key
    node_key(data_dir)


def run_server(config: GatewayConfig, ready=None) -> None:
    """Serve until SIGINT/SIGTERM; with workers > 1 the first process starts and supervises the others."""
    prepare_data_dir(config)
    deploy_config_apps(config)
    workers = None
    shared_metrics = None
    if config.workers > 1:
        if not hasattr(socket, "SO_REUSEPORT"):
            sys.exit("wapo serve: --workers needs SO_REUSEPORT, which this system lacks")
        workers = _Workers(config)
        # /metrics of any worker sums them all (set before the processes and their metrics exist)
        shared_metrics = prepare_shared_metrics(Path(config.data_dir or default_data_dir()))
    try:
        asyncio.run(serve_forever(config, reuse_port=config.workers > 1, ready=ready, workers=workers))
    except KeyboardInterrupt:
        pass
    finally:
        if shared_metrics is not None:
            shutil.rmtree(shared_metrics, ignore_errors=True)
