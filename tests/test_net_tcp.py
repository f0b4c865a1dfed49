"""TCP and TLS through the ocall ABI (210-214 and the stream calls), against real peers on 127.0.0.1.

Guests are built with the helpers of test_abi (states run in order; ``until_ready`` re-runs a
state while its call is Pending). Servers are asyncio servers on sockets bound before the guest
is built, so their ports can be written into the guest's data.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import struct
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from test_abi import BUF, C, Err, Ok, call, compact, guest, run, set_global, until_ready, yield_next

from wapo.host import GuestModule, Instance, Limits
from wapo.host.abi import Call, ErrorCode as E
from wapo.host.net.policy import NetworkPolicy
from wapo.host.net import quota

ECHO_GUEST = Path(__file__).parent / "guests" / "tcp_echo.wat"
LOOPBACK = NetworkPolicy(allow=("127.0.0.1/32",))
HOST = 0x100       # data offset of host names / encoded inputs
MSG = 0x800        # data offset of the message a guest sends


@pytest.fixture(autouse=True, scope="module")
def _module_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAPO_CACHE_DIR", str(tmp_path_factory.mktemp("wapo-cache")))
        yield


# --- peers -----------------------------------------------------------------------------------

_opened: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_test_sockets():
    yield
    while _opened:
        _opened.pop().close()


def bound_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _opened.append(sock)
    return sock


def free_port() -> int:
    with bound_socket() as sock:
        return sock.getsockname()[1]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def echo_server(sock: socket.socket, ssl_ctx: ssl.SSLContext | None = None):
    async def start(_instance: Instance):
        return await asyncio.start_server(_echo, sock=sock, ssl=ssl_ctx)
    return start


def enc_str(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return compact(len(raw)) + raw


# --- guest pieces ------------------------------------------------------------------------------

def connect_states(host: str, port: int) -> list[str]:
    """g0 = tcp_connect(host, port); g1 = the stream (poll_res)."""
    return [
        set_global("g0", call(Call.TCP_CONNECT, HOST, len(host), port)),
        until_ready(Call.POLL_RES, 1, "(global.get $g0)") + "(global.set $g1 (i32.wrap_i64 (local.get $r)))",
    ]


def write_all(length: int, waker: int = 2) -> str:
    """poll_write MSG[g3..length] until all is accepted (records only the final total)."""
    return f"""
(block $done (loop $more
  (br_if $done (i32.ge_u (global.get $g3) (i32.const {length})))
  (local.set $r (call $ocall (i32.const 0) (i32.const 104) (i32.const {waker}) (global.get $g1)
                      (i32.add (i32.const {MSG}) (global.get $g3)) (i32.sub (i32.const {length}) (global.get $g3))))
  (if (call $pending (local.get $r)) (then (return (i32.const 0))))
  (if (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0)) (then (drop (call $rec (local.get $r))) (br $done)))
  (global.set $g3 (i32.add (global.get $g3) (i32.wrap_i64 (local.get $r))))
  (br $more)))
(drop (call $rec (i64.extend_i32_u (global.get $g3))))"""


def read_into_scratch(until: int | None = None, waker: int = 3) -> str:
    """poll_read into BUF(0).. until end of stream (or ``until`` bytes); records the total read."""
    stop = f"(br_if $done (i32.ge_u (global.get $g2) (i32.const {until})))" if until is not None else ""
    return f"""
(block $done (loop $more
  {stop}
  (local.set $r (call $ocall (i32.const 0) (i32.const 103) (i32.const {waker}) (global.get $g1)
                      (i32.add (i32.const {BUF(0)}) (global.get $g2)) (i32.const 256)))
  (if (call $pending (local.get $r)) (then (return (i32.const 0))))
  (br_if $done (i64.eqz (local.get $r)))
  (if (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0)) (then (drop (call $rec (local.get $r))) (br $done)))
  (global.set $g2 (i32.add (global.get $g2) (i32.wrap_i64 (local.get $r))))
  (br $more)))
