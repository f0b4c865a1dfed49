"""Per-run limits, and parsing of their command-line spellings ("100MB", "60s")."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

MIB = 1024 * 1024
MAX_MEMORY = 4 * 1024 * MIB  # wasm32 address space

# Logs kept per run (docs/design.md, "Hardening (issue 13)"): at most MAX_LOG_LINES lines and
# MAX_LOG_BYTES bytes of messages; a line longer than MAX_LOG_LINE is cut. Past the cap, lines are
# dropped and one final line says how many (lines and bytes).
MAX_LOG_LINES = 1000
MAX_LOG_BYTES = 1 * MIB
MAX_LOG_LINE = 64 * 1024

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_size(text: str) -> int:
    """'100MB' -> 100_000_000; '64MiB' -> 67_108_864; a bare number is bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"invalid size {text!r}: use a number with an optional unit, e.g. 100MB or 64MiB")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(text: str) -> float:
    """'60s' -> 60.0; '250ms' -> 0.25; a bare number is seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _TIME_UNITS:
        raise ValueError(f"invalid duration {text!r}: use a number with an optional unit, e.g. 60s or 500ms")
    return float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]


def format_size(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} B"


@dataclass(frozen=True)
class Limits:
    """What one run may use. ``time`` 0 means no wall-time limit; ``fuel`` None means no metering."""

    memory: int = 100 * 1000 * 1000
    time: float = 60.0
    burst: float = 1.0
    fuel: int | None = None
    max_resources: int = 8192
    max_log_lines: int = MAX_LOG_LINES  # log lines kept per run (more are counted, then dropped)
    max_log_bytes: int = MAX_LOG_BYTES  # bytes of log messages kept per run

    def __post_init__(self) -> None:
        if not 2 * MIB <= self.memory <= MAX_MEMORY:
            raise ValueError(f"memory limit {format_size(self.memory)} is outside 2 MiB..4 GiB")
        if self.time < 0:
            raise ValueError("time limit must be >= 0 (0 = unlimited)")
        if self.burst <= 0:
            raise ValueError("burst limit must be > 0")
        if self.fuel is not None and self.fuel <= 0:
            raise ValueError("fuel must be a positive number of units")
        if self.max_log_lines < 1 or self.max_log_bytes < 1:
            raise ValueError("the log caps must be >= 1")

    def with_(self, **changes: object) -> "Limits":
        return replace(self, **changes)  # type: ignore[arg-type]
