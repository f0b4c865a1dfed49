"""One wasmtime Engine per process (per configuration), with its epoch ticker.

The ticker thread advances the epoch every ``EPOCH_TICK`` seconds; a Store's
epoch deadline then stops a guest that keeps the CPU too long, even inside a
long built-in operation where no guest-level check would run.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from importlib.metadata import version

import wasmtime
from wasmtime import _ffi as ffi

EPOCH_TICK = 0.010
MAX_WASM_STACK = 2 * 1024 * 1024  # more aborts the process in wasmtime-py 50 (DESIGN.md)
WASMTIME_VERSION = version("wasmtime")


# The pooling instance allocator (measured: a fresh WapoJS sandbox from the snapshot 0.31 ->
# 0.18 ms, docs/design.md). Its slots cap how many instances live at once per engine; each slot
# reserves address space for the largest memory (4 GiB), not RAM. WAPO_POOL_SLOTS=0 turns it off.
POOL_SLOTS = int(os.environ.get("WAPO_POOL_SLOTS", "1000"))
POOL_KEEP_RESIDENT = 4 * 1024 * 1024  # reset by memset, not madvise: covers the snapshot's image
POOL_WARM_SLOTS = 32  # unused slots kept warm (each may hold POOL_KEEP_RESIDENT resident)
POOL_MAX_MEMORY = 4 * 1024 * 1024 * 1024


def _set_pooling(cfg: wasmtime.Config, slots: int) -> None:
    pool = ffi.wasmtime_pooling_allocation_config_new()
    for setter, value in (
        (ffi.wasmtime_pooling_allocation_config_total_memories_set, slots),
        (ffi.wasmtime_pooling_allocation_config_total_core_instances_set, slots),
        (ffi.wasmtime_pooling_allocation_config_total_tables_set, slots),
        (ffi.wasmtime_pooling_allocation_config_total_stacks_set, slots),
        (ffi.wasmtime_pooling_allocation_config_max_memory_size_set, POOL_MAX_MEMORY),
        (ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set, POOL_KEEP_RESIDENT),
        (ffi.wasmtime_pooling_allocation_config_max_unused_warm_slots_set, min(POOL_WARM_SLOTS, slots)),
    ):
        setter(pool, value)
    ffi.wasmtime_pooling_allocation_strategy_set(cfg.ptr(), pool)
    ffi.wasmtime_pooling_allocation_config_delete(pool)


@dataclass(frozen=True)
class EngineConfig:
    fuel: bool = False

    def cache_tag(self) -> str:
        """Everything that makes compiled code incompatible between engines."""
        return f"wasmtime={WASMTIME_VERSION};epoch=1;stack={MAX_WASM_STACK};fuel={int(self.fuel)};pool={POOL_SLOTS > 0}"


_engines: dict[EngineConfig, wasmtime.Engine] = {}
_lock = threading.Lock()
_ticker: threading.Thread | None = None


def _tick_forever() -> None:
    while True:
        time.sleep(EPOCH_TICK)
        for engine in list(_engines.values()):
            engine.increment_epoch()


def get_engine(config: EngineConfig = EngineConfig()) -> wasmtime.Engine:
    global _ticker
    engine = _engines.get(config)
    if engine is not None:
        return engine
    with _lock:
        engine = _engines.get(config)
        if engine is None:
            cfg = wasmtime.Config()
            cfg.epoch_interruption = True
            cfg.max_wasm_stack = MAX_WASM_STACK
            cfg.consume_fuel = config.fuel
            if POOL_SLOTS > 0:
                _set_pooling(cfg, POOL_SLOTS)
            engine = wasmtime.Engine(cfg)
            _engines[config] = engine
        if _ticker is None:
            _ticker = threading.Thread(target=_tick_forever, name="wapo-epoch", daemon=True)
            _ticker.start()
    return engine
