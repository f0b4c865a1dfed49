"""``wapo build``: build (or find) the WapoJS guest and print its path."""

from __future__ import annotations

import argparse

from ..js import build


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build the WapoJS guest (done by the install; cached)",
                       description="Build the WapoJS guest (QuickJS-ng + glue) with the zig toolchain, "
                                   "unless a build of the current sources exists, and print its path.")
    p.add_argument("--force", action="store_true", help="rebuild even if a build exists")


def run(args: argparse.Namespace) -> int:
    try:
        path = build.build() if args.force else build.ensure_wasm()
    except build.BuildError as exc:
        print(f"wapo build: {exc}")
        return 1
    print(path)
    return 0
