"""Build agent bundles with the real npm packages (hono, @phala/wapo-env, esbuild), pinned.

The packages are installed once with ``npm install`` into a cache directory keyed by the pinned
versions (``~/.cache/wapo/npm-test/<key>/``, or ``$WAPO_NPM_TEST_CACHE/<key>/``), so later test
sessions reuse them. ``esbuild``'s native binary comes from its npm optional dependency package.

``NpmMissing`` means there is no ``npm`` on PATH (the tests skip); ``NpmInstallFailed`` means npm is
there but the install or the toolchain check failed (the tests must fail, not skip).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

PINNED = {"hono": "4.13.19", "@phala/wapo-env": "0.9.4", "esbuild": "0.28.2"}
INSTALL_TIMEOUT = 600  # a cold install on a loaded machine
BUILD_TIMEOUT = 120
STAMP = ".wapo-installed"


class NpmMissing(RuntimeError):
    """No `npm` on PATH."""


class NpmInstallFailed(RuntimeError):
    """npm is there but the pinned packages could not be installed or do not work."""


class BuildFailed(RuntimeError):
    """esbuild rejected an agent source."""


def cache_root() -> Path:
    return Path(os.environ.get("WAPO_NPM_TEST_CACHE") or "~/.cache/wapo/npm-test").expanduser()


def toolchain_dir(pinned: dict[str, str] = PINNED) -> Path:
    key = hashlib.sha256(json.dumps(pinned, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / key


def _installed_version(root: Path, package: str) -> str | None:
    try:
        return json.loads((root / "node_modules" / package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _esbuild(root: Path) -> Path:
    return root / "node_modules" / ".bin" / "esbuild"


def _check(root: Path, pinned: dict[str, str] = PINNED) -> str | None:
    """None if the toolchain in ``root`` is complete and works, else what is wrong."""
    for package, version in pinned.items():
        found = _installed_version(root, package)
        if found != version:
            return f"{package}: wanted {version}, found {found or 'nothing'}"
    try:
        out = subprocess.run([str(_esbuild(root)), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"esbuild does not run: {exc}"
    if out.returncode != 0 or out.stdout.strip() != pinned["esbuild"]:
        return f"esbuild --version: rc={out.returncode} out={out.stdout.strip()!r} err={out.stderr.strip()[-500:]!r}"
    return None


def ensure_installed(pinned: dict[str, str] = PINNED) -> Path:
    """The directory holding node_modules with the pinned packages (``pinned`` must include esbuild);
    installs them on first use."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmMissing("npm is not on PATH")
    root = toolchain_dir(pinned)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:  # several test sessions may start at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / STAMP).exists() and _check(root, pinned) is None:
            return root
        (root / STAMP).unlink(missing_ok=True)
        manifest = {"name": "wapo-npm-test-agents", "version": "0.0.0", "private": True, "dependencies": pinned}
        (root / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        cmd = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts=false"]
        try:
            out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NpmInstallFailed(f"`{' '.join(cmd)}` in {root} failed: {exc}") from None
        if out.returncode != 0:
            raise NpmInstallFailed(f"`{' '.join(cmd)}` in {root} exited {out.returncode}:\n"
                                   f"{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        problem = _check(root, pinned)
        if problem is not None:
            raise NpmInstallFailed(f"after `npm install` in {root}: {problem}\n{out.stderr[-2000:]}")
        (root / STAMP).write_text(json.dumps(pinned) + "\n")
    return root


def build(root: Path, source: str, fmt: str, name: str = "agent.js") -> str:
    """Bundle ``source`` (resolving imports from ``root``'s node_modules) for the browser platform.

    ``fmt`` is "cjs" (style B, ``export default handle(app)``) or "esm" (style C, ``export default app``).
    The source goes in on standard input with ``root`` as the working directory, which is where
    esbuild resolves its bare imports from: nothing is written into the shared cache.
    """
    if fmt not in ("cjs", "esm", "iife"):
        raise ValueError(f"unknown format {fmt!r}")
    cmd = [str(_esbuild(root)), "--bundle", f"--format={fmt}", "--platform=browser", f"--sourcefile={name}",
           "--log-level=warning"]
    out = subprocess.run(cmd, cwd=root, input=source, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    if out.returncode != 0 or not out.stdout:
        raise BuildFailed(f"esbuild ({fmt}) failed with rc={out.returncode}:\n{out.stderr}")
    return out.stdout
