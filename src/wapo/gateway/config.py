"""Gateway settings: embedded defaults, optionally a TOML file, then command-line flags."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..host import Limits
from ..host.limits import parse_duration, parse_size
from .cronspec import CronJob, parse_cron_tables

MB = 1000 * 1000
KiB = 1024


@dataclass(frozen=True)
class AppEntry:
    """A long-running app named in the config file (``[app.<id>]``): deployed when the gateway starts."""
    id: str
    file: Path
    listen: int | None = None
    on_demand: bool = False


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path | None = None
    workers: int = 1
    debug: bool = False  # show errors and stacks to callers (never in production)
    limits: Limits = Limits()
    max_limits: Limits = Limits(memory=4 * 1024**3, time=0, burst=10.0,  # what a per-CID override may reach
                                max_log_lines=100_000, max_log_bytes=64 * 1024**2)
    cid_limits: dict[str, Limits] = field(default_factory=dict)  # per-CID overrides (v0 CIDs)
    max_request_body: int = 10 * MB
    max_vault_size: int = 64 * KiB  # the largest POST /vaults body (413 above)
    vault_rate_limit: float = 30.0  # POST /vaults per client address and minute, bursts as large (0 = no limit)
    # slow or idle clients (0 = no limit, but keepalive_timeout 0 closes after each answer): gateway/server.py
    header_timeout: float = 10.0  # from a connection's start, or a request's first byte, to the end of its headers
    keepalive_timeout: float = 30.0  # an idle connection between requests
    min_body_rate: int = 1024  # bytes a second a request body must average over BODY_RATE_WINDOW
    max_connections: int = 1000  # open connections per process; more are answered 503 and closed
    shutdown_grace: float = 10.0  # on SIGTERM, seconds requests in flight have to finish
    max_answer: int = 32 * MB
    ipfs_gateways: tuple[str, ...] = ()  # e.g. ("https://ipfs.io",): where unknown CIDs are fetched
    ipfs_timeout: float = 30.0
    max_code_size: int = 20 * MB
    public_url: str | None = None  # the base URL agents see in request.url; default from the request
    log_max_per_cid: int = 10_000  # log retention: records kept per CID
    log_max_age: float = 7 * 24 * 3600  # log retention: seconds (0 = forever)
    allow_addresses: tuple[str, ...] = ()  # CIDRs agents may reach although loopback/private/...
    listen_ports: tuple[int, int] | None = None  # ports guests may bind with tcp_listen
    tls_ca: str | None = None  # PEM file of extra CAs for guests' TLS connections and fetch
    sni_port: int | None = None  # the shared TLS port of tls_listen_sni (None: refused)
    sni_host: str | None = None  # where it listens (None: the gateway's host)
    ws_max_message: int | None = None  # largest WebSocket message guests receive (None: 16 MiB)
    apps: tuple[AppEntry, ...] = ()  # apps of the config file, deployed at startup (as `wapo deploy`)
    # threads running guests (0: on the event loop itself; None: $WAPO_GUEST_THREADS or 4 per core)
    guest_threads: int | None = None
    max_runs_per_cid: int = 100  # runs of one agent at once; more answer 503 with Retry-After
    access_log: bool = True  # one line per request on stdout (`--quiet` / access_log = false: none)
    cron: tuple[CronJob, ...] = ()  # scheduled runs ([cron.<name>]; gateway/cron.py)
    metrics_top_cids: int = 20  # CIDs with their own label in the per-CID metrics; the rest are "other"
    # bytes of hot agents' compiled image modules on disk (cache_dir()/images), least recently
    # used pruned beyond (0 = no bound; None: $WAPO_IMAGE_CACHE_SIZE or 1 GiB): host/cache_bound.py
    image_cache_size: int | None = None
    otlp_endpoint: str | None = None  # OTLP/HTTP base URL: traces and logs exported there (gateway/telemetry.py)
    admin_token: str | None = None  # the dashboard and admin routes (none: they answer 404)
    # a cluster (issue 14, docs/cluster.md): a shared PostgreSQL store, its key, this node's name
    database_url: str | None = None  # postgresql://...; None: SQLite in data_dir
    cluster_key_file: Path | None = None  # needed with database_url
    node_name: str | None = None  # X-Wapo-Node and the logs' node (None: host:port)
    node_url: str | None = None  # where the other nodes reach this one (None: http://host:port)

    @property
    def node(self) -> str:
        """This node's name: ``node_name`` or ``host:port``."""
        return self.node_name or f"{self.host}:{self.port}"

    @property
    def advertised_url(self) -> str:
        """The base URL other nodes forward app requests to."""
        if self.node_url:
            return self.node_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            import socket
            host = socket.gethostname()
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def cluster_key(self):
        """The cluster key of ``cluster_key_file`` (ClusterKeyError if unusable)."""
        from ..store import ClusterKey, MissingClusterKey
        if self.cluster_key_file is None:
            raise MissingClusterKey("a database URL needs --cluster-key KEYFILE (see `wapo cluster init`)")
        return ClusterKey.load(self.cluster_key_file)

    def network(self):
        """The network policy of every run (fetch and sockets); ValueError if a setting is invalid."""
        from ..host.net.policy import NetworkPolicy
        return NetworkPolicy(allow=self.allow_addresses, listen_ports=self.listen_ports, tls_extra_ca=self.tls_ca,
                             sni_port=self.sni_port, sni_host=self.sni_host or self.host)

    def limits_for(self, cid: str) -> Limits:
        """The server limits, overridden per CID but never above ``max_limits``."""
        wanted = self.cid_limits.get(cid)
        if wanted is None:
            return self.limits
        cap = self.max_limits

        def capped(value: float, ceiling: float) -> float:
            return value if ceiling == 0 else (min(value, ceiling) if value else ceiling)

        return wanted.with_(memory=min(wanted.memory, cap.memory), time=capped(wanted.time, cap.time),
                            burst=min(wanted.burst, cap.burst),
                            max_log_lines=min(wanted.max_log_lines, cap.max_log_lines),
                            max_log_bytes=min(wanted.max_log_bytes, cap.max_log_bytes))

    def with_(self, **changes: object) -> "GatewayConfig":
        return replace(self, **changes)  # type: ignore[arg-type]

    def check(self) -> None:
        """ValueError naming the setting when one is out of range."""
        if self.workers < 1:
            raise ValueError("workers (--workers) must be at least 1")
        if self.max_connections < 0:
            raise ValueError("max_connections (--max-connections) must be 0 (no limit) or more")
        if self.guest_threads is not None and not 0 <= self.guest_threads <= 1024:
            raise ValueError(f"guest_threads (--guest-threads) is 0..1024, not {self.guest_threads}")
        if self.otlp_endpoint and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ValueError(f"otlp_endpoint (--otlp-endpoint) is an http:// or https:// URL of an OTLP/HTTP "
                             f"receiver (e.g. http://127.0.0.1:4318), not {self.otlp_endpoint!r}")
        if self.image_cache_size is not None and self.image_cache_size < 0:
            raise ValueError(f"image_cache_size (--image-cache-size) is 0 (no bound) or more, not {self.image_cache_size}")
        if self.metrics_top_cids < 0:
            raise ValueError(f"metrics_top_cids is 0 or more, not {self.metrics_top_cids}")
        if self.max_runs_per_cid < 1:
            raise ValueError(f"max_runs_per_cid (--max-runs-per-cid) is at least 1, not {self.max_runs_per_cid}")


