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
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict

from ..host import Limits
from ..host.snapshot.image import ImageError, MemoryImage, capture_image
from ..host.limits import MIB
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


def precompile_enabled() -> bool:

    flag = os.environ.get(PRECOMPILE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    return flag and snapshots_enabled()


def _key(code: str, name: str, entry: str) -> str:
    return hashlib.sha256(f"{entry}\0{name}\0".encode() + code.encode()).hexdigest()


def agent_image(code: str, name: str, entry: str) -> MemoryImage | None:
    """The image with ``code`` compiled for prelude entry ``entry``, made on first use; None if
    precompiling is off or the code does not compile."""
    global _bytes
    if not MIN_CODE <= len(code) <= MAX_CODE or not precompile_enabled():
        return None
    key = _key(code, name, entry)
    with _lock:
        if key in _images:
            _images.move_to_end(key)
            return _images[key]
    image = _capture(code, name, entry)
    with _lock:
        if key not in _images:
            _images[key] = image
            _bytes += image.nbytes if image else 0
            while len(_images) > MAX_IMAGES or _bytes > MAX_IMAGE_BYTES:
                _, old = _images.popitem(last=False)
                _bytes -= old.nbytes if old else 0
        return _images.get(key, image)


def _capture(code: str, name: str, entry: str) -> MemoryImage | None:

    # per-run limits are not part of an image: wapojs_precompile drops them
    args = ["wapojs", *guest_args(code, (), Limits(), module=False, name=name, entry=entry)]
    try:
        return capture_image(wapojs_module(True), PRECOMPILE_EXPORT, args)
    except ImageError as exc:
        log.debug("no precompiled image for %s: %s", name, exc)
        return None


def clear() -> None:
    """Forget every image (tests)."""
    global _bytes
    with _lock:
        _images.clear()
        _bytes = 0
