"""Host services: named, synchronous calls a guest makes through the ``host_call`` extension ocall.

A service takes the calling guest's state and a payload (bytes) and returns
bytes, or raises ``ServiceError`` with a JS-style error name ("TypeError") and
a message. Work that takes time returns a resource id (see ``FutureResource``)
that the guest watches. Services are generic host capabilities (hashing,
HTTP): nothing here knows which language the guest is written in.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .instance import GuestState

log = logging.getLogger("wapo.host")

Service = Callable[["GuestState", bytes], bytes]
SERVICES: dict[str, Service] = {}


class ServiceError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def service(name: str) -> Callable[[Service], Service]:
    def register(fn: Service) -> Service:
        SERVICES[name] = fn
        return fn
    return register


def call(st: GuestState, method: str, payload: bytes) -> bytes:
    """Run a service; the answer is tag 0 + result, or tag 1 + "Name: message"."""
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


# Each module registers its services with @service when imported.
from . import digest  # noqa: E402,F401
from . import crypto  # noqa: E402,F401
from . import run  # noqa: E402,F401
from . import http  # noqa: E402,F401
from . import sockets, websocket  # noqa: E402,F401
from . import app_http, app_query  # noqa: E402,F401
