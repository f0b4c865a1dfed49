"""The fetch machinery: one ``FetchResource`` per guest fetch, driven by an asyncio task.

A fetch goes through these states:

    head  the request is being sent (its body streamed from the guest, if any)
          and the response head awaited; redirects are followed here
    body  the head is known; the body arrives chunk by chunk into a small
          queue the guest drains with ``read()``
    done  the body ended (or the fetch failed: ``error`` says why)

Bounds (per fetch): the response queue holds at most ``RESPONSE_HIGH_WATER``
bytes before the socket is left unread (aiohttp then stops reading the
connection, so TCP pushes back on the server); the request-body queue asks the
guest to wait above ``REQUEST_HIGH_WATER``. Nothing ever holds a whole body.

Per run (``HttpClient``, see ``HttpLimits``): a head timeout covering the wait
for a slot, the connection, the request and every redirect; a read timeout
between body bytes from the server; a cap on the response body size (checked
against Content-Length up front and counted as bytes arrive, after
decompression); a cap on fetches in flight (more wait for a slot).

Every connection is made through ``PolicyConnector``, which checks each
address a host name resolves to (or the literal address) against the
``AddressPolicy`` and connects only to addresses that passed; a redirect is a
new request, so each hop is checked again. Each fetch has its own connector
(no connection is shared between fetches or runs): closing the resource
cancels its task, which closes the connector and every socket it opened.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict

from ..abi import ErrorCode, OcallError
from ..limits import format_size
from ..resources import Resource
from .policy import DEFAULT_NETWORK, AddressDenied, AddressPolicy, HttpLimits, NetworkPolicy

if TYPE_CHECKING:
    from ..options import FetchHook
    from ..state import GuestState

log = logging.getLogger("wapo.host.http")

RESPONSE_HIGH_WATER = 1024 * 1024  # bytes queued for the guest before we stop reading the socket
REQUEST_HIGH_WATER = 1024 * 1024  # bytes of request body queued before the guest is asked to wait
# a guest that keeps writing after it was asked to wait is refused past this many queued bytes
REQUEST_MAX_QUEUED = 8 * REQUEST_HIGH_WATER
READ_MAX = 256 * 1024  # bytes handed to the guest per read() at most
USER_AGENT = "wapo-fetch/0.1"
REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))
# headers the guest cannot set: the connection is ours (the body length, framing and the target host)
_CONTROLLED = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
                         "trailer", "host", "expect", "proxy-connection"))
_BODY_HEADERS = ("content-type", "content-length", "content-encoding", "content-language", "content-location")

# live counts, process-wide: tests and metrics read them to prove aborts free everything
STATS = {"fetches": 0, "sessions": 0}


def open_counts() -> dict[str, int]:
    return dict(STATS)


class FetchFailed(Exception):
    """A fetch failed; the message completes "fetch failed: ..."."""


class PolicyConnector(aiohttp.TCPConnector):
    """Check every resolved address against the policy; connect only to those that pass."""

    def __init__(self, policy: AddressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._policy = policy

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list:  # type: ignore[override]
        hosts = await super()._resolve_host(host, port, traces=traces)
        allowed = []
        denied: AddressDenied | None = None
        for entry in hosts:
            why = self._policy.reason(entry["host"])
            if why is None:
                allowed.append(entry)
            elif denied is None:
                denied = AddressDenied(entry["host"], why, host)
        if not allowed:
            raise denied or OSError(f"{host} resolves to no address")
        return allowed


@functools.lru_cache(maxsize=8)
def _tls_context(extra_ca: str | None) -> ssl.SSLContext | bool:
    """The system roots plus ``extra_ca`` (NetworkPolicy.tls_extra_ca, ``--tls-ca``); True (aiohttp's
    default verification) without one. Made once per CA file: loading roots costs milliseconds."""
    if not extra_ca:
        return True
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cafile=extra_ca)
    return ctx


class HttpClient:
    """Per-run fetch state: the policy, the limits and the slots of concurrent fetches."""

    def __init__(self, network: NetworkPolicy, on_fetch: Callable[[str, str], FetchHook] | None = None) -> None:
        self.network = network
        self.on_fetch = on_fetch  # the caller's hook on each fetch (RunOptions.on_fetch)
        self.limits: HttpLimits = network.http
        self.policy = network.addresses
        self.slots = asyncio.Semaphore(self.limits.max_concurrent)
        self.tls = _tls_context(network.tls_extra_ca)


# Why a fetch failed, most specific first (subclasses before their bases).
_REASONS: tuple[tuple[type[BaseException], Callable[[Any], str]], ...] = (
    (aiohttp.ClientConnectorDNSError, lambda e: f"cannot resolve {e.host}"),
    (aiohttp.ClientConnectorCertificateError, lambda e: f"TLS certificate of {e.host} is not valid"),
    (aiohttp.ClientConnectorError, lambda e: f"cannot connect to {e.host}:{e.port} ({e.strerror or e.os_error})"),
    (aiohttp.InvalidURL, lambda e: f"invalid URL {e.url}"),
    (aiohttp.ServerTimeoutError, lambda e: "timed out reading from the server"),
    (aiohttp.ServerDisconnectedError, lambda e: "the server closed the connection"),
    (aiohttp.ClientPayloadError, lambda e: f"the response body was cut short ({e})"),
    (aiohttp.ClientResponseError, lambda e: f"bad response from the server ({e.message})"),
    (aiohttp.ClientError, lambda e: f"{type(e).__name__}: {e}"),
    (OSError, lambda e: e.strerror or str(e)),
)


def describe_error(exc: BaseException) -> str:
    """The reason of a failed fetch, as a browser-like message tail."""
    seen = exc
    while seen is not None:
        if isinstance(seen, AddressDenied):
            return str(seen)
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    if isinstance(exc, FetchFailed):
        return str(exc)
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason(exc)
    return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchFailed(f"URL scheme {parts.scheme + ':' if parts.scheme else '(none)'} is not supported")
    if not parts.hostname:
        raise FetchFailed(f"invalid URL {url}")
    return url


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class FetchResource(Resource):
    """One fetch, as the guest holds it. Ready (for ``watch``) depends on what the guest waits for."""

    kind = "fetch"

    def __init__(self, client: HttpClient, head: dict, body: bytes | None, streamed: bool) -> None:
        super().__init__()
        self.client = client
        self.method = str(head.get("method") or "GET").upper()
        self.url = _http_url(str(head["url"]))
        self.redirect = head.get("redirect") or "follow"
        if self.redirect not in ("follow", "manual", "error"):
            raise FetchFailed(f"invalid redirect mode {self.redirect!r}")
        self.headers = CIMultiDict()
        for name, value in head.get("headers") or ():
            if str(name).lower() not in _CONTROLLED:
                self.headers.add(str(name), str(value))
        if "user-agent" not in self.headers:
            self.headers["User-Agent"] = USER_AGENT
        self.body = body
        self._sending_stream = streamed  # the request body comes from the guest (upload)
        self.upload: UploadResource | None = None
        self.waiting_for = "head"  # head | body
        self.response_head: dict | None = None
        self.error: str | None = None
        self.finished = False  # the task ended (body complete or failure)
        # response body, host -> guest
        self._chunks: deque[bytes] = deque()
        self._queued = 0
        self._eof = False
        self._room = asyncio.Event()
        self._room.set()
        # request body, guest -> host
        self._req_chunks: deque[bytes] = deque()
        self._req_queued = 0
        self._req_end = False
        self._req_avail = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    # --- readiness -------------------------------------------------------------
    def _ready(self) -> bool:
        if self.error is not None or self.finished:
            return True
        if self.waiting_for == "head":
            return self.response_head is not None
        return bool(self._chunks) or self._eof

    def poll_ready(self, task: int, waker: int) -> None:
        if not self._ready():
            self._park(task, waker)

    def _changed(self) -> None:
        if self._ready():
            self._notify()
        if self.upload is not None:
            self.upload.changed()

    # --- the guest's side --------------------------------------------------------
    def write(self, chunk: bytes) -> int:
        """Queue a request-body chunk: 0 = more welcome, 1 = wait (watch the upload) first, 2 = not needed."""
        if self._req_end:
            raise OcallError(ErrorCode.INVALID_PARAMETER, "the request body was already ended")
        if self.error is not None or self.finished or not self._sending_stream:
            return 2
        if chunk and self._req_queued >= REQUEST_MAX_QUEUED:
            raise OcallError(ErrorCode.RESOURCE_LIMITED, f"more than {REQUEST_MAX_QUEUED} bytes of request body "
                                                         "queued: wait (watch the upload) when asked to")
        if chunk:
            self._req_chunks.append(chunk)
            self._req_queued += len(chunk)
            self._req_avail.set()
        return 1 if self._req_queued >= REQUEST_HIGH_WATER else 0

    def write_ready(self) -> bool:
        return self._req_queued < REQUEST_HIGH_WATER or self.error is not None or self.finished \
            or not self._sending_stream

    def end(self) -> None:
        self._req_end = True
        self._req_avail.set()

    def head_json(self) -> bytes:
        if self.error is not None and self.response_head is None:
            raise FetchFailed(self.error)
        if self.response_head is None:
            raise OcallError(ErrorCode.PENDING, "the response head is not here yet")
        self.waiting_for = "body"
        return json.dumps(self.response_head, separators=(",", ":")).encode()

    def read(self) -> bytes | None:
        """Up to READ_MAX bytes of body; b"" at the end; None if nothing yet (watch, then read again)."""
        if self._chunks:
            if len(self._chunks[0]) >= READ_MAX or len(self._chunks) == 1:
                data = self._chunks.popleft()
            else:
                parts, n = [], 0
                while self._chunks and n + len(self._chunks[0]) <= READ_MAX:
                    part = self._chunks.popleft()
                    parts.append(part)
                    n += len(part)
                data = b"".join(parts)
            self._queued -= len(data)
            if self._queued < RESPONSE_HIGH_WATER:
                self._room.set()
            return data
        if self.error is not None:
            raise FetchFailed(self.error)
        if self._eof:
            return b""
        self.waiting_for = "body"
        return None

    def close(self) -> None:
        super().close()
        self._chunks.clear()
        self._req_chunks.clear()
        self._queued = self._req_queued = 0
        if not self.finished and not self.task.done():
            self.task.cancel()

    # --- the host's side -----------------------------------------------------------
    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self._changed()

    async def _request_body(self):
        while True:
            while not self._req_chunks and not self._req_end:
                self._req_avail.clear()
                await self._req_avail.wait()
            if not self._req_chunks:
                return
            chunk = self._req_chunks.popleft()
            self._req_queued -= len(chunk)
            if self.upload is not None:
                self.upload.changed()
            yield chunk

    async def _run(self) -> None:
        limits = self.client.limits
        STATS["fetches"] += 1
        session: aiohttp.ClientSession | None = None
        slot = False
        hook = self._hook()
        try:
            try:
                async with asyncio.timeout(limits.timeout):
                    await self.client.slots.acquire()
                    slot = True
                    connector = PolicyConnector(self.client.policy, limit=1, force_close=True,
                                                use_dns_cache=False, ssl=self.client.tls)
                    session = aiohttp.ClientSession(
                        connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                        timeout=aiohttp.ClientTimeout(total=None, sock_read=limits.read_timeout),
                        skip_auto_headers=("Content-Type",))
                    STATS["sessions"] += 1
                    response = await self._send(session)
            except TimeoutError as exc:
                if isinstance(exc, aiohttp.ServerTimeoutError):
                    raise
                raise FetchFailed(f"no response within the {limits.timeout:g} s fetch timeout") from None
            await self._stream_body(response)
        except asyncio.CancelledError:
            self._fail("aborted")
            raise
        except Exception as exc:  # every failure becomes the fetch's error, never a host fault
            if not isinstance(exc, (FetchFailed, aiohttp.ClientError, OSError)):
                log.debug("fetch %s failed", self.url, exc_info=True)
            self._fail(describe_error(exc))
        finally:
            # nothing here may be skipped by a cancel (an abort during the cleanup): release first
            self.finished = True
            if slot:
                self.client.slots.release()
            STATS["fetches"] -= 1
            self._changed()
            if hook is not None and hook.done is not None:
                status = self.response_head["status"] if self.response_head is not None else None
                try:
                    hook.done(status, self.error)
                except Exception:  # the caller's bookkeeping never fails a fetch
                    log.debug("fetch hook failed", exc_info=True)
            if session is not None:
                waiter = session.connector.close() if session.connector is not None else None
                STATS["sessions"] -= 1  # its sockets are closed now (synchronously, above)
                if waiter is not None:
                    try:
                        await waiter  # the transports' close callbacks
                    except asyncio.CancelledError:
                        pass

    def _hook(self) -> FetchHook | None:
        """The caller's hook for this fetch, its headers added where the guest set none."""
        if self.client.on_fetch is None:
            return None
        try:
            hook = self.client.on_fetch(self.method, self.url)
        except Exception:
            log.debug("fetch hook failed", exc_info=True)
            return None
        for name, value in hook.headers:
            if name not in self.headers:
                self.headers[name] = value
        return hook

    async def _send(self, session: aiohttp.ClientSession) -> aiohttp.ClientResponse:
        limits = self.client.limits
        method, url, body, headers = self.method, self.url, self.body, self.headers
        redirects = 0
        while True:
            data: Any = None
            if self._sending_stream:
                data = self._request_body()
            elif body is not None:
                data = body
            response = await session.request(method, url, data=data, headers=headers,
                                             allow_redirects=False, auto_decompress=True)
            location = response.headers.get("Location") if response.status in REDIRECT_CODES else None
            if location is None or self.redirect == "manual":
                break
            response.release()
            if self.redirect == "error":
                raise FetchFailed(f"redirected ({response.status}) while redirect mode is 'error'")
            if redirects >= limits.max_redirects:
                raise FetchFailed(f"more than {limits.max_redirects} redirects")
            try:
                target = _http_url(urljoin(url, location))
            except ValueError:
                raise FetchFailed(f"invalid redirect location {location!r}") from None
            status = response.status
            if status in (301, 302) and method == "POST" or status == 303 and method not in ("GET", "HEAD"):
                method, body = "GET", None
                headers = CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _BODY_HEADERS)
                self._sending_stream = False
            elif self._sending_stream:
                raise FetchFailed(f"cannot follow a {status} redirect with a streamed request body")
            if _origin(target) != _origin(url) and "authorization" in headers:
                headers = CIMultiDict((k, v) for k, v in headers.items() if k.lower() != "authorization")
            url = target
            redirects += 1
        declared = response.content_length
        if declared is not None and declared > limits.max_response_size and \
                not response.headers.get("Content-Encoding"):
            response.release()
            raise FetchFailed(f"the response body ({format_size(declared)}) exceeds the "
                              f"{format_size(limits.max_response_size)} limit")
        self.response_head = {
            "status": response.status,
            "statusText": response.reason or "",
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in response.raw_headers],
            "url": str(response.url.with_fragment(None)),
            "redirected": redirects > 0,
        }
        self._changed()
        return response

    async def _stream_body(self, response: aiohttp.ClientResponse) -> None:
        cap = self.client.limits.max_response_size
        total = 0
        try:
            while True:
                await self._room.wait()
                data = await response.content.readany()
                if not data:
                    break
                total += len(data)
                if total > cap:
                    raise FetchFailed(f"the response body exceeds the {format_size(cap)} limit")
                self._chunks.append(data)
                self._queued += len(data)
                if self._queued >= RESPONSE_HIGH_WATER:
                    self._room.clear()
                self._changed()
            self._eof = True
        finally:
            response.release() if self._eof else response.close()


