"""An app's HTTP server, host side: services over the channel-4 ``HttpRequest`` messages.

The gateway sends each request to a long-running app as a SCALE ``HttpRequest`` on input
channel 4 (see ``wapo.host.app_channel``) holding two resources of the guest's table: a one-shot
for the response head and an ``IoStream`` for both bodies. These services let a guest that talks
through ``host_call`` (WapoJS's ``WapoServer``) serve them. Encodings (little-endian u32 ids,
JSON heads, raw chunks):

    app.http.open       (empty)  ->  u32 channel id: opens input channel 4 the way the
                        ``create_input_channel`` ocall does (requests queued before are kept);
                        throws Error if the channel is already open
    app.http.next       u32 channel id  ->  0 + JSON {method, url, headers: [[name, value]...],
                        tx, io, readWatch, writeWatch, goneWatch} (one request), 1 (end of file: the host is
                        stopping the app) or 2 (nothing yet: watch the channel, then ask again).
                        readWatch / writeWatch are two resources made for this request: watch them
                        when ``read_body`` / ``write`` answered "wait"; goneWatch is ready once the
                        host gave up on the request (the client went away); close all five when done
    app.http.read_body  u32 io id  ->  0 + bytes (a chunk of the request body), 1 (the body is
                        complete) or 2 (nothing yet: watch readWatch); a failed body throws TypeError
    app.http.respond    u32 tx id + JSON {status, headers: [[name, value]...]}  ->  empty: the
                        SCALE ``HttpResponseHead`` goes through the one-shot
    app.http.write      u32 io id + chunk  ->  u32 bytes taken (fewer than given: watch writeWatch,
                        then write the rest); throws TypeError once the client went away
    app.http.end        u32 io id  ->  empty: the response body is complete
    app.http.abort      u32 io id + UTF-8 reason  ->  empty: the response body failed; the gateway
                        cuts the connection instead of passing a truncated body off as complete
    app.http.close      u32 channel id  ->  empty: stop taking requests; queued ones are dropped
                        (the gateway answers 502) and later ones are refused; then close the channel

An own port and WebSockets (served host side by ``wapo.host.app_server``):

    app.http.listen     JSON {port, hostname}  ->  u32 listener id: the host serves HTTP on that
                        port (only inside the run's ``NetworkPolicy.listen_ports``; Error if not,
                        or if it is in use) and sends each request into channel 4 like the
                        gateway's; closing the id (or the instance ending) frees the port
    app.http.websocket  JSON {protocol}  ->  u32 WebSocket id: an ``AcceptedWebSocket``, not yet
                        connected; read and write it with the ``ws.*`` services (websocket.py)
    app.http.upgrade    u32 reply id + u32 WebSocket id  ->  empty: answers the request 101; the
                        host side does the handshake and the socket opens (its "open" event), or
                        fails (error + close 1006) if the client is gone or was no upgrade

The 101 head carries one header, ``x-wapo-websocket: <random token>``, which the serving side
redeems for the socket (``claim_upgrade``); the guest never sees the token, so no other head can
name a socket. An unclaimed socket fails after ``CLAIM_TIMEOUT`` s.

At most 256 KiB of each body waits in the host (``IoStream``): writes past that answer fewer bytes.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import TYPE_CHECKING

from ..abi import ErrorCode, OcallError
from .io_stream import IoStream
from ..net.tcp import net_state
from ..resources import InputChannel, Oneshot, Resource
from .messages import HttpRequest, HttpResponseHead, ScaleError
from .server import UPGRADE_HEADER, AppListener, ListenError, bind, expect_upgrade
from ..services.registry import R, ServiceError, log, resource_arg, resource_id, service, u32
from ..net.websocket import AcceptedWebSocket

if TYPE_CHECKING:
    from ..state import GuestState

HTTP_CHANNEL = 4
READ_CHUNK = 64 * 1024
TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # a subprotocol name (RFC 7230 token)


class _BodyWatch(Resource):
    """Ready when one direction of an ``IoStream`` has something for the guest.

    ``IoStream`` parks its waiters in ``poll_read``/``poll_write``; a guest using services
    watches this instead (one per direction, so a read and a write may wait at the same time)."""

    kind = "http body watch"

    def __init__(self, stream: IoStream, write: bool) -> None:
        super().__init__()
        self.stream = stream
        self.write = write

    def _ready(self) -> bool:
        s = self.stream
        if s.closed or s._host_gone:
            return True
        if self.write:
            return s._out_done or s._out_size < s._buffer
        return bool(s._in) or s._in_eof or s._in_error is not None

    def poll_ready(self, task: int, waker: int) -> None:
        if self._ready():
            return
        if self.write:
            self.stream._write_waiter = (task, waker)
        else:
            self.stream._read_waiter = (task, waker)
        raise OcallError(ErrorCode.PENDING)

    def close(self) -> None:
        super().close()
        self.stream = None  # type: ignore[assignment]


class _GoneWatch(Resource):
    """Ready when the host gave up on a request (its client went away, or no head in time): what
    WapoServer turns into ``request.signal`` aborting."""

    kind = "http request gone watch"

    def __init__(self, stream: IoStream) -> None:
        super().__init__()
        self.stream: IoStream | None = stream

    def poll_ready(self, task: int, waker: int) -> None:
        if self.stream is not None and not self.stream.closed:
            self.stream.watch_gone(task, waker)

    def close(self) -> None:
        super().close()
        self.stream = None


def _get(st: GuestState, payload: bytes, kind: type[R], what: str, offset: int = 0, prefix: str = "app.http") -> R:
    return resource_arg(st, payload, kind, what, prefix, offset)


def input_channel(st: GuestState, payload: bytes, kind: int, prefix: str) -> InputChannel:
    """The open input channel ``kind`` that the payload's u32 id names (errors name ``prefix``)."""
    channel = _get(st, payload, InputChannel, "channel", prefix=prefix)
    if st.inputs.open.get(kind) is not channel:
        raise ServiceError("TypeError",
                           f"{prefix}: resource {resource_id(payload, 'channel', prefix)} is not input channel {kind}")
    return channel


