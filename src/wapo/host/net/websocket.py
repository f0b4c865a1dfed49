"""WebSockets of guests: connections over aiohttp, one event encoding for both ends.

A script's client (the ``WebSocket`` global) is a ``ClientWebSocket``; an app's end of a
WebSocket the host accepted for it (``WapoServer.upgradeWebSocket``, see ``app_http``) is an
``AcceptedWebSocket``; the ``ws.*`` services (``wapo.host.services.websocket``) serve both
(``ws.open`` only makes clients).

Every client connection goes through fetch's ``PolicyConnector`` (the run's address policy, checked
after DNS; only checked addresses are connected to) with a connector of its own (nothing
shared between sockets or runs), and holds one of the run's socket slots (``NetLimits``).

    ws.open    JSON {url, protocols: [...]}  ->  u32 WebSocket id (the URL is ws: or wss:,
               checked by the guest; a malformed one throws SyntaxError here too)
    ws.next    u32 id  ->  the next event, or empty (nothing yet: watch the id, then ask again):
                 1 + JSON {protocol, extensions}   open
                 2 + UTF-8 text                    a text message
                 3 + bytes                         a binary message
                 4 + JSON {message}                error (the connection failed; a close follows)
                 5 + JSON {code, reason, wasClean} close (the last event)
    ws.send    u32 id + 1 byte (0 text, 1 binary) + data  ->  u32 bytes queued, not yet sent
    ws.buffered u32 id  ->  u32 bytes queued, not yet sent
    ws.close   u32 id + u16 code (0: none) + UTF-8 reason  ->  empty; the close frame follows
               the queued messages

``host.close`` of a client's id drops the connection at once (no close handshake); of an
accepted socket's, closes it with 1001 (the instance ending does the same).

Bounds (``WebSocketLimits``; ``LIMITS`` is read when a socket opens, tests may replace it): a
received message larger than ``max_message_size`` (default 16 MiB) fails the connection with
close code 1009 (aiohttp rejects a frame by its header, before reading it, so a frame is bounded
by the same number); events wait in a queue of at most ``receive_high_water`` bytes before the
socket is left unread (TCP then pushes back on the server); sending more than
``max_send_queue`` bytes ahead of the network fails the connection (the browser API has no
back-pressure: ``bufferedAmount`` is the guest's to watch). The same bounds apply to accepted
sockets (a client's message over the limit: close 1009 to the client, error + close to the app).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Union

import aiohttp
import aiohttp.web

from .fetch import PolicyConnector, client_for, describe_error
from ..limits import format_size
from .tcp import net_state
from ..resources import Resource

if TYPE_CHECKING:
    from ..state import GuestState

log = logging.getLogger("wapo.host.websocket")

USER_AGENT = "wapo-websocket/0.1"


@dataclass(frozen=True)
class WebSocketLimits:
    max_message_size: int = 16 * 1024 * 1024  # a received message (and so a frame); more: close 1009
    receive_high_water: int = 1024 * 1024      # bytes of events queued for the guest before reading stops
    max_send_queue: int = 64 * 1024 * 1024     # bytes queued to send; more fails the connection
    connect_timeout: float = 30.0              # resolution, connection, TLS and the upgrade
    close_timeout: float = 10.0                # the wait for the server's close frame


LIMITS = WebSocketLimits()


def set_max_message_size(size: int) -> None:
    """The largest message (and so frame) a guest's WebSocket receives, client or server side,
    for sockets opened from now on in this process (``--ws-max-message``, ``ws_max_message``)."""
    global LIMITS
    if size < 1:
        raise ValueError("the WebSocket message limit is at least 1 byte")
    LIMITS = replace(LIMITS, max_message_size=size)

EV_OPEN, EV_TEXT, EV_BINARY, EV_ERROR, EV_CLOSE = 1, 2, 3, 4, 5
STATS = {"websockets": 0}  # live connection tasks, process-wide (tests read it)

WebSocketLike = Union[aiohttp.ClientWebSocketResponse, aiohttp.web.WebSocketResponse]


class WebSocketResource(Resource):
    """One WebSocket of a guest, either end: ready when an event waits for the guest.

    The base holds what both ends share: the event queue the guest reads with ``ws.next``, the
    send queue ``ws.send`` fills, and ``_relay``, which runs an open aiohttp WebSocket (client or
    server side) until it closes. Subclasses open the connection: ``ClientWebSocket`` connects,
    ``AcceptedWebSocket`` is handed one the host accepted for an app."""

    kind = "WebSocket"

    def __init__(self) -> None:
        super().__init__()
        self.limits = LIMITS
        self.events: deque[bytes] = deque()
        self.queued_in = 0
        self._room = asyncio.Event()
        self._room.set()
        self.send_queue: deque[tuple[int, bytes] | tuple[str, int, bytes]] = deque()
        self.queued_out = 0
        self._send_avail = asyncio.Event()
        self.close_requested: tuple[int, bytes] | None = None
        self.failure: str | None = None
        self.closed_event = False
        self.task: asyncio.Task | None = None

    # --- the guest's side ---
    def poll_ready(self, task: int, waker: int) -> None:
        if not self.events:
            self._park(task, waker)

    def next_event(self) -> bytes:
        if not self.events:
            return b""
        ev = self.events.popleft()
        self.queued_in -= len(ev)
        if self.queued_in < self.limits.receive_high_water:
            self._room.set()
        return ev

    def send(self, kind: int, data: bytes) -> int:
        if self.closed_event or self.close_requested is not None:
            return self.queued_out
        if self.queued_out + len(data) > self.limits.max_send_queue:
            self._fail(f"more than {format_size(self.limits.max_send_queue)} queued to send")
            return self.queued_out
        self.send_queue.append((kind, data))
        self.queued_out += len(data)
        self._send_avail.set()
        return self.queued_out

    def request_close(self, code: int, reason: bytes) -> None:
        if self.close_requested is not None or self.closed_event:
            return
        self.close_requested = (code, reason)
        self.send_queue.append(("close", code, reason))
        self._send_avail.set()

    def close(self) -> None:
        super().close()
        self.events.clear()
        self.send_queue.clear()
        self.queued_in = self.queued_out = 0
        if self.task is not None and not self.task.done():
            self.task.cancel()

    # --- the host's side ---
    def _push(self, kind: int, data: bytes) -> None:
        if self.closed_event:
            return
        ev = bytes((kind,)) + data
        self.events.append(ev)
        self.queued_in += len(ev)
        if self.queued_in >= self.limits.receive_high_water:
            self._room.clear()
        if kind == EV_CLOSE:
            self.closed_event = True
        self._notify()

    def _fail(self, message: str) -> None:
        """Fail the connection from the host side (the task reports error + close 1006)."""
        if self.failure is None:
            self.failure = message
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def _finish(self, code: int, reason: str, clean: bool, error: str | None) -> None:
        if error is not None:
            self._push(EV_ERROR, json.dumps({"message": error}).encode())
        self._push(EV_CLOSE, json.dumps({"code": code, "reason": reason, "wasClean": clean}).encode())

    async def _sender(self, ws: WebSocketLike) -> None:
        while True:
            while not self.send_queue:
                self._send_avail.clear()
                await self._send_avail.wait()
            item = self.send_queue[0]
            if item[0] == "close":
                self.send_queue.popleft()
                _, code, reason = item  # type: ignore[misc]
                await ws.close(code=code or 1000, message=reason)
                return
            kind, data = item  # type: ignore[misc]
            await ws.send_frame(data, aiohttp.WSMsgType.TEXT if kind == 0 else aiohttp.WSMsgType.BINARY)
            self.send_queue.popleft()
            self.queued_out -= len(data)

    async def _relay(self, ws: WebSocketLike, protocol: str) -> None:
        """Run an open connection until it closes: messages become events, queued sends go out."""
        limits = self.limits
        self._push(EV_OPEN, json.dumps({"protocol": protocol, "extensions": ""}).encode())
        sender = asyncio.get_running_loop().create_task(self._sender(ws))
        try:
            error: str | None = None
            reason = ""
            lost = False
            too_big = False
            while True:
                await self._room.wait()
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._push(EV_TEXT, msg.data.encode("utf-8"))
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self._push(EV_BINARY, msg.data)
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    reason = msg.extra or ""
                    break
                elif msg.type is aiohttp.WSMsgType.CLOSING:
                    break  # our close() (from the sender) is under way
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    exc = msg.data
                    if isinstance(exc, aiohttp.WebSocketError) and exc.code == 1009:
                        error = f"a received message is larger than the limit ({limits.max_message_size} bytes)"
                        too_big = True  # aiohttp sent close 1009 (its close_code may say 1006 after that)
                    else:
                        error = str(exc) or type(exc).__name__
                    break
                else:  # CLOSED: the connection ended; without a close frame it was lost
                    lost = self.close_requested is None
                    break
            # the close event has the code of the peer's close frame (aiohttp does not keep its
            # reason when this end closed first: the reason is then empty)
            if self.close_requested is not None and not sender.done():
                try:
                    await asyncio.wait_for(asyncio.shield(sender), limits.close_timeout + 1)
                except (asyncio.TimeoutError, Exception):
                    pass
            code = 1009 if too_big else ws.close_code
            exc = ws.exception()
            if error is None and exc is not None and code == 1006:
                error = str(exc) or type(exc).__name__
            if lost and error is None:  # aiohttp reports 1000 for a connection dropped without a close frame
                code = 1006
            if code is None or code == 0:
                code = 1005 if error is None else 1006
            clean = error is None and code != 1006
            if code == 1006 and error is None:
                error = "the connection was lost"
            self._finish(code, reason, clean, error)
        finally:
            if not sender.done():
                sender.cancel()
            self.send_queue.clear()
            self.queued_out = 0


class ClientWebSocket(WebSocketResource):
    """A WebSocket a script opened (``new WebSocket(url)``): the host connects and relays."""

    def __init__(self, st: GuestState, url: str, protocols: list[str]) -> None:
        super().__init__()
        self.net = net_state(st)
        self.client = client_for(st)
        self.url = url
        self.protocols = protocols
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._held = False
        self.net.acquire()  # raises ResourceLimited-like OcallError when the run has too many sockets
        self._held = True
        self.task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        super().close()
        self._release()

    def _release(self) -> None:
        if self._held:
            self._held = False
            self.net.release()

    async def _run(self) -> None:
        limits = self.limits
        STATS["websockets"] += 1
        session: aiohttp.ClientSession | None = None
        try:
            try:
                async with asyncio.timeout(limits.connect_timeout):
                    connector = PolicyConnector(self.client.policy, limit=1, force_close=True, use_dns_cache=False)
                    session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                    trust_env=False)
                    ssl_ctx = self.net.client_context() if self.url.startswith("wss:") else None
                    ws = await session.ws_connect(
                        self.url, protocols=self.protocols, max_msg_size=limits.max_message_size + 1,  # aiohttp refuses a message of exactly max_msg_size
                        autoclose=True, autoping=True, headers={"User-Agent": USER_AGENT},
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=limits.close_timeout),
                        **({"ssl": ssl_ctx} if ssl_ctx is not None else {}))
            except TimeoutError as exc:
                if isinstance(exc, aiohttp.ServerTimeoutError):
                    raise
                raise ConnectionError(f"no connection within the {limits.connect_timeout:g} s timeout") from None
            self.ws = ws
            if self.protocols and ws.protocol not in self.protocols:
                await ws.close(code=1002)
                raise ConnectionError("the server chose no subprotocol of those offered")
            await self._relay(ws, ws.protocol or "")
        except asyncio.CancelledError:
            if self.failure is not None:
                self._finish(1006, "", False, self.failure)
            raise
        except Exception as exc:  # every failure becomes error + close 1006, never a host fault
            if not isinstance(exc, (aiohttp.ClientError, OSError)):
                log.debug("websocket %s failed", self.url, exc_info=True)
            message = str(exc) if isinstance(exc, ConnectionError) and exc.args else describe_error(exc)
            if isinstance(exc, aiohttp.WSServerHandshakeError):
                message = f"the server refused the WebSocket upgrade ({exc.status} {exc.message})"
            self._finish(1006, "", False, message)
        finally:
            STATS["websockets"] -= 1
            self.send_queue.clear()
            self.queued_out = 0
            if session is not None:  # closing the connector drops the connection (no close handshake)
                waiter = session.connector.close() if session.connector is not None else None
                if waiter is not None:
                    try:
                        await waiter
                    except (asyncio.CancelledError, Exception):
                        pass
            self._release()


class AcceptedWebSocket(WebSocketResource):
    """The app's end of a WebSocket the host accepts for it (``WapoServer.upgradeWebSocket``).

    Made before the handshake (the guest holds it while its handler runs); the host side that
    serves the HTTP request does the handshake and calls ``serve`` with the open connection,
    or ``refuse`` if there is none. Closing the resource (the guest, or the instance ending)
    closes the connection with 1001."""

    def __init__(self, protocol: str) -> None:
        super().__init__()
        self.protocol = protocol
        self.done = False

    def refuse(self, message: str) -> None:
        """No connection will come: the guest sees error + close 1006."""
        if not self.done:
            self.done = True
            self._finish(1006, "", False, message)

    def close(self) -> None:
        super().close()
        self.done = True

    async def serve(self, ws: aiohttp.web.WebSocketResponse) -> None:
        """Relay the accepted connection until either end closes it (the caller's task waits)."""
        if self.done:  # the guest dropped the socket before the handshake finished
            await ws.close(code=1001, message=b"the app closed the socket")
            return
        self.task = asyncio.get_running_loop().create_task(self._serve(ws))
        try:
            await asyncio.wait([self.task])
        finally:
            self.task.cancel()
            if not ws.closed:  # the app ended (or dropped the socket): tell the client it is going away
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=1001, message=b"the app ended"), self.limits.close_timeout)

    async def _serve(self, ws: aiohttp.web.WebSocketResponse) -> None:
        STATS["websockets"] += 1
        try:
            await self._relay(ws, ws.ws_protocol or "")
        except asyncio.CancelledError:
            if self.failure is not None:
                self._finish(1006, "", False, self.failure)
            raise
        except Exception as exc:
            self._finish(1006, "", False, describe_error(exc))
        finally:
            STATS["websockets"] -= 1
            self.done = True
