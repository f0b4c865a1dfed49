"""A hot agent's memory image as a module of its own, mapped copy-on-write like the snapshot.

``apply_image`` copies an image into every new sandbox: a 4.4 MB image costs each request the
copy and a first-touch fault per page (3.6 ms for a 215 KB bundle vs 0.25 ms for a hello agent).
Here the snapshot module is rewritten with the image folded into its data segments (memory
minimum raised to the image's size) and compiled; wasmtime then maps the memory of every
sandbox from the compiled artifact copy-on-write, and the pool restores only what a run dirtied.
The artifact is cached on disk (``cache_dir()/images``, keyed by the hash of the snapshot, of the
image and of the engine settings; checked on load, wapo.host.module), so every worker process
maps the same file; the directory is bounded, least recently used artifacts pruned when one is
written (wapo.host.cache_bound; ``mark_used`` keeps a used module's mtime fresh). Compiling costs
what the snapshot's compile costs (~1.5 s of Cranelift), so callers do it once an image is hot,
off the request path (wapo.js.precompiled).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import wasmtime

from .. import cache_bound
from ..engine import EngineConfig
from ..module import GuestModule, cache_path, load_keyed
from .capture import data_ranges
from .image import MemoryImage
from .wasm import (PAGE, SEC_DATA, SEC_DATACOUNT, SEC_MEMORY, Reader, SnapshotError, encode, encode_limits, parse,
                   replace_section, sleb, uleb, vec)

# Bump when image_wasm's output changes for the same input.
IMAGE_MODULE_FORMAT = 1
CACHE_KIND = "images"


def _segment_data(payload: bytes) -> tuple[int, bytes]:
    """(offset, bytes) of an active data segment of memory 0 with an ``i32.const`` offset."""
    r = Reader(payload, what="data segment")
    r.uleb()  # mode 0
    expr = r.const_expr()
    if len(expr) < 3 or expr[0] != 0x41 or expr[-1] != 0x0B:
        raise SnapshotError("a data segment's offset is not a constant i32")
    offset = Reader(expr, 1, what="data segment offset").sleb(32) & 0xFFFFFFFF
    return offset, r.bytes(r.uleb())


def image_wasm(base: bytes, image: MemoryImage) -> bytes:
    """``base`` (a snapshot) starting with ``image`` applied: its initial memory, segments and
    minimum size are those of a sandbox of ``base`` after ``apply_image``."""
    mod = parse(base)
    flags, lo, hi = mod.memory_limits  # type: ignore[misc]
    pages = max(lo, (image.size + PAGE - 1) // PAGE)
    if hi is not None and pages > hi:
        raise SnapshotError(f"the image needs {pages} pages, over the module's maximum of {hi}")
    memory = bytearray(pages * PAGE)
    segments: list[bytes] = []
    for seg in mod.segments:
        if seg.mode != 0:
            segments.append(seg.payload)  # passive: keeps its index and contents
            continue
        offset, data = _segment_data(seg.payload)
        if offset + len(data) > len(memory):
            raise SnapshotError("a data segment lies outside the module's memory")
        memory[offset:offset + len(data)] = data
        segments.append(b"\x00\x41\x00\x0b\x00")  # applied into `memory`: empty, index kept
    for offset, data in image.runs:
        if offset + len(data) > len(memory):
            raise SnapshotError("the image lies outside its own size")
        memory[offset:offset + len(data)] = data
    if all(s == b"\x00\x41\x00\x0b\x00" for s in segments):
        segments = []
    mem = bytes(memory)
    segments += [b"\x00\x41" + _sleb32(start) + b"\x0b" + uleb(end - start) + mem[start:end]
                 for start, end in data_ranges(mem)]
    out = replace_section(mod.sections, SEC_MEMORY, uleb(1) + encode_limits(flags, pages, hi), ())
    if any(s == SEC_DATACOUNT for s, _ in out):
        out = replace_section(out, SEC_DATACOUNT, uleb(len(segments)), ())
    out = replace_section(out, SEC_DATA, vec(segments), ())
    return encode(out)


def _sleb32(n: int) -> bytes:
    return sleb(n - (1 << 32) if n >> 31 else n)


def image_digest(image: MemoryImage) -> str:
    h = hashlib.sha256(f"size={image.size};".encode())
    for offset, data in image.runs:
        h.update(f"{offset}:{len(data)};".encode())
        h.update(data)
    return h.hexdigest()


class ImageModule(GuestModule):
    """``base`` with ``image`` in its data segments: runs of it need no ``apply_image``. The wasm
    is rebuilt only when a configuration's artifact is neither memoized nor on disk."""

    def __init__(self, base: GuestModule, image: MemoryImage) -> None:
        self.base = base
        self.image_size = image.size
        self._image: MemoryImage | None = image
        self.key = hashlib.sha256(
            f"image-module={IMAGE_MODULE_FORMAT};base={hashlib.sha256(base.wasm).hexdigest()};"
            f"image={image_digest(image)}".encode()).hexdigest()
        self.name = base.name
        self.backtrace_export = base.backtrace_export
        self.exhausted_export = base.exhausted_export
        self.exhausted_address = base.exhausted_address  # the same code: the same static address
        self.burst_grace = base.burst_grace
        self.starts_with_code = base.starts_with_code  # the image is data: no code is added
        self.quick_instantiate = False  # its memory may be more than QUICK_INSTANTIATE_BYTES to set up
        self._pres: dict[EngineConfig, wasmtime.InstancePre] = {}
        self._paths: list[Path] = []  # its artifacts on disk, one per engine configuration
        self._touched = time.monotonic()
        self.instance_pre(EngineConfig())

    @property
    def wasm(self) -> bytes:  # type: ignore[override]
        """The module's wasm, made again on demand (it is not kept: ~5 MB per agent)."""
        image = self._image
        if image is None:
            raise RuntimeError("the image was released")
        return image_wasm(self.base.wasm, image)

    def default_address(self) -> bytes:
        return self.base.default_address()

    def _load(self, config: EngineConfig) -> wasmtime.Module:
        self._paths.append(cache_path(self.key, config, CACHE_KIND))
        return load_keyed(self.key, lambda: self.wasm, config, kind=CACHE_KIND)

    def mark_used(self) -> None:
        """A run uses this module: its artifacts' mtimes say so, at most every TOUCH_EVERY
        seconds, so the disk cache's pruning (cache_bound) takes them last."""
        now = time.monotonic()
        if now - self._touched >= cache_bound.TOUCH_EVERY:
            self._touched = now
            for path in self._paths:
                cache_bound.touch(path)
