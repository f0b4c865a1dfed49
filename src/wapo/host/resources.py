"""The per-instance resource table and the resource kinds of this issue.

A resource is something a guest holds by a small integer: a timer, an input
channel, a one-shot reply. A poll on a resource that is not ready returns
Pending and remembers (task, waker); when it becomes ready the owner is told
through ``Waker.wake`` and queues the guest for another ``wapo_poll``.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from typing import Callable

from .abi import ErrorCode, OcallError

Wake = Callable[[int, int], None]  # (task_id, waker_id)


class Resource:
    """Base: every operation is unsupported unless a kind says otherwise."""

    kind = "resource"

    def __init__(self) -> None:
        self._waiter: tuple[int, int] | None = None
        self._wake: Wake | None = None
        self._missed = False

    def attach(self, wake: Wake) -> None:
        self._wake = wake

    def _park(self, task: int, waker: int) -> None:
        self._waiter = (task, waker)
        if self._missed:  # something happened since the guest last looked: wake it at once
            self._missed = False
            self._notify()
        raise OcallError(ErrorCode.PENDING)

    def _notify(self) -> None:
        """Wake the parked waiter. With nobody parked the news is kept for the next ``_park``: a
        guest on its own thread may look (and then park) after the event, between two ocalls."""
        if self._waiter is not None and self._wake is not None:
            task, waker = self._waiter
            self._waiter = None
            self._wake(task, waker)
        else:
            self._missed = True

    def poll_read(self, task: int, waker: int, size: int) -> bytes:
        raise OcallError(ErrorCode.UNSUPPORTED_OPERATION, f"{self.kind} cannot be read")

    def poll_write(self, task: int, waker: int, data: bytes) -> int:
        raise OcallError(ErrorCode.UNSUPPORTED_OPERATION, f"{self.kind} cannot be written")

    def poll_shutdown(self, task: int, waker: int) -> None:
        raise OcallError(ErrorCode.UNSUPPORTED_OPERATION, f"{self.kind} cannot be shut down")

    def poll_message(self, task: int, waker: int) -> bytes:
        raise OcallError(ErrorCode.UNSUPPORTED_OPERATION, f"{self.kind} is not a channel")

    def poll_ready(self, task: int, waker: int) -> None:
        """Return if the resource has something for the guest now, else park (Pending)."""
        raise OcallError(ErrorCode.UNSUPPORTED_OPERATION, f"{self.kind} cannot be watched")

    def close(self) -> None:
        self._waiter = None


class Timer(Resource):
    """Ready (a read returns 0 bytes) once its delay has passed."""

    kind = "timer"

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_ms: int) -> None:
        super().__init__()
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self.fired = False
        self.reset(delay_ms)

    def reset(self, delay_ms: int) -> None:
        if delay_ms < 0:
            raise OcallError(ErrorCode.INVALID_PARAMETER, "negative timer delay")
        if self._handle is not None:
            self._handle.cancel()
        # even a 0 ms timer fires from the event loop, so the guest yields to other work first
        self.fired = False
        self._handle = self._loop.call_later(delay_ms / 1000, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.fired = True
        self._notify()

    def poll_read(self, task: int, waker: int, size: int) -> bytes:
        if self.fired:
            return b""
        self._park(task, waker)
        raise AssertionError("unreachable")

    def close(self) -> None:
        super().close()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class FutureResource(Resource):
    """The result of asynchronous host work (a service call): ready when the future is done."""

    kind = "pending operation"

    def __init__(self, future: asyncio.Future) -> None:
        super().__init__()
        self.future = future
        future.add_done_callback(lambda _f: self._notify())

    def poll_ready(self, task: int, waker: int) -> None:
        if not self.future.done():
            self._park(task, waker)

    def close(self) -> None:
        super().close()
        if not self.future.done():
            self.future.cancel()


class InputChannel(Resource):
    """Messages the host delivers to the guest (queries, HTTP requests, test input)."""

    kind = "input channel"

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[bytes] = deque()
        self._closed = False

    def push(self, message: bytes) -> None:
        if self._closed:
            raise RuntimeError("the input channel is closed")
        self._queue.append(message)
        self._notify()

    def end(self) -> None:
        self._closed = True
        self._notify()

    def poll_ready(self, task: int, waker: int) -> None:
        if not self._queue and not self._closed:
            self._park(task, waker)

    def poll_message(self, task: int, waker: int) -> bytes:
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise OcallError(ErrorCode.END_OF_FILE)
        self._park(task, waker)
        raise AssertionError("unreachable")


class Oneshot(Resource):
    """A reply slot: the guest sends exactly one value or error to a host future."""

    kind = "oneshot"

    def __init__(self, future: asyncio.Future[bytes]) -> None:
        super().__init__()
        self.future = future

    def send(self, data: bytes) -> None:
        if self.future.done():
            raise OcallError(ErrorCode.ALREADY_EXISTS, "a reply was already sent")
        self.future.set_result(data)

    def send_error(self, message: str) -> None:
        if self.future.done():
            raise OcallError(ErrorCode.ALREADY_EXISTS, "a reply was already sent")
        self.future.set_exception(GuestReplyError(message))

    def close(self) -> None:
        super().close()
        if not self.future.done():
            self.future.set_exception(GuestReplyError("the guest dropped the reply without answering"))


class GuestReplyError(Exception):
    """The guest answered a one-shot with an error (or dropped it)."""


class ResourceTable:
    """Small integer ids, lowest free first (ids are reused), at most ``limit`` live."""

    def __init__(self, wake: Wake, limit: int = 8192) -> None:
        self._items: dict[int, Resource] = {}
        self._free: list[int] = []
        self._next = 0
        self._limit = limit
        self._wake = wake

    def __len__(self) -> int:
        return len(self._items)

    def add(self, resource: Resource) -> int:
        if len(self._items) >= self._limit:
            resource.close()
            raise OcallError(ErrorCode.RESOURCE_LIMITED, f"{self._limit} resources already open")
        if self._free:
            rid = heapq.heappop(self._free)
        else:
            rid = self._next
            self._next += 1
        resource.attach(self._wake)
        self._items[rid] = resource
        return rid

    def get(self, rid: int) -> Resource:
        try:
            return self._items[rid]
        except KeyError:
            raise OcallError(ErrorCode.NOT_FOUND, f"no resource {rid}") from None

    def get_as(self, rid: int, kind: type) -> Resource:
        resource = self.get(rid)
        if not isinstance(resource, kind):
            raise OcallError(ErrorCode.INVALID_PARAMETER, f"resource {rid} is a {resource.kind}")
        return resource

    def close(self, rid: int) -> None:
        resource = self._items.pop(rid, None)
        if resource is None:
            raise OcallError(ErrorCode.NOT_FOUND, f"no resource {rid}")
        heapq.heappush(self._free, rid)
        resource.close()

    def close_all(self) -> None:
        for resource in self._items.values():
            resource.close()
        self._items.clear()


INPUT_KINDS = {3: "queries", 4: "HTTP"}


class InputChannels:
    """The guest's input channels by kind (3 = queries, 4 = HTTP requests). The host may deliver
    before the guest opens a channel: messages (and the end) wait here until it does."""

    def __init__(self) -> None:
        self.open: dict[int, InputChannel] = {}
        self._pending: dict[int, list[bytes]] = {}
        self._ended: set[int] = set()

    def create(self, kind: int, table: ResourceTable) -> int:
        """Open channel ``kind`` as the guest's resource; returns its id."""
        if kind not in INPUT_KINDS:
            raise OcallError(ErrorCode.INVALID_PARAMETER, f"unknown input channel kind {kind} (3 = queries, 4 = HTTP)")
        if kind in self.open:
            raise OcallError(ErrorCode.ALREADY_EXISTS, f"input channel {kind} already exists")
        channel = InputChannel()
        rid = table.add(channel)  # may fail (ResourceLimited): queued input stays queued
        self.open[kind] = channel
        for message in self._pending.pop(kind, []):
            channel.push(message)
        if kind in self._ended:
            channel.end()
        return rid

    def deliver(self, kind: int, message: bytes) -> None:
        channel = self.open.get(kind)
        if channel is None:
            self._pending.setdefault(kind, []).append(message)
        else:
            channel.push(message)

    def end(self, kind: int) -> None:
        channel = self.open.get(kind)
        if channel is None:
            self._ended.add(kind)
        else:
            channel.end()
