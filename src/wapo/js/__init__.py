"""WapoJS: the QuickJS guest, its build and ``run_js``. Imports nothing heavy at import time:
the install step imports ``wapo.js.build`` before wasmtime is installed."""


def __getattr__(name: str):
    if name in ("run_js", "run_js_async", "js_instance", "wapojs_module"):
        from . import runner
        return getattr(runner, name)
    raise AttributeError(name)
