"""The Wapo host: runs any wasm guest that speaks the Wapo ocall ABI. Knows nothing of JavaScript."""

from .errors import CapacityExceeded, GuestError, GuestLoadError, GuestTrap, LimitExceeded, RunError, UnhandledRejection, WapoError
from .instance import GuestModule, Instance, LogRecord, RunResult
from .limits import Limits, parse_duration, parse_size

__all__ = [
    "CapacityExceeded", "GuestError", "GuestLoadError", "GuestModule", "GuestTrap", "Instance", "LimitExceeded", "Limits",
    "LogRecord", "RunError", "RunResult", "UnhandledRejection", "WapoError", "parse_duration", "parse_size",
]
