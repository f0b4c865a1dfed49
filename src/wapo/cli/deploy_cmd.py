"""``wapo deploy FILE``: record a long-running app in the data directory (a running gateway starts it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .flags import data_dir, data_dir_argument, database_url, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="deploy a long-running app (wasm guest or JS) to the gateway's data directory",
                       description="Record FILE (a .wasm/.wat Wapo guest or a JS program) as an app. `wapo serve` "
                                   "starts recorded apps at startup and picks up new deployments within a few "
                                   "seconds; it serves them at /app/<id>/... (HTTP) and /app/<id>/query/... .")
    p.add_argument("file", type=Path, nargs="?", metavar="FILE")
    p.add_argument("--id", default=None, help="the app id (default: the file name without extension)")
    p.add_argument("--on-demand", action="store_true",
                   help="start an instance per request or query instead of keeping one running")
    p.add_argument("--listen", type=int, default=None, metavar="PORT", help="a TCP port the app may listen on")
    p.add_argument("--list", action="store_true", help="list the deployed apps")
    p.add_argument("--remove", default=None, metavar="ID", help="remove a deployed app")
    data_dir_argument(p)


def run(args: argparse.Namespace) -> int:
    from ..store.apps import AppRecords
    if database_url(args):  # a cluster: the app goes into the database; one node will run it
        from ..store.pgapps import PgAppRecords
        store = open_store(args)
        try:
            return _run(args, PgAppRecords(store))
        finally:
            store.close()
    return _run(args, AppRecords(data_dir(args)))


def _run(args: argparse.Namespace, records) -> int:
    from ..store.apps import AppRecordError
    if args.list:
        for record in records.load().values():
            mode = "on-demand" if record.on_demand else "long-running"
            state = " (stopped)" if record.stopped else ""
            print(f"{record.id}\t{record.kind}\t{mode}{state}\t{record.file}")
        return 0
    if args.remove:
        if not records.remove(args.remove):
            print(f"wapo deploy: no app {args.remove!r}", file=sys.stderr)
            return 1
        print(f"removed app {args.remove}")
        return 0
    if args.file is None:
        print("wapo deploy: give a FILE to deploy (or --list / --remove ID)", file=sys.stderr)
        return 2
    try:
        record = records.deploy(args.file, args.id, on_demand=args.on_demand, listen=args.listen)
    except AppRecordError as exc:
        print(f"wapo deploy: {exc}", file=sys.stderr)
        return 2
    mode = "on-demand" if record.on_demand else "long-running"
    print(json.dumps({"id": record.id, "kind": record.kind, "mode": mode, "sha256": record.sha256,
                      "listen": record.listen, "records": str(records.path)}))
    where = "one node of the cluster" if database_url(args) else "a running `wapo serve` on this data directory"
    print(f"deployed app {record.id} ({record.kind}, {mode}); {where} starts it within a few seconds: "
          f"/app/{record.id}/", file=sys.stderr)
    return 0
