"""``wapo cron list|trigger``: the config file's scheduled runs, and running one of them now."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from .flags import cluster_key_file, data_dir_argument, database_url


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cron", help="list or trigger the scheduled runs of a config file ([cron.<name>])",
                       description="The [cron.<name>] jobs of a gateway config file.")
    csub = p.add_subparsers(dest="cron_command", metavar="ACTION", required=True)
    lp = csub.add_parser("list", help="each job, its schedule and its next tick")
    lp.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML config file")
    tp = csub.add_parser("trigger", help="run a job now, here; prints its answer and request id")
    tp.add_argument("name", metavar="NAME")
    tp.add_argument("--config", type=Path, required=True, metavar="FILE", help="the TOML config file")
    data_dir_argument(tp)


def _load(path: Path):
    from ..gateway.config import load_config
    try:
        return load_config(path)
    except ValueError as exc:
        raise SystemExit(f"wapo cron: {exc}") from None


def run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if args.cron_command == "list":
        return _list(config)
    return _trigger(config, args)


def _list(config) -> int:
    from ..gateway.cronspec import next_tick
    if not config.cron:
        print("no [cron.<name>] jobs in this config file")
        return 0
    for job in config.cron:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(next_tick(job, time.time())))
        print(f"{job.name}\t{job.schedule}\t{job.timezone}\t{job.cid}\t{job.method} {job.path}\tnext {when}")
    return 0


def _trigger(config, args: argparse.Namespace) -> int:
    from ..gateway.cron import CronJobError, run_job
    from ..gateway.storage import open_gateway_store
    from ..store import ClusterKeyError, StoreError
    job = next((j for j in config.cron if j.name == args.name), None)
    if job is None:
        names = ", ".join(j.name for j in config.cron) or "none"
        print(f"wapo cron: no job {args.name!r} in {args.config} (jobs: {names})", file=sys.stderr)
        return 2
    from ..paths import default_data_dir
    config = config.with_(data_dir=Path(args.data_dir or config.data_dir or default_data_dir()),
                          database_url=database_url(args, config.database_url),
                          cluster_key_file=cluster_key_file(args, config.cluster_key_file))
    try:  # the store `wapo serve` would use with the same flags and config: a cluster's database too
        store = open_gateway_store(config)
    except (StoreError, ClusterKeyError) as exc:
        print(f"wapo cron: {exc}", file=sys.stderr)
        return 1

    async def write_logs(cid: str, request_id: str, entries: list) -> None:
        await asyncio.to_thread(store.append_logs, cid, request_id, entries)

    async def trigger():
        from ..gateway.runlog import RunLog
        run_log = RunLog(config.data_dir)  # shown on the dashboard like the gateway's runs
        try:
            return await run_job(job, config, store, write_logs, network=config.network(), run_log=run_log)
        finally:
            await run_log.close()

    try:
        with store:
            run = asyncio.run(trigger())
    except CronJobError as exc:
        print(f"wapo cron: {exc}", file=sys.stderr)
        return 1
    if run.status is None:
        print(f"wapo cron: {job.name} failed: {run.error}", file=sys.stderr)
        print(f"requestId {run.request_id}")
        return 1
    print(f"status {run.status}")
    sys.stdout.flush()
    sys.stdout.buffer.write(run.body + (b"" if run.body.endswith(b"\n") or not run.body else b"\n"))
    print(f"requestId {run.request_id}")
    return 0 if run.status < 500 else 1
