"""A JS sandbox: the WapoJS guest module (pre-initialized or plain), its argv, and ``js_instance``:
the host's ``Instance`` with the JS-side limits set to match."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import Any, Sequence

from ..host import GuestModule, Instance, Limits, RunOptions
from ..host.errors import WapoError
from ..host.limits import MIB
from ..host.snapshot import cached_snapshot
from ..host.snapshot.image import MemoryImage
from . import build

# The wasm memory also holds the 1 MiB C stack, static data and allocator slack.
JS_MEMORY_RESERVE = 3 * MIB
# QuickJS checks its own stack use against this, below the 1 MiB C stack, so
# deep recursion throws a catchable RangeError instead of trapping. The wasm
# stack (2 MiB) must not run out first: at 900 KiB it did, at 700 KiB not
# (recursion depth ~2,000 JS calls); 640 KiB leaves a margin.
JS_STACK_SIZE = 640 * 1024
# The guest stops itself at the burst limit (with a JS stack); the host's epoch
# deadline is this much later and catches what the guest cannot (long built-ins).
BURST_GRACE = 0.1


class ScriptError(WapoError):
    """The script cannot be handed to the guest (it is not a valid argument)."""


# Pre-initialized snapshot of the guest (docs/design.md, "Snapshots (issue 7)"): the QuickJS
# runtime, context, globals and prelude accessors are made once by the `wapojs_init` export and
# written into the module's memory image; each sandbox then starts from that image and the first
# wapo_poll applies the per-run settings (WASI args) and reseeds. WAPO_SNAPSHOT=0 turns it off.
SNAPSHOT_ENV = "WAPO_SNAPSHOT"
SNAPSHOT_INIT_EXPORT = "wapojs_init_preloaded"  # runtime, context and the whole JS prelude


def snapshots_enabled() -> bool:
    return os.environ.get(SNAPSHOT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@lru_cache(maxsize=2)
def _guest_module(snapshot: bool) -> GuestModule:
    wasm = build.ensure_wasm().read_bytes()
    if snapshot:
        wasm = cached_snapshot(wasm, SNAPSHOT_INIT_EXPORT)
    return GuestModule(wasm, name="wapojs", backtrace_export="wapojs_backtrace",
                       exhausted_export="wapojs_heap_exhausted_flag", burst_grace=BURST_GRACE)


def wapojs_module(snapshot: bool | None = None) -> GuestModule:
    """The WapoJS guest, built on first use if the install did not build it; pre-initialized
    (a snapshot) unless ``snapshot`` is False or, by default, ``WAPO_SNAPSHOT=0``."""
    return _guest_module(snapshots_enabled() if snapshot is None else snapshot)


def guest_args(code: str, args: Sequence[str], limits: Limits, *, module: bool, name: str | None,
               entry: str | None = None) -> list[str]:
    if "\0" in code:
        raise ScriptError("the script contains a NUL character, which cannot be passed to the guest")
    for a in args:
        if "\0" in a:
            raise ScriptError("a script argument contains a NUL character")
    argv = [
        f"--memory-limit={max(limits.memory - JS_MEMORY_RESERVE, MIB)}",
        f"--stack-size={JS_STACK_SIZE}",
        f"--burst-ms={limits.burst * 1000:.0f}",
        f"--time-ms={limits.time * 1000:.0f}",
    ]
    if module:
        argv.append("--module")
    if name:
        argv.append(f"--name={name}")
    if entry:
        argv.append(f"--entry={entry}")
    return [*argv, "-c", code, *args]


def js_instance(
    code: str,
    args: Sequence[str] = (),
    *,
    options: RunOptions | None = None,
    module: bool = False,
    name: str | None = None,
    entry: str | None = None,
    snapshot: bool | None = None,
    memory_image: MemoryImage | None = None,
    **settings: Any,
) -> Instance:
    """A sandbox for ``code``, set up by ``options`` (keyword ``settings`` such as ``limits=...``
    change single fields of it). ``entry`` names a prelude entry point that runs the code
    (e.g. ``runAgent``); ``on_output`` receives output as it is emitted. ``snapshot`` picks the
    pre-initialized guest or the plain one (None: ``WAPO_SNAPSHOT``, on by default).
    ``memory_image`` (from ``wapo.js.precompiled.agent_image``) holds ``code`` already compiled:
    the guest then gets an empty code and runs that (snapshots only)."""
    if memory_image is not None and (snapshot is False or not snapshots_enabled()):
        memory_image = None
    options = (options or RunOptions()).with_settings(**settings)
    if options.app_address is None:
        options = options.with_settings(app_address=hashlib.sha256(b"wapo-js:" + code.encode()).digest())
    argv = guest_args("" if memory_image is not None else code, args, options.limits, module=module, name=name,
                      entry=entry)
    guest = wapojs_module(snapshot)
    if memory_image is not None and memory_image.compiled and options.limits.fuel is None:
        # the image compiled into a module of its own: mapped copy-on-write, nothing to copy
        # (a fuel-metered run needs other machine code: it copies the image as before)
        guest, memory_image = memory_image.compiled[0], None
        guest.mark_used()  # type: ignore[attr-defined]
    return Instance(guest, args=argv, options=options, memory_image=memory_image)
