"""``/ipfs/<cid>[/<path>]``: load the agent's code, run it once for the request, answer what it
returns (streamed for style C), and keep the run's logs."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from urllib.parse import quote, urlencode

from aiohttp import web

from ..agent import AgentFailed, AgentRequest, AgentRun
from ..host import RunOptions
from ..store import InvalidCID, VaultForbidden, VaultNotFound, parse_cid
from .accesslog import FAILURE
from .config import GatewayConfig
from .context import (BACKGROUND, CODE_CACHE, CONFIG, HOP_BY_HOP, LOGS, METRICS, NETWORK, REQUEST_ID, REQUEST_ID_HEADER,
                      RUN_LOG, RUN_OBSERVER, RUN_OPTIONS, RUNS, STACKS, STORE, TELEMETRY, error_response, read_body)
from .ipfs import CodeNotFound, fetch_from_gateways
from .runlog import LiveLines

log = logging.getLogger("wapo.gateway")

CODE_CACHE_BYTES = 64 * 1024 * 1024  # content by CID never changes: keep recent code decoded in memory
RUN_OPTIONS_KEPT = 4096  # CIDs whose run options are kept made
DISCONNECT_POLL = 0.1
DISCONNECT_GRACE = 5.0  # how long an agent may take to notice its client left, before the handler returns


async def load_code(app: web.Application, cid: str) -> str | None:
    """The agent's source: from memory, the store, or (verified) from an IPFS gateway."""
    cache = app[CODE_CACHE]
    code = cache.get(cid)
    if code is not None:
        return code
    store, config = app[STORE], app[CONFIG]
    data = await asyncio.to_thread(store.get_code, cid)
    if data is None and config.ipfs_gateways:
        data = await fetch_from_gateways(cid, config.ipfs_gateways, max_size=config.max_code_size,
                                         timeout=config.ipfs_timeout)
        await asyncio.to_thread(store.put_code, data, cid)
    if data is None:
        return None
    code = data.decode("utf-8")  # UnicodeDecodeError: the caller answers 422
    if sum(len(c) for c in cache.values()) + len(code) > CODE_CACHE_BYTES:
        cache.clear()
    cache[cid] = code
    return code


@functools.lru_cache(maxsize=4096)
def cid_v0(text: str) -> str:
    """The CIDv0 of a CID in a URL (cached: the same few CIDs are asked for again and again)."""
    return parse_cid(text).v0


def agent_url(request: web.Request, config: GatewayConfig, path: str, query: list[tuple[str, str]]) -> str:
    """The URL the agent sees: the gateway's origin, the path *after* /ipfs/<cid>, the query without
    `key`. Frameworks route on it (a Hono `app.get('/')` answers /ipfs/<cid>), as on the reference."""
    origin = config.public_url.rstrip("/") if config.public_url else f"{request.scheme}://{request.host}"
    return origin + quote(path, safe="/%:@!$&'()*+,;=-._~") + (f"?{urlencode(query)}" if query else "")


async def handle_agent(request: web.Request) -> web.StreamResponse:
    return await serve_agent(request, request.match_info["cid"], "/" + request.match_info.get("path", ""))


async def serve_agent(request: web.Request, cid_text: str, path: str) -> web.StreamResponse:
    """Run the agent of ``cid_text`` for ``request``, the agent seeing ``path`` (``wapo dev`` serves
    its current build at ``/`` through this)."""
    app, request_id = request.app, request[REQUEST_ID]
    config, store = app[CONFIG], app[STORE]
    try:
        cid = cid_v0(cid_text)
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request_id)
    try:
        code = await load_code(app, cid)
    except CodeNotFound as exc:
        return error_response(404, f"no code for {cid}: {exc}", request_id)
    except UnicodeDecodeError:
        return error_response(422, f"the code of {cid} is not UTF-8 JavaScript", request_id)
    if code is None:
        return error_response(404, f"no code for {cid} in this gateway's store (publish it with `wapo publish`)",
                              request_id)

    secret: dict = {}
    key = request.query.get("key")
    if key:
        try:
            secret = await asyncio.to_thread(store.secrets_for, cid, key)
        except VaultForbidden:
            return error_response(403, "this vault key belongs to another CID", request_id)
        except VaultNotFound:
            return error_response(403, "unknown vault key", request_id)

    if request.content_length is not None and request.content_length > config.max_request_body:
        return error_response(413, f"request body over {config.max_request_body} bytes", request_id)
    body = b""
    if request.body_exists:  # (a GET has none: no reader to make)
        try:
            body = await read_body(request, config.max_request_body)
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, f"request body over {config.max_request_body} bytes", request_id)

    query = [(k, v) for k, v in request.query.items() if k != "key"]
    agent_request = AgentRequest(
        method=request.method, path=path, query=query,
        headers=[(k, v) for k, v in request.headers.items()], body=body, secret=secret,
        url=agent_url(request, config, path, query))
    started = time.monotonic()
    response = await run_agent(request, cid, code, agent_request)
    app[METRICS].observe_run(cid, response.status, time.monotonic() - started)
    return response


