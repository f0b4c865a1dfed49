"""App records: which long-running apps are deployed, in ``<data>/apps/apps.json`` beside a copy of
each app's code. Written by ``wapo deploy`` (and config-file apps), read by the gateway's
supervisor, which notices changes by the file's mtime."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .db import make_private_dir

log = logging.getLogger("wapo.store.apps")

ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")


class AppRecordError(ValueError):
    pass


def check_app_id(app_id: str) -> str:
    """App ids are log keys: 1..64 of [A-Za-z0-9_.:-], not starting with Qm or b (those look like CIDs)."""
    if not ID_RE.match(app_id) or app_id.startswith(("Qm", "b")):
        raise AppRecordError(f"invalid app id {app_id!r}: use 1..64 letters, digits, _ . : -, "
                             "not starting with 'Qm' or 'b'")
    return app_id


def default_app_id(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.:-]", "-", path.stem)[:60] or "app"
    if stem.startswith(("Qm", "b")):
        stem = "app-" + stem
    return stem[:64]


# --- the record ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AppRecord:
    id: str
    kind: str  # "wasm" (a .wasm or .wat module of the ABI) or "js"
    file: str  # the code's file name inside <data>/apps/
    sha256: str
    on_demand: bool = False
    listen: int | None = None  # a port the app may tcp_listen on
    stopped: bool = False
    deployed_at: float = 0.0


def new_record(source: Path, app_id: str | None = None, *, on_demand: bool = False,
               listen: int | None = None) -> tuple[AppRecord, bytes]:
    """The record of deploying ``source`` (and its code); AppRecordError if it cannot be deployed."""
    source = Path(source)
    try:
        code = source.read_bytes()
    except OSError as exc:
        raise AppRecordError(f"cannot read {source}: {exc.strerror}") from None
    app_id = check_app_id(app_id or default_app_id(source))
    if code[:4] == b"\0asm":
        kind, ext = "wasm", ".wasm"
    elif source.suffix == ".wat":
        kind, ext = "wasm", ".wat"
    else:
        kind, ext = "js", ".js"
        try:
            code.decode("utf-8")
        except UnicodeDecodeError:
            raise AppRecordError(f"{source} is neither a wasm module nor UTF-8 JavaScript") from None
    if listen is not None and not 1 <= listen <= 65535:
        raise AppRecordError(f"--listen {listen}: a port is 1..65535")
    record = AppRecord(id=app_id, kind=kind, file=app_id + ext, sha256=hashlib.sha256(code).hexdigest(),
                       on_demand=on_demand, listen=listen, stopped=False, deployed_at=time.time())
    return record, code


class AppRecords:
    """``<data>/apps/apps.json``: {"apps": {id: AppRecord fields}}; code in ``<data>/apps/<id>.<ext>``.

    Writers take an flock on ``apps/.lock`` and replace the file atomically."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir) / "apps"
        self.path = self.dir / "apps.json"

    def load(self) -> dict[str, AppRecord]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("cannot read %s: %s", self.path, exc)
            return {}
        records = {}
        for app_id, fields in (data.get("apps") or {}).items():
            try:
                records[app_id] = AppRecord(**fields)
            except TypeError as exc:
                log.error("bad app record %s in %s: %s", app_id, self.path, exc)
        return records

    def mtime(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    @contextlib.contextmanager
    def _locked(self):
        make_private_dir(self.dir)  # `wapo deploy` may be the first to make the data directory
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _save(self, records: dict[str, AppRecord]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"apps": {k: asdict(v) for k, v in sorted(records.items())}}, indent=2))
        os.replace(tmp, self.path)

    def deploy(self, source: Path, app_id: str | None = None, *, on_demand: bool = False,
               listen: int | None = None) -> AppRecord:
        record, code = new_record(source, app_id, on_demand=on_demand, listen=listen)
        with self._locked():
            records = self.load()
            old = records.get(record.id)
            (self.dir / record.file).write_bytes(code)
            if old is not None and old.file != record.file:
                (self.dir / old.file).unlink(missing_ok=True)
            records[record.id] = record
            self._save(records)
        return record

    def remove(self, app_id: str) -> bool:
        with self._locked():
            records = self.load()
            record = records.pop(app_id, None)
            if record is None:
                return False
            (self.dir / record.file).unlink(missing_ok=True)
            self._save(records)
        return True

    def set_stopped(self, app_id: str, stopped: bool) -> None:
        with self._locked():
            records = self.load()
            if app_id in records and records[app_id].stopped != stopped:
                records[app_id] = replace(records[app_id], stopped=stopped)
                self._save(records)

    def code(self, record: AppRecord) -> bytes:
        return (self.dir / record.file).read_bytes()
