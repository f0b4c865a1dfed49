"""Checks before publishing: an agent that cannot work is refused with the reason at publish time,
not discovered at its first request. The code is compiled in a real WapoJS sandbox (never run,
unless it fails to compile: then the run stops at the syntax error, which is the reason we give)
and its source is looked at for one of the three agent styles."""

from __future__ import annotations

import asyncio
import re

from ..host import Limits
from ..host.snapshot.image import ImageTimeout
from ..js.precompiled import capture
from ..js.sandbox import ScriptError
from .request import AgentRequest
from .response import STYLES
from .runner import ENTRY, call_agent

NOT_JS_SUFFIXES = {".md", ".markdown", ".txt", ".json", ".html", ".htm", ".css", ".yaml", ".yml", ".toml", ".py",
                   ".rst", ".csv", ".xml"}
CHECK_LIMITS = Limits(memory=100 * 1000 * 1000, time=10.0, burst=5.0)
# Any of these in the source is taken as one of the three styles (A: main; B: a bundle that answers
# itself or exports its handler; C: a default export or a fetch handler).
STYLE_MARKERS = re.compile(
    r"\bmain\b|\bscriptOutput\b|\bexport\s+default\b|\bexport\s*\{[^}]*\bas\s+default\b|module\.exports"
    r"|\bexports\.default\b|\bfetch\s*[(:]")


class AgentCheckFailed(ValueError):
    """The code cannot work as an agent; the message says why and what to do."""


def check_agent(code: str, name: str = "agent.js") -> None:
    """Raise ``AgentCheckFailed`` if ``code`` is empty, not JavaScript, does not compile, or has
    no recognisable agent style. Blocking (compiles in a sandbox); call it off the event loop."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if not code.strip():
        raise AgentCheckFailed(f"{name} is empty: an agent is JavaScript in one of three styles: {STYLES}")
    if suffix in NOT_JS_SUFFIXES:
        raise AgentCheckFailed(f"{name} is not JavaScript (a {suffix} file): publish the agent's .js file, "
                               "or a .ts file or project folder to bundle")
    problem = compile_error(code, name)
    if problem is not None:
        raise AgentCheckFailed(f"{name} does not compile: {problem}")
    if not STYLE_MARKERS.search(code):
        raise AgentCheckFailed(f"{name} compiles but has no recognisable agent style: it must be one of {STYLES}")


def compile_error(code: str, name: str) -> str | None:
    """None if QuickJS compiles ``code`` as the gateway would (script or module), else why not."""
    try:
        if capture(code, name, ENTRY, CHECK_LIMITS.burst) is not None:
            return None
    except ScriptError as exc:
        return str(exc)
    except ImageTimeout:
        return None  # too large to compile in time here: the runs will say (burst limit)
    # It did not compile: a run stops at the same error before any of the code runs.
    result = asyncio.run(call_agent(code, AgentRequest(), name=name, limits=CHECK_LIMITS))
    if result.error is None:
        return None
    lines = [line for line in result.error.splitlines()
             if line.strip() and "(native)" not in line and "(wapo:" not in line]
    message = "\n".join(lines[:3]).removeprefix("Uncaught (in promise) ").removeprefix("Uncaught ")
    if "could not load module" in message or "module" in message and "not found" in message:
        message += ("\n(an agent is one file: bundle its imports, e.g. `wapo publish DIR` or `wapo publish FILE.ts` "
                    "bundles with esbuild)")
    return message
