"""Talking to a running app through its input channels (spec section 3).

    status, headers, body = await http_request(instance, "GET", "/path", headers, request_body)
    answer = await query(instance, "path", b"payload")

``http_request`` puts a SCALE ``HttpRequest`` on channel 4 with two new resources in the
instance's table: a one-shot for the response head and an ``IoStream`` for both bodies; it
returns once the guest sent the head, with the response body as an async iterator (which raises
``BodyAborted`` if the app ends before finishing it). ``query`` puts a ``QueryRequest`` on
channel 3 and returns the bytes of the reply; a reply sent with ``oneshot_send_error`` raises
``QueryFailed``. Both raise ``AppNotAnswering`` if the instance ends (or has ended) without
answering. Messages wait in the channel until the guest opens it.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable, NamedTuple

from ..instance import Instance
from .io_stream import BodyAborted, IoStream
from ..resources import GuestReplyError
from .messages import Headers, HttpRequest, HttpResponseHead, QueryRequest, ScaleError

HTTP_CHANNEL = 4
QUERY_CHANNEL = 3

__all__ = ["http_request", "query", "HttpAnswer", "AppError", "AppNotAnswering", "QueryFailed", "BadAnswer",
           "BodyAborted"]


class AppError(Exception):
    """The app did not give a usable answer."""


class AppNotAnswering(AppError):
    """The app dropped the request (or ended) without answering."""


class QueryFailed(AppError):
    """The app answered the query with an error (``oneshot_send_error``); the message is the app's."""


class BadAnswer(AppError):
    """The app's answer is not a valid encoding."""


class HttpAnswer(NamedTuple):
    status: int
    headers: Headers
    body: AsyncIterator[bytes]


def _orphaned(instance: Instance, *rids: int) -> None:
    """The instance already ended: its table was closed before these were added; close them now."""
    if instance.finished:
        for rid in rids:
            instance.close_resource(rid)


def _send(instance: Instance, kind: int, message: bytes, *rids: int) -> None:
    try:
        instance.send_input(kind, message)
    except RuntimeError:  # the host already ended this channel (the app is stopping)
        for rid in rids:
            instance.close_resource(rid)
        raise AppNotAnswering("the app no longer takes requests (it is stopping)") from None


async def http_request(instance: Instance, method: str, url: str, headers: Headers = (),
                       body: AsyncIterator[bytes] | None = None, *, timeout: float | None = None,
                       on_stream: Callable[[IoStream], None] | None = None) -> HttpAnswer:
    """One HTTP request through channel 4. ``timeout`` bounds the wait for the response head;
    ``on_stream`` gets the exchange's ``IoStream`` (``host_abort()`` on it gives up on the request)."""
    tx, head_future = instance.new_oneshot()
    stream = IoStream(body, instance_done=lambda: instance.finished)
    if on_stream is not None:
        on_stream(stream)
    try:
        sid = instance.add_resource(stream)
    except Exception:
        instance.close_resource(tx)
        raise
    message = HttpRequest(method, url, list(headers), tx, sid).encode()
    _orphaned(instance, tx, sid)
    if not head_future.done():
        _send(instance, HTTP_CHANNEL, message, tx, sid)
    try:
        raw = await asyncio.wait_for(asyncio.shield(head_future), timeout)
    except GuestReplyError as exc:
        stream.host_abort()
        raise AppNotAnswering(str(exc)) from None
    except BaseException:  # timeout or the caller was cancelled: the guest's writes now fail
        stream.host_abort()
        raise
    try:
        head = HttpResponseHead.decode(raw)
    except ScaleError as exc:
        stream.host_abort()
        raise BadAnswer(f"the response head is not a SCALE HttpResponseHead: {exc}") from None
    return HttpAnswer(head.status, head.headers, _body(stream))


async def _body(stream: IoStream) -> AsyncIterator[bytes]:
    finished = False
    try:
        async for chunk in stream.response_body():
            yield chunk
        finished = True
    finally:
        if not finished:  # the reader stopped early (or the body was aborted)
            stream.host_abort()


async def query(instance: Instance, path: str, payload: bytes = b"", origin: bytes | None = None, *,
                timeout: float | None = None) -> bytes:
    """One query through channel 3: the reply's bytes."""
    if origin is not None and len(origin) != 32:
        raise ValueError("a query origin is 32 bytes")
    tx, future = instance.new_oneshot()
    message = QueryRequest(origin, path, bytes(payload), tx).encode()
    _orphaned(instance, tx)
    if not future.done():
        _send(instance, QUERY_CHANNEL, message, tx)
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except GuestReplyError as exc:
        text = str(exc)
        if text == "the guest dropped the reply without answering":
            raise AppNotAnswering(text) from None
        raise QueryFailed(text) from None
