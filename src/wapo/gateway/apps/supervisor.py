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

Routes (``routes.py``, installed by ``make_app``):
    ANY  /app/<id>/<path>         -> the app's channel 4 (HttpRequest; both bodies streamed, or a
                                     WebSocket the app accepts), by wapo.host.apps.server, which also
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
to it (``proxy.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import AsyncIterator

from ...host import GuestModule, Instance, Limits, RunOptions
from ...js.runner import js_instance
from ...store.apps import AppRecord, AppRecords

log = logging.getLogger("wapo.gateway.apps")


POLL_INTERVAL = 3.0
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 60.0
STOP_GRACE = 2.0
WAIT_RUNNING = 10.0  # how long a request waits for a restarting app before 503
ANSWER_TIMEOUT = 60.0  # the wait for a response head / query reply (504 after)
LOG_FLUSH = 1.0


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
        options = RunOptions(limits=limits, data_dir=self.manager.data_dir, network=network, on_log=on_log,
                             log_past_caps=True, tenant=f"app:{self.id}")
        if self._module is not None:
            return Instance(self._module, options=options)
        return js_instance(self._code or "", options=options, name=self.record.file)

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
            await _ended(self._supervisor)
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
                await _ended(task)
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
        # the data directory's records, or (a cluster: apps/cluster.py sets both) the database's, of
        # which this node runs only those ``owns(app_id)`` says are its own
        self.records = AppRecords(self.data_dir)
        self.owns = lambda app_id: True
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
            try:
                if await asyncio.to_thread(self.records.mtime) != self._seen_mtime:
                    await self.reload()
            except Exception:
                log.exception("reloading the app records failed")

    async def reload(self) -> list[str]:
        """Bring the running apps in line with the record: start new ones, restart changed ones."""
        async with self._lock:
            self._seen_mtime = await asyncio.to_thread(self.records.mtime)
            records = await asyncio.to_thread(self.records.load)
            records = {app_id: r for app_id, r in records.items() if self.owns(app_id)}
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
            await _ended(self._poller)
        await asyncio.gather(*(managed.stop() for managed in self.apps.values()), return_exceptions=True)
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)


async def _ended(task: asyncio.Task) -> None:
    """Wait until ``task`` (often one we cancelled) is over, whatever it ended with. Unlike
    ``suppress(CancelledError): await task`` this never swallows a cancellation of the waiter
    itself: a stop cancelled half-way (the gateway shutting down) does not hang its canceller."""
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        log.error("%s ended with an error", task.get_name(), exc_info=task.exception())
