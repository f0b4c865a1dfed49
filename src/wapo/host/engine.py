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
from typing import Callable, TypeVar
from importlib.metadata import version

import wasmtime

from . import _capi

EPOCH_TICK = 0.010
MAX_WASM_STACK = 2 * 1024 * 1024  # more aborts the process in wasmtime-py 50 (DESIGN.md)
WASMTIME_VERSION = version("wasmtime")


# The pooling instance allocator (measured: a fresh WapoJS sandbox from the snapshot 0.28 ->
# 0.15 ms, docs/design.md). Each of its slots, once used, keeps POOL_KEEP_RESIDENT bytes of
# memory resident for the life of the process, so the pool is sized for ordinary concurrency
# (WAPO_POOL_SLOTS, 0 = no pool) and sandboxes beyond it run on an engine with the on-demand
# allocator (slower to make, but their memory goes back when they end); MAX_SANDBOXES caps both
# together. Each slot reserves address space for the largest memory (4 GiB), not RAM.
POOL_SLOTS = int(os.environ.get("WAPO_POOL_SLOTS", "128"))
MAX_SANDBOXES = int(os.environ.get("WAPO_MAX_SANDBOXES", "4096"))
POOL_KEEP_RESIDENT = int(os.environ.get("WAPO_POOL_KEEP_RESIDENT", 4 * 1024 * 1024))  # reset by memset, not madvise
POOL_WARM_SLOTS = int(os.environ.get("WAPO_POOL_WARM_SLOTS", "32"))  # unused slots kept warm (each may hold POOL_KEEP_RESIDENT resident)
POOL_MAX_MEMORY = 4 * 1024 * 1024 * 1024


def _set_pooling(cfg: wasmtime.Config, slots: int) -> None:
    _capi.set_pooling(cfg, {
        "total_memories": slots,
        "total_core_instances": slots,
        "total_tables": slots,
        "total_stacks": slots,
        "max_memory_size": POOL_MAX_MEMORY,
        "linear_memory_keep_resident": POOL_KEEP_RESIDENT,
        "max_unused_warm_slots": min(POOL_WARM_SLOTS, slots),
    })


@dataclass(frozen=True)
class EngineConfig:
    fuel: bool = False
    pooled: bool = True  # the pooling allocator (if POOL_SLOTS > 0); False: the on-demand one

    @property
    def uses_pool(self) -> bool:
        return self.pooled and POOL_SLOTS > 0

    def overflow(self) -> "EngineConfig":
        """The same engine with the on-demand allocator: where sandboxes go when the pool is full."""
        return EngineConfig(fuel=self.fuel, pooled=False)

    def cache_tag(self) -> str:
        """Everything that makes compiled code incompatible between engines (the allocator does
        not: an artifact compiled with the pool loads without it, checked)."""
        return f"wasmtime={WASMTIME_VERSION};epoch=1;stack={MAX_WASM_STACK};fuel={int(self.fuel)}"


T = TypeVar("T")


def per_config(make: Callable[[EngineConfig], T]) -> Callable[[EngineConfig], T]:
    """``make`` once per engine configuration, even when threads ask at the same time (an engine or
    linker made twice would split host functions and compiled code between two copies)."""
    made: dict[EngineConfig, T] = {}
    lock = threading.Lock()

    def get(config: EngineConfig = EngineConfig()) -> T:
        value = made.get(config)
        if value is None:
            with lock:
                value = made.get(config)
                if value is None:
                    value = made[config] = make(config)
        return value

    get.made = made  # type: ignore[attr-defined]
    return get


_ticker: threading.Thread | None = None
_ticker_lock = threading.Lock()


_last_tick = 0.0  # time.monotonic() of the ticker's last increment


def last_tick() -> float:
    """When the epoch last advanced (a deadline of one tick ends at the next: how soon, this says)."""
    return _last_tick


def _tick_forever() -> None:
    global _last_tick
    while True:
        time.sleep(EPOCH_TICK)
        for engine in list(get_engine.made.values()):  # type: ignore[attr-defined]
            engine.increment_epoch()
        _last_tick = time.monotonic()


@per_config
def get_engine(config: EngineConfig) -> wasmtime.Engine:
    global _ticker
    cfg = wasmtime.Config()
    cfg.epoch_interruption = True
    cfg.max_wasm_stack = MAX_WASM_STACK
    cfg.consume_fuel = config.fuel
    if config.uses_pool:
        _set_pooling(cfg, POOL_SLOTS)
    engine = wasmtime.Engine(cfg)
    with _ticker_lock:
        if _ticker is None:
            _ticker = threading.Thread(target=_tick_forever, name="wapo-epoch", daemon=True)
            _ticker.start()
    return engine