(drop (call $rec (i64.extend_i32_u (global.get $g2))))"""


# --- plain TCP ----------------------------------------------------------------------------------

def test_connect_write_shutdown_read_until_eof(tmp_path: Path) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    message = b"hello over tcp, " * 40   # 640 bytes: more than one 256-byte read
    wat = guest(
        *connect_states("127.0.0.1", port),
        write_all(len(message)),
        until_ready(Call.POLL_SHUTDOWN, 2, "(global.get $g1)"),
        read_into_scratch(),
        C(Call.POLL_READ, 3, "(global.get $g1)", BUF(8), 16)      # after the end: Ok(0) again
        + C(Call.POLL_WRITE, 2, "(global.get $g1)", MSG, 4)       # shut down for writing
        + C(Call.CLOSE, "(global.get $g1)")
        + C(Call.CLOSE, "(global.get $g0)"),
        data={HOST: b"127.0.0.1", MSG: message},
    )
    out = run(wat, tmp_path, setup=echo_server(sock), network=LOOPBACK)
    g0, g1 = out.calls[0][1], out.calls[1][1]
    assert g0 != g1
    assert out.calls == [Ok(g0), Ok(g1), Ok(len(message)), Ok(0), Ok(len(message)),
                         Ok(0), Err(E.IO_ERROR), Ok(0), Ok(0)]
    assert out.scratch[:len(message)] == message


def test_poll_res_twice_and_on_other_resources(tmp_path: Path) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    wat = guest(
        *connect_states("127.0.0.1", port),
        C(Call.POLL_RES, 1, "(global.get $g0)")          # already handed out
        + C(Call.POLL_RES, 1, "(global.get $g1)")        # a stream does not finish with a resource
        + C(Call.TCP_ACCEPT, 1, "(global.get $g1)")      # nor is it a listener
        + C(Call.POLL_READ, 1, "(global.get $g0)", BUF(0), 4),   # nor is a connect a stream
        data={HOST: b"127.0.0.1"},
    )
    out = run(wat, tmp_path, setup=echo_server(sock), network=LOOPBACK)
    assert out.calls[2:] == [Err(E.NOT_FOUND), Err(E.UNSUPPORTED_OPERATION), Err(E.INVALID_PARAMETER),
                             Err(E.UNSUPPORTED_OPERATION)]


def test_connection_refused_is_io_error(tmp_path: Path) -> None:
    port = free_port()   # nothing listens there
    out = run(guest(*connect_states("127.0.0.1", port), data={HOST: b"127.0.0.1"}), tmp_path, network=LOOPBACK)
    assert out.calls[1:] == [Err(E.IO_ERROR)]


# --- the address policy ------------------------------------------------------------------------

def test_policy_denies_loopback_unless_allowed(tmp_path: Path) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    tls_input = enc_str("localhost") + struct.pack("<H", port) + b"\x00"
    wat = guest(
        C(Call.TCP_CONNECT, HOST, 9, port)                                  # the literal: at once
        + C(Call.TCP_CONNECT, 0x140, 15, 80)                                # cloud metadata
        + C(Call.TCP_CONNECT, 0x160, 5, port)                               # [::1]
        + set_global("g0", call(Call.TCP_CONNECT, 0x180, 9, port))          # a name: after resolution
        + set_global("g1", call(Call.TCP_CONNECT_TLS, 0x200, len(tls_input))),
        until_ready(Call.POLL_RES, 1, "(global.get $g0)"),
        until_ready(Call.POLL_RES, 2, "(global.get $g1)"),
        data={HOST: b"127.0.0.1", 0x140: b"169.254.169.254", 0x160: b"[::1]", 0x180: b"localhost",
              0x200: tls_input},
    )
    out = run(wat, tmp_path, setup=echo_server(sock))          # the default policy
    forbidden = Err(E.FORBIDDEN)
    assert out.calls[:3] == [forbidden] * 3
    assert out.calls[3][0] == 0 and out.calls[4][0] == 0       # resources: the name is not resolved yet
    assert out.calls[5:] == [forbidden, forbidden]


# --- TLS ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA and a server certificate for localhost / 127.0.0.1 signed by it."""
    root = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wapo test CA")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = {"ca": root / "ca.pem", "cert": root / "server.pem", "key": root / "server.key"}
    paths["ca"].write_bytes(ca_cert.public_bytes(pem))
    paths["cert"].write_bytes(cert.public_bytes(pem))
    paths["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


def server_context(pki: dict[str, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    return ctx


def tls_client_guest(port: int, message: bytes, host: str = "localhost") -> str:
    tls_input = enc_str(host) + struct.pack("<H", port) + b"\x00"   # (String, u16, TlsClientConfig::V0)
    return guest(
        set_global("g0", call(Call.TCP_CONNECT_TLS, HOST, len(tls_input))),
        until_ready(Call.POLL_RES, 1, "(global.get $g0)") + "(global.set $g1 (i32.wrap_i64 (local.get $r)))",
        write_all(len(message)),
        read_into_scratch(until=len(message)),
        until_ready(Call.POLL_SHUTDOWN, 2, "(global.get $g1)")
        + C(Call.EMIT_PROGRAM_OUTPUT, BUF(0), len(message)),
        data={HOST: tls_input, MSG: message},
    )


def test_tls_round_trip_with_a_test_ca(tmp_path: Path, pki: dict[str, Path]) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    message = b"secret hello " * 30
    policy = NetworkPolicy(allow=("127.0.0.1/32",), tls_extra_ca=str(pki["ca"]))
    out = run(tls_client_guest(port, message), tmp_path, setup=echo_server(sock, server_context(pki)), network=policy)
    g0, g1 = out.calls[0][1], out.calls[1][1]
    assert out.calls == [Ok(g0), Ok(g1), Ok(len(message)), Ok(len(message)), Ok(0), Ok(0)]
    assert out.prefix == message


def test_tls_without_the_ca_fails_verification(tmp_path: Path, pki: dict[str, Path]) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    out = run(guest(
        set_global("g0", call(Call.TCP_CONNECT_TLS, HOST, 13)),
        until_ready(Call.POLL_RES, 1, "(global.get $g0)"),
        data={HOST: enc_str("localhost") + struct.pack("<H", port) + b"\x00"},
    ), tmp_path, setup=echo_server(sock, server_context(pki)), network=LOOPBACK)
    assert out.calls[1:] == [Err(E.IO_ERROR)]
    assert any("certificate" in m.lower() for _, m in out.logs)


def test_tls_client_config_encoding_errors(tmp_path: Path) -> None:
    good = enc_str("localhost") + struct.pack("<H", 443)
    out = run(guest(
        C(Call.TCP_CONNECT_TLS, 0x100, len(good) + 1)          # variant 1: unknown
        + C(Call.TCP_CONNECT_TLS, 0x200, len(good))             # no config
        + C(Call.TCP_CONNECT_TLS, 0x300, len(good) + 2)         # trailing byte
        + C(Call.TCP_CONNECT_TLS, 0x400, len(good) + 1),        # port 0
        data={0x100: good + b"\x01", 0x200: good, 0x300: good + b"\x00\x00",
              0x400: enc_str("localhost") + b"\x00\x00\x00"},
    ), tmp_path, network=LOOPBACK)
    assert out.calls == [Err(E.INVALID_ENCODING)] * 3 + [Err(E.INVALID_PARAMETER)]


# --- host names and ports -------------------------------------------------------------------------

def test_host_name_limits(tmp_path: Path) -> None:
    long_name = b"a" * 63 + (b"." + b"b" * 62) * 3 + b".c"       # 254 bytes
    assert len(long_name) == 254
    tls_long = enc_str(long_name) + struct.pack("<H", 443) + b"\x00"
    out = run(guest(
        C(Call.TCP_CONNECT, 0x100, 254, 443)
        + C(Call.TCP_CONNECT_TLS, 0x300, len(tls_long))
        + C(Call.TCP_CONNECT, 0x100, 0, 443)                      # empty
        + C(Call.TCP_CONNECT, 0x500, 9, 443)                      # not a host name
        + C(Call.TCP_CONNECT, 0x520, 4, 443)                      # not UTF-8
        + C(Call.TCP_CONNECT, 0x540, 9, 0)                        # port 0
        + C(Call.TCP_CONNECT, 0x540, 9, 65536)
        + C(Call.TCP_CONNECT, 0x10000 - 4, 9, 443),               # outside memory
        data={0x100: long_name, 0x300: tls_long, 0x500: b"bad host!", 0x520: b"\xff\xfe\xfd\xfc",
              0x540: b"127.0.0.1"},
    ), tmp_path, network=LOOPBACK)
    p = Err(E.INVALID_PARAMETER)
    assert out.calls == [p, p, p, p, Err(E.INVALID_ENCODING), p, p, Err(E.INVALID_ADDRESS)]


# --- listening --------------------------------------------------------------------------------------

def listen_input(addr: str, tls: tuple[str, str] | None = None) -> bytes:
    option = b"\x00" if tls is None else b"\x01\x00" + enc_str(tls[0]) + enc_str(tls[1])
    return enc_str(addr) + option


def test_listen_only_inside_the_port_range(tmp_path: Path) -> None:
    port = free_port()
    inputs = {0x100: listen_input(f"127.0.0.1:{port + 1}"), 0x200: listen_input(f"127.0.0.1:{port}"),
              0x300: listen_input("no-port"), 0x400: listen_input("example.com:80"), 0x500: b"\x10ab"}
    wat = guest(
        C(Call.TCP_LISTEN, 0x100, len(inputs[0x100]))
        + C(Call.TCP_LISTEN, 0x200, len(inputs[0x200]))
        + C(Call.TCP_LISTEN, 0x200, len(inputs[0x200]))            # the port is taken now
        + C(Call.TCP_LISTEN, 0x300, len(inputs[0x300]))
        + C(Call.TCP_LISTEN, 0x400, len(inputs[0x400]))
        + C(Call.TCP_LISTEN, 0x500, 3),                            # truncated
        data=inputs,
    )
    out = run(wat, tmp_path, network=NetworkPolicy(listen_ports=(port, port)))
    assert out.calls[0] == Err(E.FORBIDDEN)
    assert out.calls[1][0] == 0
    assert out.calls[2:] == [Err(E.ALREADY_EXISTS), Err(E.INVALID_PARAMETER), Err(E.INVALID_PARAMETER),
                             Err(E.INVALID_ENCODING)]
    # no range configured: nothing may listen
    out = run(guest(C(Call.TCP_LISTEN, 0x200, len(inputs[0x200])), data=inputs), tmp_path)
    assert out.calls == [Err(E.FORBIDDEN)]


async def _client(port: int, payload: bytes, ssl_ctx: ssl.SSLContext | None = None,
                  deadline: float = 5.0) -> bytes:
    """Connect (retrying while the guest starts listening), send, half-close, read to the end."""
    end = time.monotonic() + deadline
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_ctx,
                                                           server_hostname="localhost" if ssl_ctx else None)
            break
        except OSError:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.02)

    async def send() -> None:
        for k in range(0, len(payload), 1 << 20):
            writer.write(payload[k:k + (1 << 20)])
            await writer.drain()
        if ssl_ctx is None:
            writer.write_eof()

    sender = asyncio.create_task(send())
    got = bytearray()
    while len(got) < len(payload) or ssl_ctx is None:
        chunk = await reader.read(1 << 20)
        if not chunk:
            break
        got += chunk
    await sender
    writer.close()
    return bytes(got)


def run_echo_guest(port: int, count: int, clients, policy: NetworkPolicy | None = None, time_limit: float = 20):
    module = GuestModule(ECHO_GUEST.read_bytes(), name="tcp_echo.wat")

    async def main():
        instance = Instance(module, args=[f"127.0.0.1:{port}", str(count)], limits=Limits(time=time_limit),
                            network=policy or NetworkPolicy(listen_ports=(port, port)))
        running = asyncio.create_task(instance.run())
        started = time.perf_counter()
        answers = await asyncio.wait_for(clients(), timeout=time_limit)
        elapsed = time.perf_counter() - started
        result = await asyncio.wait_for(running, timeout=5)
        return instance, result, answers, elapsed

    return asyncio.run(main())


def test_echo_guest_serves_python_clients() -> None:
    port = free_port()
    payloads = [b"ping", os.urandom(300_000), b""]

    async def clients():
        return await asyncio.gather(*(_client(port, p) for p in payloads))

    instance, result, answers, _ = run_echo_guest(port, len(payloads), clients)
    assert result.error is None, result.error.describe()
    assert answers == payloads
    assert result.output == b"served"
    assert ("info", "tcp_echo: listening") in [(r.level, r.message) for r in result.logs]
    assert instance._state is None or instance._state.host_faults == 0


def test_tls_listener_with_guest_supplied_certificate(tmp_path: Path, pki: dict[str, Path]) -> None:
    """tcp_listen with a TlsServerConfig, tcp_accept (with the peer address), echo one message."""
    port = free_port()
    message = b"tls listener says hi"
    tls_in = listen_input(f"127.0.0.1:{port}", (pki["cert"].read_text(), pki["key"].read_text()))
    bad_in = listen_input(f"127.0.0.1:{port}", ("not a cert", "not a key"))
    wat = guest(
        C(Call.TCP_LISTEN, 0x1000 + 0x8000, len(bad_in))
        + set_global("g0", call(Call.TCP_LISTEN, 0x8000, len(tls_in))),
        until_ready(Call.TCP_ACCEPT, 1, "(global.get $g0)")
        + C(Call.GET_RETURN, BUF(4), 64, fast=True)
        + f"(global.set $g1 (i32.load (i32.const {BUF(4)})))",
        read_into_scratch(until=len(message)),
        "(global.set $g3 (i32.const 0))"
        + f"(memory.copy (i32.const {MSG}) (i32.const {BUF(0)}) (i32.const {len(message)}))"
        + write_all(len(message)),
        until_ready(Call.POLL_SHUTDOWN, 2, "(global.get $g1)")
        + set_global("g2", call(Call.CREATE_TIMER, 300))             # let the client finish reading
        + C(Call.POLL_READ, 4, "(global.get $g2)", BUF(0), 0) + yield_next(5),
        until_ready(Call.POLL_READ, 4, "(global.get $g2)", BUF(0), 0),
        data={0x8000: tls_in, 0x9000: bad_in},
    )
    ca = ssl.create_default_context(cafile=str(pki["ca"]))

    async def setup(instance: Instance):
        return asyncio.get_running_loop().create_task(_client(port, message, ca))

    out = run(wat.replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 2)"), tmp_path,
              setup=setup, network=NetworkPolicy(listen_ports=(port, port)))
    assert out.calls[0] == Err(E.INVALID_PARAMETER)
    n = out.calls[2][1]
    assert out.calls[2:5] == [Ok(n), Ok(n), Ok(len(message))]
    peer = out.buf(4, n)[4:]
    assert peer[1:].decode().startswith("127.0.0.1:") and peer[0] >> 2 == len(peer) - 1
    assert out.extra.result() == message


