"""How a run is set up: one typed value handed down from the caller (gateway, agent, CLI) to the
``Instance``, instead of a dozen keyword arguments repeated at every layer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .limits import Limits

if TYPE_CHECKING:
    from .net.policy import NetworkPolicy
    from .state import LogRecord


@dataclass(frozen=True)
class FetchHook:
    """What a caller adds to one outgoing fetch of the guest (``RunOptions.on_fetch``): headers
    the guest did not set itself (e.g. a W3C ``traceparent``), and ``done(status, error)`` when
    the fetch ends (status None when it failed)."""

    headers: tuple[tuple[str, str], ...] = ()
    done: Callable[[int | None, str | None], None] | None = None


@dataclass(frozen=True)
class RunOptions:
    """Settings of one run. Every field has the default a plain ``wapo exec`` would use."""

    limits: Limits = field(default_factory=Limits)
    # 32 bytes naming the app (derive_secret, sign); None: derived from the code
    app_address: bytes | None = None
    # where the node key lives (None: the default data directory)
    data_dir: Path | None = None
    # allowed addresses and fetch limits (None: the defaults, public addresses only)
    network: NetworkPolicy | None = None
    # the guest's WASI environment (nothing of the host's leaks in)
    env: tuple[tuple[str, str], ...] = ()
    # WASI stdout/stderr go to the host's (wapo exec of a plain wasm guest)
    inherit_stdio: bool = False
    # who the run is for, when guest threads are shared fairly: an agent's CID, an app's id
    tenant: str = ""
    # each log line the run keeps, as it is written (they are also in RunResult.logs), and the line
    # saying how many the caps dropped
    on_log: Callable[[LogRecord], None] | None = None
    # on_log also sees the lines past the log caps: a long-running app's sink, which has no caps
    log_past_caps: bool = False
    # output as it is emitted; when set, RunResult.output stays empty
    on_output: Callable[[bytes], None] | None = None
    # called with (method, url) as each outgoing fetch starts (tracing: gateway/telemetry.py)
    on_fetch: Callable[[str, str], FetchHook] | None = None

    def __post_init__(self) -> None:
        if self.app_address is not None and len(self.app_address) != 32:
            raise ValueError("an app address is 32 bytes")
        object.__setattr__(self, "env", tuple((str(k), str(v)) for k, v in self.env))

    def with_settings(self, **settings: Any) -> RunOptions:
        """A copy with some fields changed (``TypeError`` names an unknown one)."""
        return replace(self, **settings) if settings else self
