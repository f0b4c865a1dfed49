"""TLS servers of guests: tcp_listen with a TlsServerConfig (210) and the shared SNI port (215).

Real wasmtime, real sockets on 127.0.0.1, certificates made here with ``cryptography``. The echo
guest is tests/guests/tls_echo.wat (args: MODE TARGET CERT KEY COUNT); small call-by-call
guests come from the helpers of test_abi. Every run and every client is bounded in time.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from test_abi import C, Err, Ok, call, compact, guest, run, set_global

from wapo.host import GuestModule, Instance, Limits, RunResult
from wapo.host.abi import Call, ErrorCode as E
from wapo.host.net.policy import NetworkPolicy
from wapo.host.net import quota, sni

ECHO = Path(__file__).parent / "guests" / "tls_echo.wat"
NAME = "echo.test"


@pytest.fixture(autouse=True, scope="module")
def _module_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WAPO_CACHE_DIR", str(tmp_path_factory.mktemp("wapo-cache")))
        yield


@pytest.fixture(autouse=True)
def _no_port_left_open():
    yield
    assert sni._ports == {}, "a shared TLS port outlived its guests"


# --- certificates ------------------------------------------------------------------------------

class Pki:
    """A test CA issuing server certificates; PEM text, as a guest passes it."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wapo test CA")])
        ca = (self._builder(self.name, self.key.public_key())
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .sign(self.key, hashes.SHA256()))
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()

    def _builder(self, subject: x509.Name, public_key) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(self.now - datetime.timedelta(minutes=5))
                .not_valid_after(self.now + datetime.timedelta(days=1)))

    def issue(self, *names: str, password: bytes | None = None) -> tuple[str, str]:
        """(certificate PEM, key PEM) for DNS names or IP addresses."""
        key = ec.generate_private_key(ec.SECP256R1())
        alt = [x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in names]
        cert = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]), key.public_key())
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()

    def client(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def enc_str(text: str) -> bytes:
    raw = text.encode()
    return compact(len(raw)) + raw


def sni_input(name: str, cert: str, key: str) -> bytes:
    """SCALE (String sni, TlsServerConfig::V0 {cert, key})."""
    return enc_str(name) + b"\x00" + enc_str(cert) + enc_str(key)


# --- the echo guest and its clients ------------------------------------------------------------

_echo_module: GuestModule | None = None


class Echo:
    """tls_echo running as a task; ``listening`` is set once it logged that it listens."""

    def __init__(self, mode: str, target: str, cert_key: tuple[str, str], count: int, policy: NetworkPolicy):
        global _echo_module
        if _echo_module is None:
            _echo_module = GuestModule(ECHO.read_bytes(), name="tls_echo.wat")
        self.listening = asyncio.Event()

        def on_log(record) -> None:
            if record.message == "tls_echo: listening":
                self.listening.set()

        self.instance = Instance(_echo_module, args=[mode, target, *cert_key, str(count)], limits=Limits(time=15),
                                 on_log=on_log, network=policy)
        self.task = asyncio.get_running_loop().create_task(self.instance.run())

    async def started(self) -> None:
        waiter = asyncio.ensure_future(self.listening.wait())
        await asyncio.wait([waiter, self.task], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        assert self.listening.is_set(), f"the guest did not listen: {await self.result()}"

    async def result(self) -> RunResult:
        return await asyncio.wait_for(self.task, timeout=15)


async def tls_echo_client(port: int, ctx: ssl.SSLContext, server_hostname: str, message: bytes) -> bytes:
    """Handshake with ``server_hostname`` as SNI, send, read the echo back, close."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_hostname), timeout=5)
    try:
        writer.write(message)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(message)), timeout=5)
    finally:
        writer.close()


async def handshake_fails(port: int, ctx: ssl.SSLContext, server_hostname: str) -> bool:
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_hostname), timeout=5)
    except (OSError, ssl.SSLError):  # reset, alert, closed: the host refused the name
        return True
    try:  # TLS 1.3: the client may finish before the server answers; the server then closes
        return await asyncio.wait_for(reader.read(1), timeout=5) == b""
    except asyncio.TimeoutError:  # (before OSError: it is one) still open: the name was accepted
        return False
    except (OSError, ssl.SSLError):
        return True
    finally:
        writer.close()


def no_verify() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


# --- the shared SNI port ------------------------------------------------------------------------

def test_sni_guest_serves_its_name_and_other_names_fail(pki: Pki) -> None:
    port = free_port()
    cert_key = pki.issue(NAME)

    async def main():
        echo = Echo("sni", "Echo.TEST", cert_key, 2, NetworkPolicy(sni_port=port))  # names compare in lowercase
        await echo.started()
        assert await handshake_fails(port, no_verify(), "other.test")
        assert await handshake_fails(port, no_verify(), "")  # no SNI at all
        first = await tls_echo_client(port, pki.client(), NAME, b"hello over sni")
        second = await tls_echo_client(port, pki.client(), "ECHO.test", b"x" * 100_000)
        return first, second, await echo.result()

    first, second, result = asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert first == b"hello over sni" and second == b"x" * 100_000
    assert result.error is None, result.error.describe()
    assert result.output == b"served"
    assert not any("other.test" in r.message for r in result.logs)  # the guest never saw those
    assert refused(port)  # the last name went with the guest: the port is closed


def test_a_name_is_served_once_and_freed_when_its_guest_ends(pki: Pki) -> None:
    port = free_port()
    policy = NetworkPolicy(sni_port=port)
    cert_key = pki.issue(NAME)

    async def main():
        first = Echo("sni", NAME, cert_key, 1, policy)
        await first.started()
        second = await Echo("sni", NAME, cert_key, 1, policy).result()       # the same name: AlreadyExists
        assert await tls_echo_client(port, pki.client(), NAME, b"one") == b"one"
        assert (await first.result()).output == b"served"
        assert refused(port)
        third = Echo("sni", NAME, cert_key, 1, policy)                        # free again
        await third.started()
        assert await tls_echo_client(port, pki.client(), NAME, b"three") == b"three"
        return second, await third.result()

    second, third = asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert second.output == f"error {int(E.ALREADY_EXISTS)}".encode()
    assert any("already served" in r.message for r in second.logs)
    assert third.output == b"served"


def test_two_guests_two_names_on_one_port(pki: Pki) -> None:
    port = free_port()
    policy = NetworkPolicy(sni_port=port)

    async def main():
        a = Echo("sni", "a.test", pki.issue("a.test"), 1, policy)
        b = Echo("sni", "b.test", pki.issue("b.test"), 1, policy)
        await a.started()
        await b.started()
        got = await asyncio.gather(tls_echo_client(port, pki.client(), "b.test", b"to b"),
                                   tls_echo_client(port, pki.client(), "a.test", b"to a"))
        return got, await a.result(), await b.result()

    got, a, b = asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert got == [b"to b", b"to a"]  # each verified against its own name's certificate
    assert a.output == b.output == b"served"


def test_sni_without_a_shared_port_is_forbidden(pki: Pki) -> None:
    async def main():
        return await Echo("sni", NAME, pki.issue(NAME), 1, NetworkPolicy()).result()

    result = asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert result.output == f"error {int(E.FORBIDDEN)}".encode()
    assert ("warn", "tls_listen_sni: FORBIDDEN: this host has no shared TLS port "
                    "(NetworkPolicy.sni_port, --sni-port)") in [(r.level, r.message) for r in result.logs]


def test_register_close_register_and_bad_inputs(tmp_path: Path, pki: Pki) -> None:
    """Call by call: AlreadyExists, close frees the name, names and configs that are refused."""
    port = free_port()
    cert, key = pki.issue(NAME)
    good = sni_input(NAME, cert, key)
    upper = sni_input(NAME.upper(), cert, key)
    bad = {  # a bad name is judged before the PEM
        0x9000: sni_input("bad_name.test", "x", "y"), 0x9100: sni_input("-lead.test", "x", "y"),
        0x9200: sni_input("a..b", "x", "y"), 0x9300: sni_input("127.0.0.1", "x", "y"),
        0x9400: sni_input("bücher.test", "x", "y"), 0x9500: sni_input("", "x", "y"),
        0x9600: sni_input("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62, "x", "y"),  # 254 bytes
        0x9a00: sni_input("pem.test", "not a cert", "not a key"),
    }
    wrong_variant = enc_str(NAME) + b"\x01"
    calls = (
        set_global("g0", call(Call.TLS_LISTEN_SNI, 0x5000, len(good)))
        + C(Call.TLS_LISTEN_SNI, 0x5000, len(good))                   # the same name: AlreadyExists
        + C(Call.TLS_LISTEN_SNI, 0x7000, len(upper))                  # case does not matter
        + C(Call.CLOSE, "(global.get $g0)")
        + set_global("g1", call(Call.TLS_LISTEN_SNI, 0x7000, len(upper)))  # free again
        + C(Call.TCP_ACCEPT_NO_ADDR, 1, "(global.get $g1)")          # nobody connected: Pending
        + "".join(C(Call.TLS_LISTEN_SNI, at, len(blob)) for at, blob in bad.items())
        + C(Call.TLS_LISTEN_SNI, 0x9f00, len(wrong_variant))         # unknown TlsServerConfig variant
        + C(Call.TLS_LISTEN_SNI, 0x5000, len(good) - 1)               # truncated
        + C(Call.TLS_LISTEN_SNI, 0x5000, 0x7FFFFFFF)                  # out of guest memory
    )
    wat = guest(calls, data={0x5000: good, 0x7000: upper, **bad, 0x9f00: wrong_variant})
    out = run(wat, tmp_path, network=NetworkPolicy(sni_port=port))
    rid = out.calls[0][1]
    assert out.calls[:6] == [Ok(rid), Err(E.ALREADY_EXISTS), Err(E.ALREADY_EXISTS), Ok(0), Ok(rid),
                             Err(E.PENDING)]
    assert out.calls[6:] == [Err(E.INVALID_PARAMETER)] * len(bad) + [
        Err(E.INVALID_ENCODING), Err(E.INVALID_ENCODING), Err(E.INVALID_PARAMETER)]
    assert any("bad TLS certificate or key" in message for _, message in out.logs)
    assert refused(port)


def test_sni_registrations_count_against_the_socket_cap(tmp_path: Path, pki: Pki,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quota, "LIMITS", quota.NetLimits(max_sockets=2))
    cert, key = pki.issue("a.test", "b.test", "c.test")
    inputs = {0x5000: sni_input("a.test", cert, key), 0x6000: sni_input("b.test", cert, key),
              0x7000: sni_input("c.test", cert, key)}
    wat = guest("".join(C(Call.TLS_LISTEN_SNI, at, len(blob)) for at, blob in inputs.items()), data=inputs)
    out = run(wat, tmp_path, network=NetworkPolicy(sni_port=free_port()))
    assert [tag for tag, _ in out.calls] == [0, 0, 1] and out.calls[2] == Err(E.RESOURCE_LIMITED)


def test_connections_beyond_the_socket_cap_are_closed(tmp_path: Path, pki: Pki,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest that never accepts: one connection waits (holding its last socket), the other is closed."""
    monkeypatch.setattr(quota, "LIMITS", quota.NetLimits(max_sockets=2))
    port = free_port()
    good = sni_input(NAME, *pki.issue(NAME))
    wat = guest(C(Call.TLS_LISTEN_SNI, 0x5000, len(good)) + set_global("g0", call(Call.CREATE_TIMER, 3000)),
                "(local.set $r (call $fast (i32.const 0) (i32.const 103) (i32.const 1) (global.get $g0)"
                " (i32.const 0) (i32.const 0)))"
                "(if (call $pending (local.get $r)) (then (return (i32.const 0))))",
                data={0x5000: good})

    async def one(delay: float) -> str:
        await asyncio.sleep(delay)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=pki.client(), server_hostname=NAME), timeout=2)
        except (OSError, ssl.SSLError):
            return "closed"
        try:
            return "closed" if await asyncio.wait_for(reader.read(1), timeout=1) == b"" else "data"
        except asyncio.TimeoutError:  # (before OSError: it is one)
            return "waiting"
        except (OSError, ssl.SSLError):
            return "closed"
        finally:
            writer.close()

    async def clients(_instance: Instance):
        return asyncio.gather(one(0.3), one(0.4))

    out = run(wat, tmp_path, setup=clients, network=NetworkPolicy(sni_port=port))
    assert out.calls[0][0] == 0
    assert sorted(out.extra.result()) == ["closed", "waiting"]


