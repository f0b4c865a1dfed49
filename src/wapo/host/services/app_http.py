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
                        tx, io, readWatch, writeWatch} (one request), 1 (end of file: the host is
                        stopping the app) or 2 (nothing yet: watch the channel, then ask again).
                        readWatch / writeWatch are two resources made for this request: watch them
                        when ``read_body`` / ``write`` answered "wait"; close all four when done
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

At most 256 KiB of each body waits in the host (``IoStream``): writes past that answer fewer bytes.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING

from .. import ocalls
from ..abi import ErrorCode, OcallError
from ..io_stream import IoStream
from ..resources import InputChannel, Oneshot, Resource
from ..scale_types import HttpRequest, HttpResponseHead, ScaleError
from . import ServiceError, log, service, u32

if TYPE_CHECKING:
    from ..instance import GuestState

HTTP_CHANNEL = 4
READ_CHUNK = 64 * 1024


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


def _id(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise ServiceError("TypeError", f"app.http: a {what} id is expected")
    return struct.unpack_from("<I", payload)[0]


def _get(st: GuestState, payload: bytes, kind: type, what: str):
    try:
        return st.resources.get_as(_id(payload, what), kind)
    except OcallError as exc:
        raise ServiceError("TypeError", f"app.http: {exc}") from None


def _channel(st: GuestState, payload: bytes) -> InputChannel:
    channel = _get(st, payload, InputChannel, "channel")
    if st.input_channels.get(HTTP_CHANNEL) is not channel:
        raise ServiceError("TypeError", "app.http: not the HTTP input channel")
    return channel


@service("app.http.open")
def open_channel(st: GuestState, payload: bytes) -> bytes:
    try:
        raw = ocalls.create_input_channel(st, 0, HTTP_CHANNEL)
    except OcallError as exc:
        if exc.code == ErrorCode.ALREADY_EXISTS:
            raise ServiceError("Error", "WapoServer: the app already serves HTTP (channel 4 is open)") from None
        raise ServiceError("Error", f"WapoServer: cannot open the HTTP channel: {exc}") from None
    return u32(struct.unpack("<i", raw)[0])


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
        except OcallError as exc:  # too many resources: this request fails, the next may not
            for rid in watches:
                st.resources.close(rid)
            _drop(st, message)
            raise ServiceError("RangeError", f"app.http: {exc}") from None
        head = {"method": request.method, "url": request.url, "headers": [list(h) for h in request.headers],
                "tx": request.response_tx, "io": request.io_stream,
                "readWatch": watches[0], "writeWatch": watches[1]}
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

