"""Running JavaScript: ``run_js`` / ``run_js_async`` for scripts, and ``js_instance`` for callers
that drive the sandbox themselves. Importing it registers the host services JS guests use (the
``wapojs.*`` ones and the ``app.*`` ones of JS apps)."""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from ..host import Limits, RunResult
from ..host import apps  # noqa: F401  (registers the app.* services JS apps use)
from . import services  # noqa: F401  (registers the wapojs.* host services)
from .sandbox import ScriptError, guest_args, js_instance, snapshots_enabled, wapojs_module

__all__ = ["ScriptError", "guest_args", "js_instance", "run_js", "run_js_async", "snapshots_enabled", "wapojs_module"]


async def run_js_async(code: str, args: Sequence[str] = (), *, limits: Limits = Limits(), module: bool = False,
                       name: str | None = None, on_log: Callable | None = None, network=None) -> RunResult:
    """Run ``code`` in a fresh sandbox; ``scriptArgs`` is ``args``; returns output, logs and any error.
    ``network`` is a ``wapo.host.net.policy.NetworkPolicy`` (allowed addresses, fetch limits)."""
    return await js_instance(code, args, limits=limits, module=module, name=name, on_log=on_log,
                             network=network).run()


def run_js(code: str, args: Sequence[str] = (), *, limits: Limits = Limits(), module: bool = False,
           name: str | None = None, on_log: Callable | None = None, network=None) -> RunResult:
    """Blocking form of ``run_js_async`` for scripts and the REPL (not inside a running event loop)."""
    return asyncio.run(run_js_async(code, args, limits=limits, module=module, name=name, on_log=on_log,
                                    network=network))
