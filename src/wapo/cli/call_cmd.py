"""``wapo call FILE_OR_CID``: run an agent locally, exactly as the gateway would, and print its answer."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote, urlencode

from ..agent import AgentRequest, call_agent
from ..store import InvalidCID, parse_cid
from . import bundling
from .flags import data_dir, data_dir_argument, open_store
from .exec_cmd import print_log
from .flags import limit_arguments, limits_from, network_from


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("call", help="run an agent once, locally, and print its HTTP answer",
                       description="Run an agent (a file, or a CID published to the data directory) with a "
                                   "request built from the flags, exactly as the gateway would, and print "
                                   "the HTTP answer: status line, headers, blank line, body. Logs go to stderr.")
    p.add_argument("target", metavar="FILE_OR_CID")
    p.add_argument("--method", "-X", default="GET", metavar="M")
    p.add_argument("--path", default="/", metavar="P", help="the path after /ipfs/<cid>")
    p.add_argument("--query", action="append", default=[], metavar="k=v", help="repeatable")
    p.add_argument("--header", "-H", action="append", default=[], metavar="'K: V'", help="repeatable")
    p.add_argument("--data", "-d", default=None, metavar="BODY", help="request body (@FILE reads a file)")
    p.add_argument("--secret", default=None, metavar="JSON", help="the secrets the agent receives (a JSON object)")
    p.add_argument("--body-only", action="store_true", help="print only the body")
    p.set_defaults(parser=p)
    data_dir_argument(p)
    limit_arguments(p)


def _request(args: argparse.Namespace, parser_error) -> AgentRequest:
    query = []
    for item in args.query:
        key, sep, value = item.partition("=")
        if not sep:
            parser_error(f"--query wants k=v, got {item!r}")
        query.append((key, value))
    headers = []
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            parser_error(f"--header wants 'Name: value', got {item!r}")
        headers.append((name.strip(), value.strip()))
    body = b""
    if args.data is not None:
        if args.data.startswith("@"):
            try:
                body = Path(args.data[1:]).read_bytes()
            except OSError as exc:
                parser_error(f"cannot read {args.data[1:]}: {exc.strerror}")
        else:
            body = args.data.encode()
    secret = {}
    if args.secret is not None:
        try:
            secret = json.loads(args.secret)
        except ValueError as exc:
            parser_error(f"--secret is not JSON: {exc}")
        if not isinstance(secret, dict):
            parser_error("--secret must be a JSON object")
    path = args.path if args.path.startswith("/") else "/" + args.path
    url = "http://localhost" + quote(path, safe="/%:@!$&'()*+,;=-._~") + (f"?{urlencode(query)}" if query else "")
    return AgentRequest(method=args.method.upper(), path=path, query=query, headers=headers, body=body,
                        secret=secret, url=url)


def _load(args: argparse.Namespace) -> tuple[str, str, str, bytes | None]:
    """(code, name, app id, source map) of a file (bundled if it needs it), a project folder, or a
    CID in the store."""
    from ..store.sourcemaps import load_source_map
    path = Path(args.target)
    if path.exists():
        if bundling.needs_bundle(path):
            try:
                built = bundling.bundle(path, name=(path.stem or path.resolve().name or "agent") + ".bundle.js")
            except bundling.BundleError as exc:
                raise SystemExit(f"wapo call: {exc}") from None
            return built.code.decode("utf-8"), built.name, "", built.source_map
        return path.read_text(encoding="utf-8"), path.name, "", None
    try:
        cid = parse_cid(args.target).v0
    except InvalidCID as exc:
        raise SystemExit(f"wapo call: {args.target} is neither a file nor a CID ({exc})") from None
    with open_store(args) as store:
        code = store.get_code(cid)
        source_map = load_source_map(store, code) if code is not None else None
    if code is None:
        raise SystemExit(f"wapo call: {cid} is not in {data_dir(args)} (publish it with `wapo publish`)")
    return code.decode("utf-8"), f"{cid}.js", cid, source_map


def run(args: argparse.Namespace) -> int:
    error = args.parser.error
    request = _request(args, error)
    try:
        limits = limits_from(args)
        network = network_from(args)
    except ValueError as exc:
        error(str(exc))
    code, name, app_id, source_map = _load(args)
    mapped = bundling.stack_mapper(source_map, name)
    result = asyncio.run(call_agent(code, request, limits=limits, name=name, app_id=app_id,
                                    data_dir=data_dir(args), network=network))
    for record in result.logs:
        print_log(record if record.level != "error" else replace(record, message=mapped(record.message)))
    if result.response is None:
        print(f"HTTP/1.1 500 Internal Server Error\n\nthe agent failed: {mapped(result.error or '')}",
              file=sys.stderr)
        return 1
    response = result.response
    out = sys.stdout.buffer
    if not args.body_only:
        try:
            reason = HTTPStatus(response.status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {response.status} {reason}".rstrip()]
        lines += [f"{k}: {v}" for k, v in response.headers]
        out.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    out.write(response.body)
    out.flush()
    return 0