# --- tcp_listen with a TlsServerConfig ----------------------------------------------------------

def listen_input(addr: str, cert: str, key: str) -> bytes:
    """SCALE (String addr, Some(TlsServerConfig::V0 {cert, key}))."""
    return enc_str(addr) + b"\x01\x00" + enc_str(cert) + enc_str(key)


def test_tcp_listen_with_a_tls_server_config_serves_tls(pki: Pki) -> None:
    port = free_port()
    cert_key = pki.issue("localhost", "127.0.0.1")

    async def main():
        echo = Echo("listen", f"127.0.0.1:{port}", cert_key, 2, NetworkPolicy(listen_ports=(port, port)))
        await echo.started()
        got = [await tls_echo_client(port, pki.client(), "localhost", b"tls via tcp_listen"),
               await tls_echo_client(port, pki.client(), "localhost", bytes(range(256)) * 1000)]
        return got, await echo.result()

    got, result = asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert got == [b"tls via tcp_listen", bytes(range(256)) * 1000]
    assert result.error is None, result.error.describe()
    assert result.output == b"served"


def test_bad_certificates_and_keys_are_invalid_parameter(tmp_path: Path, pki: Pki) -> None:
    """Bad PEM never reaches the host as an exception (nor a password prompt for an encrypted key)."""
    port = free_port()
    cert, key = pki.issue("localhost")
    _, other_key = pki.issue("localhost")
    _, locked_key = pki.issue("localhost", password=b"secret")
    addr = f"127.0.0.1:{port}"
    inputs = {
        0x5000: listen_input(addr, "not a cert", "not a key"),
        0x5800: listen_input(addr, cert, other_key),                      # the key does not match
        0x6000: listen_input(addr, cert, locked_key),                     # encrypted
        0x6800: listen_input(addr, key, cert),                            # swapped
        0x7000: sni_input(NAME, cert, locked_key),
        0x7800: sni_input(NAME, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", key),
        0x8000: enc_str(addr) + b"\x01\x01",                                # unknown TlsServerConfig variant
        0x8100: listen_input(addr, cert, key),                              # and a good one, to be sure
    }
    wat = guest("".join(C(Call.TCP_LISTEN if at != 0x7000 and at != 0x7800 else Call.TLS_LISTEN_SNI, at, len(blob))
                        for at, blob in inputs.items()), data=inputs)
    out = run(wat, tmp_path, network=NetworkPolicy(listen_ports=(port, port), sni_port=free_port()))
    assert out.calls[:6] == [Err(E.INVALID_PARAMETER)] * 6
    assert out.calls[6] == Err(E.INVALID_ENCODING)
    assert out.calls[7][0] == 0
    assert out.instance._state.host_faults == 0
