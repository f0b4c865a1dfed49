"""``wapo publish FILE``: store code by its IPFS CID (the same id `ipfs add` gives)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..store import cidv1
from .flags import data_dir_argument, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="store an agent's code and print its CID",
                       description="Store FILE in the data directory under its CID, computed exactly as "
                                   "`ipfs add` does (CIDv0, UnixFS, 256 KiB chunks). The CID is the last line.")
    p.add_argument("file", type=Path, metavar="FILE")
    data_dir_argument(p)


def run(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"wapo publish: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        print(f"wapo publish: {args.file} is not UTF-8 JavaScript", file=sys.stderr)
        return 2
    with open_store(args) as store:
        cid = store.put_code(data)
    print(f"published {args.file} ({len(data)} bytes); CIDv1 {cidv1(cid)}; serve it at /ipfs/{cid}")
    print(cid)
    return 0
