"""Long-running apps: deployed once, kept running by the gateway, reached over HTTP and queries.

An app is a Wapo guest (a .wasm or .wat module of the ABI) or a JS program (run in WapoJS). It
is recorded in the data directory by ``wapo deploy`` (``apps/apps.json`` plus a copy of its
code, see ``AppRecords``) and started by ``wapo serve`` (at startup, and when the record file
changes: polled every ``POLL_INTERVAL`` s, or at once on ``POST /apps/reload``).

Modes:
    long-running  one instance, started at once; if it crashes or exits it is restarted after a
                  back-off that doubles from ``BACKOFF_INITIAL`` up to ``BACKOFF_MAX`` (reset once
                  a run lasted ``STABLE_AFTER`` s). No wall-time limit; memory/burst as the gateway.
    on-demand     an instance per request or query, ended (its input channels closed, then
                  stopped after ``STOP_GRACE``) once the answer is complete; the gateway's limits.

Routes (installed by ``make_app``):
    ANY  /app/<id>/<path>         -> the app's channel 4 (HttpRequest; both bodies streamed, or a
                                     WebSocket the app accepts), by wapo.host.app_server, which also
                                     serves a JS app's own --listen port
    POST /app/<id>/query/<path>   -> the app's channel 3 (QueryRequest; body = payload;
                                     header X-Wapo-Origin: 64 hex digits = origin)
    GET  /app/<id>                -> status JSON
    POST /app/<id>/stop, /start   -> stop (recorded: stays stopped) / start again
    GET  /apps                    -> every app's status;  POST /apps/reload -> re-read the record
    GET  /apps/<id>/logs          -> the app's logs (as /logs/all/ipfs/<cid>: page, limit, format)

Logs are stored like agents' logs, under the app id: one "request id" per run of a long-running
app (``run-N-xxxxxx``, flushed every ``LOG_FLUSH`` s) and the gateway request id per on-demand run.
Apps run in the gateway's first process; with ``--workers N`` the others forward app requests
to it (``wapo.gateway.apps_proxy``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from ..host import GuestModule, Instance, Limits
from ..host.app_channel import AppNotAnswering, QueryFailed, query as app_query
from ..host.app_server import serve_request
from ..store import format_text
from ..store.db import make_private_dir
from .app import CONFIG, LOGS, NETWORK, REQUEST_ID, REQUEST_ID_HEADER, STORE, error_response, read_body

log = logging.getLogger("wapo.gateway.apps")

POLL_INTERVAL = 3.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0
STOP_GRACE = 2.0
WAIT_RUNNING = 10.0  # how long a request waits for a restarting app before 503
ANSWER_TIMEOUT = 60.0  # the wait for a response head / query reply (504 after)
LOG_FLUSH = 1.0
ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")


class AppRecordError(ValueError):
    pass


def check_app_id(app_id: str) -> str:
    """App ids are log keys: 1..64 of [A-Za-z0-9_.:-], not starting with Qm or b (those look like CIDs)."""
    if not ID_RE.match(app_id) or app_id.startswith(("Qm", "b")):
        raise AppRecordError(f"invalid app id {app_id!r}: use 1..64 letters, digits, _ . : -, "
                             "not starting with 'Qm' or 'b'")
    return app_id


def default_app_id(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.:-]", "-", path.stem)[:60] or "app"
    if stem.startswith(("Qm", "b")):
        stem = "app-" + stem
    return stem[:64]


# --- the record ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AppRecord:
    id: str
    kind: str  # "wasm" (a .wasm or .wat module of the ABI) or "js"
    file: str  # the code's file name inside <data>/apps/
    sha256: str
    on_demand: bool = False
    listen: int | None = None  # a port the app may tcp_listen on
    stopped: bool = False
    deployed_at: float = 0.0


class AppRecords:
    """``<data>/apps/apps.json``: {"apps": {id: AppRecord fields}}; code in ``<data>/apps/<id>.<ext>``.

    Writers take an flock on ``apps/.lock`` and replace the file atomically."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "apps"
        self.path = self.dir / "apps.json"

    def load(self) -> dict[str, AppRecord]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("cannot read %s: %s", self.path, exc)
            return {}
        records = {}
        for app_id, fields in (data.get("apps") or {}).items():
            try:
                records[app_id] = AppRecord(**fields)
            except TypeError as exc:
                log.error("bad app record %s in %s: %s", app_id, self.path, exc)
        return records

    def mtime(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    @contextlib.contextmanager
    def _locked(self):
        make_private_dir(self.dir)  # may be the first to create the data directory: 0700 like the Store's
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _save(self, records: dict[str, AppRecord]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"apps": {k: asdict(v) for k, v in sorted(records.items())}}, indent=2))
        os.replace(tmp, self.path)

    def deploy(self, source: Path, app_id: str | None = None, *, on_demand: bool = False,
               listen: int | None = None) -> AppRecord:
        source = Path(source)
        try:
            code = source.read_bytes()
        except OSError as exc:
            raise AppRecordError(f"cannot read {source}: {exc.strerror}") from None
        app_id = check_app_id(app_id or default_app_id(source))
        if code[:4] == b"\0asm":
            kind, ext = "wasm", ".wasm"
        elif source.suffix == ".wat":
            kind, ext = "wasm", ".wat"
        else:
            kind, ext = "js", ".js"
            try:
                code.decode("utf-8")
            except UnicodeDecodeError:
                raise AppRecordError(f"{source} is neither a wasm module nor UTF-8 JavaScript") from None
        if listen is not None and not 1 <= listen <= 65535:
            raise AppRecordError(f"--listen {listen}: a port is 1..65535")
        record = AppRecord(id=app_id, kind=kind, file=app_id + ext, sha256=hashlib.sha256(code).hexdigest(),
                           on_demand=on_demand, listen=listen, stopped=False, deployed_at=time.time())
        with self._locked():
            records = self.load()
            old = records.get(app_id)
            (self.dir / record.file).write_bytes(code)
            if old is not None and old.file != record.file:
                (self.dir / old.file).unlink(missing_ok=True)
            records[app_id] = record
            self._save(records)
        return record

    def remove(self, app_id: str) -> bool:
        with self._locked():
            records = self.load()
            record = records.pop(app_id, None)
            if record is None:
                return False
            (self.dir / record.file).unlink(missing_ok=True)
            self._save(records)
        return True

    def set_stopped(self, app_id: str, stopped: bool) -> None:
        with self._locked():
            records = self.load()
            if app_id in records and records[app_id].stopped != stopped:
                records[app_id] = replace(records[app_id], stopped=stopped)
                self._save(records)

    def code(self, record: AppRecord) -> bytes:
        return (self.dir / record.file).read_bytes()


