"""Arguments of the network ocalls and services, checked: SCALE-encoded input (EI), host names,
ports and TLS server configs. Every failure is an ``OcallError`` for the guest, never a host error."""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import tempfile

from ..abi import ErrorCode, OcallError
from ..scale import Reader, ScaleError

MAX_HOST_NAME = 253
MAX_ENCODED_INPUT = 1 << 20  # an EI argument tuple (a TLS server config carries PEM text)
HOST_LABELS = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_-]{1,63})*\.?")


class ArgReader(Reader):
    """An EI argument tuple; anything malformed is InvalidEncoding for the guest."""

    def take(self, n: int) -> bytes:
        try:
            return super().take(n)
        except ScaleError as exc:
            raise OcallError(ErrorCode.INVALID_ENCODING, f"truncated SCALE input ({exc})") from None

    def string(self, limit: int, what: str) -> str:
        n = self.compact()
        if n > limit:
            raise OcallError(ErrorCode.INVALID_PARAMETER, f"{what} is longer than {limit} bytes")
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise OcallError(ErrorCode.INVALID_ENCODING, f"{what} is not UTF-8") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise OcallError(ErrorCode.INVALID_ENCODING, "trailing bytes after the SCALE input")


def ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host))
    except ValueError:
        return None


def check_host(host: str) -> None:
    if not host or len(host.encode()) > MAX_HOST_NAME:
        raise OcallError(ErrorCode.INVALID_PARAMETER, f"a host name is 1..{MAX_HOST_NAME} bytes")
    if ip_literal(host) is None and not HOST_LABELS.fullmatch(host):
        raise OcallError(ErrorCode.INVALID_PARAMETER, "not a host name or IP address")


def check_port(port: int) -> int:
    port &= 0xFFFFFFFF
    if not 1 <= port <= 65535:
        raise OcallError(ErrorCode.INVALID_PARAMETER, f"port {port} is not 1..65535")
    return port


def _no_password() -> bytes:
    raise ValueError("encrypted private keys are not supported")


def tls_server_config(r: ArgReader) -> tuple[str, str]:
    """TlsServerConfig = enum { V0 { cert: String, key: String } } (PEM chain, leaf first; PEM key)."""
    variant = r.u8()
    if variant != 0:
        raise OcallError(ErrorCode.INVALID_ENCODING, f"unknown TlsServerConfig variant {variant}")
    return r.string(MAX_ENCODED_INPUT, "certificate chain"), r.string(MAX_ENCODED_INPUT, "private key")


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """An SSLContext serving the guest's certificate; bad PEM is InvalidParameter, never a host error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # ssl loads PEM from files only: a private directory, removed at once
    with tempfile.TemporaryDirectory(prefix="wapo-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, text in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        try:
            # without a password callback OpenSSL would prompt on the host's terminal for an encrypted key
            ctx.load_cert_chain(cert_path, key_path, password=_no_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise OcallError(ErrorCode.INVALID_PARAMETER, f"bad TLS certificate or key: {exc}") from None
    return ctx


def peer_name(sockaddr: tuple) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
