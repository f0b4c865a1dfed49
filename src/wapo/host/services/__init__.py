"""Host services: named, synchronous calls a guest makes through the ``host_call`` extension ocall.

A service takes the calling guest's state and a payload (bytes) and returns
bytes, or raises ``ServiceError`` with a JS-style error name ("TypeError") and
a message. Work that takes time returns a resource id (see ``FutureResource``)
that the guest watches. Services are generic host capabilities (hashing,
HTTP, sockets): nothing here knows which language the guest is written in.
Each module registers its services with ``@service`` when imported; the app
services (``wapo.host.apps``) register themselves the same way.
"""

from . import crypto, digest, http, run, sockets, subtle, websocket  # noqa: F401  (registers them)
from .registry import SERVICES, ServiceError, call, resource_arg, service

__all__ = ["SERVICES", "ServiceError", "call", "resource_arg", "service"]
