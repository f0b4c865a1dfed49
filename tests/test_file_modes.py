"""The data directory is private: directories 0700; database (with -wal/-shm), keys 0600.

Whichever command first touches a fresh data directory, and whatever the umask: 022 (the usual
one) would let other users read what the default modes create, 000 makes everything world-writable,
077 is what a careful operator sets (it must not take the owner's own bits away either).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import write

UMASKS = [0o022, 0o000, 0o077]
PRIVATE_FILES = {"node_key", "vault.key", "wapo.sqlite3", "wapo.sqlite3-wal", "wapo.sqlite3-shm",
                 "wapo.sqlite3-journal"}

AGENT = """\
async function main(request) {
  console.log("a log line");
  return JSON.stringify({status: 200, headers: {}, body: Wapo.hexEncode(Wapo.deriveSecret("salt"))});
}
"""
DERIVE = "scriptOutput = Wapo.hexEncode(Wapo.deriveSecret('salt'))"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_private(root: Path, data: Path) -> list[str]:
    """Every directory from ``root`` (exclusive) down to and inside ``data`` is 0700; keys and the database 0600."""
    problems = []
    for d in [p for p in data.parents if root in p.parents] + [data]:
        if mode(d) != 0o700:
            problems.append(f"{d}: {mode(d):o}")
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames:
            if mode(Path(dirpath, name)) != 0o700:
                problems.append(f"{dirpath}/{name}: {mode(Path(dirpath, name)):o}")
        for name in filenames:
            if name in PRIVATE_FILES and mode(Path(dirpath, name)) != 0o600:
                problems.append(f"{dirpath}/{name}: {mode(Path(dirpath, name)):o}")
    return problems


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def cli(data: Path, mask: int, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, WAPO_DATA_DIR=str(data))
    p = subprocess.run([sys.executable, "-m", "wapo.cli.main", *argv], capture_output=True, timeout=120, env=env,
                       preexec_fn=lambda: os.umask(mask))
    assert p.returncode == 0, (argv, p.stderr.decode(errors="replace"))
    return p


# --- through the CLI: the first command may be any of them ---------------------------------------

FIRST = {
    "exec-derive-secret": lambda tmp, data, m: cli(data, m, "exec", str(write(tmp, "derive.js", DERIVE))),
    "publish": lambda tmp, data, m: cli(data, m, "publish", str(write(tmp, "agent.js", AGENT))),
    "deploy": lambda tmp, data, m: cli(data, m, "deploy", str(write(tmp, "app.js", AGENT)), "--id", "first"),
}


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
@pytest.mark.parametrize("first", list(FIRST))
def test_cli_fresh_data_dir_is_private(tmp_path, first, mask):
    data = tmp_path / "home" / "share" / "wapo"  # the parents are missing too, like ~/.local/share on a new account
    FIRST[first](tmp_path, data, mask)
    assert data.is_dir()
    assert check_private(tmp_path, data) == []
    # then the others, in the now existing directory
    cli(data, mask, "exec", str(write(tmp_path, "derive.js", DERIVE)))
    cid = cli(data, mask, "publish", str(write(tmp_path, "agent.js", AGENT))).stdout.decode().split()[-1]
    cli(data, mask, "secrets", "set", cid, "token=s3cret")
    cli(data, mask, "deploy", str(write(tmp_path, "app.js", AGENT)), "--id", "later")
    cli(data, mask, "call", cid)
    names = {p.name for p in data.iterdir()}
    assert {"node_key", "vault.key", "wapo.sqlite3", "apps"} <= names, names
    assert check_private(tmp_path, data) == []


# --- through the Python API -----------------------------------------------------------------------

@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_store_database_wal_shm_and_vault_key_are_private(tmp_path, mask):
    from wapo.store import Store

    data = tmp_path / "a" / "b" / "data"
    with umask(mask):
        store = Store(data)
        try:
            cid = store.put_code(AGENT.encode())
            store.create_vault(cid, {"token": "s3cret"})
            store.append_log(cid, "req-1", "info", "a log line")
            # the connection is open: the WAL and its shared-memory index exist now
            assert (data / "wapo.sqlite3-wal").exists() and (data / "wapo.sqlite3-shm").exists()
            assert check_private(tmp_path, data) == []
        finally:
            store.close()
    assert check_private(tmp_path, data) == []
    assert mode(data / "vault.key") == 0o600 and mode(data / "wapo.sqlite3") == 0o600


@pytest.mark.parametrize("mask", UMASKS, ids=oct)
def test_node_key_creates_a_private_dir_and_file(tmp_path, mask):
    from wapo.host.keys import NodeKey

    data = tmp_path / "x" / "data"
    with umask(mask):
        key = NodeKey.load_or_create(data)
    assert mode(data / "node_key") == 0o600
    assert check_private(tmp_path, data) == []
    assert sorted(p.name for p in data.iterdir()) == ["node_key"]  # no temp file left behind
    assert NodeKey.load_or_create(data).public == key.public


def test_existing_directories_keep_their_mode(tmp_path):
    # an operator's own choice (e.g. a group-shared parent) is not changed; only what wapo creates
    from wapo.store import Store

    parent = tmp_path / "shared"
    parent.mkdir()
    os.chmod(parent, 0o750)
    with umask(0o022):
        Store(parent / "data").close()
    assert mode(parent) == 0o750
    assert mode(parent / "data") == 0o700 and mode(parent / "data" / "wapo.sqlite3") == 0o600


def test_app_records_create_a_private_data_dir(tmp_path):
    from wapo.store.apps import AppRecords

    data = tmp_path / "fresh" / "data"
    with umask(0o022):
        AppRecords(data).deploy(write(tmp_path, "app.js", AGENT), "one")
    assert mode(data) == 0o700 and mode(data / "apps") == 0o700 and mode(tmp_path / "fresh") == 0o700


def test_node_key_created_at_once_by_many_threads_is_one_key(tmp_path):
    import threading

    from wapo.host.keys import NodeKey

    data = tmp_path / "race"
    barrier, keys = threading.Barrier(8), []

    def make():
        barrier.wait()
        keys.append(NodeKey.load_or_create(data).public)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in data.iterdir()) == ["node_key"]
