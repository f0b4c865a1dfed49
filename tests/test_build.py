"""The guest build: pinned inputs, cache, and errors that say what to install."""

from __future__ import annotations

import sys

import pytest

from wapo.js import build


def test_built_guest_is_found_and_matches_current_sources():
    path = build.find_wasm()
    assert path is not None and path.exists()
    assert path.read_bytes()[:4] == b"\0asm"


def test_inputs_key_changes_with_the_glue(tmp_path, monkeypatch):
    before = build.inputs_key()
    guest = tmp_path / "guest"
    guest.mkdir()
    for src in build.GUEST_DIR.glob("*.c"):
        (guest / src.name).write_text(src.read_text() + "\n/* changed */\n")
    monkeypatch.setattr(build, "GUEST_DIR", guest)
    assert build.inputs_key() != before


def test_missing_toolchain_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ziglang", None)  # makes `import ziglang` fail
    with pytest.raises(build.BuildError, match=r"pip install ziglang=="):
        build._zig_command()


def test_corrupt_sdist_is_rejected_and_deleted(tmp_path, monkeypatch):
    monkeypatch.setenv("WAPO_CACHE_DIR", str(tmp_path))
    sdist = tmp_path / "sdist" / build.QUICKJS_SDIST
    sdist.parent.mkdir(parents=True)
    sdist.write_bytes(b"not the real sdist")
    with pytest.raises(build.BuildError, match="sha256"):
        build.fetch_sdist(tmp_path / "work", progress=None)
    assert not sdist.exists()
