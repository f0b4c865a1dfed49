"""Builds the WapoJS guest: QuickJS-ng plus our C glue, compiled to a wasm32-wasi reactor.

This module uses only the standard library, because ``setup.py`` imports it
during ``pip install``, before any dependency of ours is installed.

The QuickJS sources come from the ``quickjs-ng`` sdist on PyPI, pinned by
version and sha256; the compiler is the PyPI ``ziglang`` package. The output is
cached under the user cache directory, keyed by the hash of every input, so a
second install or a second run does not rebuild.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from ..paths import cache_dir

QUICKJS_VERSION = "0.17.0.2"
QUICKJS_SDIST = f"quickjs_ng-{QUICKJS_VERSION}.tar.gz"
QUICKJS_SHA256 = "43d2e48272208721a7aaea8e3f02d4b9318f12ef20cc4f5421b59d9a470706ef"
ZIGLANG_REQUIREMENT = "ziglang==0.15.2"

GUEST_DIR = Path(__file__).resolve().parent / "guest"
GLUE_SOURCES = ("wapojs.c",)
ENGINE_SOURCES = ("libregexp.c", "libunicode.c", "dtoa.c")  # quickjs.c is #included by wapojs.c
C_STACK_SIZE = 1024 * 1024
# Not -mllvm -inline-threshold=1000 (-8% instructions for JSON): the bigger frames of the inlined
# interpreter cut JS recursion below 1,000 calls in the 640 KiB JS stack (docs/design.md, "JS speed
# against native QuickJS-ng").
# -flto: the engine's files (libregexp.c, libunicode.c, dtoa.c) are optimized together with
# quickjs.c, so calls between them can be inlined: -2.4% instructions for the regex workload, -1.6%
# for JSON, same JS recursion depth. -inlinehint-threshold=3000 (LLVM's default 325) applies only
# to functions declared `inline`, such as string_buffer_putc: a further -3.6% for JSON, -2.3% for
# regex, -1.7% for sort, where a higher -inline-threshold for every function grew the
# interpreter's frames and slowed JS calls (docs/design.md).
CFLAGS = (
    "-target", "wasm32-wasi", "-O2", "-flto", "-mllvm", "-inlinehint-threshold=3000",
    "-D_GNU_SOURCE", "-DNDEBUG", "-fno-strict-aliasing", "-Wno-everything",
)
LDFLAGS = (
    "-mexec-model=reactor",
    f"-Wl,-z,stack-size={C_STACK_SIZE}",  # zig's wasm linker puts the stack first: an overflow traps
    "-Wl,--export=wapo_poll",
    "-Wl,--export=wapojs_backtrace",
    "-Wl,--export=wapojs_init",
    "-Wl,--strip-debug",
)
WASM_NAME = "wapojs.wasm"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """The guest could not be built; the message says what to install or fix."""


def _stderr_progress(message: str) -> None:
    print(f"[wapo build] {message}", file=sys.stderr, flush=True)


def inputs_key() -> str:
    """Hash of everything the build output depends on."""
    h = hashlib.sha256()
    h.update(QUICKJS_SHA256.encode())
    h.update(ZIGLANG_REQUIREMENT.encode())
    h.update(repr((CFLAGS, LDFLAGS)).encode())
    for path in sorted(GUEST_DIR.rglob("*")):
        if path.suffix in (".c", ".h", ".js"):
            h.update(str(path.relative_to(GUEST_DIR)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:24]


def packaged_wasm() -> Path:
    """Where an installed wheel keeps the guest it built at install time."""
    return GUEST_DIR / WASM_NAME


def cached_wasm() -> Path:
    return cache_dir() / "guest" / inputs_key() / WASM_NAME


def find_wasm() -> Path | None:
    """The built guest matching the current sources, if any."""
    stamp = GUEST_DIR / (WASM_NAME + ".key")
    packaged = packaged_wasm()
    if packaged.exists() and stamp.exists() and stamp.read_text().strip() == inputs_key():
        return packaged
    cached = cached_wasm()
    return cached if cached.exists() else None


def ensure_wasm(progress: Progress | None = _stderr_progress) -> Path:
    """Return the path of the built guest, building it first if needed."""
    found = find_wasm()
    if found is not None:
        return found
    return build(progress=progress)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr.strip()[-4000:]}")


def _zig_command() -> list[str]:
    try:
        import ziglang  # noqa: F401
    except ImportError as exc:
        raise BuildError(
            "the zig toolchain is missing: install it with "
            f"`pip install {ZIGLANG_REQUIREMENT}` (it is a build dependency of wapo)"
        ) from exc
    cmd = [sys.executable, "-m", "ziglang"]
    probe = subprocess.run(cmd + ["version"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise BuildError(
            "the zig toolchain is installed but does not run "
            f"({probe.stderr.strip() or probe.stdout.strip()}); reinstall it with "
            f"`pip install --force-reinstall {ZIGLANG_REQUIREMENT}`"
        )
    return cmd


def fetch_sdist(dest: Path, progress: Progress | None) -> Path:
    """Download the pinned quickjs-ng sdist from PyPI (via pip) and check its sha256."""
    cached = cache_dir() / "sdist" / QUICKJS_SDIST
    if not cached.exists():
        if progress:
            progress(f"downloading quickjs-ng=={QUICKJS_VERSION} sdist from PyPI")
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            _run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                 "--no-binary", ":all:", "-d", tmp,
                 f"quickjs-ng=={QUICKJS_VERSION}"],
                "downloading the quickjs-ng sdist (is PyPI reachable?)",
            )
            got = Path(tmp) / QUICKJS_SDIST
            if not got.exists():
                raise BuildError(f"pip did not produce {QUICKJS_SDIST} (found: {os.listdir(tmp)})")
            shutil.move(str(got), cached)
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    if digest != QUICKJS_SHA256:
        cached.unlink()
        raise BuildError(
            f"{QUICKJS_SDIST} has sha256 {digest}, expected {QUICKJS_SHA256}: "
            "the download is corrupt or was tampered with; it was deleted, try again"
        )
    with tarfile.open(cached) as tar:
        tar.extractall(dest, filter="data")
    src = dest / f"quickjs_ng-{QUICKJS_VERSION}" / "upstream-quickjs"
    if not (src / "quickjs.c").exists():
        raise BuildError(f"{QUICKJS_SDIST} has no upstream-quickjs/quickjs.c")
    return src


PRELUDE_PREFIX = b'(function (host) {"use strict";\n'
PRELUDE_SUFFIX = b"\n})"


def prelude_header(folder: Path) -> str:
    """The JS prelude as C data: each file is a module that the guest evaluates on first use of
    a global it provides (declared on a `// @provides A B` line), so unused APIs cost nothing."""
    lines = ["/* generated by wapo.js.build: do not edit */"]
    entries = []
    if not folder.is_dir() or not any(folder.glob("*.js")):
        raise BuildError(f"the JS prelude is missing ({folder}): the package is incomplete, reinstall it")
    for i, path in enumerate(sorted(folder.glob("*.js"))):
        text = path.read_bytes()
        provides = []
        for line in text.decode("utf-8").splitlines():
            if line.startswith("// @provides "):
                provides += line.split()[2:]
        if not provides:
            raise BuildError(f"{path.name} has no `// @provides Name...` line")
        body = PRELUDE_PREFIX + text + PRELUDE_SUFFIX
        lines.append(f"static const char prelude_src_{i}[] = {{{','.join(str(b) for b in body)},0}};")
        entries.append(f'  {{"wapo:{path.name}", prelude_src_{i}, {len(body)}, "{" ".join(provides)}"}},')
    lines.append("typedef struct { const char *file; const char *src; size_t len; const char *provides; } PreludeModule;")
    lines.append("static const PreludeModule prelude_modules[] = {")
    lines += entries
    lines.append('  {0, 0, 0, 0}')
    lines.append("};")
    lines.append(f"#define PRELUDE_COUNT {len(entries)}")
    return "\n".join(lines) + "\n"


def build(progress: Progress | None = _stderr_progress, out: Path | None = None) -> Path:
    """Compile the guest into the cache (or ``out``) and return its path."""
    started = time.monotonic()
    target = out or cached_wasm()
    zig = _zig_command()
    with tempfile.TemporaryDirectory(prefix="wapo-build-") as tmp:
        work = Path(tmp)
        src = fetch_sdist(work, progress)
        (work / "prelude.h").write_text(prelude_header(GUEST_DIR / "prelude"))
        units = [GUEST_DIR / name for name in GLUE_SOURCES] + [src / name for name in ENGINE_SOURCES]
        objects = [str(work / (unit.stem + ".o")) for unit in units]

        def compile_unit(i: int) -> None:
            _run(zig + ["cc", *CFLAGS, "-I", str(src), "-I", str(work), "-I", str(GUEST_DIR), "-c", str(units[i]), "-o", objects[i]],
                 f"compiling {units[i].name}")

        if progress:
            progress(f"compiling {', '.join(u.name for u in units)} (quickjs.c is inside wapojs.c; ~30 s)")
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            list(pool.map(compile_unit, range(len(units))))
        if progress:
            progress("linking")
        linked = work / WASM_NAME
        _run(zig + ["cc", *CFLAGS, *LDFLAGS, *objects, "-o", str(linked)], "linking the guest")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_target = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(linked, tmp_target)
        os.replace(tmp_target, target)
    if out is not None:
        out.with_name(WASM_NAME + ".key").write_text(inputs_key())
    if progress:
        progress(f"built {target} ({target.stat().st_size // 1024} KiB) in {time.monotonic() - started:.0f} s")
    return target


def main() -> None:
    try:
        ensure_wasm()
    except BuildError as exc:
        sys.exit(f"wapo build: {exc}")


if __name__ == "__main__":
    main()