def _limits(table: dict, base: Limits, where: str) -> Limits:
    """A [limits]-like table over ``base``; ValueError naming the table and the bad value."""
    try:
        changes = {key: parse(table[key]) for key, parse in _LIMIT_KEYS.items() if key in table}
        return base.with_(**changes)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _whole_number(key: str) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} is a whole number, not {value!r}")
        return value
    return parse


_LIMIT_KEYS: dict[str, Callable[[object], object]] = {
    "memory": lambda v: parse_size(str(v)), "time": lambda v: parse_duration(str(v)),
    "burst": lambda v: parse_duration(str(v)), "fuel": _whole_number("fuel"),
    "max_log_lines": _whole_number("max_log_lines"), "max_log_bytes": lambda v: parse_size(str(v)),
}


def parse_per_minute(value: object) -> float:
    """A rate per minute: a number (per minute) or "N/s", "N/min", "N/h"; ValueError if malformed."""
    text = str(value).strip()
    number, _, unit = text.partition("/")
    per = {"": 1.0, "s": 60.0, "sec": 60.0, "min": 1.0, "m": 1.0, "h": 1 / 60.0, "hour": 1 / 60.0}
    try:
        rate = float(number) * per[unit.strip()]
    except (ValueError, KeyError):
        raise ValueError(f"{value!r} is not a rate (e.g. 30, \"30/min\", \"1/s\")") from None
    if not rate >= 0 or rate == float("inf"):
        raise ValueError(f"{value!r}: a rate is a finite number >= 0")
    return rate


