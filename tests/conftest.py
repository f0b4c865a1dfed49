"""Shared fixtures. Tests run the real wasmtime and the real WapoJS guest: nothing is mocked."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from wapo.host import Limits

# --- Hypothesis: the same examples on every run, a longer random run on demand -----------------
# "deterministic" (the default, so CI too): derandomized (examples derived from each test), no
# example database, no deadline, so a run of the suite never fails by the luck of the draw.
# "fuzz" (WAPO_FUZZ=1): fresh random examples, FUZZ_FACTOR times as many, failures kept in
# .hypothesis/ and replayed first. A test with its own max_examples passes it through examples().
FUZZ = os.environ.get("WAPO_FUZZ", "") not in ("", "0")
FUZZ_FACTOR = 20
hypothesis_settings.register_profile("deterministic", derandomize=True, database=None, deadline=None,
                                     print_blob=True)
hypothesis_settings.register_profile("fuzz", derandomize=False, deadline=None, print_blob=True,
                                     max_examples=100 * FUZZ_FACTOR)
hypothesis_settings.load_profile("fuzz" if FUZZ else "deterministic")


def examples(n: int) -> int:
    """A test's max_examples: ``n``, or FUZZ_FACTOR times ``n`` in the fuzz run."""
    return n * FUZZ_FACTOR if FUZZ else n


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
