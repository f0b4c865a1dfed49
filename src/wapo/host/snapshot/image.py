"""Memory images: what an init export changed in a snapshot's memory, applied to new sandboxes.

A snapshot (``wapo.host.snapshot``) is a module whose data segments are an initialized
instance; making one per agent would mean compiling the whole guest again per agent (1.5 s of
Cranelift and a 4.7 MB artifact for WapoJS, measured). The agent-specific part is small: the
pages its init touched. ``capture_image`` instantiates the shared snapshot, runs an init export
with the agent's WASI args, and keeps the pages that differ (and checks the mutable globals came
back unchanged, since only memory is carried over); ``apply_image`` writes them into a fresh
sandbox before its first call, through the bounds-checked ``GuestMemory``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import wasmtime

from ..engine import EPOCH_TICK, EngineConfig, get_engine
from ..errors import WapoError
from .capture import GLOBAL_EXPORT_PREFIX
from .wasm import PAGE

if TYPE_CHECKING:
    from ..module import GuestModule
    from ..memory import GuestMemory

DIFF_BLOCK = 4096
INIT_TIME_LIMIT = 10.0  # seconds an init may run


class ImageError(WapoError):
    """No image could be taken (the init failed, refused, or changed more than memory)."""


class ImageTimeout(ImageError):
    """The init ran past its deadline (``capture_image``'s ``deadline``)."""

    def __init__(self, deadline: float) -> None:
        super().__init__(f"the init ran longer than {deadline * 1000:.0f} ms")
        self.deadline = deadline


@dataclass(frozen=True)
class MemoryImage:
    size: int                             # bytes of memory the image needs
    runs: tuple[tuple[int, bytes], ...]   # (offset, bytes) to write, in order
    # the image as a module of its own (snapshot.image_module.ImageModule), once one is compiled:
    # sandboxes then start from it instead of a copy of ``runs``
    compiled: list["GuestModule"] = field(default_factory=list, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        return sum(len(data) for _, data in self.runs)


def diff_runs(before: bytes, after: bytes, block: int = DIFF_BLOCK) -> tuple[tuple[int, bytes], ...]:
    """The ``block``-aligned ranges of ``after`` that differ from ``before`` (zero-extended),
    adjacent ones merged."""
    runs: list[list[int]] = []
    for offset in range(0, len(after), block):
        end = min(offset + block, len(after))
        old = before[offset:end]
        if len(old) < end - offset:
            old = old + bytes(end - offset - len(old))
        if after[offset:end] == old:
            continue
        if runs and runs[-1][1] == offset:
            runs[-1][1] = end
        else:
            runs.append([offset, end])
    return tuple((start, after[start:end]) for start, end in runs)


def _globals(store: wasmtime.Store, exports) -> dict[str, object]:
    return {name: item.value(store) for name, item in exports.items()
            if name.startswith(GLOBAL_EXPORT_PREFIX) and isinstance(item, wasmtime.Global)}


def capture_image(module: "GuestModule", init_export: str, args: Sequence[str],
                  config: EngineConfig = EngineConfig(), deadline: float = INIT_TIME_LIMIT) -> MemoryImage:
    """Run ``init_export`` (a ``() -> i32`` export answering 1 for success) in a fresh instance of
    ``module`` given WASI ``args`` and return what it changed. No ocall is served meanwhile."""
    store = wasmtime.Store(get_engine(config))
    wasi = wasmtime.WasiConfig()
    wasi.argv = list(args)
    store.set_wasi(wasi)
    store.set_epoch_deadline(max(1, int(deadline / EPOCH_TICK)) + 1)
    if config.fuel:
        store.set_fuel(2**62)
    try:
        instance = module.instance_pre(config).instantiate(store)
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        raise ImageError(f"cannot instantiate {module.name}: {str(exc).splitlines()[0]}") from None
    found = instance.exports(store)
    exports = dict(zip(found, found.by_index))
    memory = exports.get("memory")
    init = exports.get(init_export)
    if not isinstance(memory, wasmtime.Memory) or not isinstance(init, wasmtime.Func):
        raise ImageError(f"{module.name} exports no memory or no {init_export!r}")
    before = bytes(memory.read(store, 0, memory.data_len(store)))
    globals_before = _globals(store, exports)
    try:
        ok = init(store)
    except wasmtime.Trap as exc:
        if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
            raise ImageTimeout(deadline) from None
        raise ImageError(f"{init_export} failed: {str(exc).splitlines()[0]}") from None
    except wasmtime.WasmtimeError as exc:
        raise ImageError(f"{init_export} failed: {str(exc).splitlines()[0]}") from None
    if ok != 1:
        raise ImageError(f"{init_export} declined (answered {ok})")
    if _globals(store, exports) != globals_before:
        raise ImageError(f"{init_export} changed a global: an image carries memory only")
    after = bytes(memory.read(store, 0, memory.data_len(store)))
    return MemoryImage(len(after), diff_runs(before, after))


def apply_image(memory: "GuestMemory", image: MemoryImage, grow) -> None:
    """Write ``image`` into a fresh sandbox's memory; ``grow(pages)`` enlarges it first if needed."""
    size = memory.size()
    if image.size > size:
        grow((image.size - size + PAGE - 1) // PAGE)
    for offset, data in image.runs:
        memory.write(offset, data)
