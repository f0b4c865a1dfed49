"""Flags shared by several commands, and the argparse types that parse their values (a bad value
is an argparse error that names the flag and what it expects)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable, TypeVar

from ..host import Limits
from ..host.limits import parse_duration, parse_size
from ..host.net.policy import HttpLimits, NetworkPolicy, check_ca_file, parse_cidr, parse_port_range, parse_sni_address
from ..paths import default_data_dir
from ..store import AnyStore, ClusterKey, ClusterKeyError, InvalidCID, StoreError, parse_cid
from ..store import open_store as open_store_at

T = TypeVar("T")

DATABASE_ENV = "WAPO_DATABASE_URL"
CLUSTER_KEY_ENV = "WAPO_CLUSTER_KEY_FILE"


def data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="where code, vaults, logs and the node key live "
                             "(default: $WAPO_DATA_DIR or ~/.local/share/wapo)")
    database_arguments(parser)


def database_arguments(parser: argparse.ArgumentParser) -> None:
    """--database and --cluster-key: a shared PostgreSQL store instead of the data directory's SQLite."""
    parser.add_argument("--database", default=None, metavar="URL",
                        help="keep code, vaults and logs in this PostgreSQL database, shared by the nodes of a "
                             f"cluster: postgresql://USER@HOST/DB (default: ${DATABASE_ENV}; none: SQLite in the "
                             "data directory)")
    parser.add_argument("--cluster-key", type=Path, default=None, metavar="KEYFILE",
                        help="the cluster key (from `wapo cluster init`), the same file on every node; needed "
                             f"with --database (default: ${CLUSTER_KEY_ENV})")


def data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


def database_url(args: argparse.Namespace, configured: str | None = None) -> str | None:
    """--database, else $WAPO_DATABASE_URL, else the config file's ``[database] url``."""
    return getattr(args, "database", None) or os.environ.get(DATABASE_ENV) or configured or None


def cluster_key_file(args: argparse.Namespace, configured: Path | None = None) -> Path | None:
    """--cluster-key, else $WAPO_CLUSTER_KEY_FILE, else the config file's ``[cluster] key_file``."""
    chosen = getattr(args, "cluster_key", None) or os.environ.get(CLUSTER_KEY_ENV) or configured
    return Path(chosen) if chosen else None


def load_cluster_key(args: argparse.Namespace) -> ClusterKey | None:
    """The cluster key to use with --database (None without one); ClusterKeyError if unusable."""
    url, key_file = database_url(args), cluster_key_file(args)
    if url is None:
        if getattr(args, "cluster_key", None) is not None:
            raise ClusterKeyError("--cluster-key is used only with --database URL (the embedded SQLite store keeps "
                                  "its keys in the data directory)")
        return None
    return ClusterKey.load(key_file) if key_file is not None else None


def open_store(args: argparse.Namespace) -> AnyStore:
    """The store the flags name: --database (with --cluster-key) or the data directory.

    With a database, guests run by this process derive their secrets from the cluster key too."""
    try:
        key = load_cluster_key(args)
        url = database_url(args)
        store = open_store_at(url or data_dir(args), cluster_key=key)
    except (StoreError, ClusterKeyError) as exc:
        raise SystemExit(f"wapo: {exc}") from None
    if url is not None and key is not None:
        from ..host.keys import use_cluster_seed
        use_cluster_seed(key.node_seed)
    return store


