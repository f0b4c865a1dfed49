"""Running an agent once: a fresh WapoJS sandbox, the request in, the HTTP answer out.

An ``AgentRun`` exposes the answer as it becomes known: ``head`` resolves as
soon as the status and headers are known (at once for a streamed style C
answer, at the end for styles A and B) and ``chunks`` yields the body.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..host import Instance, LogRecord, RunError, RunOptions
from ..js.precompiled import image_for_run
from ..js.runner import js_instance
from .request import AgentRequest
from .response import HEAD_MAGIC, AgentResponse, AnswerTooLarge, BadAgentAnswer, parse_head, parse_output

ENTRY = "runAgent"
# Put in ``chunks`` instead of the final None when a streamed answer ends badly (failed or too
# large): the caller must not present what it sent as a complete answer.
INCOMPLETE = object()


@dataclass
class AgentResult:
    response: AgentResponse | None
    error: str | None
    error_kind: str | None
    logs: list[LogRecord] = field(default_factory=list)
    duration: float = 0.0
    streamed: bool = False
    longest_burst: float = 0.0  # seconds: how close the run came to its burst limit
    memory_peak: int = 0  # bytes of guest memory: how close it came to its memory limit


class AgentRun:
    """One run of an agent for one request. ``options`` says how to run it (limits, network, data
    directory; keyword ``settings`` change single fields); the agent's address, environment and
    output are the agent layer's to set."""

    def __init__(self, code: str, request: AgentRequest, *, options: RunOptions | None = None, name: str = "agent.js",
                 app_id: str = "", max_body: int = 16 * 1024 * 1024, **settings: Any) -> None:
        self.request = request
        self.max_body = max_body
        self.head: asyncio.Future[AgentResponse] = asyncio.get_running_loop().create_future()
        self.head.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved" noise
        self._chunks: asyncio.Queue[bytes | None] | None = None  # made when a streamed answer starts
        self._buffer = bytearray()
        self._streaming: bool | None = None
        self._head_parsed = False
        self._sent = 0
        self._too_big = False
        address = _address(app_id) if app_id else hashlib.sha256(b"wapo-agent:" + code.encode()).digest()
        # style B agents read their secrets as process.env.secret: a JSON string, '""' without any
        secret = json.dumps(request.secret, ensure_ascii=False, separators=(",", ":")) if request.secret else '""'
        self._code, self._name = code, name
        self._options = (options or RunOptions()).with_settings(
            **settings, app_address=address, env=(("secret", secret),), on_output=_weak_output(self))
        self._instance: Instance | None = None  # made in run(), once the code is compiled
        self._cancelled = False

    def cancel(self) -> None:
        """The caller is gone (its client disconnected): abort the agent's ``request.signal``."""
        self._cancelled = True
        if self._instance is not None:
            self._instance.cancel()

    async def _start(self) -> Instance:
        """The sandbox, from the agent's compiled image (compiled first if need be: guest work,
        under the run's burst limit, off the event loop)."""
        opts = self._options
        image = await image_for_run(self._code, self._name, ENTRY, opts.limits, opts.tenant or self._name)
        instance = js_instance(self._code, [self.request.payload_json()], options=opts, name=self._name,
                               entry=ENTRY, memory_image=image)
        self._instance = instance
        if self._cancelled:
            instance.cancel()
        return instance

    def _on_output(self, data: bytes) -> None:
        if self._too_big and not self._head_parsed:
            return
        if self._head_parsed:
            self._body_chunk(data)
            return
        self._buffer += data
        if self._streaming is None:
            if len(self._buffer) < len(HEAD_MAGIC) and HEAD_MAGIC.startswith(bytes(self._buffer)):
                return  # too short to tell yet
            self._streaming = self._buffer.startswith(HEAD_MAGIC)
        if not self._streaming:  # style A or B: the answer is the whole output, parsed at the end
            if len(self._buffer) > self.max_body:  # too large an answer already: stop keeping it
                self._too_big = True
                self._buffer.clear()
                self.cancel()
            return
        newline = self._buffer.find(b"\n")
        if newline < 0:
            return
        self._head_parsed = True
        try:
            self.head.set_result(parse_head(bytes(self._buffer[len(HEAD_MAGIC):newline])))
        except BadAgentAnswer as exc:
            self.head.set_exception(exc)
        rest = bytes(self._buffer[newline + 1:])
        self._buffer.clear()
        if rest:
            self._body_chunk(rest)

    @property
    def chunks(self) -> asyncio.Queue[bytes | None]:
        """The body of a streamed (style C) answer, chunk by chunk, then None (or INCOMPLETE)."""
        if self._chunks is None:
            self._chunks = asyncio.Queue()
        return self._chunks

    @property
    def streaming(self) -> bool:
        """True once a style C head was read: the body follows through ``chunks``."""
        return self._head_parsed

    def _body_chunk(self, data: bytes) -> None:
        if self._too_big:
            return
        self._sent += len(data)
        if self._sent > self.max_body:
            self._too_big = True
            self.cancel()  # nobody reads the rest
            return
        self.chunks.put_nowait(data)

    async def run(self) -> AgentResult:
        try:
            instance = await self._start()
        except RunError as exc:  # the code could not be compiled within the limits
            return self._failed_before_start(exc)
        try:
            result = await instance.run()
        except BaseException as exc:  # a host failure: never leave the head unresolved
            if not self.head.done():
                self.head.set_exception(AgentFailed(f"the host failed: {exc}", "host_error"))
            raise
        error = result.error
        response: AgentResponse | None = None
        streamed = self._head_parsed and not self.head.exception()
        message = error.describe() if error else None
        kind = error.kind if error else None
        logs = result.logs
        if streamed:
            if self._too_big and not error:
                too_big = AnswerTooLarge(self.max_body)
                message, kind = str(too_big), too_big.kind
                logs.append(LogRecord("error", message))
            self.chunks.put_nowait(INCOMPLETE if message else None)
        elif error is None:
            try:
                if self._too_big or len(self._buffer) > self.max_body:
                    raise AnswerTooLarge(self.max_body)
                response = parse_output(bytes(self._buffer))
            except BadAgentAnswer as exc:
                message, kind = str(exc), exc.kind
                logs.append(LogRecord("error", message))
            if response is not None and not self.head.done():
                self.head.set_result(response)
        if not self.head.done():
            self.head.set_exception(AgentFailed(message or "the agent failed", kind or "error"))
        return AgentResult(response, message, kind, logs, result.duration, streamed, result.longest_burst,
                           result.memory_peak)


    def _failed_before_start(self, error: RunError) -> AgentResult:
        message = error.describe()
        if not self.head.done():
            self.head.set_exception(AgentFailed(message, error.kind))
        return AgentResult(None, message, error.kind, [LogRecord("error", message)], 0.0, False)


