"""The ocall handlers: one function per call number, and the dispatcher the imports call.

Handlers take the calling instance's state and the raw i32 slots. They return
an int (a direct Ok value) or bytes (an EO result the guest fetches with
get_return), and signal failure with ``OcallError``. The dispatcher turns
everything, including a bug in a handler, into an i64 for the guest: nothing
a guest passes can raise into the host.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Callable, Union

from . import scale
from .abi import Call, ErrorCode, OcallError, err, i32, ok, to_signed_i64, u32
from . import net, services
from .net.args import MAX_ENCODED_INPUT, MAX_HOST_NAME
from .resources import Oneshot, Timer

if TYPE_CHECKING:
    from .state import GuestState

log = logging.getLogger("wapo.host")

Handler = Callable[["GuestState", int, int, int, int, int], Union[int, bytes]]
HANDLERS: dict[int, Handler] = {}
# Calls whose handlers touch no asyncio object run on the guest's own thread; the others run on
# the event loop's thread while the guest waits (docs/design.md, the threading model).
INLINE: set[int] = set()

# The argument (0..3) that says how many bytes an inline call reads from the guest: a speculative
# step stops at a call reading more than SPECULATIVE_BYTES (the others are capped lower already)
SIZE_ARGUMENT = {int(Call.EMIT_PROGRAM_OUTPUT): 1, int(Call.WAPOJS_REPORT): 2, int(Call.HOST_CALL): 3}
SPECULATIVE_BYTES = 256 * 1024  # keccak256 of this much: ~0.6-2.5 ms

MAX_GETRANDOM = 1 << 20
MAX_DERIVE_PATH = 256
MAX_SGX_REPORT_DATA = 64
MAX_LOG_MESSAGE = 1 << 20
LOG_LEVELS = {1: "error", 2: "warn", 3: "info", 4: "debug", 5: "trace"}


def handles(call: Call, *, inline: bool = False) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[int(call)] = fn
        if inline:
            INLINE.add(int(call))
        return fn
    return register


def _ms(value: int) -> int:
    value = u32(value)
    if value > 0x7FFFFFFF:
        raise OcallError(ErrorCode.INVALID_PARAMETER, "timer delay out of range")
    return value


# --- results and tasks -----------------------------------------------------

@handles(Call.GET_RETURN, inline=True)
def get_return(st: GuestState, task: int, ptr: int, length: int, _2: int, _3: int) -> int:
    data = st.pending_return
    if data is None:
        raise OcallError(ErrorCode.NOT_FOUND, "no result waiting")
    if u32(length) < len(data):
        raise OcallError(ErrorCode.INVALID_PARAMETER, f"buffer of {u32(length)} bytes for a {len(data)}-byte result")
    st.memory.write(ptr, data)
    st.pending_return = None
    return len(data)


@handles(Call.MARK_TASK_READY, inline=True)
def mark_task_ready(st: GuestState, task: int, target: int, *_: int) -> int:
    st.queue_task(i32(target), from_guest=True)
    return 0


@handles(Call.NEXT_READY_TASK, inline=True)
def next_ready_task(st: GuestState, task: int, *_: int) -> int:
    nxt = st.pop_ready_task()
    if nxt is None:
        raise OcallError(ErrorCode.NOT_FOUND)
    return nxt


@handles(Call.AWAKE_WAKERS, inline=True)
def awake_wakers(st: GuestState, task: int, *_: int) -> bytes:
    return scale.vec_i32(st.take_woken())


@handles(Call.ENABLE_OCALL_TRACE, inline=True)
def enable_ocall_trace(st: GuestState, task: int, flag: int, *_: int) -> int:
    st.trace = bool(flag)
    return 0


# --- resources ---------------------------------------------------------------

@handles(Call.CLOSE)
def close(st: GuestState, task: int, res: int, *_: int) -> int:
    st.resources.close(i32(res))
    return 0


@handles(Call.POLL)
def poll(st: GuestState, task: int, waker: int, res: int, *_: int) -> bytes:
    message = st.resources.get(i32(res)).poll_message(task, i32(waker))
    return scale.vec_u8(message)


@handles(Call.POLL_READ)
def poll_read(st: GuestState, task: int, waker: int, res: int, ptr: int, length: int) -> int:
    st.memory.check(ptr, length)  # validate the whole buffer before any side effect
    data = st.resources.get(i32(res)).poll_read(task, i32(waker), u32(length))
    st.memory.write(ptr, data)
    return len(data)


@handles(Call.POLL_WRITE)
def poll_write(st: GuestState, task: int, waker: int, res: int, ptr: int, length: int) -> int:
    data = st.memory.read(ptr, length)
    return st.resources.get(i32(res)).poll_write(task, i32(waker), data)


@handles(Call.POLL_SHUTDOWN)
def poll_shutdown(st: GuestState, task: int, waker: int, res: int, *_: int) -> int:
    st.resources.get(i32(res)).poll_shutdown(task, i32(waker))
    return 0


@handles(Call.POLL_RES)
def poll_res(st: GuestState, task: int, waker: int, res: int, *_: int) -> int:
    resource = st.resources.get(i32(res))
    if not isinstance(resource, net.TcpConnecting):
        raise OcallError(ErrorCode.UNSUPPORTED_OPERATION, f"a {resource.kind} does not finish with a new resource")
    return resource.poll_res(st, task, i32(waker))


@handles(Call.CREATE_TIMER)
def create_timer(st: GuestState, task: int, delay: int, *_: int) -> int:
    return st.resources.add(Timer(st.loop, _ms(delay)))


@handles(Call.RESET_TIMER)
def reset_timer(st: GuestState, task: int, res: int, delay: int, *_: int) -> int:
    timer = st.resources.get_as(i32(res), Timer)
    assert isinstance(timer, Timer)
    timer.reset(_ms(delay))
    return 0


def _oneshot(st: GuestState, res: int) -> Oneshot:
    shot = st.resources.get_as(i32(res), Oneshot)
    assert isinstance(shot, Oneshot)
    return shot


@handles(Call.ONESHOT_SEND)
def oneshot_send(st: GuestState, task: int, res: int, ptr: int, length: int, _3: int) -> int:
    _oneshot(st, res).send(st.memory.read(ptr, length))
    return 0


@handles(Call.ONESHOT_SEND_ERROR)
def oneshot_send_error(st: GuestState, task: int, res: int, ptr: int, length: int, _3: int) -> int:
    _oneshot(st, res).send_error(st.memory.read_str(ptr, length))
    return 0


@handles(Call.CREATE_INPUT_CHANNEL)
def create_input_channel(st: GuestState, task: int, kind: int, *_: int) -> bytes:
    return scale.i32(st.open_input(i32(kind)))


# TCP and TLS (wapo.host.net; shapes in docs/abi.md)

def _encoded_input(st: GuestState, ptr: int, length: int) -> bytes:
    if u32(length) > MAX_ENCODED_INPUT:
        raise OcallError(ErrorCode.INVALID_PARAMETER, "encoded input too long")
    return st.memory.read(ptr, length)


@handles(Call.TCP_LISTEN)
def tcp_listen(st: GuestState, task: int, ptr: int, length: int, *_: int) -> int:
    return net.tcp_listen(st, _encoded_input(st, ptr, length))


@handles(Call.TCP_ACCEPT)
def tcp_accept(st: GuestState, task: int, waker: int, res: int, *_: int) -> bytes:
    rid, peer = net.tcp_accept(st, task, i32(waker), i32(res))
    return scale.i32(rid) + scale.vec_u8(peer.encode())


@handles(Call.TCP_ACCEPT_NO_ADDR)
def tcp_accept_no_addr(st: GuestState, task: int, waker: int, res: int, *_: int) -> int:
    return net.tcp_accept(st, task, i32(waker), i32(res))[0]


@handles(Call.TCP_CONNECT)
def tcp_connect(st: GuestState, task: int, ptr: int, length: int, port: int, _3: int) -> int:
    if u32(length) > MAX_HOST_NAME:
        raise OcallError(ErrorCode.INVALID_PARAMETER, f"host names are at most {MAX_HOST_NAME} bytes")
    return net.tcp_connect(st, st.memory.read(ptr, length), port)


@handles(Call.TCP_CONNECT_TLS)
def tcp_connect_tls(st: GuestState, task: int, ptr: int, length: int, *_: int) -> int:
    return net.tcp_connect_tls(st, _encoded_input(st, ptr, length))


@handles(Call.TLS_LISTEN_SNI)
def tls_listen_sni(st: GuestState, task: int, ptr: int, length: int, *_: int) -> int:
    return net.tls_listen_sni(st, _encoded_input(st, ptr, length))


# --- the outside world ---------------------------------------------------------

@handles(Call.GETRANDOM, inline=True)
def getrandom(st: GuestState, task: int, ptr: int, length: int, *_: int) -> int:
    if u32(length) > MAX_GETRANDOM:
        raise OcallError(ErrorCode.INVALID_PARAMETER, f"at most {MAX_GETRANDOM} random bytes per call")
    st.memory.check(ptr, length)
    st.memory.write(ptr, os.urandom(u32(length)))
    return 0


@handles(Call.LOG, inline=True)
def log_message(st: GuestState, task: int, level: int, ptr: int, length: int, _3: int) -> int:
    level = i32(level)
    if level not in LOG_LEVELS:
        raise OcallError(ErrorCode.INVALID_PARAMETER, f"log level {level} is not 1..5")
    if u32(length) > MAX_LOG_MESSAGE:
        raise OcallError(ErrorCode.INVALID_PARAMETER, "log message too long")
    text = st.memory.read(ptr, length).decode("utf-8", "replace")
    st.add_log(LOG_LEVELS[level], text)
    return 0


@handles(Call.EMIT_PROGRAM_OUTPUT, inline=True)
def emit_program_output(st: GuestState, task: int, ptr: int, length: int, *_: int) -> int:
    st.emit_output(st.memory.read(ptr, length))
    return 0


@handles(Call.APP_ADDRESS, inline=True)
def app_address(st: GuestState, task: int, *_: int) -> bytes:
    return st.app_address


@handles(Call.SIGN, inline=True)
def sign(st: GuestState, task: int, ptr: int, length: int, *_: int) -> bytes:
    # the app's own key (derived from the node key and the app address), never the node's
    return scale.vec_u8(st.node_key().app_key(st.app_address).sign(st.memory.read(ptr, length)))


@handles(Call.WORKER_PUBKEY, inline=True)
def worker_pubkey(st: GuestState, task: int, *_: int) -> bytes:
    return st.node_key().app_key(st.app_address).public  # the key ``sign`` signs with


@handles(Call.SGX_QUOTE, inline=True)
def sgx_quote(st: GuestState, task: int, ptr: int, length: int, *_: int) -> bytes:
    if u32(length) > MAX_SGX_REPORT_DATA:
        raise OcallError(ErrorCode.INVALID_PARAMETER, "report data is at most 64 bytes")
    st.memory.read(ptr, length)
    return scale.option(None)  # no TEE on this host: there is never a quote


@handles(Call.APP_GAS_CONSUMED, inline=True)
def app_gas_consumed(st: GuestState, task: int, *_: int) -> bytes:
    return scale.u64(st.gas_consumed()) + scale.u64(0)


@handles(Call.DERIVE_SECRET, inline=True)
def derive_secret(st: GuestState, task: int, ptr: int, length: int, *_: int) -> bytes:
    if u32(length) > MAX_DERIVE_PATH:
        raise OcallError(ErrorCode.INVALID_PARAMETER, f"the path is at most {MAX_DERIVE_PATH} bytes")
    return st.node_key().derive_secret(st.app_address, st.memory.read(ptr, length))


@handles(Call.WAPOJS_REPORT, inline=True)
def wapojs_report(st: GuestState, task: int, kind: int, ptr: int, length: int, _3: int) -> int:
    text = st.memory.read(ptr, length).decode("utf-8", "replace")
    st.guest_report(i32(kind), text)
    return 0


MAX_SERVICE_NAME = 256


@handles(Call.HOST_CALL, inline=True)
def host_call(st: GuestState, task: int, name_ptr: int, name_len: int, ptr: int, length: int) -> bytes:
    if u32(name_len) > MAX_SERVICE_NAME:
        raise OcallError(ErrorCode.INVALID_PARAMETER, "service name too long")
    method = st.memory.read_str(name_ptr, name_len)
    return services.call(st, method, st.memory.read(ptr, length))


@handles(Call.WATCH)
def watch(st: GuestState, task: int, waker: int, res: int, *_: int) -> int:
    st.resources.get(i32(res)).poll_ready(task, i32(waker))
    return 0


# --- dispatch --------------------------------------------------------------------

def _speculation_may(func: int, args: tuple[int, int, int, int]) -> bool:
    """Whether a speculative step (speculation.py) may make this call: an inline one, reading at
    most ``SPECULATIVE_BYTES`` (the epoch deadline stops wasm, never a host call: its time must
    be short whatever the guest asks)."""
    if func not in INLINE or func == Call.SIGN:  # signing hashes a message of any length
        return False
    index = SIZE_ARGUMENT.get(func)
    return index is None or u32(args[index]) <= SPECULATIVE_BYTES


def dispatch(st: GuestState, task: int, func: int, p0: int, p1: int, p2: int, p3: int) -> int:
    handler = HANDLERS.get(func)
    if st.speculative and handler is not None and not _speculation_may(func, (p0, p1, p2, p3)):
        st.leave_speculation(f"host call {func}")  # the ocall entry traps: the run starts over
        return 0
    if handler is None:
        result = err(ErrorCode.UNKNOWN_CALL_NUMBER)
    else:
        try:
            if func in INLINE or st.on_loop_thread():
                value = handler(st, task, p0, p1, p2, p3)
            else:
                value = st.call_on_loop(handler, st, task, p0, p1, p2, p3)
            if isinstance(value, (bytes, bytearray)):
                st.pending_return = bytes(value)
                value = len(value)
            result = ok(value)
        except OcallError as exc:
            result = err(exc.code)
        except Exception:  # a host bug: keep the host up, count it, tell the guest
            log.exception("ocall %d raised", func)
            st.host_faults += 1
            result = err(ErrorCode.IO_ERROR)
    if st.trace:
        st.add_log("trace", f"ocall task={task} func={func} args=({p0}, {p1}, {p2}, {p3}) -> {result:#x}")
    return to_signed_i64(result)
