"""``wapo serve``: the gateway. With no arguments it serves a sample agent on the embedded defaults."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..gateway.config import GatewayConfig, load_config, parse_per_minute
from .flags import cluster_key_file, data_dir, data_dir_argument, database_url
from .flags import argument_type, duration_arg, listen_arguments, listen_settings, size_arg

rate_arg = argument_type(parse_per_minute)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the gateway (/ipfs/<cid>, /vaults, /logs)",
                       description="Serve agents by CID over HTTP. On start it publishes a sample agent and "
                                   "prints its URL.")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="processes sharing the port (default 1)")
    p.add_argument("--guest-threads", type=int, default=None, metavar="N",
                   help="threads per process running guests, shared fairly between agents (default: "
                        "$WAPO_GUEST_THREADS or 4 per core; 0 runs guests on the event loop)")
    p.add_argument("--max-runs-per-cid", type=int, default=None, metavar="N",
                   help="runs of one agent at once; more answer 503 with Retry-After (default 100)")
    p.add_argument("--config", type=Path, default=None, metavar="FILE", help="a TOML config file")
    p.add_argument("--debug", action="store_true", help="show agent errors to callers")
    p.add_argument("--quiet", action="store_true", help="no line per request on stdout (access_log = false)")
    p.add_argument("--ipfs-gateway", action="append", default=[], metavar="URL",
                   help="fetch unknown CIDs from this IPFS HTTP gateway (repeatable; verified against the CID)")
    p.add_argument("--allow-address", action="append", default=[], metavar="CIDR",
                   help="let agents reach this range although loopback/private/link-local (repeatable)")
    p.add_argument("--memory-limit", type=size_arg, default=None, metavar="SIZE", help="per run (default 100MB)")
    p.add_argument("--time-limit", type=duration_arg, default=None, metavar="DURATION", help="per run (default 60s)")
    p.add_argument("--burst-limit", type=duration_arg, default=None, metavar="DURATION", help="per run (default 1s)")
    p.add_argument("--max-log-lines", type=int, default=None, metavar="N",
                   help="log lines kept per run; more are counted in one 'dropped' line (default 1000)")
    p.add_argument("--max-log-bytes", type=size_arg, default=None, metavar="SIZE",
                   help="bytes of log messages kept per run (default 1MiB)")
    p.add_argument("--max-vault-size", type=size_arg, default=None, metavar="SIZE",
                   help="the largest POST /vaults body (default 64KiB)")
    p.add_argument("--vault-rate-limit", type=rate_arg, default=None, metavar="RATE",
                   help="POST /vaults per client address: N a minute, or N/s, N/min, N/h (default 30; 0 = none)")
    p.add_argument("--header-timeout", type=duration_arg, default=None, metavar="DURATION",
                   help="time to receive a request's headers, from the connection's start or the request's first "
                        "byte (default 10s; 0 = none)")
    p.add_argument("--keepalive-timeout", type=duration_arg, default=None, metavar="DURATION",
                   help="an idle connection between requests is closed after this (default 30s)")
    p.add_argument("--min-body-rate", type=size_arg, default=None, metavar="SIZE",
                   help="bytes a second a request body must average over 5 s (default 1KiB; 0 = none)")
    p.add_argument("--max-connections", type=int, default=None, metavar="N",
                   help="open connections per process; more are answered 503 (default 1000; 0 = none)")
    p.add_argument("--shutdown-grace", type=duration_arg, default=None, metavar="DURATION",
                   help="on SIGTERM, what requests in flight have to finish (default 10s)")
    p.add_argument("--image-cache-size", type=size_arg, default=None, metavar="SIZE",
                   help="disk for hot agents' compiled image modules, least recently used removed beyond "
                        "(default $WAPO_IMAGE_CACHE_SIZE or 1GiB; 0 = no bound)")
    p.add_argument("--otlp-endpoint", default=None, metavar="URL",
                   help="export traces and agent logs over OTLP/HTTP to URL (/v1/traces, /v1/logs; default "
                        "$WAPO_OTLP_ENDPOINT; off without)")
    p.add_argument("--admin-token", default=None, metavar="TOKEN",
                   help="turn on /dashboard and the admin routes for this token (default $WAPO_ADMIN_TOKEN; "
                        "off without)")
    listen_arguments(p)  # --sni-port without HOST listens on the gateway's --host
    data_dir_argument(p)  # and --database URL, --cluster-key KEYFILE
    p.add_argument("--node-name", default=None, metavar="NAME",
                   help="this node's name in the X-Wapo-Node header and its runs' logs (default HOST:PORT)")
    p.add_argument("--node-url", default=None, metavar="URL",
                   help="with --database: where the other nodes reach this one to forward requests to the apps "
                        "it runs (default http://HOST:PORT)")


def config_from(args: argparse.Namespace) -> GatewayConfig:
    config = GatewayConfig()
    if args.config:
        config = load_config(args.config, config)
    changes: dict = {}
    for name in ("host", "port", "workers", "guest_threads", "max_runs_per_cid"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.debug:
        changes["debug"] = True
    if getattr(args, "quiet", False):
        changes["access_log"] = False
    if args.ipfs_gateway:
        changes["ipfs_gateways"] = tuple(args.ipfs_gateway)
    if args.allow_address:
        from ..host.net.policy import parse_cidr
        changes["allow_addresses"] = tuple(str(parse_cidr(c)) for c in args.allow_address)
    limits = {}
    if args.memory_limit is not None:
        limits["memory"] = args.memory_limit
    if args.time_limit is not None:
        limits["time"] = args.time_limit
    if args.burst_limit is not None:
        limits["burst"] = args.burst_limit
    if args.max_log_lines is not None:
        limits["max_log_lines"] = args.max_log_lines
    if args.max_log_bytes is not None:
        limits["max_log_bytes"] = args.max_log_bytes
    if limits:
        changes["limits"] = config.limits.with_(**limits)
    net = listen_settings(args, default_host=None)  # ValueError names the bad flag
    for field, key in (("listen_ports", "listen_ports"), ("tls_extra_ca", "tls_ca"), ("sni_port", "sni_port")):
        if field in net:
            changes[key] = net[field]
    if net.get("sni_host") is not None:
        changes["sni_host"] = net["sni_host"]
    for name in ("max_vault_size", "vault_rate_limit", "header_timeout", "keepalive_timeout", "min_body_rate",
                 "max_connections", "shutdown_grace", "image_cache_size"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.ws_max_message is not None:
        changes["ws_max_message"] = args.ws_max_message
    changes["data_dir"] = args.data_dir or config.data_dir or data_dir(args)
    changes["database_url"] = database_url(args, config.database_url)
    changes["cluster_key_file"] = cluster_key_file(args, config.cluster_key_file)
    if args.node_name:
        changes["node_name"] = args.node_name
    if args.node_url:
        changes["node_url"] = args.node_url
    changes.update(operator_settings(args, config))
    config = config.with_(**changes)
    config.check()
    config.network()  # the policy must be valid (e.g. an SNI host that can be bound) before serving
    return config


def operator_settings(args: argparse.Namespace, config: GatewayConfig) -> dict:
    """--otlp-endpoint and --admin-token: the flag, else the config file, else the environment."""
    return {"otlp_endpoint": args.otlp_endpoint or config.otlp_endpoint or os.environ.get("WAPO_OTLP_ENDPOINT") or None,
            "admin_token": args.admin_token or config.admin_token or os.environ.get("WAPO_ADMIN_TOKEN") or None}


def run(args: argparse.Namespace) -> int:
    from ..gateway.sample import SAMPLE_AGENT
    from ..gateway.server import run_server
    from ..js.runner import wapojs_module
    try:
        config = config_from(args)
    except ValueError as exc:
        print(f"wapo serve: {exc}", file=sys.stderr)
        return 2
    wapojs_module()  # build or load the guest before listening, not on the first request
    from ..gateway.storage import open_gateway_store
    from ..store import ClusterKeyError, StoreError
    try:
        with open_gateway_store(config) as store:  # the data directory, or the cluster's database
            sample = store.put_code(SAMPLE_AGENT.encode())
            where = store.description
    except (StoreError, ClusterKeyError) as exc:
        print(f"wapo serve: {exc}", file=sys.stderr)
        return 1
    base = f"http://{config.host if ':' not in config.host else f'[{config.host}]'}:{config.port}"

    def ready() -> None:
        print(f"wapo gateway on {base} (data in {where}, {config.workers} worker(s), node {config.node})", flush=True)
        if config.admin_token:
            print(f"dashboard: {base}/dashboard", flush=True)
        else:
            print("dashboard: off (turn it on with --admin-token TOKEN, admin_token in the config file, or "
                  "WAPO_ADMIN_TOKEN)", flush=True)
        print(f"sample agent: {base}/ipfs/{sample}?name=you", flush=True)

    try:
        run_server(config, ready=ready)
    except OSError as exc:
        print(f"wapo serve: cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