@functools.lru_cache(maxsize=1024)
def _address(app: str) -> bytes:
    """The app address of an agent by its app id (a CID): what its keys derive from."""
    return hashlib.sha256(b"wapo-agent:" + app.encode()).digest()


def _weak_output(run: AgentRun):
    """``run._on_output`` through a weak reference: the instance (and its options) must not hold
    the AgentRun that holds it, or a finished run waits for the cycle collector."""
    ref = weakref.ref(run)

    def on_output(data: bytes) -> None:
        target = ref()
        if target is not None:
            target._on_output(data)
    return on_output


class AgentFailed(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


async def call_agent(code: str, request: AgentRequest, *, options: RunOptions | None = None, name: str = "agent.js",
                     app_id: str = "", **settings: Any) -> AgentResult:
    """Run an agent to completion and return its whole answer (streamed bodies are collected).
    ``settings`` are ``RunOptions`` fields (``limits``, ``network``, ``data_dir``)."""
    run = AgentRun(code, request, options=options, name=name, app_id=app_id, **settings)
    result = await run.run()
    if result.streamed:
        head = run.head.result()
        body = bytearray()
        while isinstance(chunk := run.chunks.get_nowait(), bytes):
            body += chunk
        if chunk is INCOMPLETE:
            result.response = None
            return result
        result.response = AgentResponse(head.status, head.headers, bytes(body))
    return result


__all__ = ["AgentRequest", "AgentResponse", "AgentResult", "AgentRun", "AgentFailed", "call_agent", "RunError"]
