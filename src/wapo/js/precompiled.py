"""Per-agent snapshots: an agent's code compiled once, into the memory its sandboxes start from.

An agent is the same code for every request to its CID, and WapoJS used to parse and compile it
in every sandbox (a bundled agent of a few hundred KB costs milliseconds). Here the shared
snapshot is instantiated once per agent, ``wapojs_precompile`` compiles the code (without running
it) and the pages that changed become a ``MemoryImage`` (wapo.host.image) written into each new
sandbox; the run is then given an empty code and runs the compiled one (prelude/agent.js).
Nothing of the run is in the image: top-level code still runs per request, after the per-run
settings and reseeding, exactly as from the source.

Images live in this process (an LRU bounded by count and bytes). A code that does not compile
gets no image (its runs compile the source and report the error) and is remembered as such.
``WAPO_PRECOMPILE=0`` turns this off; it is off whenever snapshots are.

Compiling is guest work (``image_for_run``): it runs on a guest thread as a step of the run's
tenant, never on the event loop, under the run's burst limit (as in the reference, where the
code is evaluated inside the guest), and concurrent first runs of one code share one compile.
A compile that overran is remembered: runs with no larger a burst limit fail at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
from collections import OrderedDict

from ..host import LimitExceeded, Limits
from ..host.limits import MIB
from ..host.snapshot.image import INIT_TIME_LIMIT, ImageError, ImageTimeout, MemoryImage, capture_image
from ..host.threads import run_step
from .sandbox import guest_args, snapshots_enabled, wapojs_module

log = logging.getLogger("wapo.js")

PRECOMPILE_ENV = "WAPO_PRECOMPILE"
PRECOMPILE_EXPORT = "wapojs_precompile"
MAX_IMAGES = 256
MAX_IMAGE_BYTES = 256 * MIB   # all images together
MAX_CODE = 16 * MIB           # larger code is compiled per run, as before
# Smaller code compiles faster than its image is written (a hello agent: image 188 KiB, 1.1x
# slower from the image; a 215 KiB bundle: 55.6 -> 6.0 ms per request; bench/precompile_bench.py)
MIN_CODE = 1024

_images: OrderedDict[str, MemoryImage | None] = OrderedDict()
_bytes = 0
_lock = threading.Lock()
_compiling: dict[str, asyncio.Task] = {}  # key -> the compile in progress (one event loop's)
_too_slow: dict[str, float] = {}  # key -> the longest deadline a compile overran


def precompile_enabled() -> bool:

    flag = os.environ.get(PRECOMPILE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    return flag and snapshots_enabled()


def _key(code: str, name: str, entry: str) -> str:
    return hashlib.sha256(f"{entry}\0{name}\0".encode() + code.encode()).hexdigest()


def _eligible(code: str) -> bool:
    return MIN_CODE <= len(code) <= MAX_CODE and precompile_enabled()


def _cached(code: str, name: str, entry: str) -> tuple[str | None, MemoryImage | None]:
    """(the image's key, the image if it is made); no key when the code gets no image at all."""
    if not _eligible(code):
        return None, None
    key = _key(code, name, entry)
    with _lock:
        if key in _images:
            _images.move_to_end(key)
            return None, _images[key]
    return key, None


def _remember(key: str, image: MemoryImage | None) -> MemoryImage | None:
    global _bytes
    with _lock:
        if key not in _images:
            _images[key] = image
            _bytes += image.nbytes if image else 0
            while len(_images) > MAX_IMAGES or _bytes > MAX_IMAGE_BYTES:
                _, old = _images.popitem(last=False)
                _bytes -= old.nbytes if old else 0
        return _images.get(key, image)


def agent_image(code: str, name: str, entry: str) -> MemoryImage | None:
    """The image with ``code`` compiled for prelude entry ``entry``, made here on first use (the
    blocking form, for tools and tests); None if precompiling is off or the code does not compile."""
    key, image = _cached(code, name, entry)
    if key is None:
        return image
    try:
        image = capture(code, name, entry, INIT_TIME_LIMIT)
    except ImageTimeout:
        return None
    return _remember(key, image)


async def image_for_run(code: str, name: str, entry: str, limits: Limits, tenant: str) -> MemoryImage | None:
    """``agent_image`` for a run: compiled on a guest thread (a step of ``tenant``) within the run's
    burst limit, once for concurrent callers. ``LimitExceeded`` when the compile overran it."""
    key, image = _cached(code, name, entry)
    if key is None:
        return image
    deadline = limits.burst if not limits.time else min(limits.burst, limits.time)
    if _too_slow.get(key, -1.0) >= deadline:
        raise _compile_limit(name, deadline)
    task = _compiling.get(key)
    if task is None or task.get_loop() is not asyncio.get_running_loop():
        # a task of its own: a caller that goes away does not cancel the others' compile
        task = asyncio.get_running_loop().create_task(_compile(key, code, name, entry, deadline, tenant))
        _compiling[key] = task
        task.add_done_callback(lambda t: _compiled(key, t))
    return await asyncio.shield(task)


def _compiled(key: str, task: asyncio.Task) -> None:
    if _compiling.get(key) is task:
        del _compiling[key]
    if not task.cancelled():
        task.exception()  # retrieved here too: every caller may have gone away


async def _compile(key: str, code: str, name: str, entry: str, deadline: float, tenant: str) -> MemoryImage | None:
    try:
        image = await run_step(tenant, lambda: capture(code, name, entry, deadline))
    except ImageTimeout as exc:
        _too_slow[key] = max(_too_slow.get(key, 0.0), exc.deadline)
        raise _compile_limit(name, deadline) from None
    return _remember(key, image)


def _compile_limit(name: str, deadline: float) -> LimitExceeded:
    return LimitExceeded("burst", f"more than {deadline * 1000:.0f} ms", f"{deadline * 1000:.0f} ms",
                         stack=f"    compiling {name}",
                         hint="compiling the agent's code is guest time too; --burst-limit raises it")


def capture(code: str, name: str, entry: str, deadline: float) -> MemoryImage | None:
    """The image of ``code`` compiled, or None if it does not compile (ImageTimeout past ``deadline``)."""
    # per-run limits are not part of an image: wapojs_precompile drops them
    args = ["wapojs", *guest_args(code, (), Limits(), module=False, name=name, entry=entry)]
    try:
        return capture_image(wapojs_module(True), PRECOMPILE_EXPORT, args, deadline=deadline)
    except ImageTimeout:
        raise
    except ImageError as exc:
        log.debug("no precompiled image for %s: %s", name, exc)
        return None


def clear() -> None:
    """Forget every image (tests)."""
    global _bytes
    with _lock:
        _images.clear()
        _too_slow.clear()
        _bytes = 0