def argument_type(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its ValueError becomes the usage error argparse prints."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__  # argparse names the type in "invalid <name> value"
    return convert


size_arg = argument_type(parse_size)
duration_arg = argument_type(parse_duration)
cidr_arg = argument_type(parse_cidr)


def limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The limit flags shared by every command that runs guests."""
    d = Limits()
    parser.add_argument("--memory-limit", type=size_arg, default=d.memory, metavar="SIZE",
                        help="guest memory, e.g. 100MB (default), up to 4GB")
    parser.add_argument("--time-limit", type=duration_arg, default=d.time, metavar="DURATION",
                        help="wall time of the run, e.g. 60s (default); 0 = unlimited")
    parser.add_argument("--burst-limit", type=duration_arg, default=d.burst, metavar="DURATION",
                        help="CPU time inside the guest between two returns to the host (default 1s)")
    parser.add_argument("--max-log-lines", type=int, default=d.max_log_lines, metavar="N",
                        help=f"log lines kept per run (default {d.max_log_lines}); more are counted, then dropped")
    parser.add_argument("--max-log-bytes", type=size_arg, default=d.max_log_bytes, metavar="SIZE",
                        help="bytes of log messages kept per run (default 1MiB)")
    parser.add_argument("--fuel", type=int, default=None, metavar="N",
                        help="meter execution with N units of wasmtime fuel (off by default; costs speed)")
    h = HttpLimits()
    parser.add_argument("--allow-address", action="append", type=cidr_arg, default=[], metavar="CIDR",
                        help="let fetch reach this range although it is loopback/private/link-local/... "
                             "(repeatable), e.g. 127.0.0.1/32")
    parser.add_argument("--fetch-timeout", type=duration_arg, default=h.timeout, metavar="DURATION",
                        help=f"time from a fetch to its response head, redirects included (default {h.timeout:g}s)")
    parser.add_argument("--max-response-size", type=size_arg, default=h.max_response_size, metavar="SIZE",
                        help="largest fetch response body (default 100MB)")


def listen_arguments(parser: argparse.ArgumentParser) -> None:
    """Listening and TLS flags (their values are parsed by ``listen_settings``)."""
    parser.add_argument("--listen-ports", metavar="LOW-HIGH",
                        help="ports a wasm guest may listen on with tcp_listen: a range or one PORT (default: none)")
    parser.add_argument("--tls-ca", metavar="FILE",
                        help="a PEM file of extra CAs trusted by guests' TLS connections (tcp_connect_tls, "
                             "WapoSockets, WebSocket, fetch), besides the system roots")
    parser.add_argument("--ws-max-message", type=size_arg, default=None, metavar="SIZE",
                        help="the largest WebSocket message (and frame) a guest receives, as client or "
                             "server; more closes the socket with 1009 (default 16MiB)")
    parser.add_argument("--sni-port", metavar="[HOST:]PORT",
                        help="the shared TLS port where guests serve server names (tls_listen_sni); "
                             "HOST defaults to 127.0.0.1 (default: none, tls_listen_sni is refused)")


def listen_settings(args: argparse.Namespace, default_host: str = "127.0.0.1") -> dict:
    """NetworkPolicy fields of --listen-ports, --tls-ca, --sni-port; ValueError naming the bad flag."""
    fields: dict = {}
    flags = (("--listen-ports", "listen_ports"), ("--tls-ca", "tls_ca"), ("--sni-port", "sni_port"))
    for flag, name in flags:
        text = getattr(args, name, None)
        if text is None:
            continue
        try:
            if name == "listen_ports":
                fields["listen_ports"] = parse_port_range(text)
            elif name == "tls_ca":
                fields["tls_extra_ca"] = check_ca_file(text)
            else:
                fields["sni_host"], fields["sni_port"] = parse_sni_address(text, default_host)
        except ValueError as exc:
            raise ValueError(f"{flag} {text}: {exc}") from None
    return fields


def network_from(args: argparse.Namespace) -> NetworkPolicy:
    """The network policy of the flags --allow-address, --fetch-timeout, --max-response-size and,
    where the command has them, --listen-ports, --tls-ca, --sni-port."""
    d = HttpLimits()
    return NetworkPolicy(allow=tuple(getattr(args, "allow_address", None) or ()),
                         http=HttpLimits(timeout=getattr(args, "fetch_timeout", d.timeout),
                                         max_response_size=getattr(args, "max_response_size", d.max_response_size)),
                         **listen_settings(args))


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(memory=args.memory_limit, time=args.time_limit, burst=args.burst_limit, fuel=args.fuel,
                  max_log_lines=args.max_log_lines, max_log_bytes=args.max_log_bytes)


def cid_arg(text: str) -> str:
    """A CID in any form, as its CIDv0 (the form the store keys code, vaults and logs by)."""
    try:
        return parse_cid(text).v0
    except InvalidCID as exc:
        raise argparse.ArgumentTypeError(f"malformed CID: {exc}") from None