# --- one app ------------------------------------------------------------------------------------

class AppUnavailable(Exception):
    pass


class ManagedApp:
    def __init__(self, manager: "AppManager", record: AppRecord) -> None:
        self.manager = manager
        self.record = record
        self.id = record.id
        self.state = "stopped" if record.stopped else ("on-demand" if record.on_demand else "starting")
        self.restarts = 0
        self.runs = 0
        self.live = 0  # on-demand instances now
        self.started_at: float | None = None
        self.last_exit: dict | None = None
        self.backoff: float | None = None
        self.next_restart_at: float | None = None
        self.instance: Instance | None = None
        self._module: GuestModule | None = None
        self._code: str | None = None
        self._supervisor: asyncio.Task | None = None
        self._run_task: asyncio.Task | None = None
        self._running = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._stopping = False

    # --- instances ---------------------------------------------------------------------------
    def _load_code(self) -> None:
        if self._module is None and self._code is None:
            data = self.manager.records.code(self.record)
            if self.record.kind == "wasm":
                self._module = GuestModule(data, name=self.record.file)
            else:
                self._code = data.decode("utf-8")

    def new_instance(self, limits: Limits, on_log) -> Instance:
        self._load_code()
        network = self.manager.network
        if self.record.listen is not None:
            network = replace(network, listen_ports=(self.record.listen, self.record.listen))
        if self._module is not None:
            return Instance(self._module, limits=limits, data_dir=self.manager.data_dir, on_log=on_log,
                            network=network)
        from ..js.runner import js_instance
        return js_instance(self._code or "", limits=limits, name=self.record.file, data_dir=self.manager.data_dir,
                           on_log=on_log, network=network)

    # --- long-running ------------------------------------------------------------------------
    def start(self) -> None:
        if self.record.on_demand:
            self.state = "on-demand"
            return
        if self._supervisor is not None and not self._supervisor.done():
            return
        self._stopping = False
        self._wakeup.clear()
        self.state = "starting"
        self._supervisor = asyncio.create_task(self._supervise(), name=f"app {self.id}")

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            self.runs += 1
            run_id = f"run-{self.runs}-{uuid.uuid4().hex[:6]}"
            sink = LogSink(self.manager, self.id, run_id)
            sink.add("START", f"App {self.id}: run {self.runs} started")
            began = time.monotonic()
            error: str | None = None
            kind = "exit"
            try:
                instance = self.new_instance(self.manager.limits.with_(time=0), sink.on_log)
                self.instance = instance
                self._run_task = asyncio.create_task(instance.run())
                self.state, self.started_at = "running", time.time()
                self.next_restart_at = None
                self._running.set()
                try:
                    result = await asyncio.shield(self._run_task)
                    if result.error is not None:
                        error, kind = result.error.describe(), result.error.kind
                except asyncio.CancelledError:
                    if not self._run_task.cancelled():
                        raise
                    error, kind = "stopped", "stopped"
                    instance.discard()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the module does not load, or a host failure
                log.exception("app %s failed to run", self.id)
                error, kind = f"{type(exc).__name__}: {exc}", "load_error"
                sink.add("error", error)
            finally:
                self._running.clear()
                self.instance = None
                self._run_task = None
            ran = time.monotonic() - began
            self.last_exit = {"at": time.time(), "kind": kind, "error": error, "ranSeconds": round(ran, 3)}
            sink.add("END", f"App {self.id}: run {self.runs} ended after {ran:.2f} s"
                            + (f" ({kind})" if error else " (finished)"))
            if self._stopping:
                await sink.flush(final=True)
                break
            if ran >= STABLE_AFTER:
                failures = 0
            delay = min(self.manager.backoff_initial * (2 ** failures), self.manager.backoff_max)
            failures += 1
            self.restarts += 1
            self.backoff = delay
            self.next_restart_at = time.time() + delay
            self.state = "backoff"  # set before any await: the status shows the exit at once
            began_wait = time.monotonic()
            await sink.flush(final=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, delay - (time.monotonic() - began_wait)))
        self.state = "stopped"

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        instance, run_task = self.instance, self._run_task
        if instance is not None and run_task is not None:
            for kind in (3, 4):
                with contextlib.suppress(Exception):
                    instance.end_input(kind)
            done, _ = await asyncio.wait([run_task], timeout=STOP_GRACE)
            if not done:
                run_task.cancel()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self.state = "stopped"

    async def wait_running(self, timeout: float) -> Instance:
        if self._stopping or self.state == "stopped":
            raise AppUnavailable(f"app {self.id} is stopped")
        if not self._running.is_set():
            try:
                await asyncio.wait_for(self._running.wait(), timeout)
            except asyncio.TimeoutError:
                raise AppUnavailable(f"app {self.id} is not running ({self.state}); try again later") from None
        instance = self.instance
        if instance is None:
            raise AppUnavailable(f"app {self.id} is not running ({self.state})")
        return instance

    # --- per request -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def session(self, request_id: str) -> AsyncIterator[Instance]:
        """The instance to send one request to: the running one, or (on demand) a fresh one."""
        if not self.record.on_demand:
            yield await self.wait_running(self.manager.wait_running)
            return
        if self.record.stopped or self._stopping:
            raise AppUnavailable(f"app {self.id} is stopped")
        sink = LogSink(self.manager, self.id, request_id, stream=False)
        sink.add("START", f"App {self.id}: on-demand run for request {request_id}")
        began = time.monotonic()
        instance = self.new_instance(self.manager.limits, sink.on_log)
        task = asyncio.create_task(instance.run())
        self.runs += 1
        self.live += 1
        self.started_at = time.time()
        try:
            yield instance
        finally:
            for kind in (3, 4):
                with contextlib.suppress(Exception):
                    instance.end_input(kind)
            done, _ = await asyncio.wait([task], timeout=STOP_GRACE)
            error = None
            if done:
                with contextlib.suppress(Exception):
                    result = task.result()
                    error = result.error.kind if result.error else None
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                instance.discard()
                error = "stopped"
            self.live -= 1
            ran = time.monotonic() - began
            self.last_exit = {"at": time.time(), "kind": error or "exit", "error": error, "ranSeconds": round(ran, 3)}
            sink.add("END", f"Request: Duration: {ran * 1000:.0f} ms")
            await sink.flush(final=True)

    def status(self) -> dict:
        return {
            "id": self.id, "kind": self.record.kind,
            "mode": "on-demand" if self.record.on_demand else "long-running",
            "state": self.state,
            "running": (self.live > 0) if self.record.on_demand else self.state == "running",
            "restarts": self.restarts, "runs": self.runs, "live": self.live,
            "startedAt": _iso(self.started_at), "backoffSeconds": self.backoff,
            "nextRestartAt": _iso(self.next_restart_at) if self.state == "backoff" else None,
            "lastExit": dict(self.last_exit, at=_iso(self.last_exit["at"])) if self.last_exit else None,
            "listen": self.record.listen, "deployedAt": _iso(self.record.deployed_at), "sha256": self.record.sha256,
        }


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class LogSink:
    """Collects an app's log records; a long-running app's are written every LOG_FLUSH s."""

    def __init__(self, manager: "AppManager", app_id: str, run_id: str, stream: bool = True) -> None:
        self.manager, self.app_id, self.run_id, self.stream = manager, app_id, run_id, stream
        self.entries: list[tuple[str, str, float]] = []
        self._flusher: asyncio.TimerHandle | None = None

    def add(self, level: str, message: str) -> None:
        self.entries.append((level, message, time.time()))
        if self.stream and self._flusher is None:
            loop = asyncio.get_running_loop()
            self._flusher = loop.call_later(LOG_FLUSH, lambda: self.manager.spawn(self.flush()))

    def on_log(self, record) -> None:
        self.add(record.level, record.message)

    async def flush(self, final: bool = False) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        entries, self.entries = self.entries, []
        if entries and self.manager.logs is not None:
            await self.manager.logs.write(self.app_id, self.run_id, entries)


