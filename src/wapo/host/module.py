"""Guest code: ``GuestModule`` (checked once, instantiated per run) and the compiled-module cache
on disk (so a process start costs a deserialize, not a compile).

A serialized module is machine code that wasmtime maps and runs without checking it, so a cache
file is trusted only if it lives in a private directory (ours, mode 0700, its parent not writable
by others) and its SHA-256 matches the digest written beside it when it was stored; anything else
(stale, truncated, tampered, another user's) is compiled again from the wasm, never loaded."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable

import wasmtime

from ..paths import cache_dir
from . import cache_bound
from .engine import EngineConfig, get_engine
from .errors import GuestLoadError
from .linker import linker_for

_loaded: dict[tuple[EngineConfig, str], wasmtime.Module] = {}
DIGEST_SUFFIX = cache_bound.DIGEST_SUFFIX
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


def _module_dir(kind: str = "modules") -> Path:
    return cache_dir() / kind


def load_module(wasm: bytes, config: EngineConfig = EngineConfig()) -> wasmtime.Module:
    """Compile ``wasm`` (binary or WAT text) for the engine of ``config``, using the disk cache."""
    return load_keyed(hashlib.sha256(wasm).hexdigest(), lambda: wasm, config)


def cache_path(key: str, config: EngineConfig = EngineConfig(), kind: str = "modules") -> Path:
    """Where ``load_keyed`` keeps the artifact of ``key`` compiled for ``config``."""
    name = hashlib.sha256(f"{config.cache_tag()};{key}".encode()).hexdigest()[:32]
    return _module_dir(kind) / f"{name}.cwasm"


def load_keyed(key: str, make_wasm: Callable[[], bytes], config: EngineConfig = EngineConfig(),
               kind: str = "modules") -> wasmtime.Module:
    """The module ``make_wasm()`` returns, compiled for ``config``'s engine; ``key`` must name
    that wasm exactly (a hash of it or of everything it is made from): it keys the memo and the
    disk cache (``cache_dir()/<kind>``), so a process start finds it without making the wasm."""
    memo_key = (config, key)
    module = _loaded.get(memo_key)
    if module is not None:
        return module
    engine = get_engine(config)
    path = cache_path(key, config, kind)
    module = read_verified(path, engine)
    if module is None:
        try:
            module = wasmtime.Module(engine, make_wasm())
        except wasmtime.WasmtimeError as exc:
            raise GuestLoadError(f"not a valid WebAssembly module: {str(exc).splitlines()[0]}") from exc
        if store_verified(path, module, max_bytes=cache_bound.limit(kind)):
            # loaded back from the file: wasmtime then maps memory images from it (shared by every
            # process that loads it) instead of a private copy
            module = read_verified(path, engine) or module
    _loaded[memo_key] = module
    return module


def private_dir(path: Path, create: bool = False) -> bool:
    """``path`` is a directory of ours that no other user can write to (made 0700 if asked)."""
    try:
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        uid = os.getuid()
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            return False
        if info.st_mode & 0o077:
            os.chmod(path, 0o700)
        parent = path.parent.stat()
        return parent.st_uid in (uid, 0) and not (parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX)
    except OSError:
        return False


def read_verified(path: Path, engine: wasmtime.Engine) -> wasmtime.Module | None:
    """The module serialized at ``path`` if the file is intact (its digest matches) and the
    directory private; None (the bad file removed) otherwise, or if the file is gone (another
    process pruned it: cache_bound). wasmtime maps the very file that was hashed (opened once,
    through /proc/self/fd), so a file replaced or removed meanwhile is never run unchecked."""
    digest_path = path.with_name(path.name + DIGEST_SUFFIX)
    if not private_dir(path.parent):
        return None
    try:
        expected = digest_path.read_text().strip()
        f = open(path, "rb")
    except OSError:
        return None
    with f:
        try:
            actual = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError:
            return None
        if expected != actual:
            _remove(path, digest_path)
            return None
        by_fd = f"/proc/self/fd/{f.fileno()}"
        try:
            module = wasmtime.Module.deserialize_file(engine, by_fd if os.path.exists(by_fd) else str(path))
        except wasmtime.WasmtimeError:  # another wasmtime or engine setting: compile again
            _remove(path, digest_path)
            return None
    cache_bound.touch(path)  # used now: the last to be pruned
    return module


def _remove(*paths: Path) -> None:
    for p in paths:
        try:
            p.unlink()
        except OSError:
            pass


def store_verified(path: Path, module: wasmtime.Module, max_bytes: int = 0) -> bool:
    """Write ``module`` serialized to ``path`` with its digest beside it (False if the cache
    directory is not private or not writable: the module then lives in this process only).
    Each file is written whole to a temporary file and renamed into place, so no reader ever sees
    a partial one; the artifact goes first, so a digest always names a complete artifact (one
    without its digest yet is a miss). Then, with ``max_bytes``, the directory is pruned to it
    (least recently used first, never ``path``: cache_bound)."""
    if not private_dir(path.parent, create=True):
        return False
    data = module.serialize()
    tmp = None
    try:
        for target, payload in ((path, data), (path.with_name(path.name + DIGEST_SUFFIX),
                                               hashlib.sha256(data).hexdigest().encode())):
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=cache_bound.TMP_SUFFIX)
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, target)
            tmp = None
    except OSError:  # e.g. a full disk: nothing half-written stays behind
        if tmp is not None:
            _remove(Path(tmp))
        return False
    if max_bytes:
        cache_bound.prune(path.parent, max_bytes, keep=path)
    return True


class GuestModule:
    """Compiled guest code: loaded once, instantiated per run.

    ``backtrace_export`` names an export the host may call after a limit stopped the guest, to
    learn where it was (WapoJS's allocation-free JS stack); ``exhausted_export`` one that returns
    the address of a byte saying (non-zero) whether the guest's heap ran out in the run (a static
    address, read once per module; a speculative step needs it: speculation.py); ``burst_grace`` is how much later than the burst limit the host's own
    deadline fires, for a guest that stops itself first."""

    def __init__(self, wasm: bytes, name: str = "guest", *, backtrace_export: str | None = None,
                 exhausted_export: str | None = None, burst_grace: float = 0.0) -> None:
        self.wasm = bytes(wasm)
        self.name = name
        self.backtrace_export = backtrace_export
        self.exhausted_export = exhausted_export
        self.exhausted_address: int | None = None  # what exhausted_export returned, once asked
        self.burst_grace = burst_grace
        self.starts_with_code = has_start_function(self.wasm)  # instantiating it runs guest code
        # instantiation runs no guest code and is short: the call may keep the GIL (sandbox.py)
        self.quick_instantiate = len(self.wasm) <= QUICK_INSTANTIATE_BYTES and not self.starts_with_code
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
            module = self._load(config)
            self._check_shape(module)
            try:
                pre = linker_for(config).instantiate_pre(module)
            except wasmtime.WasmtimeError as exc:
                raise GuestLoadError(f"{self.name} imports something this host does not provide: "
                                     f"{str(exc).splitlines()[0]}") from exc
            self._pres[config] = pre
        return pre

    def _load(self, config: EngineConfig) -> wasmtime.Module:
        return load_module(self.wasm, config)

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
