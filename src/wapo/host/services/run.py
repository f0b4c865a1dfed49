"""Services about the run itself: output written while the guest runs, and the caller going away."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .registry import service

if TYPE_CHECKING:
    from ..state import GuestState


@service("output.write", inline=True, quick=True)
def write(st: GuestState, payload: bytes) -> bytes:
    st.emit_output(payload)
    return b""


@service("cancellation")
def cancellation(st: GuestState, payload: bytes) -> bytes:
    """A resource that becomes ready when the caller of this run goes away (Instance.cancel)."""
    import asyncio
    import struct

    from ..resources import FutureResource
    return struct.pack("<I", st.resources.add(FutureResource(asyncio.shield(st.cancelled))))
