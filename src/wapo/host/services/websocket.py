"""The ``ws.*`` services: a guest's WebSockets (encodings in ``wapo.host.net.websocket``)."""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..abi import OcallError
from ..net.websocket import ClientWebSocket, WebSocketResource
from .registry import ServiceError, resource_getter, service

if TYPE_CHECKING:
    from ..state import GuestState


_get = resource_getter(WebSocketResource, "WebSocket", "WebSocket")


@service("ws.open")
def open_(st: GuestState, payload: bytes) -> bytes:
    try:
        req = json.loads(payload)
        url = req["url"]
        protocols = [str(p) for p in req.get("protocols") or ()]
        if not isinstance(url, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ServiceError("TypeError", "ws.open: malformed request") from None
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname or parts.fragment:
        raise ServiceError("SyntaxError", f"The URL '{url}' is invalid for a WebSocket")
    try:
        ws = ClientWebSocket(st, url, protocols)
    except OcallError as exc:
        raise ServiceError("Error", f"WebSocket: {str(exc).split(': ', 1)[-1]}") from None
    try:
        return struct.pack("<I", st.resources.add(ws))
    except OcallError as exc:
        raise ServiceError("Error", f"WebSocket: {exc}") from None


@service("ws.next")
def next_(st: GuestState, payload: bytes) -> bytes:
    return _get(st, payload).next_event()


@service("ws.send")
def send(st: GuestState, payload: bytes) -> bytes:
    if len(payload) < 5 or payload[4] not in (0, 1):
        raise ServiceError("TypeError", "ws.send: malformed payload")
    ws = _get(st, payload)
    return struct.pack("<I", min(ws.send(payload[4], payload[5:]), 0xFFFFFFFF))


@service("ws.buffered")
def buffered(st: GuestState, payload: bytes) -> bytes:
    return struct.pack("<I", min(_get(st, payload).queued_out, 0xFFFFFFFF))


@service("ws.close")
def close(st: GuestState, payload: bytes) -> bytes:
    if len(payload) < 6:
        raise ServiceError("TypeError", "ws.close: malformed payload")
    ws = _get(st, payload)
    code = struct.unpack_from("<H", payload, 4)[0]
    ws.request_close(code, payload[6:])
    return b""
