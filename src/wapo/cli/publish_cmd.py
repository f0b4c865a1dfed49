"""``wapo publish FILE|DIR``: check an agent, bundle it if it needs bundling (a .ts file, a file with
imports, a project folder), and store it by its IPFS CID (the same id `ipfs add` gives)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..store import cidv1
from ..store.sourcemaps import attach_source_map
from .flags import data_dir_argument, open_store


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("publish", help="check, bundle if need be, and store an agent's code; print its CID",
                       description="Store an agent in the data directory under its CID, computed exactly as "
                                   "`ipfs add` does (CIDv0, UnixFS, 256 KiB chunks). The CID is the last line. "
                                   "A folder with package.json, a .ts file or a file with bare imports is "
                                   "bundled with esbuild first (its source map is stored beside it). The code "
                                   "must compile and be in one of the three agent styles (--force skips the checks).")
    p.add_argument("file", type=Path, metavar="FILE_OR_DIR")
    p.add_argument("--force", action="store_true", help="publish even if the checks refuse the code")
    p.add_argument("--no-bundle", action="store_true", help="store the file as it is, never bundle it")
    data_dir_argument(p)


def run(args: argparse.Namespace) -> int:
    from ..agent.check import AgentCheckFailed, check_agent
    from . import bundling
    target: Path = args.file
    source_map: bytes | None = None
    try:
        if not args.no_bundle and bundling.needs_bundle(target):
            bundle = bundling.bundle(target)
            data, source_map, name = bundle.code, bundle.source_map, bundle.name
            print(f"bundled {target} with esbuild {bundle.esbuild_version}: {len(data)} bytes "
                  f"(source map {len(source_map or b'')} bytes)", file=sys.stderr)
        else:
            data, name = target.read_bytes(), target.name
    except IsADirectoryError:
        print(f"wapo publish: {target} is a folder without package.json: give the agent's file, "
              "or a project folder (`wapo init` makes one)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"wapo publish: cannot read {target}: {exc.strerror}", file=sys.stderr)
        return 2
    except bundling.BundleError as exc:
        print(f"wapo publish: {exc}", file=sys.stderr)
        return 2
    try:
        code = data.decode("utf-8")
    except UnicodeDecodeError:
        print(f"wapo publish: {target} is not UTF-8 JavaScript", file=sys.stderr)
        return 2
    try:
        check_agent(code, name)
    except AgentCheckFailed as exc:
        if not args.force:
            print(f"wapo publish: refused: {exc}\n(--force publishes it anyway)", file=sys.stderr)
            return 1
        print(f"wapo publish: warning (published anyway, --force): {exc}", file=sys.stderr)
    with open_store(args) as store:
        if source_map is not None:  # stored as a blob; the bundle's last line names it
            data = attach_source_map(store, data, source_map)
        cid = store.put_code(data)
    print(f"published {target} ({len(data)} bytes); CIDv1 {cidv1(cid)}; serve it at /ipfs/{cid}")
    print(cid)
    return 0
