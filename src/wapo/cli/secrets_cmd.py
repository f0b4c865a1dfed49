"""``wapo secrets set CID k=v...``: create a vault for an agent and print its key and token."""

from __future__ import annotations

import argparse
import json
import sys

from ..store import VaultForbidden, VaultNotFound, VaultUnauthorized
from .flags import cid_arg, data_dir_argument, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("secrets", help="manage agents' secrets (vaults)",
                       description="Vaults hold an agent's secrets; callers pass ?key=<key> to /ipfs/<cid>.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = actions.add_parser("set", help="create a vault for CID and print its key and token",
                           description="Create a vault bound to CID holding the given k=v pairs (or --json). "
                                       "Prints a JSON object with key and token.")
    s.add_argument("cid", metavar="CID", type=cid_arg)
    s.add_argument("pairs", nargs="*", metavar="k=v")
    s.add_argument("--json", default=None, metavar="OBJECT", help="secrets as a JSON object (merged with k=v)")
    s.add_argument("--inherit", default=None, metavar="KEY", help="a parent vault of the same CID (needs "
                   "--inherit-token)")
    s.add_argument("--inherit-token", default=None, metavar="TOKEN",
                   help="the parent vault's token: the proof that you own it")
    data_dir_argument(s)
    g = actions.add_parser("get", help="show a vault's own data", description="Show the data of vault KEY.")
    g.add_argument("key")
    g.add_argument("token")
    data_dir_argument(g)


def run(args: argparse.Namespace) -> int:
    if args.action == "get":
        with open_store(args) as store:
            try:
                vault = store.get_vault(args.key, args.token)
            except VaultNotFound:
                print("wapo secrets: no such vault (or a wrong token)", file=sys.stderr)
                return 1
        print(json.dumps(vault))
        return 0
    data: dict = {}
    if args.json is not None:
        try:
            data = json.loads(args.json)
        except ValueError as exc:
            print(f"wapo secrets: --json is not JSON: {exc}", file=sys.stderr)
            return 2
        if not isinstance(data, dict):
            print("wapo secrets: --json must be an object", file=sys.stderr)
            return 2
    for pair in args.pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            print(f"wapo secrets: expected k=v, got {pair!r}", file=sys.stderr)
            return 2
        data[key] = value
    cid = args.cid
    if args.inherit is not None and args.inherit_token is None:
        print("wapo secrets: --inherit KEY needs --inherit-token TOKEN (the parent vault's token)", file=sys.stderr)
        return 2
    if args.inherit_token is not None and args.inherit is None:
        print("wapo secrets: --inherit-token without --inherit", file=sys.stderr)
        return 2
    with open_store(args) as store:
        try:
            key, token = store.create_vault(cid, data, args.inherit, args.inherit_token)
        except VaultUnauthorized:
            print("wapo secrets: wrong --inherit-token for the inherited vault", file=sys.stderr)
            return 1
        except VaultForbidden:
            print("wapo secrets: the inherited vault belongs to another CID", file=sys.stderr)
            return 1
        except VaultNotFound:
            print("wapo secrets: the inherited vault does not exist", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"wapo secrets: {exc}", file=sys.stderr)
            return 2
    print(json.dumps({"key": key, "token": token}))
    print(f"call it with /ipfs/{cid}?key={key}", file=sys.stderr)
    return 0