def _per_minute(value: object, path: Path) -> float:
    try:
        return parse_per_minute(value)
    except ValueError as exc:
        raise ValueError(f"config {path}: vault_rate_limit = {exc}") from None


def _listen_keys(data: dict) -> dict:
    """listen_ports = "8000-8099" (or 8080), tls_ca = "ca.pem", sni_port = 8443 (or "0.0.0.0:443")."""
    from ..host.net.policy import check_ca_file, parse_port_range, parse_sni_address
    changes: dict = {}
    for key in ("listen_ports", "tls_ca", "sni_port"):
        if key not in data:
            continue
        value = data[key]
        try:
            if key == "listen_ports":
                changes[key] = parse_port_range(str(value))
            elif key == "tls_ca":
                changes[key] = check_ca_file(str(value))
            else:
                host, changes["sni_port"] = parse_sni_address(str(value), None)
                if host is not None:
                    changes["sni_host"] = host
        except ValueError as exc:
            raise ValueError(f"{key} = {value!r}: {exc}") from None
    return changes


def load_config(path: Path, base: GatewayConfig = GatewayConfig()) -> GatewayConfig:
    """Read a TOML file: top-level keys of GatewayConfig, [limits], [max_limits], [cid."Qm..."].

    Top level: host, port, workers, debug, public_url, access_log (a line per request on stdout, true), data_dir, max_request_body, max_answer,
    max_code_size, max_vault_size (the largest POST /vaults body, "64KiB" by default),
    vault_rate_limit (POST /vaults per client address and minute, 30 by default, 0 = none),
    header_timeout ("10s"), keepalive_timeout ("30s"), min_body_rate (bytes a second, "1KiB"),
    max_connections (per process, 1000), shutdown_grace ("10s": what requests in flight have on
    SIGTERM), ws_max_message (the largest WebSocket message, and frame, a guest receives:
    "16MiB" by default), guest_threads (threads running guests; 0 = on the event loop),
    max_runs_per_cid (runs of one agent at once, 100 by default), log_max_per_cid, log_max_age, allow_addresses = ["CIDR", ...],
    ipfs_gateways = ["URL", ...], and the guests' listening and TLS settings (as the flags of
    ``wapo serve``): listen_ports = "LOW-HIGH" or PORT (tcp_listen may bind only these),
    tls_ca = "FILE" (extra CAs, PEM, for tcp_connect_tls, WapoSockets, WebSocket and fetch),
    sni_port = PORT or "HOST:PORT" (the shared TLS port of tls_listen_sni; HOST defaults to the
    gateway's host).

    Apps: ``[app.<id>]`` tables with ``file = "app.js"`` (relative to the config file), optional
    ``listen = PORT`` and ``on_demand = true``: deployed when ``wapo serve`` starts, as
    ``wapo deploy FILE --id <id> [--listen PORT] [--on-demand]`` would.

    Scheduled runs: ``[cron.<name>]`` tables with ``cid``, ``schedule`` (cron syntax, optionally
    ``"CRON_TZ=Europe/Paris ..."``; 6 fields put seconds first), optional ``timezone``, ``path``,
    ``method``, ``body`` and ``vault_key`` (gateway/cronspec.py). ``metrics_top_cids`` (20): CIDs
    with their own label in the per-CID metrics. ``image_cache_size`` ("1GiB"; 0 = no bound): the
    disk taken by hot agents' compiled image modules. ``otlp_endpoint`` (an OTLP/HTTP base URL) exports
    traces and logs; ``admin_token`` turns on the dashboard (``/dashboard``) and the admin routes.
    """
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read config {path}: {exc}") from exc
    changes: dict = {}
    for key in ("host", "debug", "public_url", "otlp_endpoint", "admin_token", "access_log"):
        if key in data:
            changes[key] = data[key]
    for key in ("port", "workers", "max_connections", "guest_threads", "max_runs_per_cid"):
        if key in data:
            changes[key] = int(data[key])
    if "data_dir" in data:
        changes["data_dir"] = Path(data["data_dir"])
    for key in ("max_request_body", "max_answer", "max_code_size", "max_vault_size", "min_body_rate",
                "ws_max_message", "image_cache_size"):
        if key in data:
            changes[key] = parse_size(str(data[key]))
    if "vault_rate_limit" in data:
        changes["vault_rate_limit"] = _per_minute(data["vault_rate_limit"], path)
    if "log_max_per_cid" in data:
        changes["log_max_per_cid"] = int(data["log_max_per_cid"])
    for key in ("log_max_age", "header_timeout", "keepalive_timeout", "shutdown_grace"):
        if key in data:
            changes[key] = parse_duration(str(data[key]))
    if "allow_addresses" in data:
        changes["allow_addresses"] = tuple(str(c) for c in data["allow_addresses"])
    try:
        changes.update(_listen_keys(data))
    except ValueError as exc:
        raise ValueError(f"config {path}: {exc}") from None
    if "ipfs_gateways" in data:
        changes["ipfs_gateways"] = tuple(data["ipfs_gateways"])
    if "limits" in data:
        changes["limits"] = _limits(data["limits"], base.limits, f"config {path}: [limits]")
    if "max_limits" in data:
        changes["max_limits"] = _limits(data["max_limits"], base.max_limits, f"config {path}: [max_limits]")
    if "app" in data:
        changes["apps"] = _apps(data["app"], Path(path).parent, path)
    changes.update(_cluster_keys(data, Path(path)))
    if "cron" in data:
        changes["cron"] = parse_cron_tables(data["cron"], path)
    if "metrics_top_cids" in data:
        changes["metrics_top_cids"] = int(data["metrics_top_cids"])
    if "cid" in data:
        from ..store import parse_cid
        limits = changes.get("limits", base.limits)
        changes["cid_limits"] = {parse_cid(cid).v0: _limits(table, limits, f"config {path}: [cid.{cid!r}]")
                                for cid, table in data["cid"].items()}
    return base.with_(**changes)


