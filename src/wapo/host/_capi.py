"""The few wasmtime C-API functions the per-run path calls, bound once with plain pointer types.

wasmtime-py wraps every call in Python objects (a ``Func.__call__`` rebuilds the function type
and converts each value: 17-30 us; ``Store()`` + ``WasiConfig`` + ``set_wasi`` ~40 us); the same
calls made straight on the shared library it ships cost about a microsecond each (DESIGN.md,
"The per-request path, measured"). These bindings are fresh function pointers from that library
(``dll[name]`` is not cached, so wasmtime-py's own bindings keep their types), with ``c_void_p``
for every opaque pointer: nothing is converted or checked on the way, which is why only
``wapo.host.sandbox`` and ``wapo.host.memory`` use them, each with its own checks. The other raw
calls wasmtime-py does not wrap (the pooling allocator, unchecked host functions) live here too:
this module is the only one that touches ``wasmtime._ffi``.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, c_bool, c_char_p, c_int64, c_size_t, c_uint64, c_void_p

from typing import TYPE_CHECKING

from wasmtime import _ffi as ffi

if TYPE_CHECKING:
    import wasmtime

# Plain structs of the C API, shared with wasmtime-py (same layout).
Extern = ffi.wasmtime_extern_t
Func = ffi.wasmtime_func_t
Memory = ffi.wasmtime_memory_t
InstanceHandle = ffi.wasmtime_instance_t
ValRaw = ffi.wasmtime_val_raw_t

EXTERN_FUNC = int(ffi.WASMTIME_EXTERN_FUNC.value)
EXTERN_MEMORY = int(ffi.WASMTIME_EXTERN_MEMORY.value)

# wasm_trap_t* callback(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args_and_results,
#                       size_t len): the import entry of ``wasmtime_linker_define_func_unchecked``.
UncheckedCallback = ffi.wasmtime_func_unchecked_callback_t
NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, c_void_p))


BOUND: list[str] = []  # the names bound below (bench/run.py counts calls to them)

# The same library seen as a PyDLL: its functions keep the GIL while they run. A call that takes a
# microsecond (a Store's context, an export, the memory's size) is cheaper holding the GIL than
# dropping it and taking it back, which on a guest thread waits for the event loop's thread to let
# go (docs/design.md, the threading model). Calls that run guest code or do real work (instantiate,
# call, the Store drop, memory growth) release it, as ctypes does by default.
_KEEP_GIL = ctypes.PyDLL(ffi.dll._name, handle=ffi.dll._handle)
_QUICK = {
    "wasmtime_store_new", "wasmtime_store_context", "wasmtime_store_limiter", "wasmtime_context_set_wasi",
    "wasmtime_context_set_epoch_deadline", "wasmtime_context_set_fuel", "wasmtime_context_get_fuel",
    "wasi_config_new", "wasi_config_delete", "wasi_config_set_argv", "wasi_config_set_env",
    "wasi_config_inherit_stdout", "wasi_config_inherit_stderr", "wasmtime_instance_export_get",
    "wasmtime_memory_data", "wasmtime_memory_data_size", "wasmtime_trap_new",
}


def _bind(name: str, restype, *argtypes):
    func = (_KEEP_GIL if name in _QUICK else ffi.dll)[name]
    func.restype = restype
    func.argtypes = list(argtypes)
    BOUND.append(name.removeprefix("wasmtime_") if name.startswith("wasmtime_") else name)
    return func


# Variants that keep the GIL, for callers that know the call is short this time (a module without a
# start function, a Store whose memory is small, a small copy): sandbox.py and memory.py choose.
store_delete_quick = _KEEP_GIL["wasmtime_store_delete"]
store_delete_quick.restype, store_delete_quick.argtypes = None, [c_void_p]
memmove_quick = ctypes.PYFUNCTYPE(c_void_p, c_void_p, c_void_p, c_size_t)(ctypes._memmove_addr)  # type: ignore[attr-defined]

store_new = _bind("wasmtime_store_new", c_void_p, c_void_p, c_void_p, c_void_p)
store_context = _bind("wasmtime_store_context", c_void_p, c_void_p)
store_delete = _bind("wasmtime_store_delete", None, c_void_p)
store_limiter = _bind("wasmtime_store_limiter", None, c_void_p, c_int64, c_int64, c_int64, c_int64, c_int64)
context_set_wasi = _bind("wasmtime_context_set_wasi", c_void_p, c_void_p, c_void_p)
context_set_epoch_deadline = _bind("wasmtime_context_set_epoch_deadline", None, c_void_p, c_uint64)
context_set_fuel = _bind("wasmtime_context_set_fuel", c_void_p, c_void_p, c_uint64)
context_get_fuel = _bind("wasmtime_context_get_fuel", c_void_p, c_void_p, POINTER(c_uint64))

wasi_config_new = _bind("wasi_config_new", c_void_p)
wasi_config_delete = _bind("wasi_config_delete", None, c_void_p)
wasi_config_set_argv = _bind("wasi_config_set_argv", c_bool, c_void_p, c_size_t, POINTER(c_char_p))
wasi_config_set_env = _bind("wasi_config_set_env", c_bool, c_void_p, c_size_t, POINTER(c_char_p), POINTER(c_char_p))
wasi_config_inherit_stdout = _bind("wasi_config_inherit_stdout", None, c_void_p)
wasi_config_inherit_stderr = _bind("wasi_config_inherit_stderr", None, c_void_p)

instance_pre_instantiate = _bind("wasmtime_instance_pre_instantiate", c_void_p,
                                 c_void_p, c_void_p, POINTER(InstanceHandle), POINTER(c_void_p))
instance_export_get = _bind("wasmtime_instance_export_get", c_bool,
                            c_void_p, POINTER(InstanceHandle), c_char_p, c_size_t, POINTER(Extern))
instance_pre_instantiate_quick = _KEEP_GIL["wasmtime_instance_pre_instantiate"]
instance_pre_instantiate_quick.restype = c_void_p
instance_pre_instantiate_quick.argtypes = [c_void_p, c_void_p, POINTER(InstanceHandle), POINTER(c_void_p)]
func_call_unchecked = _bind("wasmtime_func_call_unchecked", c_void_p,
                            c_void_p, POINTER(Func), POINTER(ValRaw), c_size_t, POINTER(c_void_p))
memory_data = _bind("wasmtime_memory_data", c_void_p, c_void_p, POINTER(Memory))
memory_grow = _bind("wasmtime_memory_grow", c_void_p, c_void_p, POINTER(Memory), c_uint64, POINTER(c_uint64))
memory_data_size = _bind("wasmtime_memory_data_size", c_size_t, c_void_p, POINTER(Memory))


def take_trap(ptr: int):
    """A ``wasm_trap_t*`` the C API handed us, as wasmtime-py's ``Trap`` (which frees it)."""
    import wasmtime

    return wasmtime.Trap._from_ptr(ctypes.cast(ptr, POINTER(ffi.wasm_trap_t)))


