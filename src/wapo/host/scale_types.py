"""SCALE shapes of the app input channels (spec section 3): HTTP requests (channel 4) and queries (3).

    HttpRequest      { head: HttpHead, response_tx: i32, io_stream: i32 }
    HttpHead         { method: String, url: String, headers: Vec<(String, String)> }
    HttpResponseHead { status: u16, headers: Vec<(String, String)> }
    QueryRequest     { origin: Option<[u8; 32]>, path: String, payload: Vec<u8>, reply_tx: i32 }

A String / Vec<u8> is a compact length then the bytes (UTF-8 for strings); a Vec<T> is a
compact count then the items; integers are little endian; an Option is 0 (None) or 1 then
the value; a resource id is an i32. Decoding is strict: a truncated input, bad UTF-8, an
unknown Option tag or trailing bytes raise ``ScaleError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .scale import compact, vec_u8

Headers = list[tuple[str, str]]


class ScaleError(ValueError):
    """Bytes that are not a valid encoding of the expected shape."""


# --- encoding --------------------------------------------------------------------------------

def encode_str(text: str) -> bytes:
    return vec_u8(text.encode("utf-8"))


def encode_headers(headers: Headers) -> bytes:
    return compact(len(headers)) + b"".join(encode_str(k) + encode_str(v) for k, v in headers)


def encode_u16(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{value} does not fit a u16")
    return struct.pack("<H", value)


def encode_i32(value: int) -> bytes:
    return struct.pack("<i", value)


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


# --- the shapes -------------------------------------------------------------------------------

@dataclass
class HttpRequest:
    method: str
    url: str
    headers: Headers = field(default_factory=list)
    response_tx: int = 0
    io_stream: int = 0

    def encode(self) -> bytes:
        return (encode_str(self.method) + encode_str(self.url) + encode_headers(self.headers)
                + encode_i32(self.response_tx) + encode_i32(self.io_stream))

    @classmethod
    def decode(cls, data: bytes) -> "HttpRequest":
        r = Reader(data)
        value = cls(r.str_(), r.str_(), r.headers(), r.i32(), r.i32())
        r.end()
        return value


@dataclass
class HttpResponseHead:
    status: int
    headers: Headers = field(default_factory=list)

    def encode(self) -> bytes:
        return encode_u16(self.status) + encode_headers(self.headers)

    @classmethod
    def decode(cls, data: bytes) -> "HttpResponseHead":
        r = Reader(data)
        value = cls(r.u16(), r.headers())
        r.end()
        return value


@dataclass
class QueryRequest:
    origin: bytes | None
    path: str
    payload: bytes
    reply_tx: int = 0

    def encode(self) -> bytes:
        if self.origin is not None and len(self.origin) != 32:
            raise ValueError("a query origin is 32 bytes")
        origin = b"\x00" if self.origin is None else b"\x01" + bytes(self.origin)
        return origin + encode_str(self.path) + vec_u8(self.payload) + encode_i32(self.reply_tx)

    @classmethod
    def decode(cls, data: bytes) -> "QueryRequest":
        r = Reader(data)
        origin = r.take(32) if r.option() else None
        value = cls(origin, r.str_(), r.bytes_(), r.i32())
        r.end()
        return value
