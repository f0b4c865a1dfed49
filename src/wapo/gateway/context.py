"""What every route shares: the application's keys, request ids, and the JSON error answer."""

from __future__ import annotations

import itertools
import os
from typing import Optional

from aiohttp import web

from ..store import Store
from .config import GatewayConfig
from .logwriter import LogWriter
from .metrics import Metrics
from .ratelimit import RateLimiter
from .runlog import RunLog

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", GatewayConfig)
METRICS = web.AppKey("metrics", Metrics)
LOGS = web.AppKey("logs", LogWriter)
BACKGROUND = web.AppKey("background", set)
NETWORK = web.AppKey("network", object)
CODE_CACHE = web.AppKey("code_cache", dict)
RUN_OPTIONS = web.AppKey("run_options", dict)  # CID -> the RunOptions its runs start from
RUNS = web.AppKey("runs", dict)  # CID -> runs of it in progress (the per-CID cap)
VAULT_RATE = web.AppKey("vault_rate", RateLimiter)
# called as observer(cid, request_id, AgentResult | None, log entries) after each agent run (`wapo dev`)
RUN_OBSERVER = web.AppKey("run_observer", object)
STACKS = web.AppKey("stacks", object)  # a gateway.stacks.StackMapper: agents' errors through their source maps
RUN_LOG = web.AppKey("run_log", Optional[RunLog])  # every run, for the dashboard (runs.sqlite); None: no dashboard
TELEMETRY = web.AppKey("telemetry", object)  # a telemetry.Telemetry with --otlp-endpoint, else None
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer",
              "proxy-authenticate", "proxy-authorization"}


# Request ids: 32 hex digits, unique per process (a random prefix) and across its requests (a
# counter): uuid4 read 16 bytes of os.urandom per request, ~20 us here.
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count(int.from_bytes(os.urandom(8), "big"))


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


def error_response(status: int, message: str, request_id: str, **extra: object) -> web.Response:
    body = {"error": message, "requestId": request_id, **extra}
    return web.json_response(body, status=status, headers={REQUEST_ID_HEADER: request_id})


async def read_body(request: web.Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return bytes(body)
