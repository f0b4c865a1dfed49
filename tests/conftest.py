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


# --- the store's backends: embedded SQLite, and a shared PostgreSQL (issue 14) -------------------
# PostgreSQL runs at 127.0.0.1:5432 on the project's machines (trust auth, database `test`); each
# test gets a schema of its own, selected through the URL's search_path, and drops it afterwards.
PG_URL = os.environ.get("WAPO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """The URL of a fresh PostgreSQL schema for this test (dropped afterwards)."""
    import psycopg

    schema = "wapo_t_" + os.urandom(6).hex()
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_at(request, tmp_path):
    """Opens stores of one backend at one place: ``store_at(**kwargs)``, again to reopen it.

    Attributes: ``backend`` ("sqlite" or "postgres"), ``target`` (the data directory or the URL),
    ``key`` (the cluster key, postgres only)."""
    from wapo.store import ClusterKey, open_store

    if request.param == "sqlite":
        target, key = tmp_path / "data", None
    else:
        target, key = request.getfixturevalue("pg_url"), ClusterKey(os.urandom(32))
    opened = []

    def make(**kwargs):
        store = open_store(target, cluster_key=key, **kwargs)
        opened.append(store)
        return store

    make.backend, make.target, make.key = request.param, target, key
    yield make
    for store in opened:
        store.close()
