"""Bounds-checked access to a guest's linear memory.

Every pointer and length a guest hands the host goes through here: anything
outside the memory is an InvalidAddress error for the guest, never an
exception in the host or a read of host memory.
"""

from __future__ import annotations

import ctypes

import wasmtime

from .abi import ErrorCode, OcallError


class GuestMemory:
    __slots__ = ("_memory", "_store")

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory) -> None:
        self._store = store
        self._memory = memory

    def size(self) -> int:
        return self._memory.data_len(self._store)

    def check(self, ptr: int, length: int) -> tuple[int, int]:
        ptr &= 0xFFFFFFFF
        length &= 0xFFFFFFFF
        if ptr + length > self._memory.data_len(self._store):
            raise OcallError(ErrorCode.INVALID_ADDRESS, f"[{ptr}, {ptr + length}) is outside guest memory")
        return ptr, length

    def read(self, ptr: int, length: int) -> bytes:
        ptr, length = self.check(ptr, length)
        if length == 0:
            return b""
        base = ctypes.addressof(self._memory.data_ptr(self._store).contents)
        return ctypes.string_at(base + ptr, length)

    def read_str(self, ptr: int, length: int) -> str:
        data = self.read(ptr, length)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OcallError(ErrorCode.INVALID_ENCODING, "string is not UTF-8") from exc

    def write(self, ptr: int, data: bytes) -> None:
        ptr, length = self.check(ptr, len(data))
        if length == 0:
            return
        base = ctypes.addressof(self._memory.data_ptr(self._store).contents)
        ctypes.memmove(base + ptr, data, length)

    def read_cstr(self, ptr: int, limit: int = 65536) -> str:
        """A NUL-terminated string (used for guest exports that return one)."""
        ptr &= 0xFFFFFFFF
        end = min(self.size(), ptr + limit)
        if ptr >= end:
            return ""
        data = self.read(ptr, end - ptr)
        return data.split(b"\0", 1)[0].decode("utf-8", "replace")
