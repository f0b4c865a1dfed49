"""``[cron.<name>]`` tables of the config file and the ticks of their schedules (croniter).

Cron syntax as Workers' cron triggers and crontab: 5 fields (minute hour day month weekday); 6
fields put seconds first (``"*/2 * * * * *"``: every 2 s, for tests and fine-grained jobs). The
time zone is the ``timezone`` key or a ``CRON_TZ=Zone`` prefix of the schedule (UTC by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class CronJob:
    """A scheduled run named in the config file (``[cron.<name>]``): the agent ``cid`` is run at
    each tick of ``schedule`` (cron syntax; 6 fields put seconds first) in ``timezone``."""
    name: str
    cid: str
    schedule: str
    timezone: str = "UTC"
    path: str = "/"
    method: str = "GET"
    body: str = ""
    vault_key: str | None = None


KEYS = {"cid", "schedule", "timezone", "path", "method", "body", "vault_key"}


class CronSpecError(ValueError):
    """A [cron.<name>] table that cannot be scheduled; the message names the table and the key."""


def split_schedule(schedule: str, timezone: str | None) -> tuple[str, str]:
    """(the cron expression, the time zone name) of a schedule with an optional CRON_TZ= prefix."""
    text = schedule.strip()
    if text.startswith("CRON_TZ="):
        zone, _, text = text.partition(" ")
        return text.strip(), zone[len("CRON_TZ="):]
    return text, timezone or "UTC"


def _croniter(expression: str, start: datetime):
    from croniter import croniter  # only gateways with cron jobs pay for the import
    return croniter(expression, start, second_at_beginning=len(expression.split()) == 6)


def check_schedule(expression: str, zone: str) -> None:
    """CronSpecError unless the expression has 5 or 6 valid fields and the zone exists."""
    fields = expression.split()
    if len(fields) not in (5, 6) and not (len(fields) == 1 and expression.startswith("@")):  # @daily, @hourly...
        raise CronSpecError(f"schedule {expression!r} has {len(fields)} fields: 5 (minute hour day month weekday) "
                            "or 6 (seconds first) are expected")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronSpecError(f"unknown time zone {zone!r} (an IANA name, e.g. Europe/Paris)") from None
    try:
        _croniter(expression, datetime.now(ZoneInfo(zone))).get_next(datetime)
    except Exception as exc:  # croniter raises several types of its own
        raise CronSpecError(f"schedule {expression!r}: {exc}") from None


def next_tick(job: CronJob, after: float) -> float:
    """The first tick of ``job`` strictly after the Unix time ``after``."""
    expression, zone = split_schedule(job.schedule, job.timezone)
    start = datetime.fromtimestamp(after, ZoneInfo(zone))
    return _croniter(expression, start).get_next(datetime).timestamp()


def parse_cron_tables(tables: object, path: Path | str) -> tuple[CronJob, ...]:
    """The jobs of the ``cron`` table of a config file (CronSpecError naming the table if one is wrong)."""
    from ..store import InvalidCID, parse_cid
    if not isinstance(tables, dict):
        raise CronSpecError(f"config {path}: [cron.<name>] tables are expected")
    jobs = []
    for name, table in tables.items():
        where = f"config {path}: [cron.{name}]"
        if not isinstance(table, dict):
            raise CronSpecError(f"{where}: a table is expected")
        unknown = set(table) - KEYS
        if unknown:
            raise CronSpecError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(KEYS))})")
        for key in ("cid", "schedule"):
            if not isinstance(table.get(key), str):
                raise CronSpecError(f'{where}: {key} = "..." is required')
        try:
            cid = parse_cid(table["cid"]).v0
        except InvalidCID as exc:
            raise CronSpecError(f"{where}: cid: {exc}") from None
        expression, zone = split_schedule(table["schedule"], table.get("timezone"))
        try:
            check_schedule(expression, zone)
        except CronSpecError as exc:
            raise CronSpecError(f"{where}: {exc}") from None
        path_ = str(table.get("path", "/"))
        jobs.append(CronJob(name=str(name), cid=cid, schedule=expression, timezone=zone,
                            path=path_ if path_.startswith("/") else "/" + path_,
                            method=str(table.get("method", "GET")).upper(), body=str(table.get("body", "")),
                            vault_key=table.get("vault_key")))
    return tuple(jobs)
