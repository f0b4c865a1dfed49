"""The WebAssembly binary format, as much of it as the snapshot rewriter needs: LEB128, a byte
reader, the sections a module is made of (parsed into ``Module``), constant expressions, and
writing sections back. It knows nothing of what a module runs."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ...leb128 import uleb128
from ..errors import WapoError

PAGE = 65536

SEC_CUSTOM, SEC_TYPE, SEC_IMPORT, SEC_FUNC, SEC_TABLE, SEC_MEMORY, SEC_GLOBAL, SEC_EXPORT, SEC_START, \
    SEC_ELEM, SEC_CODE, SEC_DATA, SEC_DATACOUNT, SEC_TAG = range(14)

NUM_TYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
REF_TYPES = {0x70: "funcref", 0x6F: "externref"}


class SnapshotError(WapoError):
    """The module cannot be snapshotted (malformed, or outside what the rewriter supports)."""


# --- LEB128 and a byte reader --------------------------------------------------------

uleb = uleb128


def sleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def name_bytes(s: str) -> bytes:
    raw = s.encode()
    return uleb(len(raw)) + raw


class Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None, what: str = "module") -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.what = what

    def fail(self, msg: str) -> SnapshotError:
        return SnapshotError(f"malformed wasm ({self.what}, byte {self.pos}): {msg}")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise self.fail("unexpected end")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _leb(self, bits: int) -> tuple[int, int, int]:
        """The raw bits of a LEB128 number: (value, bits read, last byte)."""
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result, shift, b
            if shift >= bits + 7:
                raise self.fail("LEB128 too long")

    def uleb(self, bits: int = 32) -> int:
        result, _, _ = self._leb(bits)
        if result >> bits:
            raise self.fail("LEB128 out of range")
        return result

    def sleb(self, bits: int = 64) -> int:
        result, shift, last = self._leb(bits)
        return result - (1 << shift) if last & 0x40 else result

    def name(self) -> str:
        raw = self.bytes(self.uleb())
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise self.fail("a name is not UTF-8") from None

    def const_expr(self) -> bytes:
        """A constant expression up to and including its `end`; returns its bytes."""
        start = self.pos
        while True:
            op = self.byte()
            if op == 0x0B:
                return self.data[start:self.pos]
            if op in (0x41,):
                self.sleb(32)
            elif op == 0x42:
                self.sleb(64)
            elif op == 0x43:
                self.bytes(4)
            elif op == 0x44:
                self.bytes(8)
            elif op in (0x23, 0xD2):  # global.get, ref.func
                self.uleb()
            elif op == 0xD0:  # ref.null t
                self.byte()
            elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):  # extended-const arithmetic
                pass
            elif op == 0xFD and self.uleb() == 12:  # v128.const
                self.bytes(16)
            else:
                raise self.fail(f"unsupported opcode {op:#x} in a constant expression")

    def limits(self) -> tuple[int, int, int | None]:
        flags = self.byte()
        if flags > 0x07:
            raise self.fail(f"bad limits flags {flags:#x}")
        bits = 64 if flags & 0x04 else 32
        lo = self.uleb(bits)
        hi = self.uleb(bits) if flags & 0x01 else None
        return flags, lo, hi

    def done(self) -> bool:
        return self.pos >= self.end


# --- the module ------------------------------------------------------------------------

@dataclass
class Global:
    index: int      # in the global index space (imports first)
    valtype: int
    mutable: bool
    init: bytes     # constant expression incl. `end`


@dataclass
class Segment:
    mode: int       # 0 active on memory 0, 1 passive, 2 active with a memory index
    payload: bytes  # the encoded segment as it stood (for passive ones, kept verbatim)


@dataclass
class Module:
    sections: list[tuple[int, bytes]]          # (id, payload) in file order
    imported_globals: int = 0
    globals: list[Global] = field(default_factory=list)
    exports: list[tuple[str, int, int]] = field(default_factory=list)  # (name, kind, index)
    memory_limits: tuple[int, int, int | None] | None = None
    segments: list[Segment] = field(default_factory=list)


def parse(wasm: bytes) -> Module:
    if not isinstance(wasm, (bytes, bytearray, memoryview)):
        raise SnapshotError("expected the wasm module as bytes")
    wasm = bytes(wasm)
    if wasm[:4] != b"\0asm":
        raise SnapshotError("not a wasm binary (no \\0asm magic)")
    if wasm[4:8] != b"\x01\0\0\0":
        raise SnapshotError(f"unsupported wasm binary version {wasm[4:8].hex()} (a component?)")
    r = Reader(wasm, 8)
    mod = Module(sections=[])
    imported_memories = 0
    while not r.done():
        sid = r.byte()
        size = r.uleb()
        payload = r.bytes(size)
        if sid > SEC_TAG:
            raise r.fail(f"unknown section id {sid}")
        mod.sections.append((sid, payload))
        s = Reader(payload, what=f"section {sid}")
        if sid == SEC_CUSTOM:
            cname = s.name()
            if cname == "linking" or cname.startswith("reloc."):
                raise SnapshotError("a relocatable object file (it has a linking section): link it first")
        elif sid == SEC_IMPORT:
            for _ in range(s.uleb()):
                s.name(), s.name()
                kind = s.byte()
                if kind == 0:
                    s.uleb()
                elif kind == 1:
                    s.byte()
                    s.limits()
                elif kind == 2:
                    s.limits()
                    imported_memories += 1
                elif kind == 3:
                    s.byte(), s.byte()
                    mod.imported_globals += 1
                elif kind == 4:
                    s.byte(), s.uleb()
                else:
                    raise s.fail(f"unknown import kind {kind}")
        elif sid == SEC_MEMORY:
            count = s.uleb()
            if count != 1:
                raise SnapshotError(f"the module defines {count} memories; a snapshot needs exactly one")
            mod.memory_limits = s.limits()
        elif sid == SEC_GLOBAL:
            for i in range(s.uleb()):
                valtype = s.byte()
                if valtype not in NUM_TYPES and valtype not in REF_TYPES:
                    raise s.fail(f"unsupported global type {valtype:#x}")
                mut = s.byte()
                if mut > 1:
                    raise s.fail(f"bad mutability {mut}")
                init = s.const_expr()
                mod.globals.append(Global(mod.imported_globals + i, valtype, bool(mut), init))
        elif sid == SEC_EXPORT:
            for _ in range(s.uleb()):
                name = s.name()
                kind = s.byte()
                mod.exports.append((name, kind, s.uleb()))
        elif sid == SEC_DATA:
            for _ in range(s.uleb()):
                start = s.pos
                mode = s.uleb()
                if mode == 0:
                    s.const_expr()
                elif mode == 2:
                    if s.uleb() != 0:
                        raise SnapshotError("a data segment targets a memory other than 0")
                    s.const_expr()
                elif mode != 1:
                    raise s.fail(f"bad data segment mode {mode}")
                s.bytes(s.uleb())
                mod.segments.append(Segment(mode, payload[start:s.pos]))
        if sid != SEC_CUSTOM and sid not in (SEC_TYPE, SEC_FUNC, SEC_TABLE, SEC_START, SEC_ELEM, SEC_CODE,
                                             SEC_DATACOUNT, SEC_TAG) and not s.done():
            raise s.fail("trailing bytes in the section")
    if imported_memories:
        raise SnapshotError("the module imports its memory; a snapshot needs a memory it defines")
    if mod.memory_limits is None:
        raise SnapshotError("the module has no memory to snapshot")
    flags = mod.memory_limits[0]
    if flags & 0x02:
        raise SnapshotError("the module's memory is shared; snapshots of shared memory are not supported")
    if flags & 0x04:
        raise SnapshotError("the module's memory is 64-bit; snapshots support 32-bit memories")
    for g in mod.globals:
        if g.mutable and g.valtype not in NUM_TYPES:
            raise SnapshotError(f"global {g.index} is a mutable {REF_TYPES[g.valtype]}; "
                                "only number-typed mutable globals can be captured")
    return mod


def encode(sections: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(b"\0asm\x01\0\0\0")
    for sid, payload in sections:
        out.append(sid)
        out += uleb(len(payload))
        out += payload
    return bytes(out)


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def export_section(exports: list[tuple[str, int, int]]) -> bytes:
    return vec([name_bytes(n) + bytes([k]) + uleb(i) for n, k, i in exports])


def replace_section(sections: list[tuple[int, bytes]], sid: int, payload: bytes,
                     before: tuple[int, ...]) -> list[tuple[int, bytes]]:
    """Replace section ``sid`` or insert it before the first of ``before`` (else at the end of the
    non-custom sections)."""
    out = list(sections)
    for i, (s, _) in enumerate(out):
        if s == sid:
            out[i] = (sid, payload)
            return out
    for i, (s, _) in enumerate(out):
        if s in before:
            out.insert(i, (sid, payload))
            return out
    last = max((i for i, (s, _) in enumerate(out) if s != SEC_CUSTOM), default=len(out) - 1)
    out.insert(last + 1, (sid, payload))
    return out



# --- writing constants, limits and the name section -----------------------------------------

def encode_const(valtype: int, value: int | float | bytes) -> bytes:
    if valtype == 0x7F:
        v = int(value) & 0xFFFFFFFF  # type: ignore[arg-type]
        return b"\x41" + sleb(v - (1 << 32) if v >> 31 else v) + b"\x0b"
    if valtype == 0x7E:
        v = int(value) & 0xFFFFFFFFFFFFFFFF  # type: ignore[arg-type]
        return b"\x42" + sleb(v - (1 << 64) if v >> 63 else v) + b"\x0b"
    if valtype == 0x7D:
        return b"\x43" + struct.pack("<f", value) + b"\x0b"
    if valtype == 0x7C:
        return b"\x44" + struct.pack("<d", value) + b"\x0b"
    if valtype == 0x7B:
        raw = value if isinstance(value, (bytes, bytearray)) else int(value).to_bytes(16, "little")  # type: ignore
        return b"\xfd" + uleb(12) + bytes(raw) + b"\x0b"
    raise SnapshotError(f"cannot write a global of type {valtype:#x}")


def encode_limits(flags: int, lo: int, hi: int | None) -> bytes:
    return bytes([flags]) + uleb(lo) + (uleb(hi) if hi is not None else b"")


def strip_data_names(payload: bytes) -> bytes:
    """The `name` custom section without subsection 9 (data segment names)."""
    r = Reader(payload, what="name section")
    head = name_bytes(r.name())
    out = bytearray(head)
    while not r.done():
        sub = r.byte()
        body = r.bytes(r.uleb())
        if sub != 9:
            out.append(sub)
            out += uleb(len(body)) + body
    return bytes(out)