# --- caps and closing ------------------------------------------------------------------------------

def test_socket_cap_is_resource_limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    monkeypatch.setattr(quota, "LIMITS", quota.NetLimits(max_sockets=2))
    out = run(guest(
        set_global("g0", call(Call.TCP_CONNECT, HOST, 9, port))
        + C(Call.TCP_CONNECT, HOST, 9, port)
        + C(Call.TCP_CONNECT, HOST, 9, port)                        # the third socket
        + C(Call.CLOSE, "(global.get $g0)")
        + C(Call.TCP_CONNECT, HOST, 9, port)                        # room again
        + C(Call.TCP_CONNECT, HOST, 9, port),
        data={HOST: b"127.0.0.1"},
    ), tmp_path, setup=echo_server(sock), network=LOOPBACK)
    assert out.calls[2] == Err(E.RESOURCE_LIMITED)
    assert out.calls[3:] == [Ok(0), Ok(out.calls[0][1]), Err(E.RESOURCE_LIMITED)]


def test_default_socket_cap_is_64(tmp_path: Path) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    loop = f"""
(block $done (loop $more
  (local.set $r (call $fast (i32.const 0) (i32.const 213) (i32.const {HOST}) (i32.const 9) (i32.const {port}) (i32.const 0)))
  (if (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0)) (then (drop (call $rec (local.get $r))) (br $done)))
  (global.set $g0 (i32.add (global.get $g0) (i32.const 1)))
  (br_if $more (i32.lt_u (global.get $g0) (i32.const 100)))))
(drop (call $rec (i64.extend_i32_u (global.get $g0))))"""
    out = run(guest(loop, data={HOST: b"127.0.0.1"}), tmp_path, setup=echo_server(sock), network=LOOPBACK)
    assert out.calls == [Err(E.RESOURCE_LIMITED), Ok(64)]