# --- all apps --------------------------------------------------------------------------------------

class AppManager:
    def __init__(self, data_dir: Path, *, limits: Limits, network, logs=None, poll_interval: float = POLL_INTERVAL,
                 backoff_initial: float = BACKOFF_INITIAL, backoff_max: float = BACKOFF_MAX,
                 wait_running: float = WAIT_RUNNING) -> None:
        self.data_dir = Path(data_dir)
        self.records = AppRecords(self.data_dir)
        self.limits = limits
        self.network = network
        self.logs = logs
        self.poll_interval = poll_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.wait_running = wait_running
        self.apps: dict[str, ManagedApp] = {}
        self._seen_mtime: int | None = None
        self._poller: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task] = set()

    def spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        await self.reload()
        if self.poll_interval > 0:
            self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            if self.records.mtime() != self._seen_mtime:
                try:
                    await self.reload()
                except Exception:
                    log.exception("reloading the app records failed")

    async def reload(self) -> list[str]:
        """Bring the running apps in line with the record: start new ones, restart changed ones."""
        async with self._lock:
            self._seen_mtime = self.records.mtime()
            records = await asyncio.to_thread(self.records.load)
            for app_id in [a for a in self.apps if a not in records]:
                await self.apps.pop(app_id).stop()
            for app_id, record in records.items():
                current = self.apps.get(app_id)
                if current is not None:
                    if current.record == record:
                        continue
                    same_code = (current.record.sha256, current.record.on_demand, current.record.listen) == \
                                (record.sha256, record.on_demand, record.listen)
                    if same_code and current.record.stopped != record.stopped:
                        current.record = record
                        if record.stopped:
                            await current.stop()
                        else:
                            current.start()
                        continue
                    await current.stop()
                managed = ManagedApp(self, record)
                self.apps[app_id] = managed
                if not record.stopped:
                    managed.start()
            return sorted(self.apps)

    async def stop_app(self, managed: ManagedApp) -> None:
        await asyncio.to_thread(self.records.set_stopped, managed.id, True)
        managed.record = replace(managed.record, stopped=True)
        await managed.stop()

    async def start_app(self, managed: ManagedApp) -> None:
        await asyncio.to_thread(self.records.set_stopped, managed.id, False)
        managed.record = replace(managed.record, stopped=False)
        managed.start()

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await asyncio.gather(*(managed.stop() for managed in self.apps.values()), return_exceptions=True)
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)


