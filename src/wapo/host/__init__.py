"""The Wapo host: runs any wasm guest that speaks the Wapo ocall ABI. Knows nothing of JavaScript."""

from .errors import (CapacityExceeded, GuestError, GuestLoadError, GuestTrap, LimitExceeded, RunError,
                     UnhandledRejection, WapoError)
from .instance import Instance, RunResult
from .limits import Limits, parse_duration, parse_size
from .module import GuestModule
from .options import FetchHook, RunOptions
from .state import LogRecord

__all__ = [
    "CapacityExceeded", "FetchHook", "GuestError", "GuestLoadError", "GuestModule", "GuestTrap", "Instance", "LimitExceeded", "Limits",
    "LogRecord", "RunError", "RunOptions", "RunResult", "UnhandledRejection", "WapoError", "parse_duration",
    "parse_size",
]