class UploadResource(Resource):
    """The request body of a fetch, written by the guest; ready when it may write more."""

    kind = "fetch upload"

    def __init__(self, fetch: FetchResource) -> None:
        super().__init__()
        self.fetch: FetchResource | None = fetch
        fetch.upload = self

    def changed(self) -> None:
        if self.fetch is None or self.fetch.write_ready():
            self._notify()

    def poll_ready(self, task: int, waker: int) -> None:
        if self.fetch is not None and not self.fetch.write_ready():
            self._park(task, waker)

    def write(self, chunk: bytes) -> int:
        return 2 if self.fetch is None else self.fetch.write(chunk)

    def end(self) -> None:
        if self.fetch is not None:
            self.fetch.end()

    def close(self) -> None:
        """Closing the upload before ``end`` aborts the fetch: a partial body must never look complete."""
        super().close()
        fetch, self.fetch = self.fetch, None
        if fetch is not None:
            fetch.upload = None
            if not fetch._req_end and not fetch.finished:
                fetch._fail("the request body was aborted")
                fetch.task.cancel()


_clients: "weakref.WeakKeyDictionary[GuestState, HttpClient]" = weakref.WeakKeyDictionary()


def client_for(st: GuestState) -> HttpClient:
    """The guest's HTTP client (one per run: fetches and WebSockets share its policy)."""
    client = _clients.get(st)
    if client is None:
        client = _clients[st] = HttpClient(st.network or DEFAULT_NETWORK, st.options.on_fetch)
    return client
