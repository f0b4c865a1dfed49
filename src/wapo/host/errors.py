"""Errors a run can end with. Each message says what happened and what to change."""

from __future__ import annotations


class WapoError(Exception):
    """Base of every error wapo raises on purpose."""


class RunError(WapoError):
    """A run ended in failure. ``kind`` is a stable machine-readable name."""

    kind = "error"

    def __init__(self, message: str, *, stack: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.stack = stack

    def describe(self) -> str:
        return f"{self.message}\n{self.stack}" if self.stack else self.message


class GuestLoadError(RunError):
    """The wasm module could not be compiled, loaded or instantiated."""

    kind = "load_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class CapacityExceeded(RunError):
    """Every sandbox slot of this process is in use: try again later (HTTP 503)."""

    kind = "capacity"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class GuestError(RunError):
    """The guest failed on its own: an uncaught JS error, an unhandled rejection, a bad return."""

    kind = "guest_error"


class UnhandledRejection(GuestError):
    kind = "unhandled_rejection"


class GuestTrap(RunError):
    """The guest trapped (a bug in the guest, or a limit enforced by wasm itself)."""

    kind = "trap"


class LimitExceeded(RunError):
    """A resource limit stopped the run: says which, the usage, the limit and where."""

    kind = "limit"

    def __init__(self, limit: str, used: str, allowed: str, *, stack: str = "", hint: str = "") -> None:
        message = f"{limit} limit exceeded: used {used} of {allowed}"
        if hint:
            message += f" ({hint})"
        super().__init__(message, stack=stack)
        self.limit = limit
        self.used = used
        self.allowed = allowed
        self.kind = f"{limit.replace(' ', '_')}_limit"