def test_closing_a_stream_mid_read_frees_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    monkeypatch.setattr(quota, "LIMITS", quota.NetLimits(max_sockets=2))
    seen: dict[str, float] = {}

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()          # the guest never writes: this returns when it closes
        seen.setdefault("eof", time.monotonic())   # the first connection closes first
        writer.close()

    async def setup(_instance: Instance):
        return await asyncio.start_server(silent, sock=sock)

    out = run(guest(
        *connect_states("127.0.0.1", port),
        C(Call.POLL_READ, 3, "(global.get $g1)", BUF(0), 64)              # Pending: parked mid-read
        + set_global("g2", call(Call.CREATE_TIMER, 50))
        + C(Call.POLL_READ, 4, "(global.get $g2)", BUF(0), 0)
        + yield_next(2),
        until_ready(Call.POLL_READ, 4, "(global.get $g2)", BUF(0), 0)
        + C(Call.CLOSE, "(global.get $g1)")                                 # close while a read waits
        + C(Call.CLOSE, "(global.get $g0)")
        + C(Call.POLL_READ, 3, "(global.get $g1)", BUF(0), 64)             # gone
        + set_global("g4", call(Call.TCP_CONNECT, HOST, 9, port))          # both slots free again
        + C(Call.TCP_CONNECT, HOST, 9, port)
        + C(Call.RESET_TIMER, "(global.get $g2)", 300)
        + C(Call.POLL_READ, 4, "(global.get $g2)", BUF(0), 0)
        + yield_next(3),
        until_ready(Call.POLL_READ, 4, "(global.get $g2)", BUF(0), 0),
        data={HOST: b"127.0.0.1"},
    ), tmp_path, setup=setup, network=LOOPBACK)
    finished = time.monotonic()
    assert out.calls[2] == Err(E.PENDING)
    assert out.calls[6:10] == [Ok(0), Ok(0), Err(E.NOT_FOUND), Ok(out.calls[9][1])]
    assert out.calls[10][0] == 0
    assert "eof" in seen and seen["eof"] < finished - 0.1   # the peer saw the close while the guest still ran


# --- throughput ----------------------------------------------------------------------------------

def test_echo_throughput_guest_host_loopback(capsys: pytest.CaptureFixture) -> None:
    """MB/s of payload through the echo guest (Python client -> guest -> Python client) over loopback."""
    port = free_port()
    size = 16 << 20
    payload = os.urandom(1 << 20) * 16

    timing: list[float] = []

    async def clients():
        assert await _client(port, b"", deadline=5) == b""      # the guest is listening: start the clock
        started = time.perf_counter()
        answer = await _client(port, payload)
        timing.append(time.perf_counter() - started)
        return [answer]

    _, result, answers, _ = run_echo_guest(port, 2, clients)
    assert result.error is None, result.error.describe()
    assert answers[0] == payload
    elapsed = timing[0]
    rate = size / elapsed / 1e6
    with capsys.disabled():
        print(f"\n[tcp] echo through the guest: {size >> 20} MiB each way in {elapsed:.2f} s = {rate:.0f} MB/s")
    assert rate > 1  # a floor that catches a pathological slowdown only
