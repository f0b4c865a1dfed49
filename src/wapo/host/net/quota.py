"""What a run's network use is bounded by (``NetLimits``) and has used so far (``NetState``):
open sockets, bytes buffered each way, and the TLS client context, per instance."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..abi import ErrorCode, OcallError
from .args import ip_literal
from .policy import DEFAULT_NETWORK, NetworkPolicy

if TYPE_CHECKING:
    from ..state import GuestState
    from .stream import Connection

log = logging.getLogger("wapo.host.net")


@dataclass(frozen=True)
class NetLimits:
    max_sockets: int = 64                    # sockets open at once per instance
    stream_read_buffer: int = 256 * 1024     # received bytes kept per stream before its socket is paused
    read_buffer: int = 4 * 1024 * 1024       # ... and per instance, all streams together
    stream_write_buffer: int = 256 * 1024    # unsent bytes per stream before poll_write is Pending
    write_buffer: int = 4 * 1024 * 1024      # ... and per instance
    connect_timeout: float = 30.0            # resolution + connection + TLS handshake
    handshake_timeout: float = 15.0          # TLS handshake of an accepted connection
    linger: float = 5.0                      # a closed stream may flush its unsent bytes this long
    backlog: int = 128


LIMITS = NetLimits()  # read when an instance first uses the network (tests may replace it)


# --- per-instance state ----------------------------------------------------------------

class NetState:
    """Counters and caches of one instance. Holds no reference to the GuestState (weak only)."""

    def __init__(self, st: GuestState) -> None:
        self.loop: asyncio.AbstractEventLoop = st.loop
        self.policy: NetworkPolicy = getattr(st, "network", None) or DEFAULT_NETWORK
        self.addresses = self.policy.addresses
        self.limits = LIMITS
        self.sockets = 0
        self.read_buffered = 0
        self.conns: set[Connection] = set()
        self.paused: set[Connection] = set()
        self._client_ctx: ssl.SSLContext | None = None
        self._st = weakref.ref(st)

    def log(self, level: str, message: str) -> None:
        st = self._st()
        if st is not None:
            st.add_log(level, message)

    def acquire(self) -> None:
        if self.sockets >= self.limits.max_sockets:
            raise OcallError(ErrorCode.RESOURCE_LIMITED, f"{self.limits.max_sockets} sockets already open")
        self.sockets += 1

    def release(self) -> None:
        self.sockets -= 1

    def write_buffered(self) -> int:
        total = 0
        for conn in self.conns:
            if conn.transport is not None:
                total += conn.transport.get_write_buffer_size()
        return total

    def consumed(self, n: int) -> None:
        self.read_buffered -= n
        if self.paused and self.read_buffered < self.limits.read_buffer:
            low = self.limits.stream_read_buffer // 2
            for conn in list(self.paused):
                if len(conn.buf) < low:
                    conn.resume_reading()

    def client_context(self) -> ssl.SSLContext:
        if self._client_ctx is None:
            ctx = ssl.create_default_context()
            if self.policy.tls_extra_ca:
                ctx.load_verify_locations(cafile=self.policy.tls_extra_ca)
            self._client_ctx = ctx
        return self._client_ctx

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` the policy allows (checked after resolution), in resolver order."""
        literal = ip_literal(host)
        if literal is not None:
            self.check(literal, host)
            return [literal]
        infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        allowed: list[str] = []
        denied: str | None = None
        for _family, _type, _proto, _canon, sockaddr in infos:
            address = sockaddr[0]
            why = self.addresses.reason(address)
            if why is None:
                if address not in allowed:
                    allowed.append(address)
            elif denied is None:
                denied = f"{address} of {host} is not allowed ({why})"
        if not allowed:
            if denied is not None:
                raise OcallError(ErrorCode.FORBIDDEN, denied)
            raise OSError(f"{host} resolves to no address")
        return allowed

    def check(self, address: str, host: str) -> None:
        why = self.addresses.reason(address)
        if why is not None:
            raise OcallError(ErrorCode.FORBIDDEN, f"address {address} (of {host}) is not allowed ({why})")


_states: "weakref.WeakKeyDictionary[GuestState, NetState]" = weakref.WeakKeyDictionary()


def net_state(st: GuestState) -> NetState:
    net = _states.get(st)
    if net is None:
        net = _states[st] = NetState(st)
    return net
