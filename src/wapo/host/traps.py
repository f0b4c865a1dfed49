"""What a wasmtime trap or error says, in words a user can act on: the cause without wasmtime's
backtrace header, the guest's wasm frames, WASI ``proc_exit``."""

from __future__ import annotations

import re

import wasmtime

from .errors import GuestError, RunError


def trap_cause(trap: wasmtime.Trap) -> str:
    """wasmtime's message starts with a backtrace header; the cause is the `wasm trap:` line."""
    lines = [line.strip() for line in (trap.message or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("wasm trap:"):
            return line[len("wasm trap:"):].strip()
    if "Caused by:" in lines:
        return " ".join(lines[lines.index("Caused by:") + 1:]) or "trap"
    return lines[-1] if lines else "trap"


def error_cause(exc: wasmtime.WasmtimeError) -> str:
    """wasmtime's error text is a header, a backtrace, then ``Caused by:`` and numbered causes:
    the causes, joined, say why (e.g. ``failed to call `get-random-bytes`: requested len ...``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if "Caused by:" in lines:
        causes = [re.sub(r"^\d+:\s*", "", line) for line in lines[lines.index("Caused by:") + 1:]]
        if causes:
            return ": ".join(causes)
    return lines[0] if lines else type(exc).__name__


def exit_error(exc: wasmtime.ExitTrap) -> RunError:
    return GuestError(f"the guest exited with status {exc.code} (WASI proc_exit)")


def wasm_frames(trap: wasmtime.Trap, limit: int = 12) -> str:
    lines = []
    for frame in trap.frames[:limit]:
        lines.append(f"    at wasm {frame.func_name or f'func[{frame.func_index}]'} (+{frame.func_offset:#x})")
    return "\n".join(lines)

