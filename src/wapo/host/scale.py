"""The few SCALE encodings the host returns to guests (EO results)."""

from __future__ import annotations

import struct


def compact(n: int) -> bytes:
    if n < 0:
        raise ValueError("compact integers are unsigned")
    if n < 1 << 6:
        return bytes([n << 2])
    if n < 1 << 14:
        return struct.pack("<H", (n << 2) | 1)
    if n < 1 << 30:
        return struct.pack("<I", (n << 2) | 2)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "little")
    return bytes([((len(raw) - 4) << 2) | 3]) + raw


def vec_u8(data: bytes) -> bytes:
    return compact(len(data)) + bytes(data)


def vec_i32(values: list[int]) -> bytes:
    return compact(len(values)) + struct.pack(f"<{len(values)}i", *values)


def i32(value: int) -> bytes:
    return struct.pack("<i", value)


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def option(inner: bytes | None) -> bytes:
    return b"\x00" if inner is None else b"\x01" + inner
