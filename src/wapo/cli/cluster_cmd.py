"""``wapo cluster init KEYFILE``: make the key every node of a cluster shares (docs/cluster.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..store import ClusterKeyError, write_cluster_key
from .flags import database_arguments, database_url, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="set up several gateways on one PostgreSQL database",
                       description="Nodes sharing a --database share a cluster key: it seals the vaults and "
                                   "seeds deriveSecret/sign, so every node must hold the same file.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="write a new cluster key (mode 0600); refuses to overwrite one",
                              description="Write a new random cluster key to KEYFILE (mode 0600).")
    init.add_argument("keyfile", type=Path, metavar="KEYFILE")
    status = actions.add_parser("status", help="the cluster's nodes, which node runs each app, the schema",
                                description="Read from the database: live nodes, app owners, schema version.")
    status.add_argument("--format", choices=("text", "json"), default="text")
    database_arguments(status)


def run(args: argparse.Namespace) -> int:
    if args.action == "status":
        return _status(args)
    try:
        key = write_cluster_key(args.keyfile)
    except ClusterKeyError as exc:
        print(f"wapo cluster init: {exc}", file=sys.stderr)
        return 1
    path = key.path
    print(f"wrote a new cluster key to {path} (mode 0600)")
    print("Give every node of the cluster this same file, over a channel you trust, and keep a backup: "
          "vaults sealed with it cannot be read without it.")
    print(f"  copy it:      scp {path} NODE:/etc/wapo/cluster.key   (then chmod 600 on the node)")
    print(f"  Kubernetes:   kubectl create secret generic wapo-cluster --from-file=cluster.key={path} "
          "--from-literal=database-url=postgresql://USER:PASSWORD@HOST/DB")
    print("  then on each node: wapo serve --database postgresql://USER@HOST/DB --cluster-key /etc/wapo/cluster.key "
          "(or WAPO_DATABASE_URL and WAPO_CLUSTER_KEY_FILE)")
    return 0


def _status(args: argparse.Namespace) -> int:
    if not database_url(args):
        print("wapo cluster status: give --database URL (or WAPO_DATABASE_URL) and --cluster-key KEYFILE",
              file=sys.stderr)
        return 2
    args.data_dir = None
    from ..store.pgapps import PgAppRecords
    with open_store(args) as store:
        records = PgAppRecords(store)
        nodes, leases, apps = records.nodes(), records.leases(), records.load()
        schema = store.schema_version
    if args.format == "json":
        print(json.dumps({"schema": schema,
                          "nodes": [{"node": n, "url": u, "seenSecondsAgo": round(a, 1)} for n, u, a in nodes],
                          "apps": {a: (leases[a].node if a in leases else None) for a in sorted(apps)}}))
        return 0
    print(f"schema version {schema}")
    for node, url, ago in nodes:
        print(f"node {node}\t{url}\t{'live' if ago < 10 else f'last seen {ago:.0f} s ago'}")
    for app_id in sorted(apps):
        owner = leases.get(app_id)
        print(f"app {app_id}\t{owner.node if owner else '(no owner: a node takes it over shortly)'}")
    return 0
