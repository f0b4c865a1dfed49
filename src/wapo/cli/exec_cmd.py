"""``wapo exec FILE [args]``: run a JS script or a wasm guest once, locally."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from ..host import GuestModule, Instance, Limits, LogRecord, RunResult, WapoError
from ..host.net.policy import (HttpLimits, NetworkPolicy, check_ca_file, parse_cidr, parse_port_range, parse_sni_address)
from ..host.limits import parse_duration, parse_size

WASM_MAGIC = b"\0asm"
_VALUE_OPTIONS = {"--memory-limit", "--time-limit", "--burst-limit", "--fuel", "--allow-address",
                  "--fetch-timeout", "--max-response-size", "--listen-ports", "--tls-ca", "--sni-port",
                  "--ws-max-message"}
_FLAG_OPTIONS = {"--module", "--trace", "-h", "--help"}


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def limit_arguments(parser: argparse.ArgumentParser) -> None:
    """The limit flags shared by every command that runs guests."""
    d = Limits()
    parser.add_argument("--memory-limit", type=_size, default=d.memory, metavar="SIZE",
                        help="guest memory, e.g. 100MB (default), up to 4GB")
    parser.add_argument("--time-limit", type=_duration, default=d.time, metavar="DURATION",
                        help="wall time of the run, e.g. 60s (default); 0 = unlimited")
    parser.add_argument("--burst-limit", type=_duration, default=d.burst, metavar="DURATION",
                        help="CPU time inside the guest between two returns to the host (default 1s)")
    parser.add_argument("--fuel", type=int, default=None, metavar="N",
                        help="meter execution with N units of wasmtime fuel (off by default; costs speed)")
    h = HttpLimits()
    parser.add_argument("--allow-address", action="append", type=_cidr, default=[], metavar="CIDR",
                        help="let fetch reach this range although it is loopback/private/link-local/... "
                             "(repeatable), e.g. 127.0.0.1/32")
    parser.add_argument("--fetch-timeout", type=_duration, default=h.timeout, metavar="DURATION",
                        help=f"time from a fetch to its response head, redirects included (default {h.timeout:g}s)")
    parser.add_argument("--max-response-size", type=_size, default=h.max_response_size, metavar="SIZE",
                        help="largest fetch response body (default 100MB)")


def _cidr(text: str):
    try:
        return parse_cidr(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def listen_arguments(parser: argparse.ArgumentParser) -> None:
    """Listening and TLS flags (their values are parsed by ``listen_settings``)."""
    parser.add_argument("--listen-ports", metavar="LOW-HIGH",
                        help="ports a wasm guest may listen on with tcp_listen: a range or one PORT (default: none)")
    parser.add_argument("--tls-ca", metavar="FILE",
                        help="a PEM file of extra CAs trusted by guests' TLS connections (tcp_connect_tls, "
                             "WapoSockets, WebSocket, fetch), besides the system roots")
    parser.add_argument("--ws-max-message", type=_size, default=None, metavar="SIZE",
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
    return Limits(memory=args.memory_limit, time=args.time_limit, burst=args.burst_limit, fuel=args.fuel)


def _parser(prog: str = "wapo exec") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Run a JavaScript file (or a .wasm guest of the Wapo ABI) in a fresh sandbox. "
        "The program's output goes to stdout, its logs to stderr; the exit status is 1 if it fails. "
        "Arguments after FILE reach the script as scriptArgs (put them after -- if they look like options).")
    p.add_argument("file", metavar="FILE", help="a .js script, or a .wasm module exporting wapo_poll")
    p.add_argument("args", nargs="*", metavar="ARG", help="script arguments")
    limit_arguments(p)
    listen_arguments(p)
    p.add_argument("--module", action="store_true", help="evaluate the script as an ES module (default for .mjs)")
    p.add_argument("--trace", action="store_true", help="log every ocall of a wasm guest")
    return p


def add_parser(sub: argparse._SubParsersAction) -> None:
    model = _parser()
    sub.add_parser("exec", help="run a JS file or a wasm guest once", parents=[model], add_help=False,
                   description=model.description)


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our options may come before or after FILE; everything else after FILE is the script's."""
    ours: list[str] = []
    script: list[str] = []
    seen_file = False
    i = 0
    while i < len(argv):
        tok = argv[i]
        name = tok.split("=", 1)[0]
        if tok == "--":
            script += argv[i + 1:]
            break
        if name in _VALUE_OPTIONS:
            take = 1 if "=" in tok else 2
            ours += argv[i:i + take]
            i += take
            continue
        if tok in _FLAG_OPTIONS:
            ours.append(tok)
        elif not seen_file:
            ours.append(tok)
            seen_file = True
        else:
            script.append(tok)
        i += 1
    return ours, script


def print_log(record: LogRecord) -> None:
    prefix = "" if record.level == "info" else f"[{record.level}] "
    print(prefix + record.message, file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    ours, script_args = split_argv(argv)
    parser = _parser()
    args = parser.parse_args(ours)
    try:
        limits = limits_from(args)
        args.network = network_from(args)
        if args.ws_max_message is not None:
            from ..host.net.websocket import set_max_message_size
            set_max_message_size(args.ws_max_message)
    except ValueError as exc:
        parser.error(str(exc))
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"wapo exec: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_run(path, data, script_args, limits, args))
    except WapoError as exc:
        print(f"wapo exec: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(result.output)
    sys.stdout.flush()
    return 0 if result.ok else 1


async def _run(path: Path, data: bytes, script_args: list[str], limits: Limits,
               args: argparse.Namespace) -> RunResult:
    if data.startswith(WASM_MAGIC) or path.suffix in (".wasm", ".wat"):
        instance = Instance(GuestModule(data, name=path.name), args=script_args, limits=limits,
                            inherit_stdio=True, on_log=print_log,
                            network=args.network)
        if args.trace:
            instance._require_state().trace = True
        return await instance.run()
    from ..js.runner import js_instance
    try:
        code = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WapoError(f"{path} is neither a wasm module nor UTF-8 JavaScript") from exc
    module = args.module or path.suffix == ".mjs"
    instance = js_instance(code, script_args, limits=limits, module=module, name=path.name, on_log=print_log,
                           network=args.network)
    return await instance.run()
