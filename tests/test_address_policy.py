"""The outgoing address policy against the IANA special-purpose registries.

Only the policy's decision is tested (``AddressPolicy.reason``): no packet is sent anywhere.
The non-global ranges come from the running Python's ``ipaddress`` module (its copy of the IANA
IPv4 and IPv6 special-purpose registries), so a newer Python that knows newer entries tests them
too; the entries added to the registries after the oldest supported Python (3.11) are listed apart.
"""

from __future__ import annotations

import ipaddress
import random

import pytest

from wapo.host.net.policy import AddressDenied, AddressPolicy

POLICY = AddressPolicy()
V4 = ipaddress.IPv4Address._constants  # type: ignore[attr-defined]
V6 = ipaddress.IPv6Address._constants  # type: ignore[attr-defined]


def _networks(constants, *names: str) -> list:
    nets = []
    for name in names:
        value = getattr(constants, name, None)
        if value is None:
            continue
        if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            value = ipaddress.ip_network(value)
        nets.extend(value if isinstance(value, (list, tuple)) else [value])
    return nets


# every range the running Python's ipaddress module considers not global (private, shared, reserved,
# loopback, link-local, multicast, unspecified, site-local); the exceptions newer Pythons list as
# global inside them (e.g. 192.0.0.9/32 in 192.0.0.0/24) are checked apart
NON_GLOBAL_V4 = _networks(V4, "_private_networks", "_public_network", "_reserved_network", "_loopback_network",
                          "_linklocal_network", "_multicast_network", "_unspecified_address")
NON_GLOBAL_V6 = _networks(V6, "_private_networks", "_reserved_networks", "_linklocal_network",
                          "_multicast_network", "_sitelocal_network")
GLOBAL_EXCEPTIONS = _networks(V4, "_private_networks_exceptions") + _networks(V6, "_private_networks_exceptions")

# IANA registry entries (not globally reachable) that Python 3.11's copy does not have, or has narrower
REGISTRY_SINCE_PY311 = ["100.64.0.0/10", "192.0.0.0/24", "192.88.99.0/24", "64:ff9b:1::/48", "2002::/16",
                        "3fff::/20", "5f00::/16", "100:0:0:1::/64", "fec0::/10"]
CLOUD_METADATA = ["169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200", "168.63.129.16",
                  "192.0.0.192", "fd00:ec2::254", "fd00:ec2::23", "fd20:ce::254"]
GLOBAL = ["8.8.8.8", "1.1.1.1", "9.9.9.9", "172.32.0.1", "100.128.0.1", "198.20.0.1", "192.0.1.1",
          "2606:4700::1111", "2001:4860:4860::8888", "2a00:1450:4001::1", "::ffff:8.8.8.8",
          "64:ff9b::808:808"]


def samples(net, rng: random.Random, n: int = 16) -> list:
    """The first, second, last and some random addresses of ``net``."""
    first, size = int(net.network_address), net.num_addresses
    picks = {0, size - 1, min(1, size - 1)} | {rng.randrange(size) for _ in range(n)}
    return [ipaddress.ip_address(first + i) if net.version == 4 else ipaddress.IPv6Address(first + i)
            for i in sorted(picks)]


def in_exception(ip) -> bool:
    return any(ip.version == net.version and ip in net for net in GLOBAL_EXCEPTIONS)


def test_the_registry_lists_are_found():
    # guards the test itself: a Python whose ipaddress internals moved must not make it vacuous
    assert len(NON_GLOBAL_V4) >= 10 and len(NON_GLOBAL_V6) >= 10
    assert ipaddress.ip_network("100.64.0.0/10") in NON_GLOBAL_V4
    assert ipaddress.ip_network("fc00::/7") in NON_GLOBAL_V6


@pytest.mark.parametrize("net", NON_GLOBAL_V4 + NON_GLOBAL_V6, ids=str)
def test_every_non_global_range_of_the_registry_is_denied(net):
    rng = random.Random(str(net))
    for ip in samples(net, rng):
        if in_exception(ip):
            continue
        if ip.version == 6 and ip.ipv4_mapped is not None:  # ::ffff:0:0/96 is judged as the IPv4 address
            assert POLICY.reason(ip) == POLICY.reason(ip.ipv4_mapped), ip
            continue
        assert POLICY.reason(str(ip)) is not None, f"{ip} (in {net}) is allowed"
        assert POLICY.reason(ip) is not None  # an ipaddress object is judged the same


