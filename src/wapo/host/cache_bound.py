"""A size bound on a directory of compiled artifacts (``cache_dir()/<kind>``, wapo.host.module),
kept by removing the least recently used ones whenever one is written.

"Used" is the artifact's mtime: set when it is written, and again (``touch``) when a process
loads it and, at most every ``TOUCH_EVERY`` seconds, while runs use it (ImageModule.mark_used).
atime is not used: most filesystems are mounted relatime or noatime. Several worker processes
share a directory with no lock between them: every step here tolerates a file that another
process removed or replaced meanwhile, and a removed file is only a cache miss for its next
loader (it is compiled again; a process that already loaded it keeps its mapping: the inode
lives on until unmapped). Loading checks the digest of the very file it maps (module.py), so a
pruned, replaced or half-written file is never run.

Bounded kinds: ``images`` (hot agents' image modules, several MB each, one per hot CID):
``WAPO_IMAGE_CACHE_SIZE`` or ``image_cache_size`` / ``--image-cache-size`` of ``wapo serve``,
1 GiB by default, 0 = no bound. Other kinds (the guest's few modules) are not bounded."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .limits import parse_size

IMAGE_CACHE_ENV = "WAPO_IMAGE_CACHE_SIZE"
DEFAULT_IMAGE_CACHE = 1024 ** 3
TOUCH_EVERY = 60.0  # seconds: how stale an artifact's mtime may get while it is in use
# A temporary file older than this was left by a process killed mid-write (a write takes well
# under a second): removed by the next prune. Younger ones may be another process's write.
TMP_GRACE = 600.0
TMP_SUFFIX = ".tmp"
DIGEST_SUFFIX = ".sha256"

_limits: dict[str, int] = {}


def set_limit(kind: str, nbytes: int | None) -> None:
    """Bound ``cache_dir()/<kind>`` to ``nbytes`` (0: no bound; None: back to the default)."""
    if nbytes is None:
        _limits.pop(kind, None)
    else:
        if nbytes < 0:
            raise ValueError(f"a cache size is 0 (no bound) or more, not {nbytes}")
        _limits[kind] = int(nbytes)


def limit(kind: str) -> int:
    """The bound of ``kind``'s directory in bytes; 0 when it has none."""
    if kind in _limits:
        return _limits[kind]
    if kind != "images":
        return 0
    env = os.environ.get(IMAGE_CACHE_ENV, "").strip()
    if env:
        try:
            return parse_size(env)
        except ValueError:
            pass  # a bad value keeps the default (wapo serve checks its own settings at start)
    return DEFAULT_IMAGE_CACHE


def touch(path: Path) -> None:
    """Mark ``path`` as just used (its mtime); nothing if it is gone."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(directory: Path, max_bytes: int, keep: Path | None = None) -> int:
    """Remove the least recently used artifacts of ``directory`` (each with its digest) until
    it holds at most ``max_bytes``; ``keep`` (the artifact just written) is never removed, even
    alone over the bound. Returns the bytes removed. Never raises for a file that went away."""
    if max_bytes <= 0:
        return 0
    now = time.time()
    groups: dict[str, list] = {}  # artifact name -> [last use, bytes, paths]
    total = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # removed by another process meanwhile
        if entry.name.endswith(TMP_SUFFIX):
            if now - st.st_mtime > TMP_GRACE and _unlink(entry.path):
                removed += st.st_size
            else:
                total += st.st_size  # another process's write in progress
            continue
        stem = entry.name[:-len(DIGEST_SUFFIX)] if entry.name.endswith(DIGEST_SUFFIX) else entry.name
        group = groups.setdefault(stem, [0.0, 0, []])
        group[0] = max(group[0], st.st_mtime)
        group[1] += st.st_size
        group[2].append(entry.path)
        total += st.st_size
    keep_name = keep.name if keep is not None else None
    for stem, (_, size, paths) in sorted(groups.items(), key=lambda item: item[1][0]):
        if total <= max_bytes:
            break
        if stem == keep_name:
            continue
        # the digest first: a loader that finds no digest counts a miss and does not map the file
        for path in sorted(paths, key=lambda p: not p.endswith(DIGEST_SUFFIX)):
            _unlink(path)
        total -= size
        removed += size
    return removed


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
