"""Compiled modules, cached on disk so a process start costs a deserialize, not a compile."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import wasmtime

from ..paths import cache_dir
from .engine import EngineConfig, get_engine
from .errors import GuestLoadError

_loaded: dict[tuple[EngineConfig, str], wasmtime.Module] = {}


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
