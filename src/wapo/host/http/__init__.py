"""Outgoing HTTP for guests: the address policy (``policy``) and the fetch machinery (``client``)."""

from .policy import DEFAULT_NETWORK, AddressDenied, AddressPolicy, HttpLimits, NetworkPolicy, parse_cidr

__all__ = ["DEFAULT_NETWORK", "AddressDenied", "AddressPolicy", "HttpLimits", "NetworkPolicy", "parse_cidr"]
