"""The outgoing address policy: which addresses a guest may connect to.

Shared by fetch (and later by TCP). An address is checked AFTER DNS
resolution, so a name that resolves to 127.0.0.1 is refused like the literal
address, and the connection is made to the address that was checked (never
resolved a second time). Denied by default: every address that is not
globally reachable per the IANA IPv4 and IPv6 special-purpose address
registries, plus multicast, plus the cloud metadata services:

    cloud metadata   169.254.169.254, 169.254.170.2, 169.254.170.23, 100.100.100.200,
                     168.63.129.16, 192.0.0.192, fd00:ec2::254, fd00:ec2::23, fd20:ce::254
                     (named apart: the classic SSRF targets; some are public addresses)
    loopback         127.0.0.0/8, ::1
    unspecified      0.0.0.0/8, ::
    private          10/8, 172.16/12, 192.168/16, fc00::/7 (unique local)
    shared address space  100.64.0.0/10 (carrier-grade NAT)
    link-local       169.254/16, fe80::/10
    site-local       fec0::/10 (deprecated, still routed by some hosts)
    IETF protocol assignments  192.0.0.0/24 (DS-Lite, NAT64 discovery, PCP/TURN anycast),
                     2001::/23 (Teredo, benchmarking, ORCHID, AMT, ...)
    documentation    192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
    benchmarking     198.18.0.0/15, 2001:2::/48
    6to4 relay anycast  192.88.99.0/24 (deprecated)
    local-use NAT64  64:ff9b:1::/48 (translates to the operator's own IPv4 networks)
    discard-only     100::/64
    SRv6 SIDs        5f00::/16
    multicast        224/4, ff00::/8
    reserved         240/4 (with 255.255.255.255), IPv6 outside 2000::/3
    not globally reachable  whatever else the running Python's ``ipaddress`` registry copy
                     says is not global (a newer Python may know newer entries)

An IPv4 address written as IPv6 (``::ffff:127.0.0.1``, ``64:ff9b::7f00:1``)
is judged as the IPv4 address it names. A 6to4 address (``2002:AABB:CCDD::``)
is denied with the reason of the IPv4 address it embeds, or as "6to4" (deprecated,
IANA: not applicable) when that one is global. ``allow`` CIDRs lift the denial for
the addresses they contain (``--allow-address 127.0.0.1/32``); an IPv4 CIDR also
lifts it for the IPv4-mapped and NAT64 forms of its addresses.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_N = ipaddress.ip_network
# the order matters: the first match names the reason
DENIED: tuple[tuple[IPNetwork, str], ...] = (
    # cloud metadata services (AWS IMDS/ECS/EKS Pod Identity, GCP, Azure, Alibaba, Oracle Classic, ...)
    (_N("169.254.169.254/32"), "cloud metadata"),
    (_N("169.254.170.2/32"), "cloud metadata"),
    (_N("169.254.170.23/32"), "cloud metadata"),
    (_N("100.100.100.200/32"), "cloud metadata"),
    (_N("168.63.129.16/32"), "cloud metadata"),
    (_N("192.0.0.192/32"), "cloud metadata"),
    (_N("fd00:ec2::254/128"), "cloud metadata"),
    (_N("fd00:ec2::23/128"), "cloud metadata"),
    (_N("fd20:ce::254/128"), "cloud metadata"),
    # the IANA IPv4 special-purpose address registry (the entries not globally reachable)
    (_N("127.0.0.0/8"), "loopback"),
    (_N("0.0.0.0/8"), "unspecified"),
    (_N("10.0.0.0/8"), "private"),
    (_N("172.16.0.0/12"), "private"),
    (_N("192.168.0.0/16"), "private"),
    (_N("100.64.0.0/10"), "shared address space"),
    (_N("169.254.0.0/16"), "link-local"),
    (_N("192.0.0.0/24"), "IETF protocol assignments"),
    (_N("192.0.2.0/24"), "documentation"),
    (_N("198.51.100.0/24"), "documentation"),
    (_N("203.0.113.0/24"), "documentation"),
    (_N("198.18.0.0/15"), "benchmarking"),
    (_N("192.88.99.0/24"), "6to4 relay anycast"),
    (_N("224.0.0.0/4"), "multicast"),
    (_N("240.0.0.0/4"), "reserved"),
    # the IANA IPv6 special-purpose address registry (the entries not globally reachable)
    (_N("::1/128"), "loopback"),
    (_N("::/128"), "unspecified"),
    (_N("fc00::/7"), "private"),
    (_N("fe80::/10"), "link-local"),
    (_N("fec0::/10"), "site-local"),
    (_N("64:ff9b:1::/48"), "local-use NAT64"),
    (_N("100::/64"), "discard-only"),
    (_N("2001:2::/48"), "benchmarking"),
    (_N("2001:db8::/32"), "documentation"),
    (_N("3fff::/20"), "documentation"),
    (_N("2001::/23"), "IETF protocol assignments"),
    (_N("5f00::/16"), "SRv6 SIDs"),
    (_N("ff00::/8"), "multicast"),
)
_NAT64 = _N("64:ff9b::/96")
_6TO4 = _N("2002::/16")
_GLOBAL_UNICAST_V6 = _N("2000::/3")  # IANA's IPv6 address space: the rest is reserved, ULA, link-local, multicast


class AddressDenied(OSError):
    """A connection to this address is not allowed (an OSError so connectors pass it on)."""

    def __init__(self, address: str, reason: str, host: str | None = None) -> None:
        self.address = address
        self.reason = reason
        self.host = host
        of = f" (of {host})" if host and host != address else ""
        super().__init__(f"address {address}{of} is not allowed ({reason}); to let guests reach it, "
                         f"pass --allow-address {_cidr_of(address)} (wapo exec, call, serve, dev) or add it to "
                         "allow_addresses in the gateway config")


def _cidr_of(address: str) -> str:
    """The single-address CIDR of ``address`` (as --allow-address takes it)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    return f"{ip}/{ip.max_prefixlen}"


