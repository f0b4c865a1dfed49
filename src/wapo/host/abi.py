"""The Wapo ocall ABI: call numbers, error codes and the i64 return encoding (spec section 3)."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    OK = 0
    UNKNOWN_CALL_NUMBER = 1
    INVALID_ADDRESS = 2
    INVALID_PARAMETER = 3
    INVALID_ENCODING = 4
    NO_MEMORY = 5
    NOT_FOUND = 7
    UNSUPPORTED_OPERATION = 8
    IO_ERROR = 9
    RESOURCE_LIMITED = 10
    PENDING = 11
    END_OF_FILE = 12
    GAS_EXHAUSTED = 13
    STIFLED = 14
    ALREADY_EXISTS = 15
    DATA_CORRUPTION = 16
    FORBIDDEN = 17
    CONDITION_ERROR = 18


class Call(IntEnum):
    """Reference call numbers, plus our extension range (1000+, see docs/abi.md)."""

    GET_RETURN = 0
    CLOSE = 101
    POLL = 102
    POLL_READ = 103
    POLL_WRITE = 104
    POLL_SHUTDOWN = 105
    POLL_RES = 106
    MARK_TASK_READY = 109
    NEXT_READY_TASK = 110
    ENABLE_OCALL_TRACE = 111
    AWAKE_WAKERS = 112
    GETRANDOM = 113
    CREATE_TIMER = 201
    ONESHOT_SEND = 202
    RESET_TIMER = 203
    ONESHOT_SEND_ERROR = 204
    TCP_LISTEN = 210
    TCP_ACCEPT = 211
    TCP_ACCEPT_NO_ADDR = 212
    TCP_CONNECT = 213
    TCP_CONNECT_TLS = 214
    TLS_LISTEN_SNI = 215
    LOG = 220
    CREATE_INPUT_CHANNEL = 240
    APP_ADDRESS = 242
    EMIT_PROGRAM_OUTPUT = 243
    BLOB_GET = 244
    SIGN = 250
    WORKER_PUBKEY = 251
    SGX_QUOTE = 252
    TIP = 253
    APP_GAS_CONSUMED = 254
    DERIVE_SECRET = 255
    READ_BOOT_DATA = 260
    WRITE_BOOT_DATA = 261
    APP_TRY_LOCK = 262
    APP_UNLOCK = 263
    # --- extensions (ours) ---
    WAPOJS_REPORT = 1001
    HOST_CALL = 1002
    WATCH = 1003


class OcallError(Exception):
    """Raised inside an ocall handler; becomes Err(code) for the guest, never a host failure."""

    def __init__(self, code: ErrorCode, detail: str = "") -> None:
        super().__init__(f"{code.name}: {detail}" if detail else code.name)
        self.code = code


def ok(value: int) -> int:
    return value & 0xFFFFFFFF


def err(code: ErrorCode) -> int:
    return (1 << 32) | int(code)


def to_signed_i64(value: int) -> int:
    """wasmtime wants an i64 result in the signed range."""
    value &= 0xFFFFFFFFFFFFFFFF
    return value - (1 << 64) if value >= 1 << 63 else value


def u32(value: int) -> int:
    return value & 0xFFFFFFFF


def i32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


class ReportKind(IntEnum):
    """Why a guest says it failed (the ``wapojs_report`` extension ocall, before wapo_poll returns 2)."""

    UNCAUGHT = 1
    UNHANDLED_REJECTION = 2
    BURST_LIMIT = 3
    TIME_LIMIT = 4
    MEMORY_LIMIT = 5
    SETUP = 6