def open_input(st: GuestState, kind: int, what: str) -> bytes:
    """Open input channel ``kind`` as the ``create_input_channel`` ocall does: u32 id."""
    try:
        rid = st.open_input(kind)
    except OcallError as exc:
        if exc.code == ErrorCode.ALREADY_EXISTS:
            raise ServiceError("Error", f"WapoServer: the app already serves {what} "
                                        f"(input channel {kind} was opened before in this run)") from None
        raise ServiceError("Error", f"WapoServer: cannot open the {what} channel: {exc}") from None
    return u32(rid)


def _channel(st: GuestState, payload: bytes) -> InputChannel:
    return input_channel(st, payload, HTTP_CHANNEL, "app.http")


@service("app.http.open")
def open_channel(st: GuestState, payload: bytes) -> bytes:
    return open_input(st, HTTP_CHANNEL, "HTTP")


def _drop(st: GuestState, message: bytes) -> None:
    """Close a request's resources unanswered (the gateway answers 502)."""
    try:
        request = HttpRequest.decode(message)
    except ScaleError:
        return
    for rid in (request.response_tx, request.io_stream):
        try:
            st.resources.close(rid)
        except OcallError:
            pass


@service("app.http.next")
def next_request(st: GuestState, payload: bytes) -> bytes:
    channel = _channel(st, payload)
    while channel._queue:
        message = channel._queue.popleft()
        try:
            request = HttpRequest.decode(message)
            stream = st.resources.get_as(request.io_stream, IoStream)
            st.resources.get_as(request.response_tx, Oneshot)
        except (ScaleError, OcallError) as exc:
            log.warning("app.http.next: dropped a malformed HttpRequest: %s", exc)
            _drop(st, message)
            continue
        watches: list[int] = []
        try:
            for write in (False, True):
                watches.append(st.resources.add(_BodyWatch(stream, write)))
            watches.append(st.resources.add(_GoneWatch(stream)))
        except OcallError as exc:  # too many resources: this request fails, the next may not
            for rid in watches:
                st.resources.close(rid)
            _drop(st, message)
            raise ServiceError("RangeError", f"app.http: {exc}") from None
        head = {"method": request.method, "url": request.url, "headers": [list(h) for h in request.headers],
                "tx": request.response_tx, "io": request.io_stream,
                "readWatch": watches[0], "writeWatch": watches[1], "goneWatch": watches[2]}
        return b"\0" + json.dumps(head).encode()
    if channel._closed:
        return b"\1"
    return b"\2"


@service("app.http.read_body")
def read_body(st: GuestState, payload: bytes) -> bytes:
    stream: IoStream = _get(st, payload, IoStream, "body stream")
    if not (stream._in or stream._in_eof or stream._in_error is not None):
        return b"\2"
    try:
        data = stream.poll_read(0, 0, READ_CHUNK)
    except OcallError as exc:
        if exc.code == ErrorCode.PENDING:
            return b"\2"
        raise ServiceError("TypeError", f"the request body failed: {exc}") from None
    return b"\0" + data if data else b"\1"


