"""One sandbox on wasmtime's C API: a Store and an instance made, called and dropped directly.

This is the per-request hot path (docs/design.md, "The lean per-request path"): creating the
Store, giving it its WASI arguments (the request arrives in them: one write), instantiating from
the ``InstancePre``, calling ``wapo_poll`` and dropping the Store are each one C call, with no
wasmtime-py object in between. The raw API checks nothing, so this module does: every export is
looked up by name and kind-checked before use, a call on a closed sandbox raises instead of
touching freed memory, and guest memory is only reached through ``GuestMemory`` (bounds-checked
against the memory's current size on every access).
"""

from __future__ import annotations

import ctypes
from ctypes import byref, c_char_p, c_uint64, c_void_p
from typing import Iterable, Sequence

import wasmtime

from . import _capi

# What one Store may hold besides its memory bytes (the pooled engine's slots allow the same: one
# instance, one memory, one table). A table element costs the host memory outside the guest's
# memory limit (a funcref is a pointer plus bookkeeping), so a table may have at most one element
# per TABLE_ELEMENT_COST bytes of the memory limit, and never more than MAX_TABLE_ELEMENTS.
MAX_INSTANCES = 1
MAX_TABLES = 1
MAX_MEMORIES = 1
TABLE_ELEMENT_COST = 16
MAX_TABLE_ELEMENTS = 1 << 20
# A Store whose memory is at most this large is dropped holding the GIL (a pool slot's reset is a
# memset of at most this much: ~0.1 ms); larger ones drop it while they unmap or reset.
QUICK_DROP_BYTES = 8 * 1024 * 1024


