"""fetch's host side: services over ``wapo.host.net.fetch``.

Encodings (little-endian u32 ids; JSON for heads, raw bytes for chunks):

    http.start   u32 len + JSON head {method, url, headers: [[name, value]...],
                 redirect: follow|manual|error, body: 0 none | 1 inline | 2 streamed}
                 + the inline body  ->  u32 fetch id + i32 upload id (-1 without a streamed body)
    http.write   u32 upload id + chunk  ->  1 byte: 0 write more, 1 watch the upload first, 2 stop
                 (the fetch no longer needs the body)
    http.end     u32 upload id  ->  empty (the request body is complete; then close the upload)
    http.head    u32 fetch id  ->  JSON {status, statusText, headers, url, redirected}, once the
                 watched fetch is ready; a failed fetch throws TypeError "fetch failed: ..."
    http.read    u32 fetch id  ->  0 + bytes (a chunk), 1 (end of body) or 2 (nothing yet: watch
                 the fetch, then read again); a failed body throws TypeError

Aborting is ``host.close`` of the fetch (and of the upload): it cancels the
work, closes the connection and frees every buffer. Closing an upload before
``http.end`` fails its fetch.
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING

from ..abi import OcallError
from ..net.fetch import FetchFailed, FetchResource, UploadResource, client_for
from ..resources import Resource
from .registry import R, ServiceError, add_resources, resource_arg, service

if TYPE_CHECKING:
    from ..state import GuestState



def _get(st: GuestState, payload: bytes, kind: type[R]) -> R:
    return resource_arg(st, payload, kind, "resource", "fetch")


@service("http.start")
def start(st: GuestState, payload: bytes) -> bytes:
    if len(payload) < 4:
        raise ServiceError("TypeError", "http.start: no request head")
    n = struct.unpack_from("<I", payload)[0]
    try:
        head = json.loads(payload[4:4 + n])
        mode = int(head.get("body", 0))
        url = head["url"]
        if not isinstance(url, str):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ServiceError("TypeError", "http.start: malformed request head") from None
    body = payload[4 + n:] if mode == 1 else None
    try:
        fetch = FetchResource(client_for(st), head, body, streamed=mode == 2)
    except FetchFailed as exc:
        raise ServiceError("TypeError", f"fetch failed: {exc}") from None
    parts: tuple[Resource, ...] = (fetch, UploadResource(fetch)) if mode == 2 else (fetch,)
    try:
        ids = add_resources(st, *parts)
    except OcallError as exc:
        raise ServiceError("TypeError", f"fetch failed: {exc}") from None
    fid, uid = ids[0], ids[1] if len(ids) > 1 else -1
    return struct.pack("<Ii", fid, uid)


@service("http.write")
def write(st: GuestState, payload: bytes) -> bytes:
    upload: UploadResource = _get(st, payload, UploadResource)
    try:
        return bytes((upload.write(payload[4:]),))
    except OcallError as exc:
        raise ServiceError("TypeError", f"fetch: {exc}") from None


@service("http.end")
def end(st: GuestState, payload: bytes) -> bytes:
    upload: UploadResource = _get(st, payload, UploadResource)
    upload.end()
    return b""


@service("http.head")
def head(st: GuestState, payload: bytes) -> bytes:
    fetch: FetchResource = _get(st, payload, FetchResource)
    try:
        return fetch.head_json()
    except FetchFailed as exc:
        raise ServiceError("TypeError", f"fetch failed: {exc}") from None
    except OcallError:
        raise ServiceError("Error", "http.head before the fetch was ready (watch it first)") from None


@service("http.read")
def read(st: GuestState, payload: bytes) -> bytes:
    fetch: FetchResource = _get(st, payload, FetchResource)
    try:
        data = fetch.read()
    except FetchFailed as exc:
        raise ServiceError("TypeError", f"fetch failed: {exc}") from None
    if data is None:
        return b"\2"
    if not data:
        return b"\1"
    return b"\0" + data
