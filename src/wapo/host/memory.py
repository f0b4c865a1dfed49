"""Bounds-checked access to a guest's linear memory.

Every pointer and length a guest hands the host goes through here: anything
outside the memory is an InvalidAddress error for the guest, never an
exception in the host or a read of host memory. The memory is reached on the
raw C API (``Sandbox.memory_base_and_size``), so these checks are the only
ones: its base and size are read again on every access, since the guest may
have grown (and moved) it since the last one.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from . import _capi
from .abi import ErrorCode, OcallError

# Copies up to this size keep the GIL (a few tens of microseconds); larger ones release it.
QUICK_COPY = 1024 * 1024

if TYPE_CHECKING:
    from .sandbox import Sandbox


class GuestMemory:
    __slots__ = ("_sandbox",)

    def __init__(self, sandbox: "Sandbox") -> None:
        self._sandbox = sandbox

    def size(self) -> int:
        return self._sandbox.memory_base_and_size()[1]

    def _span(self, ptr: int, length: int) -> tuple[int, int]:
        """(host address, length) of a guest range, after checking it lies inside the memory."""
        ptr &= 0xFFFFFFFF
        length &= 0xFFFFFFFF
        base, size = self._sandbox.memory_base_and_size()
        if ptr + length > size or not base:
            raise OcallError(ErrorCode.INVALID_ADDRESS, f"[{ptr}, {ptr + length}) is outside guest memory")
        return base + ptr, length

    def check(self, ptr: int, length: int) -> tuple[int, int]:
        self._span(ptr, length)
        return ptr & 0xFFFFFFFF, length & 0xFFFFFFFF

    def read(self, ptr: int, length: int) -> bytes:
        address, length = self._span(ptr, length)
        return ctypes.string_at(address, length) if length else b""

    def read_str(self, ptr: int, length: int) -> str:
        data = self.read(ptr, length)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OcallError(ErrorCode.INVALID_ENCODING, "string is not UTF-8") from exc

    def write(self, ptr: int, data: bytes) -> None:
        address, length = self._span(ptr, len(data))
        if length:
            (_capi.memmove_quick if length <= QUICK_COPY else ctypes.memmove)(address, data, length)

    def read_cstr(self, ptr: int, limit: int = 65536) -> str:
        """A NUL-terminated string (used for guest exports that return one)."""
        ptr &= 0xFFFFFFFF
        end = min(self.size(), ptr + limit)
        if ptr >= end:
            return ""
        data = self.read(ptr, end - ptr)
        return data.split(b"\0", 1)[0].decode("utf-8", "replace")
