"""Scheduled runs (``[cron.<name>]``): an agent run at each tick of a schedule, like a request.

A scheduled run has the limits of a request to the same CID, its own request id, and its logs
under the CID (a ``START Cron: <name>`` line first). A style C agent exporting
``scheduled(event, env, ctx)`` gets it as Workers' cron triggers do; the others get the configured
request (``path``, ``method``, ``body``; the vault of ``vault_key`` as secrets). Every worker
process schedules every job and the ledger (gateway/cronledger.py) lets one of them run each
tick; a tick while the previous run of the job is still going is skipped and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from ..agent import AgentRequest, call_agent
from ..host import RunOptions
from ..store import Store, VaultForbidden, VaultNotFound
from .config import GatewayConfig
from .context import new_request_id
from .cronledger import Claim, CronLedger, PgCronLedger
from .cronspec import CronJob, next_tick
from .ipfs import CodeNotFound, fetch_from_gateways
from .metrics import Metrics
from .runlog import RunLog

log = logging.getLogger("wapo.gateway")

WriteLogs = Callable[[str, str, list], Awaitable[None]]


class CronJobError(Exception):
    """A job that cannot run at all (no code for its CID, a bad vault key): says which and why."""


@dataclass
class CronRun:
    """What one scheduled run answered (``status`` None when the agent failed)."""
    job: str
    request_id: str
    status: int | None
    body: bytes = b""
    error: str | None = None
    error_kind: str | None = None
    duration: float = 0.0
    headers: list = field(default_factory=list)


def _origin(config: GatewayConfig) -> str:
    if config.public_url:
        return config.public_url.rstrip("/")
    host = config.host if ":" not in config.host else f"[{config.host}]"
    return f"http://{host}:{config.port}"


async def run_job(job: CronJob, config: GatewayConfig, store: Store, write_logs: WriteLogs, *,
                  tick: float | None = None, request_id: str | None = None, network: object = None,
                  metrics: Metrics | None = None, telemetry=None, run_log: RunLog | None = None) -> CronRun:
    """Run ``job`` once now (for the tick ``tick``, a Unix time; now by default) and keep its logs."""
    request_id = request_id or new_request_id()
    tick = time.time() if tick is None else tick
    data = await asyncio.to_thread(store.get_code, job.cid)
    if data is None and config.ipfs_gateways:  # as a request would: fetched, verified, kept
        try:
            data = await fetch_from_gateways(job.cid, config.ipfs_gateways, max_size=config.max_code_size,
                                             timeout=config.ipfs_timeout)
        except CodeNotFound as exc:
            raise CronJobError(f"cron job {job.name!r}: no code for {job.cid}: {exc}") from None
        await asyncio.to_thread(store.put_code, data, job.cid)
    if data is None:
        raise CronJobError(f"cron job {job.name!r}: no code for {job.cid} in this gateway's store "
                           "(publish it with `wapo publish`)")
    secret: dict = {}
    if job.vault_key:
        try:
            secret = await asyncio.to_thread(store.secrets_for, job.cid, job.vault_key)
        except (VaultNotFound, VaultForbidden) as exc:
            raise CronJobError(f"cron job {job.name!r}: vault_key {job.vault_key!r}: {exc}") from None
    request = AgentRequest(
        method=job.method, path=job.path, body=job.body.encode(), secret=secret,
        headers=[("x-wapo-cron", job.name), ("x-wapo-scheduled-time", str(int(tick * 1000)))],
        url=_origin(config) + job.path, scheduled={"cron": job.schedule, "scheduledTime": int(tick * 1000)})
    options = RunOptions(limits=config.limits_for(job.cid), data_dir=config.data_dir, network=network,
                         tenant=job.cid)
    span = None
    if telemetry is not None:  # --otlp-endpoint: a root span for the scheduled run
        span = telemetry.start_run(job.cid, request_id, kind="cron")
        span.set_attribute("wapo.cron.job", job.name)
        options = options.with_settings(on_fetch=telemetry.fetch_hook(span),
                                        on_log=telemetry.console(span))
    entries: list[tuple[str, str, float]] = [("START", f"Cron: {job.name} ({job.schedule})", time.time())]
    started = time.monotonic()
    result = None
    if metrics is not None:
        metrics.live.inc()
    try:
        result = await call_agent(data.decode("utf-8", "replace"), request, options=options, name=f"{job.cid}.js",
                                  app_id=job.cid, max_body=config.max_answer)
    finally:
        duration = time.monotonic() - started
        if metrics is not None:
            metrics.live.dec()
            metrics.run_seconds.observe(duration)
        if span is not None:
            telemetry.end_run(span, duration, result.error_kind if result else "host_error",
                              result.error if result else "the host failed")
    entries += [(rec.level, rec.message, rec.time) for rec in result.logs]
    entries.append(("END", f"Cron: Duration: {duration * 1000:.0f} ms", time.time()))
    await write_logs(job.cid, request_id, entries)
    response = result.response
    if metrics is not None:
        if result.error:
            metrics.errors.labels(result.error_kind or "error").inc()
        metrics.observe_run(job.cid, response.status if response is not None else 500, duration)
    if run_log is not None:
        run_log.record(job.cid, request_id, response.status if response is not None else 500, duration,
                       result.error_kind, trigger="cron")
    if response is None:
        return CronRun(job.name, request_id, None, error=result.error or "the agent failed",
                       error_kind=result.error_kind, duration=duration)
    return CronRun(job.name, request_id, response.status, response.body, result.error, result.error_kind, duration,
                   list(response.headers))


class CronScheduler:
    """Runs the config's jobs at their ticks in this process, each tick claimed in the ledger first."""

    def __init__(self, config: GatewayConfig, store: Store, write_logs: WriteLogs, *, network: object = None,
                 metrics: Metrics | None = None, telemetry=None, run_log: RunLog | None = None,
                 runs: dict | None = None) -> None:
        self.config, self.store, self.write_logs, self.run_log = config, store, write_logs, run_log
        self.runs = runs  # the gateway's runs in progress per CID (its max_runs_per_cid cap)
        self.network, self.metrics, self.telemetry = network, metrics, telemetry
        self.ledger = None
        if config.cron:  # a cluster keeps it in its database: one node runs each tick
            self.ledger = PgCronLedger(store) if config.database_url else CronLedger(config.data_dir)
        self._tasks: list[asyncio.Task] = []
        self._runs: set[asyncio.Task] = set()

    def start(self) -> None:
        for job in self.config.cron:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"cron {job.name}"))

    async def _loop(self, job: CronJob) -> None:
        tick = next_tick(job, time.time())
        while True:
            await asyncio.sleep(max(0.0, tick - time.time()))
            request_id = new_request_id()
            limit = self.config.limits_for(job.cid).time or 24 * 3600.0
            try:
                claim, running = await asyncio.to_thread(self.ledger.claim, job.name, tick, request_id, limit + 60)
            except Exception:
                log.exception("cron %s: cannot claim the tick", job.name)
                claim, running = Claim.TAKEN, None
            if claim is Claim.RUN:
                task = asyncio.create_task(self._run(job, tick, request_id), name=f"cron run {job.name} {request_id}")
                self._runs.add(task)
                task.add_done_callback(self._runs.discard)
            elif claim is Claim.SKIP:
                when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tick))
                message = (f"Cron: {job.name}: the tick of {when} is skipped: the previous run "
                           f"(request {running}) is still going")
                log.warning("wapo cron: %s", message)
                await self.write_logs(job.cid, request_id, [("warn", message, time.time())])
            tick = next_tick(job, max(tick, time.time()))

    async def _run(self, job: CronJob, tick: float, request_id: str) -> None:
        state = "error"
        runs, cap = self.runs, self.config.max_runs_per_cid
        if runs is not None and runs.get(job.cid, 0) >= cap:  # the per-CID cap of requests holds here too
            message = (f"Cron: {job.name}: not run: {job.cid} already has {cap} runs in progress "
                       f"(max_runs_per_cid)")
            log.warning("wapo cron: %s", message)
            await self.write_logs(job.cid, request_id, [("warn", message, time.time())])
            await asyncio.to_thread(self.ledger.finish, job.name, tick, "capacity")
            return
        if runs is not None:
            runs[job.cid] = runs.get(job.cid, 0) + 1
        try:
            run = await run_job(job, self.config, self.store, self.write_logs, tick=tick, request_id=request_id,
                                network=self.network, metrics=self.metrics, telemetry=self.telemetry,
                                run_log=self.run_log)
            state = "ok" if run.status is not None and run.status < 500 else "error"
            log.info("wapo cron: %s ran (request %s, status %s, %.0f ms)", job.name, request_id, run.status,
                     run.duration * 1000)
        except CronJobError as exc:
            log.warning("wapo cron: %s", exc)
        except Exception:
            log.exception("wapo cron: %s failed in the host", job.name)
        finally:
            if runs is not None:
                left = runs.get(job.cid, 1) - 1
                if left > 0:
                    runs[job.cid] = left
                else:
                    runs.pop(job.cid, None)
            await asyncio.to_thread(self.ledger.finish, job.name, tick, state)

    async def stop(self) -> None:
        """Stop scheduling; runs in progress have the gateway's ``shutdown_grace`` to finish, as
        requests in flight do, and are cancelled after it."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runs:
            _, late = await asyncio.wait(list(self._runs), timeout=self.config.shutdown_grace)
            for task in late:
                log.warning("wapo cron: %s is cancelled: the gateway is stopping", task.get_name())
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self.ledger is not None:
            self.ledger.close()


def install(app, config: GatewayConfig) -> None:
    """Schedule the config's jobs while ``app`` runs (nothing without ``[cron.<name>]`` tables)."""
    from .context import LOGS, METRICS, NETWORK, RUN_LOG, RUNS, STORE, TELEMETRY
    if not config.cron:
        return
    holder: list[CronScheduler] = []

    async def start(app) -> None:
        scheduler = CronScheduler(config, app[STORE], app[LOGS].write, network=app[NETWORK], metrics=app[METRICS],
                                  telemetry=app.get(TELEMETRY), run_log=app[RUN_LOG], runs=app[RUNS])
        scheduler.start()
        holder.append(scheduler)

    async def stop(app) -> None:
        if holder:
            await holder.pop().stop()

    app.on_startup.append(start)
    app.on_cleanup.insert(0, stop)  # before the logs are flushed and the store closed
