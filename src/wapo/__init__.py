"""wapo: a serverless runtime for JavaScript agents on a WebAssembly host.

    >>> import wapo
    >>> wapo.run_js("scriptOutput = String(6 * 7)").output
    b'42'
"""

from ._version import __version__

__all__ = ["__version__", "run_js", "run_js_async"]


def __getattr__(name: str):
    # Lazy, so that the install step can import wapo.js.build without wasmtime.
    if name in ("run_js", "run_js_async"):
        from .js import runner
        return getattr(runner, name)
    if name in ("Limits", "RunResult", "RunError", "LimitExceeded", "GuestError"):
        from . import host
        return getattr(host, name)
    raise AttributeError(f"module 'wapo' has no attribute {name!r}")
