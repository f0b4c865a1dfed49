"""What ``wapo dev`` does around the gateway: builds (bundled or plain) published into a dev store,
the current build served at ``/``, rebuilds on change, and a report of each run: its error with
the mapped stack, and a warning when it came within ``NEAR`` of a limit."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..agent.check import AgentCheckFailed, check_agent
from ..host import Limits
from ..store import Store
from ..store.sourcemaps import attach_source_map
from . import bundling

NEAR = 0.8  # warn when a run uses this share of a limit
IGNORED_DIRS = {"node_modules", ".git", "dist", "__pycache__", ".wapo"}


class BuildFailed(RuntimeError):
    """The sources do not build into an agent; the message says why (the previous build stays)."""


@dataclass(frozen=True)
class Build:
    cid: str
    size: int
    seconds: float
    bundled: bool


def build_into(target: Path, store: Store) -> Build:
    """Build ``target`` (folder, .ts, or .js) and publish it, with its source map, into ``store``
    (as ``wapo publish`` does: the same bytes, so the same CID)."""
    started = time.monotonic()
    source_map = None
    try:
        if bundling.needs_bundle(target):
            bundle = bundling.bundle(target)
            data, source_map, name = bundle.code, bundle.source_map, bundle.name
        else:
            data, name = target.read_bytes(), target.name
        code = data.decode("utf-8")
    except bundling.BundleError as exc:
        raise BuildFailed(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BuildFailed(f"cannot read {target}: {exc}") from None
    try:
        check_agent(code, name)
    except AgentCheckFailed as exc:
        raise BuildFailed(str(exc)) from None
    if source_map is not None:
        data = attach_source_map(store, data, source_map)
    cid = store.put_code(data)
    return Build(cid, len(data), time.monotonic() - started, source_map is not None)


def watch_root(target: Path) -> Path:
    """What to watch: the project folder (or the file's folder)."""
    target = target.resolve()
    return target if target.is_dir() else bundling.project_root(target)


def watch_filter(change: object, path: str) -> bool:
    """Source changes only: not node_modules, .git, dist, editors' swap files."""
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    return not (IGNORED_DIRS & set(parts)) and not name.endswith(("~", ".swp", ".swx", ".tmp")) \
        and not name.startswith(".#")


def near_limits(result, limits: Limits) -> list[str]:
    """What the run came within ``NEAR`` of: "burst 850 ms of 1000 ms (85%)"..."""
    found = []
    if limits.burst and result.longest_burst >= NEAR * limits.burst:
        found.append(f"CPU burst {result.longest_burst * 1000:.0f} ms of {limits.burst * 1000:.0f} ms "
                     f"({result.longest_burst / limits.burst:.0%}; --burst-limit)")
    if limits.memory and result.memory_peak >= NEAR * limits.memory:
        found.append(f"memory {result.memory_peak / 2**20:.1f} MiB of {limits.memory / 2**20:.1f} MiB "
                     f"({result.memory_peak / limits.memory:.0%}; --memory-limit)")
    if limits.time and result.duration >= NEAR * limits.time:
        found.append(f"wall time {result.duration:.1f} s of {limits.time:g} s "
                     f"({result.duration / limits.time:.0%}; --time-limit)")
    return found


def run_reporter(limits_for: Callable[[str], Limits], out=None):
    """The gateway's run observer for dev: errors with their mapped stacks, near-limit warnings."""
    def report(cid: str, request_id: str, result, entries: list) -> None:
        stream = out or sys.stdout
        for level, message, _ in entries:
            if level == "error":
                print(f"  error in run {request_id}:\n" + "\n".join("    " + line for line in message.splitlines()),
                      file=stream, flush=True)
        if result is not None:
            for what in near_limits(result, limits_for(cid)):
                print(f"  warning: run {request_id} came within {NEAR:.0%} of a limit: {what}", file=stream,
                      flush=True)
    return report
