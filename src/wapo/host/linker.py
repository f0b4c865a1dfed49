"""The imports every guest links against: WASI and the Wapo ocall entry, one Linker per engine.

The ocall entry is defined with ``wasmtime_linker_define_func_unchecked``: wasmtime hands us the
six i32 arguments in a raw value array and takes the i64 result in its first slot, without
wasmtime-py's per-call ``Caller`` and value wrappers (~30 us per ocall saved). Host functions
live in a process-global table that is not synchronized (DESIGN.md): define them once here, on
a shared Linker, never per Store.

Which guest an ocall belongs to is the thread-local ``state.current``, set around every call
into a guest; a call from a guest we are not running is refused, never raised.
"""

from __future__ import annotations

import logging

import wasmtime

from . import _capi, wasi
from .abi import ErrorCode, err, to_signed_i64
from .engine import EngineConfig, get_engine, per_config
from .ocalls import dispatch
from .sandbox import crossings
from .state import current


log = logging.getLogger("wapo.host")

OCALL_IMPORTS = (("wapo", "ocall"), ("wapo", "ocall_fast_return"),
                 ("env", "sidevm_ocall"), ("env", "sidevm_ocall_fast_return"))
_REFUSED = to_signed_i64(err(ErrorCode.CONDITION_ERROR))


def _ocall_entry(env: int, caller: int, values, count: int) -> int:
    crossings.ocalls += 1
    try:
        state = current.state
        if state is None or count < 6:
            values[0].i64 = _REFUSED
        else:
            values[0].i64 = dispatch(state, values[0].i32, values[1].i32, values[2].i32, values[3].i32,
                                     values[4].i32, values[5].i32)
            if state.host_stop is not None:  # the call stopped the guest (a speculative step's end)
                return _capi.new_trap(f"wapo: {state.host_stop}")
    except BaseException:  # nothing may unwind into wasm: dispatch already turns errors into codes
        log.exception("the ocall entry failed")
        values[0].i64 = to_signed_i64(err(ErrorCode.IO_ERROR))
    return 0  # no trap


# Kept alive for the process: wasmtime holds the pointer.
_OCALL_CALLBACK = _capi.UncheckedCallback(_ocall_entry)

@per_config
def linker_for(config: EngineConfig) -> wasmtime.Linker:
    linker = wasmtime.Linker(get_engine(config))
    linker.define_wasi()
    linker.allow_shadowing = True  # poll_oneoff is ours (wasi.py), not wasmtime's
    wasi.define(linker, wasmtime.FuncType([wasmtime.ValType.i32()] * 4, [wasmtime.ValType.i32()]))
    linker.allow_shadowing = False
    # a FuncType binds to the first engine it is used with: one per linker
    ocall_type = wasmtime.FuncType([wasmtime.ValType.i32()] * 6, [wasmtime.ValType.i64()])
    for module, name in OCALL_IMPORTS:
        _capi.linker_define_unchecked(linker, module, name, ocall_type, _OCALL_CALLBACK)
    return linker