def take_error(ptr: int):
    """A ``wasmtime_error_t*`` as wasmtime-py's ``WasmtimeError`` (which frees it)."""
    import wasmtime

    return wasmtime.WasmtimeError._from_ptr(ctypes.cast(ptr, POINTER(ffi.wasmtime_error_t)))


def set_pooling(config: "wasmtime.Config", settings: dict[str, int]) -> None:
    """Give an engine config the pooling allocator; ``settings`` maps the C API's
    ``wasmtime_pooling_allocation_config_<name>_set`` names to values."""
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        for name, value in settings.items():
            getattr(ffi, f"wasmtime_pooling_allocation_config_{name}_set")(pool, value)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)


def linker_define_unchecked(linker: "wasmtime.Linker", module: str, name: str, functype: "wasmtime.FuncType",
                            callback: ctypes._CFuncPtr) -> None:
    """Define an import whose entry gets the raw value array (no per-call ``Caller`` or ``Val``s)."""
    import wasmtime

    m, n = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(linker.ptr(), m, len(m), n, len(n), functype.ptr(), callback,
                                                      None, NO_FINALIZER)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


_trap_new = _bind("wasmtime_trap_new", c_void_p, c_char_p, c_size_t)


def new_trap(message: str) -> int:
    """A ``wasm_trap_t*`` to return from a raw import: wasmtime takes it and stops the guest."""
    raw = message.encode()
    return _trap_new(raw, len(raw)) or 0