def _over_cap(app: web.Application, cid: str, request_id: str) -> web.Response | None:
    """503 when ``cid`` already has ``max_runs_per_cid`` runs in progress, else None (and one more)."""
    runs, cap = app[RUNS], app[CONFIG].max_runs_per_cid
    if runs.get(cid, 0) >= cap:
        app[METRICS].errors.labels("per_cid_cap").inc()
        response = error_response(503, f"{cid} already has {cap} runs in progress: that is the per-CID cap "
                                       f"(max_runs_per_cid = {cap}, --max-runs-per-cid); try again shortly",
                                  request_id)
        response.headers["Retry-After"] = "1"
        return response
    runs[cid] = runs.get(cid, 0) + 1
    return None


def _run_ended(app: web.Application, cid: str) -> None:
    runs = app[RUNS]
    left = runs.get(cid, 1) - 1
    if left > 0:
        runs[cid] = left
    else:
        runs.pop(cid, None)


async def run_agent(request: web.Request, cid: str, code: str, agent_request: AgentRequest) -> web.StreamResponse:
    app, request_id = request.app, request[REQUEST_ID]
    config, metrics = app[CONFIG], app[METRICS]
    refused = _over_cap(app, cid, request_id)
    if refused is not None:
        return refused
    started = time.monotonic()
    log_entries: list[tuple[str, str, float]] = [
        ("START", f"Request: {request.method} {request.rel_url.path}", time.time())]
    options = _run_options(app, cid)
    run_log = app[RUN_LOG]
    live = LiveLines(run_log, cid, request_id) if run_log is not None else None  # the dashboard's live tail
    telemetry, span = app.get(TELEMETRY), None
    listeners = [live] if live is not None else []
    if telemetry is not None:  # --otlp-endpoint: the run's span, its fetches' spans, its console lines
        span = telemetry.start_run(cid, request_id)
        options = options.with_settings(on_fetch=telemetry.fetch_hook(span))
        listeners.append(telemetry.console(span))
    if listeners:
        options = options.with_settings(on_log=_each(*listeners))
    try:
        run = AgentRun(code, agent_request, options=options, name=f"{cid}.js", app_id=cid, max_body=config.max_answer)
    except BaseException:
        _run_ended(app, cid)
        live.close()
        if span is not None:
            span.end()
        raise
    metrics.live.inc()
    task = asyncio.create_task(run.run())
    watcher = _DisconnectWatch(request, run)
    try:
        try:
            head = await asyncio.shield(run.head)
        except AgentFailed as exc:
            result = await task
            kind = result.error_kind or exc.kind
            metrics.errors.labels(kind).inc()
            exc = AgentFailed(await app[STACKS].map(cid, code, str(exc)), exc.kind)
            status = _error_status(kind)
            detail = {"detail": str(exc)} if config.debug else {}
            request[FAILURE] = (str(exc).splitlines() or [kind])[0]
            if status != 500:
                return error_response(status, str(exc).splitlines()[0], request_id, **detail)
            logs = f"/logs/all/ipfs/{cid}?requestId={request_id}"
            message = (f"the agent failed; its error and console output: GET {logs} "
                       f"(request id {request_id})" + ("" if config.debug else "; --debug (wapo serve, wapo dev) shows "
                                                       "the error in the answer"))
            return error_response(status, message, request_id, logs=logs, **detail)
        if run.streaming:
            # style C: send the body as the agent produces it (server-sent events arrive one by one)
            response = web.StreamResponse(status=head.status)
            _copy_headers(head, response, request_id)
            await response.prepare(request)
            complete = False
            try:
                while isinstance(chunk := await run.chunks.get(), bytes):
                    await response.write(chunk)
                complete = chunk is None
            except ConnectionResetError:
                run.cancel()  # the client left: abort the agent's request.signal
                metrics.errors.labels("client_disconnected").inc()
            if complete:
                result = await task
                await response.write_eof()
            else:
                # failed or too large after the head was sent: end the connection without the final
                # chunk, so the client sees a truncated answer, never a complete 200
                if request.transport is not None:
                    request.transport.close()
                result = await _finish_soon(task)
                if result is None:
                    return response
        else:
            result = await task
            response = web.Response(status=head.status, body=head.body)
            _copy_headers(head, response, request_id)
        if result.error:
            metrics.errors.labels(result.error_kind or "error").inc()
        return response
    finally:
        watcher.cancel()
        if task.done():
            await _store_run_logs(app, cid, request_id, log_entries, task, started, span, run.head, live, code)
        else:  # the agent outlives its client: keep its logs when it ends (within its own limits)
            pending = asyncio.create_task(_store_run_logs(app, cid, request_id, log_entries, task, started, span, run.head,
                                                          live, code))
            app[BACKGROUND].add(pending)
            pending.add_done_callback(app[BACKGROUND].discard)