@service("app.http.respond")
def respond(st: GuestState, payload: bytes) -> bytes:
    tx: Oneshot = _get(st, payload, Oneshot, "reply")
    try:
        head = json.loads(payload[4:])
        status = int(head["status"])
        headers = [(str(n), str(v)) for n, v in head.get("headers") or []]
        if not 0 <= status <= 0xFFFF:
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ServiceError("TypeError", "app.http.respond: malformed response head") from None
    try:
        tx.send(HttpResponseHead(status, headers).encode())
    except OcallError as exc:
        raise ServiceError("Error", f"app.http.respond: {exc}") from None
    return b""


@service("app.http.write")
def write(st: GuestState, payload: bytes) -> bytes:
    stream: IoStream = _get(st, payload, IoStream, "body stream")
    data = payload[4:]
    try:
        n = stream.poll_write(0, 0, data)
    except OcallError as exc:
        if exc.code == ErrorCode.PENDING:
            stream._write_waiter = None  # the guest watches writeWatch instead
            return u32(0)
        raise ServiceError("TypeError", f"the response body cannot be sent: {exc}") from None
    return u32(n)


@service("app.http.end")
def end(st: GuestState, payload: bytes) -> bytes:
    stream: IoStream = _get(st, payload, IoStream, "body stream")
    stream.poll_shutdown(0, 0)
    return b""


@service("app.http.abort")
def abort(st: GuestState, payload: bytes) -> bytes:
    stream: IoStream = _get(st, payload, IoStream, "body stream")
    if not stream._out_done:
        reason = payload[4:].decode("utf-8", "replace") or "the app failed"
        stream._out_error = f"the response body failed: {reason}"
        stream._out_done = True
        stream._out_event.set()
    return b""


@service("app.http.close")
def close(st: GuestState, payload: bytes) -> bytes:
    channel = _channel(st, payload)
    channel.end()
    while channel._queue:
        _drop(st, channel._queue.popleft())
    return b""


# --- an own port ---------------------------------------------------------------------------------

@service("app.http.listen")
def listen(st: GuestState, payload: bytes) -> bytes:
    try:
        options = json.loads(payload)
        port, hostname = options["port"], options.get("hostname", "127.0.0.1")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ServiceError("TypeError", "app.http.listen: JSON {port, hostname} expected") from None
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ServiceError("TypeError", f"WapoServer: port must be an integer 1..65535, not {port!r}")
    if not isinstance(hostname, str):
        raise ServiceError("TypeError", "WapoServer: hostname must be a string")
    net = net_state(st)
    try:
        net.acquire()  # the listener holds one of the run's socket slots, as tcp_listen's does
    except OcallError as exc:
        raise ServiceError("Error", f"WapoServer: cannot listen: {exc}") from None
    try:
        sock = bind(hostname, port, net.policy.listen_ports)
    except ListenError as exc:
        net.release()
        raise ServiceError(exc.name, f"WapoServer: {exc}") from None
    instance = st.owner()
    if instance is None:
        net.release()
        sock.close()
        raise ServiceError("Error", "WapoServer: the app is ending")
    listener = AppListener(instance, sock, net.release)
    try:
        return u32(st.resources.add(listener))  # too many resources: add closes it (freeing the port)
    except OcallError as exc:
        raise ServiceError("RangeError", f"WapoServer: {exc}") from None


# --- WebSockets ----------------------------------------------------------------------------------

@service("app.http.websocket")
def websocket(st: GuestState, payload: bytes) -> bytes:
    try:
        protocol = json.loads(payload).get("protocol") or ""
        if not isinstance(protocol, str):
            raise TypeError
    except (ValueError, TypeError, AttributeError):
        raise ServiceError("TypeError", "app.http.websocket: JSON {protocol} expected") from None
    if protocol and not TOKEN_RE.match(protocol):
        raise ServiceError("SyntaxError", f"WapoServer.upgradeWebSocket: the subprotocol {protocol!r} is invalid")
    try:
        return u32(st.resources.add(AcceptedWebSocket(protocol)))
    except OcallError as exc:
        raise ServiceError("RangeError", f"WapoServer.upgradeWebSocket: {exc}") from None


@service("app.http.upgrade")
def upgrade(st: GuestState, payload: bytes) -> bytes:
    tx: Oneshot = _get(st, payload, Oneshot, "reply")
    sock: AcceptedWebSocket = _get(st, payload, AcceptedWebSocket, "WebSocket", offset=4)
    if sock.done:
        raise ServiceError("TypeError", "WapoServer: this WebSocket is already closed")
    token = secrets.token_hex(16)
    try:
        tx.send(HttpResponseHead(101, [(UPGRADE_HEADER, token)]).encode())
    except OcallError as exc:
        raise ServiceError("Error", f"app.http.upgrade: {exc}") from None
    expect_upgrade(token, sock, st.loop)
    return b""
