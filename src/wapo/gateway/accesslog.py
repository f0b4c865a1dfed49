"""One line per request on the gateway's terminal (method, path, status, duration, request id, and
why an agent failed), so a developer watching ``wapo serve`` or ``wapo dev`` sees every request and
every failure without asking ``/logs``. Off with ``--quiet`` (``access_log = false``)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from aiohttp import web

# Set by a handler to say why the request failed (the first line of an agent's error).
FAILURE = web.RequestKey("failure", str)


def format_line(method: str, path: str, status: int, seconds: float, request_id: str, failure: str = "") -> str:
    """``GET /ipfs/Qm.../x 200 12.3ms id=...`` (and ``: why`` for a failure)."""
    stamp = time.strftime("%H:%M:%S")
    line = f"{stamp} {method} {path} {status} {seconds * 1000:.1f}ms id={request_id}"
    return f"{line} : {failure}" if failure else line


def write_line(request: web.Request, status: int, seconds: float, request_id: str,
               out: TextIO | None = None) -> None:
    failure = request.get(FAILURE, "")
    print(format_line(request.method, request.rel_url.path, status, seconds, request_id, failure),
          file=out or sys.stdout, flush=True)
