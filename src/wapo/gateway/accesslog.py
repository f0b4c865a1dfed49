"""One line per request on the gateway's terminal (method, path, status, duration, request id, and
why an agent failed), so a developer watching ``wapo serve`` or ``wapo dev`` sees every request and
every failure without asking ``/logs``. Off with ``--quiet`` (``access_log = false``).

Lines written on an event loop are gathered and written together at the loop's next turn: one
write (and flush) for all the requests answered meanwhile, not a system call per request."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from aiohttp import web

# Set by a handler to say why the request failed (the first line of an agent's error).
FAILURE = web.RequestKey("failure", str)

_stamp: tuple[int, str] = (-1, "")
_pending: list[str] = []


def _clock() -> str:
    """``HH:MM:SS`` of now (formatted once a second)."""
    global _stamp
    now = int(time.time())
    if _stamp[0] != now:
        _stamp = (now, time.strftime("%H:%M:%S", time.localtime(now)))
    return _stamp[1]


def format_line(method: str, path: str, status: int, seconds: float, request_id: str, failure: str = "") -> str:
    """``GET /ipfs/Qm.../x 200 12.3ms id=...`` (and ``: why`` for a failure)."""
    line = f"{_clock()} {method} {path} {status} {seconds * 1000:.1f}ms id={request_id}"
    return f"{line} : {failure}" if failure else line


def write_line(request: web.Request, status: int, seconds: float, request_id: str,
               out: TextIO | None = None) -> None:
    line = format_line(request.method, request.rel_url.path, status, seconds, request_id, request.get(FAILURE, ""))
    if out is not None:
        print(line, file=out, flush=True)
        return
    if not _pending:
        try:
            asyncio.get_running_loop().call_soon(flush)
        except RuntimeError:  # no loop: at once
            print(line, flush=True)
            return
    _pending.append(line)


def flush() -> None:
    """Write the lines gathered so far (the loop calls it; the gateway's cleanup too)."""
    if not _pending:
        return
    text = "\n".join(_pending) + "\n"
    _pending.clear()
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):  # stdout closed or gone: the access log is best effort
        pass
