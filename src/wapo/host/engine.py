"""One wasmtime Engine per process (per configuration), with its epoch ticker.

The ticker thread advances the epoch every ``EPOCH_TICK`` seconds; a Store's
epoch deadline then stops a guest that keeps the CPU too long, even inside a
long built-in operation where no guest-level check would run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from importlib.metadata import version

import wasmtime

EPOCH_TICK = 0.010
MAX_WASM_STACK = 2 * 1024 * 1024  # more aborts the process in wasmtime-py 50 (DESIGN.md)
WASMTIME_VERSION = version("wasmtime")


@dataclass(frozen=True)
class EngineConfig:
    fuel: bool = False

    def cache_tag(self) -> str:
        """Everything that makes compiled code incompatible between engines."""
        return f"wasmtime={WASMTIME_VERSION};epoch=1;stack={MAX_WASM_STACK};fuel={int(self.fuel)}"


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
            engine = wasmtime.Engine(cfg)
            _engines[config] = engine
        if _ticker is None:
            _ticker = threading.Thread(target=_tick_forever, name="wapo-epoch", daemon=True)
            _ticker.start()
    return engine
