"""Flags and helpers shared by the commands that use the data directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..paths import default_data_dir


def data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                        help="where code, vaults, logs and the node key live "
                             "(default: $WAPO_DATA_DIR or ~/.local/share/wapo)")


def data_dir(args: argparse.Namespace) -> Path:
    return args.data_dir or default_data_dir()


def open_store(args: argparse.Namespace):
    from ..store import Store, StoreError
    try:
        return Store(data_dir(args))
    except StoreError as exc:
        raise SystemExit(f"wapo: {exc}") from None
