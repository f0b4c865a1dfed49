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
import tempfile
from dataclasses import dataclass

import wasmtime

from ...paths import cache_dir
from ..engine import EPOCH_TICK, WASMTIME_VERSION, EngineConfig, get_engine
from ..linker import linker_for
from .wasm import (PAGE, SEC_CODE, SEC_CUSTOM, SEC_DATA, SEC_DATACOUNT, SEC_ELEM, SEC_EXPORT, SEC_GLOBAL,
                   SEC_MEMORY, SEC_START, SEC_TAG, Module, Reader, SnapshotError, encode, encode_const,
                   encode_limits, export_section, parse, replace_section, sleb, strip_data_names, uleb, vec)

# Bump when the output of snapshot() changes for the same input.
SNAPSHOT_FORMAT = 2
GLOBAL_EXPORT_PREFIX = "__wapo_snapshot_global_"
MEMORY_EXPORT = "__wapo_snapshot_memory"
INIT_TIME_LIMIT = 10.0  # seconds an init export may run
MERGE_GAP = 64          # zero runs shorter than this stay inside a segment
MAX_SEGMENTS = 10_000   # wasmtime accepts 100,000; fewer keeps the module small
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
    sections = replace_section(mod.sections, SEC_EXPORT, export_section(exports),
                                (SEC_START, SEC_ELEM, SEC_DATACOUNT, SEC_CODE, SEC_DATA))
    return encode(sections)


# --- (ii) capture: run the init, read memory and globals --------------------------------------

@dataclass
class Captured:
    memory: bytes
    globals: dict[int, int | float | bytes]


def capture(mod: Module, init_export: str, config: EngineConfig = EngineConfig()) -> Captured:
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

def rewrite(mod: Module, captured: Captured) -> bytes:
    mem = captured.memory
    if len(mem) % PAGE:
        raise SnapshotError("captured memory is not a whole number of pages")
    flags, _, hi = mod.memory_limits  # type: ignore[misc]
    pages = len(mem) // PAGE
    memory_section = uleb(1) + encode_limits(flags, pages, hi)

    globals_section = vec([
        bytes([g.valtype, int(g.mutable)]) + (encode_const(g.valtype, captured.globals[g.index]) if g.mutable else g.init)
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
    data_section = vec(segments)

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
            payload = strip_data_names(payload)
        out.append((sid, payload))
    out = replace_section(out, SEC_MEMORY, memory_section, (SEC_TAG, SEC_GLOBAL, SEC_EXPORT, SEC_START,
                                                            SEC_ELEM, SEC_DATACOUNT, SEC_CODE, SEC_DATA))
    if mod.globals:
        out = replace_section(out, SEC_GLOBAL, globals_section, (SEC_EXPORT,))
    out = replace_section(out, SEC_EXPORT, export_section(exports),
                           (SEC_START, SEC_ELEM, SEC_DATACOUNT, SEC_CODE, SEC_DATA))
    if any(s == SEC_DATACOUNT for s, _ in out):
        out = replace_section(out, SEC_DATACOUNT, uleb(len(segments)), ())
    out = replace_section(out, SEC_DATA, data_section, ())
    # replace_section appends a missing section after the last non-custom one: data is last
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
