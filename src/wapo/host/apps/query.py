"""An app's query server, host side: services over the channel-3 ``QueryRequest`` messages.

The gateway sends each ``POST /app/<id>/query/<path>`` to a long-running app as a SCALE
``QueryRequest`` on input channel 3 (``wapo.host.app_channel.query``) holding a one-shot for the
reply. These services let a guest that talks through ``host_call`` (WapoJS's
``WapoServer.serveQueries``) answer them:

    app.query.open   (empty)  ->  u32 channel id (input channel 3; queries queued before are kept);
                     throws Error if the channel is already open
    app.query.next   u32 channel id  ->  0 + u32 reply id + u8 has-origin (+ 32 origin bytes)
                     + u32 path length + UTF-8 path + payload (one query), 1 (end of file: the
                     host is stopping the app) or 2 (nothing yet: watch the channel, ask again)
    app.query.reply  u32 reply id + bytes  ->  empty: the answer (then close the reply id)
    app.query.error  u32 reply id + UTF-8 message  ->  empty: ``oneshot_send_error`` (the gateway
                     answers 500 {"appError": message}); then close the reply id
    app.query.close  u32 channel id  ->  empty: stop taking queries; queued ones are dropped (the
                     gateway answers 502) and later ones are refused; then close the channel
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..abi import OcallError
from ..resources import Oneshot
from .messages import QueryRequest, ScaleError
from ..services.registry import ServiceError, log, resource_arg, service
from .http import input_channel, open_input

if TYPE_CHECKING:
    from ..state import GuestState

QUERY_CHANNEL = 3


def _reply(st: GuestState, payload: bytes) -> Oneshot:
    return resource_arg(st, payload, Oneshot, "reply", "app.query")


def _drop(st: GuestState, message: bytes) -> None:
    """Close a query's reply unanswered (the gateway answers 502)."""
    try:
        st.resources.close(QueryRequest.decode(message).reply_tx)
    except (ScaleError, OcallError):
        pass


@service("app.query.open")
def open_channel(st: GuestState, payload: bytes) -> bytes:
    return open_input(st, QUERY_CHANNEL, "queries")


@service("app.query.next")
def next_query(st: GuestState, payload: bytes) -> bytes:
    channel = input_channel(st, payload, QUERY_CHANNEL, "app.query")
    while channel._queue:
        message = channel._queue.popleft()
        try:
            q = QueryRequest.decode(message)
            st.resources.get_as(q.reply_tx, Oneshot)
        except (ScaleError, OcallError) as exc:
            log.warning("app.query.next: dropped a malformed QueryRequest: %s", exc)
            _drop(st, message)
            continue
        path = q.path.encode()
        origin = b"\1" + q.origin if q.origin is not None else b"\0"
        return b"\0" + struct.pack("<I", q.reply_tx) + origin + struct.pack("<I", len(path)) + path + q.payload
    return b"\1" if channel._closed else b"\2"


@service("app.query.reply")
def reply(st: GuestState, payload: bytes) -> bytes:
    try:
        _reply(st, payload).send(payload[4:])
    except OcallError as exc:
        raise ServiceError("Error", f"app.query.reply: {exc}") from None
    return b""


@service("app.query.error")
def reply_error(st: GuestState, payload: bytes) -> bytes:
    try:
        _reply(st, payload).send_error(payload[4:].decode("utf-8", "replace"))
    except OcallError as exc:
        raise ServiceError("Error", f"app.query.error: {exc}") from None
    return b""


@service("app.query.close")
def close(st: GuestState, payload: bytes) -> bytes:
    channel = input_channel(st, payload, QUERY_CHANNEL, "app.query")
    channel.end()
    while channel._queue:
        _drop(st, channel._queue.popleft())
    return b""