# --- the gateway side ---------------------------------------------------------------------------------

APPS = web.AppKey("apps", object)


def install(app: web.Application) -> bool:
    """Create the manager (in the first gateway process only) and start/stop it with the app.
    False in a ``--workers`` child: apps live in the first process (see ``apps_proxy``)."""
    config = app[CONFIG]
    if multiprocessing.parent_process() is not None:
        app[APPS] = None
        return False
    manager = AppManager(config.data_dir, limits=config.limits, network=app[NETWORK], logs=app[LOGS])
    app[APPS] = manager

    async def start(app: web.Application) -> None:
        await manager.start()

    async def stop(app: web.Application) -> None:
        await manager.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return True


def _manager(request: web.Request) -> AppManager:
    manager = request.app[APPS]
    if manager is None:
        raise web.HTTPServiceUnavailable(text="apps run in the gateway's first process: use --workers 1")
    return manager  # type: ignore[return-value]


def _lookup(request: web.Request) -> ManagedApp | web.Response:
    app_id = request.match_info["id"]
    managed = _manager(request).apps.get(app_id)
    if managed is None:
        return error_response(404, f"no app {app_id!r} (deploy it with `wapo deploy`)", request[REQUEST_ID])
    return managed


async def handle_app_http(request: web.Request) -> web.StreamResponse:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    request_id = request[REQUEST_ID]
    url = "/" + request.match_info.get("path", "")
    if request.query_string:
        url += "?" + request.query_string

    def fail(status: int, message: str) -> web.Response:
        return error_response(status, f"app {managed.id} {message}", request_id)

    try:
        async with managed.session(request_id) as instance:
            return await serve_request(request, instance, url, fail=fail, timeout=ANSWER_TIMEOUT,
                                       extra_headers=[(REQUEST_ID_HEADER, request_id)])
    except AppUnavailable as exc:
        return error_response(503, str(exc), request_id)


