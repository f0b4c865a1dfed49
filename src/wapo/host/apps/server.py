"""Serving an aiohttp request with an app instance: the one place an app answers HTTP.

``serve_request`` sends the request to the instance's channel 4 (``app_channel.http_request``)
and turns the answer into the aiohttp response: the head, then the body streamed as the app
writes it; a body the app does not finish cuts the connection. If the app accepts a WebSocket
(a 101 head sent by the ``app.http.upgrade`` service, which names an ``AcceptedWebSocket``), the
handshake is done here with ``web.WebSocketResponse`` and the socket is relayed until it closes.
A 101 head from anything else (a raw guest) answers 502: only the service can accept a socket.

Two callers, so both behave the same: the gateway's ``ANY /app/<id>/<path>`` route, and an app's
own port (``AppListener``, which the ``app.http.listen`` service binds inside the run's
``NetworkPolicy.listen_ports``; closing the resource, or the instance ending, frees the port).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
from typing import Callable, Iterable

from aiohttp import web

from .channel import AppNotAnswering, BadAnswer, BodyAborted, http_request
from ..instance import Instance
from .io_stream import IoStream
from ..resources import Resource
from ..net.websocket import AcceptedWebSocket

ANSWER_TIMEOUT = 60.0  # the wait for the app's response head (504 after)
SHUTDOWN_TIMEOUT = 2.0  # an own port's open connections, after it stops listening
BODY_CHUNK = 64 * 1024
DISCONNECT_POLL = 0.1  # how often a handler looks whether its client is still there
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer",
              "proxy-authenticate", "proxy-authorization"}

Fail = Callable[[int, str], web.StreamResponse]  # (status, "did not answer: ...") -> the error answer


def plain_failure(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=f"the app {message}\n")


class _DisconnectWatch:
    """aiohttp keeps running a handler whose client left: notice it by polling the transport (as
    the gateway's agent route does) and give up on the exchange, so the app's ``request.signal``
    aborts (``IoStream.host_abort`` readies the request's gone watch)."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.streams: list[IoStream] = []
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(DISCONNECT_POLL, self._check)

    def _check(self) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            for stream in self.streams:
                stream.host_abort()
            return
        self._handle = self._loop.call_later(DISCONNECT_POLL, self._check)

    def cancel(self) -> None:
        self._handle.cancel()


UPGRADE_HEADER = "x-wapo-websocket"
CLAIM_TIMEOUT = 10.0  # from the 101 head to the handshake; then the socket fails
_UPGRADES: dict[str, AcceptedWebSocket] = {}


def expect_upgrade(token: str, sock: AcceptedWebSocket, loop: asyncio.AbstractEventLoop) -> None:
    """A guest's 101 head names ``sock`` by ``token``; the serving side claims it (once) when it
    reads that head, or it fails after ``CLAIM_TIMEOUT``."""
    _UPGRADES[token] = sock
    loop.call_later(CLAIM_TIMEOUT, _unclaimed, token)


def claim_upgrade(token: str) -> AcceptedWebSocket | None:
    """The socket a 101 head's token names (once), if it is still wanted."""
    sock = _UPGRADES.pop(token, None)
    return None if sock is None or sock.done else sock


def _unclaimed(token: str) -> None:
    sock = _UPGRADES.pop(token, None)
    if sock is not None:
        sock.refuse("no WebSocket handshake: the client went away before the answer")


async def serve_request(request: web.Request, instance: Instance, url: str, *, fail: Fail = plain_failure,
                        timeout: float = ANSWER_TIMEOUT,
                        extra_headers: Iterable[tuple[str, str]] = ()) -> web.StreamResponse:
    """Answer ``request`` with the app: ``url`` is what the app sees (path + query)."""
    watch = _DisconnectWatch(request)
    try:
        return await _serve_request(request, instance, url, fail, timeout, extra_headers, watch)
    finally:
        watch.cancel()


async def _serve_request(request: web.Request, instance: Instance, url: str, fail: Fail, timeout: float,
                         extra_headers: Iterable[tuple[str, str]], watch: _DisconnectWatch) -> web.StreamResponse:
    body = request.content.iter_chunked(BODY_CHUNK) if request.body_exists else None
    try:
        answer = await http_request(instance, request.method, url, list(request.headers.items()), body,
                                    timeout=timeout, on_stream=watch.streams.append)
    except (AppNotAnswering, BadAnswer) as exc:
        return fail(502, f"did not answer: {exc}")
    except asyncio.TimeoutError:
        return fail(504, f"did not answer within {timeout:g} s")
    if answer.status == 101:
        watch.cancel()  # the WebSocket notices its own peer leaving
        await answer.body.aclose()
        return await _websocket(request, answer.headers, fail, extra_headers)
    if not 200 <= answer.status <= 999:
        await answer.body.aclose()
        return fail(502, f"answered status {answer.status}")
    response = web.StreamResponse(status=answer.status)
    for name, value in answer.headers:
        if name.lower() not in HOP_BY_HOP:
            response.headers.add(name, value)
    for name, value in extra_headers:
        response.headers[name] = value
    async with contextlib.aclosing(answer.body) as chunks:
        await response.prepare(request)
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except BodyAborted:
            # the app ended mid-body: cut the connection, never pass a truncated body off as complete
            if request.transport is not None:
                request.transport.close()
            return response
        except ConnectionResetError:
            return response
    await response.write_eof()
    return response


async def _websocket(request: web.Request, head: list[tuple[str, str]], fail: Fail,
                     extra_headers: Iterable[tuple[str, str]]) -> web.StreamResponse:
    token = next((value for name, value in head if name.lower() == UPGRADE_HEADER), None)
    sock = claim_upgrade(token) if token else None
    if sock is None:
        return fail(502, "answered 101 without accepting a WebSocket "
                         "(only the app.http.upgrade service, behind WapoServer.upgradeWebSocket, can)")
    limits = sock.limits
    ws = web.WebSocketResponse(protocols=(sock.protocol,) if sock.protocol else (), autoclose=True, autoping=True,
                               max_msg_size=limits.max_message_size + 1,  # aiohttp refuses exactly max_msg_size
                               timeout=limits.close_timeout)
    if not ws.can_prepare(request).ok:
        sock.refuse("the request is not a WebSocket upgrade")
        return fail(400, "accepted a WebSocket, but the request is not a WebSocket upgrade")
    for name, value in extra_headers:
        ws.headers[name] = value
    try:
        await ws.prepare(request)
    except (ConnectionError, OSError, RuntimeError) as exc:  # the client left during the handshake
        sock.refuse(f"the WebSocket handshake failed: {exc}")
        return fail(400, f"could not finish the WebSocket handshake: {exc}")
    await sock.serve(ws)
    return ws


# --- an app's own port -----------------------------------------------------------------------------

class ListenError(Exception):
    """The port cannot be bound; ``name`` is the JS error class to throw."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def bind(hostname: str, port: int, allowed: tuple[int, int] | None) -> socket.socket:
    """A listening socket on hostname:port, if the policy's port range allows it."""
    if allowed is None or not allowed[0] <= port <= allowed[1]:
        where = f"the allowed listen ports are {allowed[0]}-{allowed[1]}" if allowed else \
            "this app may not listen on any port (deploy it with --listen PORT)"
        raise ListenError("Error", f"port {port} is not allowed: {where}")
    try:
        ip = "127.0.0.1" if hostname == "localhost" else str(ipaddress.ip_address(hostname.strip("[]")))
    except ValueError:
        raise ListenError("TypeError", f"hostname {hostname!r} is not an IP address or 'localhost'") from None
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restarted app binds again at once
        sock.bind((ip, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ListenError("Error", f"{hostname}:{port} is already in use") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ListenError("TypeError", f"{hostname} is not an address of this host") from None
        raise ListenError("Error", f"cannot listen on {hostname}:{port}: {exc.strerror or exc}") from None
    return sock


_CLOSING: set[asyncio.Task] = set()  # shutdowns of closed listeners' connections, kept until done


class AppListener(Resource):
    """An app's own HTTP port: every request on it is served by the app as the gateway's are."""

    kind = "HTTP listener"

    def __init__(self, instance: Instance, sock: socket.socket, on_close: Callable[[], None]) -> None:
        super().__init__()
        self.instance = instance
        self.sock = sock
        self.address = sock.getsockname()
        self._on_close = on_close
        self._server = web.Server(self._handle, access_log=None)
        self._listening: asyncio.Server | None = None
        self._closed = False
        loop = asyncio.get_running_loop()
        self._start = loop.create_task(self._listen(loop))

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        # the socket already listens (bind above): connections wait in its backlog until this runs
        self._listening = await loop.create_server(self._server, sock=self.sock)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._closed:  # a kept-alive connection, before the shutdown reached it
            return plain_failure(503, "is not running")
        return await serve_request(request, self.instance, request.raw_path)  # type: ignore[arg-type]

    def close(self) -> None:
        super().close()
        if self._closed:
            return
        self._closed = True
        self._start.cancel()
        if self._listening is not None:
            self._listening.close()
        self.sock.close()  # the port is free from here on
        self.instance = None  # type: ignore[assignment]
        self._on_close()
        try:
            task = asyncio.get_running_loop().create_task(self._server.shutdown(SHUTDOWN_TIMEOUT))
        except RuntimeError:  # no loop any more: its connections are gone with it
            return
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)