def parse_cidr(text: str) -> IPNetwork:
    """'127.0.0.1/32', '10.0.0.0/8', '::1' (a bare address is a /32 or /128)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"invalid address range {text!r}: use CIDR notation, e.g. 10.0.0.0/8 or 127.0.0.1/32") from None


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address reaches."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _denied(ip: IPAddress) -> str | None:
    """Why ``ip`` (not an IPv4-mapped or NAT64 form) is not globally reachable, or None."""
    for net, why in DENIED:
        if ip.version == net.version and ip in net:
            return why
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _6TO4:
            return _denied(ip.sixtofour) or "6to4"  # type: ignore[arg-type]
        if ip not in _GLOBAL_UNICAST_V6:
            return "reserved"
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "not globally reachable"  # the running Python's copy of the registries knows more
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Deny the special ranges above unless ``allow`` contains the address."""

    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str | IPNetwork]) -> "AddressPolicy":
        return cls(tuple(c if not isinstance(c, str) else parse_cidr(c) for c in cidrs))

    def reason(self, address: str | IPAddress) -> str | None:
        """None if ``address`` may be contacted, else why not ("loopback", ...)."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        except ValueError:
            return "not an IP address"
        v4 = _embedded_v4(ip)
        for cand in (ip,) if v4 is None else (ip, v4):
            if any(cand.version == net.version and cand in net for net in self.allow):
                return None
        return _denied(ip if v4 is None else v4)

    def check(self, address: str, host: str | None = None) -> None:
        why = self.reason(address)
        if why is not None:
            raise AddressDenied(address, why, host)


@dataclass(frozen=True)
class HttpLimits:
    """Per-run limits of fetch (documented defaults; see docs and ``wapo exec --help``).

    timeout            seconds from the start of a fetch to its response head,
                       redirects and the wait for a free slot included (30 s)
    read_timeout       seconds of silence from the server while the body is read (30 s)
    max_response_size  bytes of one response body, after decompression (100 MB)
    max_concurrent     fetches in flight at once per run; more wait for a slot (16)
    max_redirects      redirects followed by one fetch (20, the Fetch standard's cap)
    """

    timeout: float = 30.0
    read_timeout: float = 30.0
    max_response_size: int = 100 * 1000 * 1000
    max_concurrent: int = 16
    max_redirects: int = 20

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("fetch timeouts must be > 0")
        if self.max_response_size < 0:
            raise ValueError("the maximum response size must be >= 0")
        if self.max_concurrent < 1:
            raise ValueError("at least one concurrent fetch must be allowed")
        if not 0 <= self.max_redirects <= 20:
            raise ValueError("max_redirects is 0..20")


# --- parsing the listening settings (CLI flags and config keys share these) --------------------

def bind_address(host: str) -> str | None:
    """The IP address a listening socket binds for ``host`` (an IP literal or localhost), or None."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host[1:-1] if host.startswith("[") and host.endswith("]") else host))
    except ValueError:
        return None


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{what} must be a port number 1..65535")
    return int(text)


def parse_port_range(text: str) -> tuple[int, int]:
    """'8000-8099' or '8080' -> the inclusive range; ValueError with the reason otherwise."""
    low, sep, high = str(text).strip().partition("-")
    first = _port(low.strip(), "LOW" if sep else "PORT")
    last = _port(high.strip(), "HIGH") if sep else first
    if first > last:
        raise ValueError("LOW must be <= HIGH")
    return first, last


def parse_sni_address(text: str | int, default_host: str | None = "127.0.0.1") -> tuple[str | None, int]:
    """'[HOST:]PORT' (HOST an IP address or localhost) -> (host or ``default_host``, port)."""
    host, sep, port = str(text).strip().rpartition(":")
    if not sep:
        return default_host, _port(port, "PORT")
    if bind_address(host) is None:
        raise ValueError("HOST must be an IP address or localhost")
    return host.strip("[]"), _port(port, "PORT")


def check_ca_file(path: str) -> str:
    """A readable PEM file of CA certificates (checked now, not at the first TLS connection)."""
    import ssl
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except FileNotFoundError:
        raise ValueError("no such file") from None
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ValueError(f"not a PEM file of CA certificates ({exc})") from None
    return path


@dataclass(frozen=True)
class NetworkPolicy:
    """What a run may do on the network: the address policy and the fetch limits.

    TCP (``wapo.host.net``) uses the same address policy, plus: ``listen_ports``, the inclusive
    port range tcp_listen may bind (None: listening is Forbidden); ``tls_extra_ca``, a PEM
    file of CAs trusted by guests' TLS connections (tcp_connect_tls, WapoSockets, wss) in
    addition to the system roots (fetch keeps the system roots); ``sni_port`` / ``sni_host``,
    the process's one shared TLS port where tls_listen_sni (215) registers server names
    (None: tls_listen_sni is Forbidden).
    """

    allow: tuple[IPNetwork, ...] = ()
    http: HttpLimits = field(default_factory=HttpLimits)
    listen_ports: tuple[int, int] | None = None
    tls_extra_ca: str | None = None
    sni_port: int | None = None
    sni_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        object.__setattr__(self, "allow", tuple(parse_cidr(c) if isinstance(c, str) else c for c in self.allow))
        if self.listen_ports is not None:
            low, high = self.listen_ports
            if not 1 <= low <= high <= 65535:
                raise ValueError(f"invalid listen port range {low}-{high}: use 1 <= low <= high <= 65535")
            object.__setattr__(self, "listen_ports", (int(low), int(high)))
        if self.sni_port is not None and not 1 <= self.sni_port <= 65535:
            raise ValueError(f"invalid SNI port {self.sni_port}: use 1..65535")
        if bind_address(self.sni_host) is None:
            raise ValueError(f"invalid SNI host {self.sni_host!r}: use an IP address or localhost")

    @property
    def addresses(self) -> AddressPolicy:
        return AddressPolicy(self.allow)


DEFAULT_NETWORK = NetworkPolicy()

