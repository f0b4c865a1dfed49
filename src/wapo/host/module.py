"""Guest code: ``GuestModule`` (checked once, instantiated per run) and the compiled-module cache
on disk (so a process start costs a deserialize, not a compile)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import wasmtime

from ..paths import cache_dir
from .engine import EngineConfig, get_engine
from .errors import GuestLoadError
from .linker import linker_for

_loaded: dict[tuple[EngineConfig, str], wasmtime.Module] = {}
# A module at most this large, without a start function, is instantiated holding the GIL: with
# nothing of it running, instantiation is a slot taken and at most this much data copied.
QUICK_INSTANTIATE_BYTES = 4 * 1024 * 1024
START_SECTION = 8


def has_start_function(wasm: bytes) -> bool:
    """True if the binary module has a start section, or cannot be read as one (WAT text)."""
    if wasm[:4] != b"\0asm" or len(wasm) < 8:
        return True
    pos, end = 8, len(wasm)
    while pos < end:
        section = wasm[pos]
        pos += 1
        size = shift = 0
        while True:
            if pos >= end:
                return True
            byte = wasm[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 35:
                return True
        if section == START_SECTION:
            return True
        pos += size
    return False


def _module_dir() -> Path:
    return cache_dir() / "modules"


def load_module(wasm: bytes, config: EngineConfig = EngineConfig()) -> wasmtime.Module:
    """Compile ``wasm`` (binary or WAT text) for the engine of ``config``, using the disk cache."""
    digest = hashlib.sha256(wasm).hexdigest()
    memo_key = (config, digest)
    module = _loaded.get(memo_key)
    if module is not None:
        return module
    engine = get_engine(config)
    key = hashlib.sha256(f"{config.cache_tag()};{digest}".encode()).hexdigest()[:32]
    path = _module_dir() / f"{key}.cwasm"
    module = None
    if path.exists():
        try:
            module = wasmtime.Module.deserialize_file(engine, str(path))
        except wasmtime.WasmtimeError:
            path.unlink(missing_ok=True)  # stale or truncated: recompile below
    if module is None:
        try:
            module = wasmtime.Module(engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise GuestLoadError(f"not a valid WebAssembly module: {str(exc).splitlines()[0]}") from exc
        _store_serialized(path, module)
    _loaded[memo_key] = module
    return module


def _store_serialized(path: Path, module: wasmtime.Module) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(module.serialize())
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs compile time


class GuestModule:
    """Compiled guest code: loaded once, instantiated per run.

    ``backtrace_export`` names an export the host may call after a limit stopped the guest, to
    learn where it was (WapoJS's allocation-free JS stack); ``burst_grace`` is how much later than
    the burst limit the host's own deadline fires, for a guest that stops itself first."""

    def __init__(self, wasm: bytes, name: str = "guest", *, backtrace_export: str | None = None,
                 burst_grace: float = 0.0) -> None:
        self.wasm = bytes(wasm)
        self.name = name
        self.backtrace_export = backtrace_export
        self.burst_grace = burst_grace
        # instantiation runs no guest code and is short: the call may keep the GIL (sandbox.py)
        self.quick_instantiate = len(self.wasm) <= QUICK_INSTANTIATE_BYTES and not has_start_function(self.wasm)
        self._pres: dict[EngineConfig, wasmtime.InstancePre] = {}
        self.instance_pre(EngineConfig())  # compile now: a bad module fails here, not mid-run

    @classmethod
    def from_file(cls, path: str | Path) -> "GuestModule":
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise GuestLoadError(f"cannot read {path}: {exc.strerror}") from exc
        return cls(data, name=path.name)

    def default_address(self) -> bytes:
        """The app address of a run that names none: derived from the code."""
        return hashlib.sha256(b"wapo-app:" + self.wasm).digest()

    def instance_pre(self, config: EngineConfig) -> wasmtime.InstancePre:
        pre = self._pres.get(config)
        if pre is None:
            module = load_module(self.wasm, config)
            self._check_shape(module)
            try:
                pre = linker_for(config).instantiate_pre(module)
            except wasmtime.WasmtimeError as exc:
                raise GuestLoadError(f"{self.name} imports something this host does not provide: "
                                     f"{str(exc).splitlines()[0]}") from exc
            self._pres[config] = pre
        return pre

    def _check_shape(self, module: wasmtime.Module) -> None:
        kinds = {e.name: e.type for e in module.exports}
        self.poll_export = "wapo_poll" if "wapo_poll" in kinds else "sidevm_poll"
        self.has_initialize = "_initialize" in kinds
        if not isinstance(kinds.get("memory"), wasmtime.MemoryType):
            raise GuestLoadError(f"{self.name} exports no memory: it is not a Wapo guest")
        poll = kinds.get("wapo_poll", kinds.get("sidevm_poll"))
        if not isinstance(poll, wasmtime.FuncType) or [str(t) for t in poll.params] or \
                [str(t) for t in poll.results] != ["i32"]:
            raise GuestLoadError(f"{self.name} exports no function wapo_poll() -> i32: it is not a Wapo guest")
        init = kinds.get("_initialize")
        if init is not None and (not isinstance(init, wasmtime.FuncType) or init.params or init.results):
            raise GuestLoadError(f"{self.name} exports an _initialize that is not a function () -> ()")
