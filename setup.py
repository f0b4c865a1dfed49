"""Builds the WapoJS guest into the wheel. Everything else is in pyproject.toml."""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))


class BuildWithGuest(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # an editable install builds the guest into the user cache on first use
        from wapo.js import build

        out = Path(self.build_lib) / "wapo" / "js" / "guest" / build.WASM_NAME
        try:
            cached = build.ensure_wasm()
        except build.BuildError as exc:
            sys.exit(f"error: could not build the WapoJS guest: {exc}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(cached.read_bytes())
        out.with_name(build.WASM_NAME + ".key").write_text(build.inputs_key())


setup(cmdclass={"build_py": BuildWithGuest})
