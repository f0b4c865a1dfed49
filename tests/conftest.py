"""Shared fixtures. Tests run the real wasmtime and the real WapoJS guest: nothing is mocked."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from wapo.host import Limits


@pytest.fixture
def js():
    """Run a script in a fresh WapoJS sandbox: js(code, *args, **limits) -> RunResult."""
    from wapo.js.runner import run_js

    def run(code: str, *args: str, module: bool = False, **limits):
        return run_js(code, list(args), limits=Limits(**limits), module=module)

    return run


@pytest.fixture
def wapo_cli(tmp_path):
    """Run the installed `wapo` command in a subprocess."""
    import subprocess

    def run(*argv: str, input: bytes | None = None, timeout: float = 120):
        env = dict(os.environ, WAPO_DATA_DIR=str(tmp_path / "data"))
        return subprocess.run([sys.executable, "-m", "wapo.cli.main", *argv], capture_output=True,
                              input=input, timeout=timeout, env=env)

    return run


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
