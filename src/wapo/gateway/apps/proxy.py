"""Long-running apps with ``--workers N``: they run in the first process; the others forward.

An app is one instance (or one supervisor of on-demand instances), so it lives in exactly one
gateway process: the first. That process also listens on a Unix socket only its user can open
(``socket_path``); every other worker answers ``/app/...`` and ``/apps...`` by forwarding the
request there: the method, path, query, headers and a streamed body in, the status, headers and a
streamed body out; a WebSocket upgrade becomes a WebSocket to the first process, relayed message
by message. Clients see the same answers from every worker (the request id is the first process's,
where the app's logs are kept).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web

from ...host.net import websocket as _ws
from ..config import GatewayConfig

log = logging.getLogger("wapo.gateway")

PROXY_SESSION = web.AppKey("apps_proxy_session", aiohttp.ClientSession)
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
WS_HANDSHAKE = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
                "sec-websocket-accept"}
CHUNK = 64 * 1024


def ws_limits():
    """Read at each upgrade: tests (and the app side) may replace ``LIMITS``."""
    return _ws.LIMITS


def socket_path(config: GatewayConfig) -> Path:
    """Where the first process listens for the others: short (AF_UNIX paths are capped near 108
    bytes, data directories are not), and one per (data directory, port)."""
    key = hashlib.sha256(f"{Path(config.data_dir).resolve()}:{config.port}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"wapo-apps-{key}.sock"


def install_forwarding(app: web.Application, path: Path) -> None:
    """Make this (non-first) worker forward app requests to the first process over ``path``."""

    async def open_session(app: web.Application) -> None:
        app[PROXY_SESSION] = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(path)), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))

    async def close_session(app: web.Application) -> None:
        await app[PROXY_SESSION].close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)


def _forwarded_headers(request: web.Request, keep: set[str] = frozenset()) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.headers.items()
            if k.lower() not in HOP_BY_HOP and (k.lower() not in WS_HANDSHAKE or k.lower() in keep)]


def _is_websocket(request: web.Request) -> bool:
    return (request.method == "GET" and request.headers.get("Upgrade", "").lower() == "websocket"
            and "upgrade" in request.headers.get("Connection", "").lower())


async def forward(request: web.Request) -> web.StreamResponse:
    """The route handler of a non-first worker for every app route."""
    session = request.app[PROXY_SESSION]
    url = f"http://apps{request.rel_url}"
    try:
        if _is_websocket(request):
            return await _forward_websocket(request, session, url)
        return await _forward_http(request, session, url)
    except aiohttp.ClientConnectionError as exc:
        raise web.HTTPServiceUnavailable(text=f"the gateway's first process (which runs the apps) is not "
                                              f"reachable: {exc}") from None


async def _forward_http(request: web.Request, session: aiohttp.ClientSession, url: str,
                        extra_headers: tuple[tuple[str, str], ...] = ()) -> web.StreamResponse:
    body = request.content if request.body_exists else None
    async with session.request(request.method, url, headers=_forwarded_headers(request) + list(extra_headers),
                               data=body,
                               allow_redirects=False) as upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP:
                response.headers.add(name, value)
        if upstream.headers.get("Content-Length") is not None and request.method != "HEAD":
            response.content_length = int(upstream.headers["Content-Length"])
        await response.prepare(request)
        try:
            async for chunk in upstream.content.iter_chunked(CHUNK):
                await response.write(chunk)
        except aiohttp.ClientPayloadError:
            # the app's body failed midway: cut the client's connection too (never a complete-looking answer)
            if request.transport is not None:
                request.transport.close()
            return response
        await response.write_eof()
        return response


async def _forward_websocket(request: web.Request, session: aiohttp.ClientSession, url: str,
                             extra_headers: tuple[tuple[str, str], ...] = ()) -> web.StreamResponse:
    limit = ws_limits().max_message_size  # the app's own limit: an oversize message closes with 1009 here
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    upstream = await session.ws_connect(url, headers=_forwarded_headers(request) + list(extra_headers),
                                        protocols=offered,
                                        autoclose=False, max_msg_size=limit)
    try:
        client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                       autoclose=False, max_msg_size=limit)
        await client.prepare(request)
        await asyncio.gather(_relay(client, upstream), _relay(upstream, client))
        return client
    finally:
        await upstream.close()


async def _relay(source, sink) -> None:
    """Messages from ``source`` to ``sink`` until ``source`` ends; its close code and reason pass
    on (a peer that vanished without a close frame becomes 1001, going away: 1006 may not be sent)."""
    code, reason = 1001, ""
    while True:  # not `async for`: it ends at a close frame without yielding it
        message = await source.receive()
        if message.type == aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type == aiohttp.WSMsgType.CLOSE:
            code, reason = message.data or 1000, message.extra or ""
            break
        elif message.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
            continue
        else:  # ERROR (e.g. a message over the limit: aiohttp has closed with 1009), CLOSING, CLOSED
            code = source.close_code or 1001
            break
    if not source.closed:
        await source.close(code=code)
    if not sink.closed:
        await sink.close(code=code, message=reason.encode())