def table_elements_limit(memory_limit: int) -> int:
    return min(memory_limit // TABLE_ELEMENT_COST, MAX_TABLE_ELEMENTS)


class Crossings:
    """Python<->wasm crossings of this process (host->guest calls, guest->host ocalls): the
    figure the per-request path is judged by (bench/run.py reads it)."""

    __slots__ = ("entries", "ocalls")

    def __init__(self) -> None:
        self.entries = 0
        self.ocalls = 0


crossings = Crossings()


class SandboxClosed(RuntimeError):
    """The sandbox was dropped; nothing of it may be used any more."""


def _strings(values: Sequence[str], what: str) -> ctypes.Array:
    encoded = []
    for value in values:
        if "\0" in value:
            raise ValueError(f"a WASI {what} cannot contain a NUL character")
        encoded.append(value.encode("utf-8"))
    return (c_char_p * len(encoded))(*encoded)


class Sandbox:
    """A Store with one instance of a pre-linked module. ``close()`` drops it (idempotent)."""

    __slots__ = ("_store", "_ctx", "_instance", "memory_extern")

    def __init__(self, engine: wasmtime.Engine, *, args: Sequence[str], env: Iterable[tuple[str, str]] = (),
                 memory_limit: int, fuel: int | None = None, inherit_stdio: bool = False) -> None:
        self._store = self._ctx = None
        self._instance: _capi.InstanceHandle | None = None
        self.memory_extern: _capi.Memory | None = None
        self._store = _capi.store_new(engine.ptr(), None, _capi.NO_FINALIZER)
        self._ctx = _capi.store_context(self._store)
        try:
            self._set_wasi(args, list(env), inherit_stdio)
            _capi.store_limiter(self._store, memory_limit, table_elements_limit(memory_limit), MAX_INSTANCES,
                                MAX_TABLES, MAX_MEMORIES)
            if fuel is not None:
                self._check(_capi.context_set_fuel(self._ctx, fuel))
        except BaseException:
            self.close()
            raise

    def _set_wasi(self, args: Sequence[str], env: list[tuple[str, str]], inherit_stdio: bool) -> None:
        argv = _strings(args, "argument")
        names = _strings([k for k, _ in env], "environment name")
        values = _strings([v for _, v in env], "environment value")
        wasi = _capi.wasi_config_new()
        ok = _capi.wasi_config_set_argv(wasi, len(argv), argv)
        ok = ok and _capi.wasi_config_set_env(wasi, len(names), names, values)
        if not ok:
            _capi.wasi_config_delete(wasi)
            raise ValueError("WASI refused the arguments or environment (they must be UTF-8)")
        if inherit_stdio:
            _capi.wasi_config_inherit_stdout(wasi)
            _capi.wasi_config_inherit_stderr(wasi)
        self._check(_capi.context_set_wasi(self._ctx, wasi))  # takes the config, even on error

    @staticmethod
    def _check(error: int | None) -> None:
        if error:
            raise _capi.take_error(error)

    def _context(self) -> int:
        if self._ctx is None:
            raise SandboxClosed("the sandbox was dropped")
        return self._ctx

    # --- lifecycle --------------------------------------------------------------------
    def instantiate(self, pre: wasmtime.InstancePre, quick: bool = False) -> None:
        """Instantiate ``pre`` here; a trap (start function) raises ``wasmtime.Trap``, a failure
        (a full pool, a memory limit below the module's minimum) ``wasmtime.WasmtimeError``.
        ``quick``: the module runs no code when instantiated and is small, so the call keeps the
        GIL (docs/design.md, the threading model: dropping it costs a wait to take it back)."""
        ctx = self._context()
        if self._instance is not None:
            raise RuntimeError("a sandbox holds one instance")
        handle = _capi.InstanceHandle()
        trap = c_void_p()
        instantiate = _capi.instance_pre_instantiate_quick if quick else _capi.instance_pre_instantiate
        error = instantiate(pre.ptr(), ctx, byref(handle), byref(trap))
        if error:
            raise _capi.take_error(error)
        if trap.value:
            raise _capi.take_trap(trap.value)
        self._instance = handle

    def close(self, quick: bool = False) -> None:
        """Drop the Store. ``quick``: its memory is small (the drop resets or unmaps at most
        QUICK_DROP_BYTES), so the call keeps the GIL."""
        store, self._store, self._ctx, self._instance, self.memory_extern = self._store, None, None, None, None
        if store:
            (_capi.store_delete_quick if quick else _capi.store_delete)(store)

    @property
    def closed(self) -> bool:
        return self._ctx is None

    def __del__(self) -> None:
        self.close()

    # --- exports ------------------------------------------------------------------------
    def _export(self, name: str, kind: int) -> _capi.Extern | None:
        ctx = self._context()
        if self._instance is None:
            raise RuntimeError("the sandbox has no instance yet")
        item = _capi.Extern()
        raw = name.encode()
        if not _capi.instance_export_get(ctx, byref(self._instance), raw, len(raw), byref(item)):
            return None
        if item.kind != kind:
            return None
        return item

    def func(self, name: str) -> _capi.Func | None:
        """The exported function ``name``; the caller knows its type (``GuestModule`` checked it)."""
        item = self._export(name, _capi.EXTERN_FUNC)
        return None if item is None else item.of.func

    def memory(self, name: str = "memory") -> _capi.Memory | None:
        item = self._export(name, _capi.EXTERN_MEMORY)
        if item is None:
            return None
        self.memory_extern = item.of.memory
        return self.memory_extern

    # --- running ------------------------------------------------------------------------
    def call_i32(self, func: _capi.Func) -> int:
        """Call a ``() -> i32`` export (``wapo_poll``); the current guest state must be set."""
        return self._call(func, 1)

    def call_void(self, func: _capi.Func) -> None:
        """Call a ``() -> ()`` export (``_initialize``)."""
        self._call(func, 0)

    def _call(self, func: _capi.Func, results: int) -> int:
        ctx = self._context()
        values = (_capi.ValRaw * 1)()
        trap = c_void_p()
        crossings.entries += 1
        error = _capi.func_call_unchecked(ctx, byref(func), values, results, byref(trap))
        if error:
            raise _capi.take_error(error)
        if trap.value:
            raise _capi.take_trap(trap.value)
        return values[0].i32 if results else 0

    def set_epoch_deadline(self, ticks: int) -> None:
        _capi.context_set_epoch_deadline(self._context(), ticks)

    def set_fuel(self, fuel: int) -> None:
        self._check(_capi.context_set_fuel(self._context(), fuel))

    def get_fuel(self) -> int:
        value = c_uint64()
        self._check(_capi.context_get_fuel(self._context(), byref(value)))
        return value.value

    # --- memory ---------------------------------------------------------------------------
    def grow_memory(self, pages: int) -> None:
        """Grow the exported memory by ``pages`` wasm pages (the Store's memory limit applies)."""
        ctx = self._context()
        if self.memory_extern is None:
            raise RuntimeError("the sandbox has no memory")
        previous = c_uint64()
        self._check(_capi.memory_grow(ctx, byref(self.memory_extern), pages, byref(previous)))

    def memory_base_and_size(self) -> tuple[int, int]:
        """Where the exported memory is now and how long (it moves and grows while the guest runs)."""
        ctx = self._context()
        mem = self.memory_extern
        if mem is None:
            raise RuntimeError("the sandbox has no memory")
        return _capi.memory_data(ctx, byref(mem)) or 0, _capi.memory_data_size(ctx, byref(mem))


__all__ = ["Crossings", "Sandbox", "SandboxClosed", "crossings"]
