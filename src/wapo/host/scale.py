"""SCALE, as much as the host needs: the encodings it returns to guests (EO results) and a strict
reader for what guests and apps send (a truncated input, bad UTF-8, a bad Option tag or
trailing bytes raise ``ScaleError``)."""

from __future__ import annotations

import struct

Headers = list[tuple[str, str]]


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


class ScaleError(ValueError):
    """Bytes that are not a valid encoding of the expected shape."""


# --- decoding --------------------------------------------------------------------------------

class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(bytes(data))
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ScaleError(f"truncated: wanted {n} bytes at offset {self.pos}, {len(self.data) - self.pos} left")
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def compact(self) -> int:
        first = self.u8()
        mode = first & 3
        if mode == 0:
            return first >> 2
        if mode == 1:
            return (first | self.u8() << 8) >> 2
        if mode == 2:
            return struct.unpack("<I", bytes([first]) + self.take(3))[0] >> 2
        size = (first >> 2) + 4
        return int.from_bytes(self.take(size), "little")

    def bytes_(self) -> bytes:
        n = self.compact()
        if n > len(self.data) - self.pos:
            raise ScaleError(f"a length of {n} bytes with {len(self.data) - self.pos} left")
        return self.take(n)

    def str_(self) -> str:
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScaleError(f"a string that is not UTF-8: {exc}") from None

    def headers(self) -> Headers:
        n = self.compact()
        if n > len(self.data) - self.pos:  # each pair takes at least 2 bytes: a cheap bound
            raise ScaleError(f"{n} headers with {len(self.data) - self.pos} bytes left")
        return [(self.str_(), self.str_()) for _ in range(n)]

    def option(self) -> bool:
        tag = self.u8()
        if tag not in (0, 1):
            raise ScaleError(f"Option tag {tag} (0 = None, 1 = Some)")
        return tag == 1

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ScaleError(f"{len(self.data) - self.pos} trailing bytes")
