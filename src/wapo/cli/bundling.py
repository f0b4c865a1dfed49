"""Bundling an agent with esbuild: a project folder (package.json), a TypeScript file, or a JS file
with imports becomes one ES module plus its source map.

esbuild is the npm package, pinned: the project's own ``node_modules/.bin/esbuild`` when it has one,
else one wapo installs with npm into ``<cache>/esbuild/<version>/`` (``$WAPO_CACHE_DIR`` or
``~/.cache/wapo``). Node and npm are needed only for that install; without them the error says so.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
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
# Node built-ins for bundles: npm polyfills (pinned) and wapo's own shims (cli/node/*.js). Each is
# resolvable as `x` and `node:x`; a free `Buffer`, `process` or `global` is injected from cli/node/inject/.
POLYFILLS = {"buffer": "6.0.3", "events": "3.3.0", "path-browserify": "1.0.1", "querystring-es3": "0.2.1",
             "string_decoder": "1.3.0", "readable-stream": "4.8.0"}
BUILTIN_PACKAGES = {"buffer": "buffer", "events": "events", "path": "path-browserify", "path/posix": "path-browserify",
                    "string_decoder": "string_decoder",
                    "stream": "readable-stream"}
BUILTIN_SHIMS = {"querystring": "querystring.js", "crypto": "crypto.js", "util": "util.js", "url": "url.js", "assert": "assert.js",
                 "assert/strict": "assert.js", "process": "process.js"}
SHIM_DIR = Path(__file__).resolve().parent / "node"
UNAVAILABLE = ("fs", "net", "tls", "http", "https", "child_process", "os", "dns", "worker_threads", "zlib",
               "cluster", "dgram", "http2", "readline", "vm", "v8", "module", "perf_hooks", "async_hooks")
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
    """What ``esbuild --version`` prints (None if it does not run), asked once per binary file: a
    bundle looks at it two or three times, and `wapo dev` bundles on every change."""
    try:
        stamp = esbuild.stat().st_mtime_ns
    except OSError:
        return None
    return _version_of(str(esbuild), stamp)


@functools.lru_cache(maxsize=16)
def _version_of(esbuild: str, stamp: int) -> str | None:
    try:
        out = subprocess.run([esbuild, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def managed_dir() -> Path:
    """esbuild and the polyfills, keyed by their pinned versions."""
    key = hashlib.sha256(json.dumps([ESBUILD_VERSION, POLYFILLS], sort_keys=True).encode()).hexdigest()[:8]
    return cache_dir() / "esbuild" / f"{ESBUILD_VERSION}-{key}"


def _installed(folder: Path) -> bool:
    esbuild = folder / "node_modules" / ".bin" / "esbuild"
    if not (folder / ".wapo-installed").exists() or _run_version(esbuild) != ESBUILD_VERSION:
        return False
    for package, version in POLYFILLS.items():
        try:
            found = json.loads((folder / "node_modules" / package / "package.json").read_text()).get("version")
        except (OSError, ValueError):
            return False
        if found != version:
            return False
    return True


def ensure_toolchain() -> Path:
    """The wapo-managed folder with esbuild and the polyfills, installed with npm on first use."""
    folder = managed_dir()
    if _installed(folder):
        return folder
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise BundleError("bundling needs esbuild, which wapo installs with npm, but node/npm are not on PATH: "
                          "install Node.js (https://nodejs.org, or your package manager's nodejs and npm), "
                          "or bundle the agent yourself and publish the .js bundle")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(folder):
            return folder
        (folder / ".wapo-installed").unlink(missing_ok=True)
        (folder / "package.json").write_text(json.dumps(
            {"name": "wapo-esbuild", "private": True,
             "dependencies": {"esbuild": ESBUILD_VERSION, **POLYFILLS}}, indent=2) + "\n")
        print(f"wapo: installing esbuild {ESBUILD_VERSION} and the Node built-in polyfills with npm into "
              f"{folder} (once)", flush=True, file=sys.stderr)
        cmd = [npm, "install", "--no-audit", "--no-fund"]
        try:
            out = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BundleError(f"`npm install` of esbuild {ESBUILD_VERSION} in {folder} failed: {exc}") from None
        (folder / ".wapo-installed").write_text("")
        if out.returncode != 0 or not _installed(folder):
            (folder / ".wapo-installed").unlink(missing_ok=True)
            raise BundleError(f"`npm install` of esbuild {ESBUILD_VERSION} in {folder} failed "
                              f"(rc={out.returncode}):\n{out.stderr[-2000:]}")
    return folder


def _entry_file(package_dir: Path) -> Path:
    try:
        main = json.loads((package_dir / "package.json").read_text()).get("main") or "index.js"
    except (OSError, ValueError):
        main = "index.js"
    path = package_dir / main
    return path if path.suffix else path.with_suffix(".js")


def builtin_flags(toolchain: Path) -> list[str]:
    """esbuild flags resolving Node built-ins (``x`` and ``node:x``) to the polyfills and shims."""
    flags = []
    targets = {name: _entry_file(toolchain / "node_modules" / package) for name, package in BUILTIN_PACKAGES.items()}
    targets.update({name: SHIM_DIR / shim for name, shim in BUILTIN_SHIMS.items()})
    for name, target in sorted(targets.items()):
        flags += [f"--alias:{name}={target}", f"--alias:node:{name}={target}"]
    for package in POLYFILLS:  # the shims import their polyfill by name
        if package not in targets:
            flags.append(f"--alias:{package}={_entry_file(toolchain / 'node_modules' / package)}")
    return flags


INJECTABLE = ("Buffer", "process", "global")


def free_globals(code: bytes) -> list[str]:
    """The Node globals a bundle refers to (not as a property): each is then injected."""
    return [name for name in INJECTABLE if re.search(rb"(?<![.\w$])" + name.encode() + rb"\b", code)]


def find_esbuild(root: Path | None = None) -> tuple[Path, Path | None]:
    """(esbuild, the managed toolchain or None): the project's esbuild if it has one, else wapo's
    pinned one. The managed toolchain (polyfills for Node built-ins) is installed when npm is there."""
    local = root / "node_modules" / ".bin" / "esbuild" if root is not None else None
    if local is not None and local.exists() and _run_version(local):
        try:
            return local, ensure_toolchain()
        except BundleError:
            return local, None  # no npm: bundle without the Node built-ins
    toolchain = ensure_toolchain()
    return toolchain / "node_modules" / ".bin" / "esbuild", toolchain


def _relative_sources(map_data: bytes, outdir: Path, root: Path) -> bytes:
    """Make the map's sources relative to the project root (``src/index.ts``), not to the temp dir."""
    data = json.loads(map_data)
    sources = []
    managed = managed_dir().resolve() / "node_modules"
    for source in data.get("sources", []):
        absolute = (outdir / source).resolve()
        if absolute.is_relative_to(SHIM_DIR):
            sources.append(f"wapo:node/{absolute.relative_to(SHIM_DIR).as_posix()}")
            continue
        if absolute.is_relative_to(managed):
            sources.append(f"npm:{absolute.relative_to(managed).as_posix()}")
            continue
        try:
            sources.append(absolute.relative_to(root.resolve()).as_posix())
        except ValueError:
            sources.append(os.path.relpath(absolute, root.resolve()).replace(os.sep, "/"))
    data["sources"] = sources
    data.pop("sourceRoot", None)
    return json.dumps(data, separators=(",", ":")).encode()


