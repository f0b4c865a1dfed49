"""The service table: ``@service`` registers a function, ``call`` runs one for a guest."""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Callable, TypeVar

from ..abi import OcallError
from ..resources import Resource

if TYPE_CHECKING:
    from ..state import GuestState

log = logging.getLogger("wapo.host")

Service = Callable[["GuestState", bytes], bytes]
SERVICES: dict[str, Service] = {}
# Services that touch no asyncio object (hashing, randomness, output): they run on the guest's own
# thread. Every other one runs on the event loop's thread (docs/design.md, the threading model).
INLINE: set[str] = set()
# Inline services whose time is in proportion to their payload (hashes, HMAC, randomness, output):
# a speculative step (speculation.py, payload capped by the host call) may call them; the others
# (WebCrypto: PBKDF2 iterations, key generation) may run long on any payload and stop it.
QUICK: set[str] = set()
R = TypeVar("R", bound=Resource)


class ServiceError(Exception):
    """A service refused: the guest sees ``name: message`` (a JS error name, e.g. "TypeError")."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def service(name: str, *, inline: bool = False, quick: bool = False) -> Callable[[Service], Service]:
    """Register a service; ``inline`` ones must touch no asyncio object (see ``INLINE``);
    ``quick`` inline ones take time in proportion to their payload, no more (a speculative step
    may call them: see ``QUICK``)."""
    def register(fn: Service) -> Service:
        SERVICES[name] = fn
        if inline:
            INLINE.add(name)
            if quick:
                QUICK.add(name)
        return fn
    return register


def call(st: GuestState, method: str, payload: bytes) -> bytes:
    """Run a service; the answer is tag 0 + result, or tag 1 + "Name: message"."""
    if method not in QUICK and st is not None and st.speculative:  # the ocall entry traps: the run starts over
        st.leave_speculation(f"host service {method!r}")
        return b"\1Error: stopped"
    if method not in INLINE and not st.on_loop_thread():
        return st.call_on_loop(_call, st, method, payload)
    return _call(st, method, payload)


def _call(st: GuestState, method: str, payload: bytes) -> bytes:
    fn = SERVICES.get(method)
    try:
        if fn is None:
            raise ServiceError("TypeError", f"no host service {method!r}")
        return b"\0" + fn(st, payload)
    except ServiceError as exc:
        return b"\1" + f"{exc.name}: {exc.message}".encode()
    except Exception:  # a host bug: the guest gets an error, the host log gets the trace
        log.exception("host service %s raised", method)
        st.host_faults += 1
        return b"\1" + b"Error: internal host error"


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def resource_id(payload: bytes, what: str, prefix: str, offset: int = 0) -> int:
    """The u32 resource id at ``payload[offset:]``; a short payload is a TypeError naming ``what``."""
    if len(payload) < offset + 4:
        raise ServiceError("TypeError", f"{prefix}: a {what} id is expected")
    return struct.unpack_from("<I", payload, offset)[0]


def resource_arg(st: GuestState, payload: bytes, kind: type[R], what: str, prefix: str, offset: int = 0) -> R:
    """The guest's resource of type ``kind`` named by the u32 at ``payload[offset:]``: every service
    that acts on a resource starts here, so a wrong or stale id is the same TypeError everywhere."""
    rid = resource_id(payload, what, prefix, offset)
    try:
        return st.resources.get_as(rid, kind)  # type: ignore[return-value]
    except OcallError as exc:
        raise ServiceError("TypeError", f"{prefix}: {exc}") from None


def resource_getter(kind: type[R], what: str, prefix: str) -> Callable[["GuestState", bytes], R]:
    """``resource_arg`` for one kind of resource: a service module's ``_get``."""
    def get(st: GuestState, payload: bytes) -> R:
        return resource_arg(st, payload, kind, what, prefix)
    return get


def add_resources(st: GuestState, *resources: Resource) -> list[int]:
    """Give the guest several resources that belong together: all of them, or (at the resource
    limit) none, the ones already added closed again. Raises the table's ``OcallError``."""
    ids: list[int] = []
    try:
        for resource in resources:
            ids.append(st.resources.add(resource))  # on ResourceLimited the table closes it
    except OcallError:
        for rid in ids:
            st.resources.close(rid)
        for resource in resources[len(ids) + 1:]:
            resource.close()
        raise
    return ids