async def handle_app_query(request: web.Request) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    request_id, config = request[REQUEST_ID], request.app[CONFIG]
    origin = None
    if "X-Wapo-Origin" in request.headers:
        try:
            origin = bytes.fromhex(request.headers["X-Wapo-Origin"])
            if len(origin) != 32:
                raise ValueError
        except ValueError:
            return error_response(400, "X-Wapo-Origin must be 64 hex digits (32 bytes)", request_id)
    try:
        payload = await read_body(request, config.max_request_body)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body over {config.max_request_body} bytes", request_id)
    try:
        async with managed.session(request_id) as instance:
            reply = await app_query(instance, request.match_info.get("path", ""), payload, origin,
                                    timeout=ANSWER_TIMEOUT)
    except AppUnavailable as exc:
        return error_response(503, str(exc), request_id)
    except QueryFailed as exc:
        return error_response(500, "the app answered the query with an error", request_id, appError=str(exc))
    except AppNotAnswering as exc:
        return error_response(502, f"app {managed.id} did not answer: {exc}", request_id)
    except asyncio.TimeoutError:
        return error_response(504, f"app {managed.id} did not answer within {ANSWER_TIMEOUT:g} s", request_id)
    return web.Response(body=reply, content_type="application/octet-stream")


async def handle_app_status(request: web.Request) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    return web.json_response(managed.status())


async def handle_app_stop(request: web.Request) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    await _manager(request).stop_app(managed)
    return web.json_response(managed.status())


async def handle_app_start(request: web.Request) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    await _manager(request).start_app(managed)
    return web.json_response(managed.status())


async def handle_apps_list(request: web.Request) -> web.Response:
    manager = _manager(request)
    return web.json_response({"apps": [m.status() for m in manager.apps.values()]})


async def handle_apps_reload(request: web.Request) -> web.Response:
    ids = await _manager(request).reload()
    return web.json_response({"apps": ids})


async def handle_app_logs(request: web.Request) -> web.Response:
    managed = _lookup(request)
    if isinstance(managed, web.Response):
        return managed
    request_id, store = request[REQUEST_ID], request.app[STORE]
    q = request.query
    fmt = q.get("format", "text")
    if fmt not in ("text", "json"):
        return error_response(400, "format must be text or json", request_id)
    try:
        page, limit = int(q.get("page", "1")), int(q.get("limit", "100"))
        records = await asyncio.to_thread(store.query_logs, managed.id, q.get("requestId") or None, page, limit)
    except ValueError as exc:
        return error_response(400, f"bad paging: {exc}", request_id)
    if fmt == "json":
        return web.json_response({"logs": [r.as_dict() for r in records], "page": page, "limit": limit})
    return web.Response(text=format_text(records), content_type="text/plain")


# registered in this order (the first match wins; an app's own POST .../stop or .../query/... is shadowed)
ROUTES = [
    ("GET", "/apps", handle_apps_list),
    ("POST", "/apps/reload", handle_apps_reload),
    ("GET", "/apps/{id}/logs", handle_app_logs),
    ("GET", "/app/{id}", handle_app_status),
    ("POST", "/app/{id}/stop", handle_app_stop),
    ("POST", "/app/{id}/start", handle_app_start),
    ("POST", "/app/{id}/query/{path:.*}", handle_app_query),
    ("*", "/app/{id}/{path:.*}", handle_app_http),
]