def _apps(tables: object, base: Path, path: Path) -> tuple[AppEntry, ...]:
    if not isinstance(tables, dict):
        raise ValueError(f"config {path}: [app.<id>] tables are expected")
    entries = []
    for app_id, table in tables.items():
        where = f"config {path}: [app.{app_id}]"
        if not isinstance(table, dict) or not isinstance(table.get("file"), str):
            raise ValueError(f"{where}: file = \"app.js\" is required")
        unknown = set(table) - {"file", "listen", "on_demand"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        listen = table.get("listen")
        if listen is not None and (not isinstance(listen, int) or not 1 <= listen <= 65535):
            raise ValueError(f"{where}: listen = {listen!r}: a port is 1..65535")
        on_demand = table.get("on_demand", False)
        if not isinstance(on_demand, bool):
            raise ValueError(f"{where}: on_demand is true or false")
        entries.append(AppEntry(id=str(app_id), file=(base / table["file"]).resolve(), listen=listen,
                                on_demand=on_demand))
    return tuple(entries)


def _cluster_keys(data: dict, path: Path) -> dict:
    """``[database] url = "postgresql://..."``, ``[cluster] key_file = "cluster.key"`` (relative to
    the config file) and ``node_name``."""
    changes: dict = {}
    for table, key, field_name in (("database", "url", "database_url"), ("cluster", "key_file", "cluster_key_file")):
        section = data.get(table)
        if section is None:
            continue
        if not isinstance(section, dict) or not isinstance(section.get(key, ""), str):
            raise ValueError(f"config {path}: [{table}] {key} = \"...\" is expected")
        if section.get(key):
            value = section[key]
            changes[field_name] = (path.parent / value).resolve() if field_name == "cluster_key_file" else value
    for key in ("node_name", "node_url"):
        if key in data:
            changes[key] = str(data[key])
    return changes
