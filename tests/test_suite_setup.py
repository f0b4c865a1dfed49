"""The test suite's own setup, run as pytest runs it (a subprocess on a copy of the files at hand).

- The WPT URL data is read from ``shared/wpt`` beside the repository, wherever it is cloned, and its
  absence FAILS the WPT tests when CI is set (a skip would hide it); elsewhere they skip.
- Hypothesis draws the same examples on every run (a random find must not turn into a random CI
  failure), unless WAPO_FUZZ=1 asks for the longer random run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
REAL_WPT = TESTS.parent.parent / "shared" / "wpt"


def pytest_run(tests_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("CI", "WAPO_FUZZ", "PYTEST_ADDOPTS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", *args],
                          cwd=tests_dir.parent, env=dict(base, **env), capture_output=True, text=True, timeout=300)


def clone(tmp_path: Path, *files: str) -> Path:
    """``tmp_path/repo/tests`` with the named test files and the shared helpers: a clone elsewhere."""
    tests = tmp_path / "repo" / "tests"
    tests.mkdir(parents=True)
    for name in ("conftest.py", "jscases.py", *files):
        shutil.copy(TESTS / name, tests / name)
    return tests


def outcome(p: subprocess.CompletedProcess) -> dict[str, int]:
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)", last)}


def test_wpt_data_missing_fails_in_ci_and_skips_elsewhere(tmp_path):
    tests = clone(tmp_path, "test_web_url.py")  # no shared/ beside this clone
    ci = pytest_run(tests, str(tests / "test_web_url.py"), "-k", "wpt", CI="true")
    assert outcome(ci) == {"failed": 4}, ci.stdout[-3000:]
    assert "no WPT data at" in ci.stdout and str(tmp_path / "shared" / "wpt") in ci.stdout
    local = pytest_run(tests, str(tests / "test_web_url.py"), "-k", "wpt")
    assert outcome(local) == {"skipped": 4}, local.stdout[-3000:]


@pytest.mark.skipif(not REAL_WPT.is_dir(), reason="no WPT data beside this repository (test_web_url fails in CI)")
def test_wpt_data_beside_the_clone_is_read(tmp_path):
    tests = clone(tmp_path, "test_web_url.py")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "wpt").symlink_to(REAL_WPT)
    p = pytest_run(tests, str(tests / "test_web_url.py"), "-k", "wpt", "-s", CI="true")
    assert outcome(p) == {"passed": 4}, p.stdout[-3000:]
    assert re.search(r"WPT urltestdata: \d+/\d+ pass", p.stdout)


HYPOTHESIS_TEST = '''
import os
from hypothesis import given, settings, strategies as st
from conftest import examples

@given(st.binary(max_size=64))
def test_default_budget(b):
    with open(os.environ["RECORD"] + ".default", "a") as f:
        f.write(b.hex() + "\\n")

@settings(max_examples=examples(20))
@given(st.integers(), st.text(max_size=10))
def test_own_budget(n, s):
    with open(os.environ["RECORD"] + ".own", "a") as f:
        f.write(f"{n} {s!r}\\n")
'''


def run_hypothesis(tmp_path: Path, name: str, **env: str) -> tuple[list[str], list[str]]:
    tests = clone(tmp_path / name)
    (tests / "test_h.py").write_text(HYPOTHESIS_TEST)
    record = tmp_path / f"{name}.record"
    p = pytest_run(tests, str(tests / "test_h.py"), RECORD=str(record), **env)
    assert outcome(p) == {"passed": 2}, p.stdout[-3000:] + p.stderr[-3000:]
    return (Path(f"{record}.default").read_text().splitlines(), Path(f"{record}.own").read_text().splitlines())


def test_hypothesis_is_derandomized_by_default_and_in_ci(tmp_path):
    first = run_hypothesis(tmp_path, "a")
    assert first == run_hypothesis(tmp_path, "b"), "two runs drew different examples"
    assert first == run_hypothesis(tmp_path, "c", CI="true")
    default, own = first
    assert 1 < len(default) <= 100 and 1 < len(own) <= 20


def test_fuzz_run_is_random_and_longer(tmp_path):
    default, own = run_hypothesis(tmp_path, "plain")
    fuzz1 = run_hypothesis(tmp_path, "fuzz1", WAPO_FUZZ="1")
    fuzz2 = run_hypothesis(tmp_path, "fuzz2", WAPO_FUZZ="1")
    assert fuzz1 != fuzz2, "the fuzz run is not random"
    assert len(fuzz1[0]) > 2 * len(default) and len(fuzz1[1]) > 2 * len(own)
