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

A hot image (used by ``HOT_RUNS`` runs in this process) is then compiled into a module of its
own (wapo.host.snapshot.image_module) on a background thread, cached on disk for every worker
process; runs after that map it copy-on-write instead of copying the image
(``WAPO_IMAGE_MODULE_RUNS``, 0 = never). The thread is a daemon: a process exiting does not
wait for a compile in progress (it was only a cache fill). The disk cache is bounded
(wapo.host.cache_bound, ``WAPO_IMAGE_CACHE_SIZE``).

Compiling is guest work (``image_for_run``): it runs on a guest thread as a step of the run's
tenant, never on the event loop, under the run's burst limit (as in the reference, where the
code is evaluated inside the guest), and concurrent first runs of one code share one compile.
A compile that overran is remembered: runs with no larger a burst limit fail at once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future

from ..host import LimitExceeded, Limits
from ..host.errors import WapoError
from ..host.limits import MIB
from ..host.engine import EngineConfig
from ..host.snapshot.image import INIT_TIME_LIMIT, ImageError, ImageTimeout, MemoryImage, capture_image
from ..host.snapshot.image_module import ImageModule
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
# Runs of one image in this process after which it is compiled into a module of its own (~1.5 s
# of Cranelift, once per image and machine: the artifact is cached on disk). bench/precompile_bench.py
HOT_RUNS = int(os.environ.get("WAPO_IMAGE_MODULE_RUNS", "8"))

_images: OrderedDict[str, MemoryImage | None] = OrderedDict()
_bytes = 0
_lock = threading.Lock()
_compiling: dict[str, asyncio.Task] = {}  # key -> the compile in progress (one event loop's)
_too_slow: dict[str, float] = {}  # key -> the longest deadline a compile overran
_uses: dict[str, int] = {}  # key -> runs from its image, until it is hot
# one background thread compiles image modules; a daemon: exiting never waits for a compile (a
# cache fill; an abandoned one leaves no usable partial artifact: wapo.host.module, cache_bound)
_compiler: queue.SimpleQueue | None = None
_compiler_lock = threading.Lock()


def precompile_enabled() -> bool:

    flag = os.environ.get(PRECOMPILE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    return flag and snapshots_enabled()


def _key(code: str, name: str, entry: str) -> str:
    return _key_memo(code, name, entry) if len(code) <= KEY_MEMO_CODE else _key_of(code, name, entry)


def _key_of(code: str, name: str, entry: str) -> str:
    return hashlib.sha256(f"{entry}\0{name}\0".encode() + code.encode()).hexdigest()


# hashing a 215 KB code cost ~0.1 ms a request; a repeated code is usually the same str object, so
# a memo hit costs an identity check. Bounded: at most KEY_MEMO x KEY_MEMO_CODE bytes kept alive.
KEY_MEMO = 32
KEY_MEMO_CODE = 1 * MIB
_key_memo = functools.lru_cache(maxsize=KEY_MEMO)(_key_of)


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
            image = _images[key]
            if image is not None and not image.compiled and key in _uses:
                _uses[key] += 1
                if _uses[key] >= HOT_RUNS > 0:
                    del _uses[key]
                    _compile_in_background(image)
            return None, image
    return key, None


def _compile_in_background(image: MemoryImage) -> Future:
    global _compiler
    future: Future = Future()
    with _compiler_lock:
        if _compiler is None:
            _compiler = queue.SimpleQueue()
            threading.Thread(target=_compile_loop, args=(_compiler,), name="wapo-image-module", daemon=True).start()
        _compiler.put((future, image))
    return future


def _compile_loop(jobs: queue.SimpleQueue) -> None:
    while True:
        future, image = jobs.get()
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(compile_module(image))
        except BaseException as exc:  # noqa: BLE001 - the caller's future holds it
            future.set_exception(exc)


def _forget_compiler() -> None:
    global _compiler
    _compiler = None  # a forked child has no such thread: it starts its own


os.register_at_fork(after_in_child=_forget_compiler)


def compile_module(image: MemoryImage) -> ImageModule | None:
    """Compile ``image`` into a module of its own and attach it (``image.compiled``); None if
    it cannot be (logged: its runs keep copying the image)."""
    if image.compiled:
        return image.compiled[0]  # type: ignore[return-value]
    try:
        module = ImageModule(wapojs_module(True), image)
        overflow = EngineConfig().overflow()
        if EngineConfig().uses_pool:
            module.instance_pre(overflow)  # where runs go when the pool is full: loaded now too
    except WapoError as exc:
        log.warning("no image module: %s", exc)
        return None
    if not image.compiled:
        image.compiled.append(module)
    return image.compiled[0]  # type: ignore[return-value]


def _remember(key: str, image: MemoryImage | None) -> MemoryImage | None:
    global _bytes
    with _lock:
        if key not in _images:
            _images[key] = image
            _bytes += image.nbytes if image else 0
            if image is not None:
                _uses[key] = 1
            while len(_images) > MAX_IMAGES or _bytes > MAX_IMAGE_BYTES:
                old_key, old = _images.popitem(last=False)
                _uses.pop(old_key, None)
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
        _uses.clear()
        _bytes = 0
