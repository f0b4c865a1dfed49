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

from ..scale import Headers, Reader, ScaleError, compact, vec_u8

__all__ = ["Headers", "HttpRequest", "HttpResponseHead", "QueryRequest", "ScaleError"]


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
