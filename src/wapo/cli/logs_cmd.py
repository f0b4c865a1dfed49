"""``wapo logs CID``: the logs of an agent's runs, newest first."""

from __future__ import annotations

import argparse
import json
import sys

from ..store import format_text
from .flags import cid_arg, data_dir_argument, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="show an agent's logs", description="Show the logs of CID's runs, newest first.")
    p.add_argument("cid", metavar="CID", type=cid_arg)
    p.add_argument("--request-id", default=None)
    p.add_argument("--page", type=int, default=1, help="1..100")
    p.add_argument("--limit", type=int, default=100, help="1..100")
    p.add_argument("--format", choices=("text", "json"), default="text")
    data_dir_argument(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        try:
            records = store.query_logs(args.cid, args.request_id, args.page, args.limit)
        except ValueError as exc:
            print(f"wapo logs: {exc}", file=sys.stderr)
            return 2
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in records]))
    else:
        sys.stdout.write(format_text(records))
    return 0