def _esbuild(cmd: list[str], root: Path, entry: Path, outfile: Path) -> None:
    try:
        out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError(f"esbuild failed to run: {exc}") from None
    if out.returncode != 0 or not outfile.exists():
        raise BundleError(f"esbuild could not bundle {entry}:\n{out.stderr.strip()[-4000:]}{_hint(out.stderr)}")


def _hint(stderr: str) -> str:
    missing = set(re.findall(r'Could not resolve "(?:node:)?([\w/]+)"', stderr))
    unavailable = sorted(m for m in missing if m.split("/")[0] in UNAVAILABLE)
    if not unavailable:
        return ""
    provided = ", ".join(sorted({*BUILTIN_PACKAGES, *BUILTIN_SHIMS}))
    return (f"\n(agents run in a sandbox without {', '.join(unavailable)}: wapo provides the Node built-ins "
            f"{provided}; use fetch for HTTP and the vault's secrets instead of files)")


def bundle(target: Path, *, name: str = "agent.js") -> Bundle:
    """Bundle ``target`` (a project folder or an entry file) into one ES module and its map."""
    target = target.resolve()
    entry = entry_of(target) if target.is_dir() else target
    if not entry.is_file():
        raise BundleError(f"{entry} does not exist")
    root = target if target.is_dir() else project_root(entry)
    esbuild, toolchain = find_esbuild(root)
    with tempfile.TemporaryDirectory(prefix="wapo-bundle-") as tmp:
        outfile = Path(tmp) / name
        cmd = [str(esbuild), str(entry), "--bundle", "--format=esm", "--platform=browser", "--target=es2022",
               "--sourcemap=external", f"--outfile={outfile}", "--log-level=warning",
               "--main-fields=browser,module,main", "--conditions=worker,browser", "--keep-names"]
        if toolchain is not None:
            cmd += builtin_flags(toolchain)
        _esbuild(cmd, root, entry, outfile)
        code = outfile.read_bytes()
        # free Buffer/process/global: bundle again with them injected (only then: buffer is 50 KB)
        injected = free_globals(code) if toolchain is not None else []
        if injected:
            _esbuild(cmd + [f"--inject:{SHIM_DIR / 'inject' / (name + '.js')}" for name in injected], root, entry,
                     outfile)
            code = outfile.read_bytes()
        code = re.sub(rb"\n//# sourceMappingURL=[^\n]*\n?$", b"\n", code)
        map_path = outfile.with_name(outfile.name + ".map")
        source_map = _relative_sources(map_path.read_bytes(), Path(tmp), root) if map_path.exists() else None
    return Bundle(code, source_map, name, entry, root, _run_version(esbuild) or "?")


def stack_mapper(source_map: bytes | None, name: str):
    """A function giving error text its original positions through ``source_map`` (or as it is)."""
    from ..agent.sourcemap import SourceMap, SourceMapError, map_stack
    if source_map is None:
        return lambda text: text
    try:
        decoded = SourceMap(source_map)
    except SourceMapError:
        return lambda text: text
    return lambda text: map_stack(text, decoded, name)