def _run_options(app: web.Application, cid: str) -> RunOptions:
    """The options every run of ``cid`` starts from (made once per CID: they depend on the
    configuration only)."""
    cache = app[RUN_OPTIONS]
    options = cache.get(cid)
    if options is None:
        if len(cache) >= RUN_OPTIONS_KEPT:
            cache.clear()
        config = app[CONFIG]
        options = cache[cid] = RunOptions(limits=config.limits_for(cid), data_dir=config.data_dir,
                                          network=app[NETWORK], tenant=cid)
    return options


def _each(*callbacks):
    """One ``on_log`` calling several."""
    def on_log(record) -> None:
        for callback in callbacks:
            callback(record)
    return on_log


ERROR_STATUS = {"answer_too_large": 502, "capacity": 503}  # error kinds that are not 500


def _status_of(head: asyncio.Future | None, kind: str | None) -> int:
    """The status a run answered with (the head it sent, else the error answer's)."""
    if head is not None and head.done() and not head.cancelled() and head.exception() is None:
        return head.result().status
    return _error_status(kind)


def _error_status(kind: str | None) -> int:
    """The status of a failed run's answer: its error kind's, else 500."""
    return ERROR_STATUS.get(kind or "", 500)


async def _finish_soon(task: asyncio.Task):
    """The task's result if it ends within the grace period, else None (it runs on)."""
    try:
        return await asyncio.wait_for(asyncio.shield(task), timeout=DISCONNECT_GRACE)
    except asyncio.TimeoutError:
        return None


async def _store_run_logs(app: web.Application, cid: str, request_id: str, entries: list,
                          task: asyncio.Task, started: float, span=None, head: asyncio.Future | None = None,
                          live: LiveLines | None = None, code: str = "") -> None:
    metrics = app[METRICS]
    result = None
    try:
        result = await task
        mapper = app[STACKS]
        entries += [(rec.level, await mapper.map(cid, code, rec.message) if rec.level == "error" else rec.message,
                     rec.time) for rec in result.logs]
    except Exception:
        log.exception("agent run %s failed in the host", request_id)
    finally:
        metrics.live.dec()
        _run_ended(app, cid)
        if live is not None:
            live.close()
        duration = time.monotonic() - started
        metrics.run_seconds.observe(duration)
        kind = result.error_kind if result else "host_error"
        if span is not None:
            app[TELEMETRY].end_run(span, duration, kind, result.error if result else "the host failed")
        if app[RUN_LOG] is not None:
            app[RUN_LOG].record(cid, request_id, _status_of(head, kind), duration, kind)
    entries.append(("END", f"Request: Duration: {duration * 1000:.0f} ms", time.time()))
    await app[LOGS].write(cid, request_id, entries)
    observer = app.get(RUN_OBSERVER)
    if observer is not None:
        observer(cid, request_id, result, entries)


class _DisconnectWatch:
    """aiohttp keeps running a handler whose client left: notice it and tell the agent. It polls
    the transport with a timer (cheaper than a task: most runs end before the first check)."""

    def __init__(self, request: web.Request, run: AgentRun) -> None:
        self._request, self._run = request, run
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(DISCONNECT_POLL, self._check)

    def _check(self) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            self._run.cancel()
        else:
            self._handle = self._loop.call_later(DISCONNECT_POLL, self._check)

    def cancel(self) -> None:
        self._handle.cancel()


def _copy_headers(head, response: web.StreamResponse, request_id: str) -> None:
    for name, value in head.headers:
        if name.lower() not in HOP_BY_HOP:
            response.headers.add(name, value)
    response.headers[REQUEST_ID_HEADER] = request_id
