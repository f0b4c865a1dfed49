"""Where wapo keeps its caches and its data. Standard library only: the install step imports it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("WAPO_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "wapo"


def default_data_dir() -> Path:
    """Where the store, vault key and node key live unless --data-dir says otherwise."""
    env = os.environ.get("WAPO_DATA_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "wapo"
