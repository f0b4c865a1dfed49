"""Bundling an agent with esbuild: a project folder (package.json), a TypeScript file, or a JS file
with imports becomes one ES module plus its source map.

esbuild is the npm package, pinned: the project's own ``node_modules/.bin/esbuild`` when it has one,
else one wapo installs with npm into ``<cache>/esbuild/<version>/`` (``$WAPO_CACHE_DIR`` or
``~/.cache/wapo``). Node and npm are needed only for that install; without them the error says so.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..paths import cache_dir

ESBUILD_VERSION = "0.28.2"
INSTALL_TIMEOUT = 600
BUILD_TIMEOUT = 120
TS_SUFFIXES = {".ts", ".tsx", ".mts", ".cts", ".jsx"}
ENTRY_CANDIDATES = ("src/index.ts", "src/index.tsx", "src/index.js", "src/index.mjs", "index.ts", "index.js",
                    "src/main.ts", "src/main.js")
# an import or export-from statement (bare or relative): the file needs its imports bundled
IMPORTS = re.compile(r"""(^|[;}\n])[ \t]*(import[ \t\n]*([{*"'`]|[A-Za-z_$][\w$]*[ \t\n]*(,|from\b))|export[^;\n]*\bfrom[ \t]*["'])""")


class BundleError(RuntimeError):
    """The agent could not be bundled; the message says what to install or fix."""


@dataclass(frozen=True)
class Bundle:
    code: bytes
    source_map: bytes | None
    name: str            # the bundle's file name (what stack traces show before publishing)
    entry: Path
    root: Path           # the map's sources are relative to it
    esbuild_version: str


def needs_bundle(target: Path) -> bool:
    """A folder, a TypeScript/JSX file, or JS that imports other modules."""
    if target.is_dir():
        return True
    if target.suffix in TS_SUFFIXES:
        return True
    if target.suffix in (".js", ".mjs") and target.is_file():
        try:
            return IMPORTS.search(target.read_text(encoding="utf-8")) is not None
        except (OSError, UnicodeDecodeError):
            return False
    return False


def entry_of(project: Path) -> Path:
    """The entry file of a project folder: package.json's ``wapo.entry`` (or ``source``), else the
    usual places (src/index.ts, src/index.js, index.ts, ...)."""
    manifest = project / "package.json"
    if not manifest.is_file():
        raise BundleError(f"{project} has no package.json: give the agent's file, or a project folder "
                          "(`wapo init` makes one)")
    try:
        data = json.loads(manifest.read_text())
    except ValueError as exc:
        raise BundleError(f"{manifest} is not JSON: {exc}") from None
    wanted = (data.get("wapo") or {}).get("entry") if isinstance(data.get("wapo"), dict) else None
    wanted = wanted or data.get("source")
    if isinstance(wanted, str):
        if not (project / wanted).is_file():
            raise BundleError(f"{manifest} names entry {wanted!r}, which does not exist")
        return project / wanted
    for candidate in ENTRY_CANDIDATES:
        if (project / candidate).is_file():
            return project / candidate
    raise BundleError(f"no entry file in {project}: looked for {', '.join(ENTRY_CANDIDATES)} "
                      "(or set \"wapo\": {\"entry\": \"...\"} in package.json)")


def project_root(start: Path) -> Path:
    """The nearest folder holding package.json (or ``start``'s folder)."""
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        if (candidate / "package.json").is_file():
            return candidate
    return folder


def _run_version(esbuild: Path) -> str | None:
    try:
        out = subprocess.run([str(esbuild), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def managed_dir() -> Path:
    return cache_dir() / "esbuild" / ESBUILD_VERSION


def find_esbuild(root: Path | None = None) -> Path:
    """The project's esbuild if it has one, else wapo's pinned one (installed with npm on first use)."""
    if root is not None:
        local = root / "node_modules" / ".bin" / "esbuild"
        if local.exists() and _run_version(local):
            return local
    folder = managed_dir()
    esbuild = folder / "node_modules" / ".bin" / "esbuild"
    if esbuild.exists() and _run_version(esbuild) == ESBUILD_VERSION:
        return esbuild
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BundleError("bundling needs esbuild, which wapo installs with npm, but node/npm are not on PATH: "
                          "install Node.js (https://nodejs.org, or your package manager's nodejs and npm), "
                          "or bundle the agent yourself and publish the .js bundle")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if esbuild.exists() and _run_version(esbuild) == ESBUILD_VERSION:
            return esbuild
        (folder / "package.json").write_text(json.dumps(
            {"name": "wapo-esbuild", "private": True, "dependencies": {"esbuild": ESBUILD_VERSION}}) + "\n")
        print(f"wapo: installing esbuild {ESBUILD_VERSION} with npm into {folder} (once)", flush=True,
              file=sys.stderr)
        cmd = [npm, "install", "--no-audit", "--no-fund"]
        try:
            out = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BundleError(f"`npm install esbuild@{ESBUILD_VERSION}` in {folder} failed: {exc}") from None
        if out.returncode != 0 or _run_version(esbuild) != ESBUILD_VERSION:
            raise BundleError(f"`npm install esbuild@{ESBUILD_VERSION}` in {folder} failed "
                              f"(rc={out.returncode}):\n{out.stderr[-2000:]}")
    return esbuild


def _relative_sources(map_data: bytes, outdir: Path, root: Path) -> bytes:
    """Make the map's sources relative to the project root (``src/index.ts``), not to the temp dir."""
    data = json.loads(map_data)
    sources = []
    for source in data.get("sources", []):
        absolute = (outdir / source).resolve()
        try:
            sources.append(absolute.relative_to(root.resolve()).as_posix())
        except ValueError:
            sources.append(os.path.relpath(absolute, root.resolve()).replace(os.sep, "/"))
    data["sources"] = sources
    data.pop("sourceRoot", None)
    return json.dumps(data, separators=(",", ":")).encode()


def bundle(target: Path, *, name: str = "agent.js") -> Bundle:
    """Bundle ``target`` (a project folder or an entry file) into one ES module and its map."""
    target = target.resolve()
    entry = entry_of(target) if target.is_dir() else target
    if not entry.is_file():
        raise BundleError(f"{entry} does not exist")
    root = target if target.is_dir() else project_root(entry)
    esbuild = find_esbuild(root)
    with tempfile.TemporaryDirectory(prefix="wapo-bundle-") as tmp:
        outfile = Path(tmp) / name
        cmd = [str(esbuild), str(entry), "--bundle", "--format=esm", "--platform=browser", "--target=es2022",
               "--sourcemap=external", f"--outfile={outfile}", "--log-level=warning",
               "--main-fields=browser,module,main", "--conditions=worker,browser"]
        try:
            out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BundleError(f"esbuild failed to run: {exc}") from None
        if out.returncode != 0 or not outfile.exists():
            raise BundleError(f"esbuild could not bundle {entry}:\n{out.stderr.strip()[-4000:]}")
        code = outfile.read_bytes()
        code = re.sub(rb"\n//# sourceMappingURL=[^\n]*\n?$", b"\n", code)
        map_path = outfile.with_name(outfile.name + ".map")
        source_map = _relative_sources(map_path.read_bytes(), Path(tmp), root) if map_path.exists() else None
    return Bundle(code, source_map, name, entry, root, _run_version(esbuild) or "?")