@pytest.mark.parametrize("net", NON_GLOBAL_V4, ids=str)
def test_ipv4_in_ipv6_forms_are_judged_as_the_ipv4_address(net):
    rng = random.Random("v6" + str(net))
    for v4 in samples(net, rng, 8):
        if in_exception(v4):
            continue
        why = POLICY.reason(v4)
        assert why is not None
        mapped = ipaddress.IPv6Address(0xFFFF << 32 | int(v4))
        nat64 = ipaddress.IPv6Address(0x64FF9B << 96 | int(v4))
        sixtofour = ipaddress.IPv6Address(0x2002 << 112 | int(v4) << 80 | 1)
        assert POLICY.reason(str(mapped)) == why, mapped
        assert POLICY.reason(str(nat64)) == why, nat64
        assert POLICY.reason(str(sixtofour)) == why, sixtofour


def test_every_non_global_address_is_denied_random_sweep():
    # whatever Python's is_global says, over random addresses of the whole spaces
    rng = random.Random(12)
    for _ in range(100_000):
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if not ip.is_global or ip.is_multicast:
            assert POLICY.reason(ip) is not None, ip
    for _ in range(50_000):
        ip = ipaddress.IPv6Address(rng.getrandbits(128) >> rng.randrange(0, 128, 4))  # many short prefixes too
        if (not ip.is_global or ip.is_multicast) and ip.ipv4_mapped is None:
            assert POLICY.reason(ip) is not None, ip


@pytest.mark.parametrize("cidr", REGISTRY_SINCE_PY311)
def test_registry_entries_newer_than_python_311_are_denied(cidr):
    net = ipaddress.ip_network(cidr)
    for ip in samples(net, random.Random(cidr)):
        assert POLICY.reason(ip) is not None, f"{ip} (in {net}) is allowed"


@pytest.mark.parametrize("address", CLOUD_METADATA)
def test_cloud_metadata_addresses_are_denied_as_such(address):
    assert POLICY.reason(address) == "cloud metadata"
    with pytest.raises(AddressDenied, match="cloud metadata"):
        POLICY.check(address, "metadata.example")


def test_named_reasons():
    for address, why in [("100.100.100.1", "shared address space"), ("100.64.0.1", "shared address space"),
                         ("192.0.0.100", "IETF protocol assignments"), ("198.18.0.1", "benchmarking"),
                         ("198.19.255.255", "benchmarking"), ("192.0.2.1", "documentation"),
                         ("64:ff9b:1::a00:1", "local-use NAT64"), ("fec0::1", "site-local"),
                         ("2001::1", "IETF protocol assignments"), ("2001:db8::1", "documentation"),
                         ("::ffff:100.100.100.200", "cloud metadata"), ("64:ff9b::a9fe:a9fe", "cloud metadata"),
                         ("2002:7f00:1::1", "loopback"), ("2002:808:808::1", "6to4"), ("::8.8.8.8", "reserved"),
                         ("fe80::1%eth0", "link-local"), ("255.255.255.255", "reserved"), ("ff0e::1", "multicast"),
                         ("example.com", "not an IP address")]:
        assert POLICY.reason(address) == why, address


@pytest.mark.parametrize("address", GLOBAL)
def test_global_addresses_are_allowed(address):
    assert ipaddress.ip_address(address).is_global
    assert POLICY.reason(address) is None
    POLICY.check(address)


def test_allow_lifts_the_denial_for_the_addresses_it_contains():
    allowed = AddressPolicy.from_cidrs(["100.64.0.0/10", "168.63.129.16/32", "64:ff9b:1::/48", "198.18.0.0/15",
                                        "fd00:ec2::254"])
    for address in ("100.64.0.1", "100.100.100.200", "::ffff:100.100.100.200", "64:ff9b::6440:1",
                    "168.63.129.16", "64:ff9b:1::1", "198.19.1.1", "fd00:ec2::254"):
        assert allowed.reason(address) is None, address
    for address in ("10.0.0.1", "192.168.1.1", "169.254.169.254", "fd00:ec2::23", "::1"):
        assert allowed.reason(address) is not None, address
    # the operator's allow list is what --allow-address and the config's allow_addresses build
    from wapo.host.net.policy import NetworkPolicy
    assert NetworkPolicy(allow=("100.100.100.200/32",)).addresses.reason("100.100.100.200") is None
    assert NetworkPolicy().addresses.reason("100.100.100.200") == "cloud metadata"
