"""``wapo cluster init KEYFILE``: make the key every node of a cluster shares (docs/cluster.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..store import ClusterKeyError, write_cluster_key


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="set up several gateways on one PostgreSQL database",
                       description="Nodes sharing a --database share a cluster key: it seals the vaults and "
                                   "seeds deriveSecret/sign, so every node must hold the same file.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="write a new cluster key (mode 0600); refuses to overwrite one",
                              description="Write a new random cluster key to KEYFILE (mode 0600).")
    init.add_argument("keyfile", type=Path, metavar="KEYFILE")


def run(args: argparse.Namespace) -> int:
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
