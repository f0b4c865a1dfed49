"""Pre-initialized snapshots of a wasm module, in the Wizer way.

``snapshot(wasm, init_export)`` instantiates ``wasm``, runs its ``_initialize``
(if it has one) and then ``init_export``, and writes a new module that starts
in the state the instance reached: its linear memory becomes the data
segments, its mutable globals' values become the global initializers.
Instantiating the snapshot skips the work the init export did.

The rewriter is our own (sections, LEB128, constant expressions); it knows
nothing of what the module runs. What it changes:

- memory 0: minimum = the captured size; active data segments = the non-zero
  ranges of the captured memory (small zero gaps merged); passive segments
  keep their index and contents (a ``data.drop`` done by the init is not
  captured), and the datacount section is updated;
- mutable globals defined by the module: initializer = the captured value;
- exports: ``_initialize`` is removed (it already ran, and a reactor's
  ``_initialize`` traps when called twice), and so is the start section; the
  mutable globals are exported as ``__wapo_snapshot_global_<index>``;
- custom sections are kept, except the data-segment names of the ``name``
  section, which no longer describe the segments.

Limits: one memory, defined (not imported), 32-bit and not shared; mutable
globals of number types (i32, i64, f32, f64, v128); the init may not call the
host (ocalls are refused while no run is active; WASI gets no args and no env).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from ..paths import cache_dir
from .engine import EPOCH_TICK, WASMTIME_VERSION, EngineConfig, get_engine
from .errors import WapoError

# Bump when the output of snapshot() changes for the same input.
SNAPSHOT_FORMAT = 2
GLOBAL_EXPORT_PREFIX = "__wapo_snapshot_global_"
MEMORY_EXPORT = "__wapo_snapshot_memory"
INIT_TIME_LIMIT = 10.0  # seconds an init export may run
MERGE_GAP = 64          # zero runs shorter than this stay inside a segment
MAX_SEGMENTS = 10_000   # wasmtime accepts 100,000; fewer keeps the module small
PAGE = 65536

SEC_CUSTOM, SEC_TYPE, SEC_IMPORT, SEC_FUNC, SEC_TABLE, SEC_MEMORY, SEC_GLOBAL, SEC_EXPORT, SEC_START, \
    SEC_ELEM, SEC_CODE, SEC_DATA, SEC_DATACOUNT, SEC_TAG = range(14)

NUM_TYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
REF_TYPES = {0x70: "funcref", 0x6F: "externref"}


class SnapshotError(WapoError):
    """The module cannot be snapshotted (malformed, or outside what the rewriter supports)."""


# --- LEB128 and a byte reader --------------------------------------------------------

def uleb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


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

    def uleb(self, bits: int = 32) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= bits + 7:
                raise self.fail("LEB128 too long")
        if result >> bits:
            raise self.fail("LEB128 out of range")
        return result

    def sleb(self, bits: int = 64) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= bits + 7:
                raise self.fail("LEB128 too long")
        if b & 0x40:
            result -= 1 << shift
        return result

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


def _vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


def _export_section(exports: list[tuple[str, int, int]]) -> bytes:
    return _vec([name_bytes(n) + bytes([k]) + uleb(i) for n, k, i in exports])


def _replace_section(sections: list[tuple[int, bytes]], sid: int, payload: bytes,
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


# --- (i) instrument: export what must be captured ------------------------------------------

def instrument(mod: Module) -> bytes:
    """The module with its mutable globals (and its memory) exported under generated names."""
    exports = list(mod.exports)
    present = {name for name, _, _ in exports}  # a snapshot of a snapshot exports its globals already
    for g in mod.globals:
        if g.mutable and f"{GLOBAL_EXPORT_PREFIX}{g.index}" not in present:
            exports.append((f"{GLOBAL_EXPORT_PREFIX}{g.index}", 3, g.index))
    if MEMORY_EXPORT not in present:
        exports.append((MEMORY_EXPORT, 2, 0))
    sections = _replace_section(mod.sections, SEC_EXPORT, _export_section(exports),
                                (SEC_START, SEC_ELEM, SEC_DATACOUNT, SEC_CODE, SEC_DATA))
    return encode(sections)


# --- (ii) capture: run the init, read memory and globals --------------------------------------

@dataclass
class Captured:
    memory: bytes
    globals: dict[int, int | float | bytes]


def capture(mod: Module, init_export: str, config: EngineConfig = EngineConfig()) -> Captured:
    from .linker import linker_for  # the host's imports (WASI + ocalls), defined once per engine

    engine = get_engine(config)
    try:
        module = wasmtime.Module(engine, instrument(mod))
    except wasmtime.WasmtimeError as exc:
        raise SnapshotError(f"not a valid WebAssembly module: {str(exc).splitlines()[0]}") from None
    names = {e.name for e in module.exports}
    if init_export not in names:
        raise SnapshotError(f"the module exports no {init_export!r} to initialize it")
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())  # no args, no env: nothing of a run gets in
    store.set_epoch_deadline(int(INIT_TIME_LIMIT / EPOCH_TICK) + 1)
    if config.fuel:
        store.set_fuel(2**62)
    try:
        instance = linker_for(config).instantiate(store, module)
        exports = instance.exports(store)
        calls = ["_initialize"] if "_initialize" in names and init_export != "_initialize" else []
        for name in calls + [init_export]:
            func = exports[name]
            if not isinstance(func, wasmtime.Func) or func.type(store).params:
                raise SnapshotError(f"{name!r} is not a function that takes no arguments")
            func(store)
    except wasmtime.Trap as exc:
        raise SnapshotError(f"the init trapped: {str(exc).splitlines()[0]}") from None
    except wasmtime.WasmtimeError as exc:
        raise SnapshotError(f"cannot run the init: {str(exc).splitlines()[0]}") from None
    memory = exports[MEMORY_EXPORT]
    assert isinstance(memory, wasmtime.Memory)
    data = bytes(memory.read(store, 0, memory.data_len(store)))
    values: dict[int, int | float | bytes] = {}
    for g in mod.globals:
        if g.mutable:
            glob = exports[f"{GLOBAL_EXPORT_PREFIX}{g.index}"]
            assert isinstance(glob, wasmtime.Global)
            values[g.index] = glob.value(store)  # type: ignore[assignment]
    return Captured(data, values)


def data_ranges(memory: bytes, gap: int = MERGE_GAP, max_segments: int = MAX_SEGMENTS) -> list[tuple[int, int]]:
    """(start, end) of the non-zero ranges of ``memory``, zero gaps shorter than ``gap`` merged."""
    runs = [(m.start(), m.end()) for m in re.finditer(rb"[^\x00]+", memory)]
    while True:
        merged: list[tuple[int, int]] = []
        for start, end in runs:
            if merged and start - merged[-1][1] < gap:
                merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        if len(merged) <= max_segments:
            return merged
        runs, gap = merged, gap * 4


# --- (iii) write the snapshot -------------------------------------------------------------

def _const(valtype: int, value: int | float | bytes) -> bytes:
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


def _limits(flags: int, lo: int, hi: int | None) -> bytes:
    return bytes([flags]) + uleb(lo) + (uleb(hi) if hi is not None else b"")


def _strip_data_names(payload: bytes) -> bytes:
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


def rewrite(mod: Module, captured: Captured) -> bytes:
    mem = captured.memory
    if len(mem) % PAGE:
        raise SnapshotError("captured memory is not a whole number of pages")
    flags, _, hi = mod.memory_limits  # type: ignore[misc]
    pages = len(mem) // PAGE
    memory_section = uleb(1) + _limits(flags, pages, hi)

    globals_section = _vec([
        bytes([g.valtype, int(g.mutable)]) + (_const(g.valtype, captured.globals[g.index]) if g.mutable else g.init)
        for g in mod.globals
    ])

    new_segments = [b"\x00\x41" + sleb(start) + b"\x0b" + uleb(end - start) + mem[start:end]
                    for start, end in data_ranges(mem)]
    if any(s.mode == 1 for s in mod.segments):
        # keep every segment's index (memory.init / data.drop name them): active ones, already
        # applied and dropped at instantiation, become empty; the captured memory comes after
        empty_active = b"\x00\x41\x00\x0b\x00"
        segments = [s.payload if s.mode == 1 else empty_active for s in mod.segments] + new_segments
    else:
        segments = new_segments
    data_section = _vec(segments)

    # the mutable globals stay exported (under generated names): a per-agent image taken from
    # this snapshot (wapo.host.image) checks that its init left them as they were
    exports = [(n, k, i) for n, k, i in mod.exports if n != "_initialize"]
    exports += [(f"{GLOBAL_EXPORT_PREFIX}{g.index}", 3, g.index) for g in mod.globals
                if g.mutable and f"{GLOBAL_EXPORT_PREFIX}{g.index}" not in {n for n, _, _ in exports}]

    out: list[tuple[int, bytes]] = []
    for sid, payload in mod.sections:
        if sid == SEC_START:
            continue  # it ran in the snapshotted instance
        if sid == SEC_CUSTOM and Reader(payload, what="custom section").name() == "name":
            payload = _strip_data_names(payload)
        out.append((sid, payload))
    out = _replace_section(out, SEC_MEMORY, memory_section, (SEC_TAG, SEC_GLOBAL, SEC_EXPORT, SEC_START,
                                                            SEC_ELEM, SEC_DATACOUNT, SEC_CODE, SEC_DATA))
    if mod.globals:
        out = _replace_section(out, SEC_GLOBAL, globals_section, (SEC_EXPORT,))
    out = _replace_section(out, SEC_EXPORT, _export_section(exports),
                           (SEC_START, SEC_ELEM, SEC_DATACOUNT, SEC_CODE, SEC_DATA))
    if any(s == SEC_DATACOUNT for s, _ in out):
        out = _replace_section(out, SEC_DATACOUNT, uleb(len(segments)), ())
    out = _replace_section(out, SEC_DATA, data_section, ())
    # _replace_section appends a missing section after the last non-custom one: data is last
    return encode(out)


def snapshot(wasm: bytes, init_export: str, config: EngineConfig = EngineConfig()) -> bytes:
    """Run ``init_export`` (after ``_initialize``, if any) and return a module that starts where
    the instance ended. Raises SnapshotError on malformed or unsupported input."""
    mod = parse(wasm)
    out = rewrite(mod, capture(mod, init_export, config))
    try:
        wasmtime.Module.validate(get_engine(config), out)
    except wasmtime.WasmtimeError as exc:  # a bug of ours, not of the input
        raise SnapshotError(f"the snapshot does not validate: {str(exc).splitlines()[0]}") from None
    return out


def cached_snapshot(wasm: bytes, init_export: str) -> bytes:
    """``snapshot()`` with a disk cache keyed by the module hash, the snapshot format and the
    wasmtime version (the image depends on how wasmtime ran the init)."""
    key = hashlib.sha256(
        f"{hashlib.sha256(wasm).hexdigest()};{init_export};format={SNAPSHOT_FORMAT};"
        f"wasmtime={WASMTIME_VERSION}".encode()).hexdigest()[:32]
    path = cache_dir() / "snapshots" / f"{key}.wasm"
    try:
        data = path.read_bytes()
        if data[:4] == b"\0asm":
            return data
    except OSError:
        pass
    data = snapshot(wasm, init_export)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache costs a snapshot per process
    return data
