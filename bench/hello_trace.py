#!/usr/bin/env python3
"""Where a hello request's wall time goes: `wapo serve` in this process with per-request
timestamps, under a c16 keep-alive load from a separate process (docs/design.md, issue 12,
follow-up 2).

    .venv/bin/python bench/hello_trace.py [--seconds 5] [--concurrency 16] [--guest-threads N]

Wrapped (not changed): ``Instance._step`` (queued -> started on a guest thread -> returned ->
resumed on the loop), ``LogWriter.write`` (the wait for the run-log commit), ``asyncio.to_thread``
(start wait, run, return wait per function), ``run_agent`` (the handler's run and logs). The
wrappers add their own cost: compare runs of this tool with each other, not with the bench."""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolation_bench import HELLO_AGENT, free_port, loadgen, publish  # noqa: E402

now = time.perf_counter
rec: dict[str, list[float]] = collections.defaultdict(list)


def install() -> None:
    from wapo.gateway import agents, logwriter
    from wapo.host import instance

    step = instance.Instance._step

    async def traced_step(self, fn):
        queued, box = now(), {}

        def wrapped():
            box["s"] = now()
            try:
                return fn()
            finally:
                box["e"] = now()
        result = await step(self, wrapped)
        back = now()
        if "s" in box:
            rec["step: queued -> started"].append(box["s"] - queued)
            rec["step: run"].append(box["e"] - box["s"])
            rec["step: returned -> resumed"].append(back - box["e"])
        rec["step: total"].append(back - queued)
        return result
    instance.Instance._step = traced_step

    write = logwriter.LogWriter.write

    async def traced_write(self, cid, request_id, entries):
        t = now()
        await write(self, cid, request_id, entries)
        rec["log write: wait for the commit"].append(now() - t)
    logwriter.LogWriter.write = traced_write

    to_thread = asyncio.to_thread

    async def traced_to_thread(fn, *a, **k):
        t, box = now(), {}

        def wrapped():
            box["s"] = now()
            try:
                return fn(*a, **k)
            finally:
                box["e"] = now()
        result = await to_thread(wrapped)
        name = getattr(fn, "__name__", "?")
        rec[f"to_thread {name}: start wait"].append(box["s"] - t)
        rec[f"to_thread {name}: run"].append(box["e"] - box["s"])
        rec[f"to_thread {name}: return wait"].append(now() - box["e"])
        return result
    asyncio.to_thread = traced_to_thread

    run_agent = agents.run_agent

    async def traced_run_agent(request, cid, code, agent_request):
        t = now()
        response = await run_agent(request, cid, code, agent_request)
        rec["run_agent (run + logs)"].append(now() - t)
        return response
    agents.run_agent = traced_run_agent


def report(rps: float) -> None:
    print(f"client: {rps:.0f} req/s")
    for name, values in sorted(rec.items()):
        values.sort()
        print(f"  {name:34s} n={len(values):6d} mean {statistics.mean(values) * 1e3:6.2f} ms  "
              f"p50 {values[len(values) // 2] * 1e3:6.2f}  p90 {values[int(len(values) * 0.9)] * 1e3:6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--guest-threads", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wapo-trace-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        cid = publish(data, HELLO_AGENT)
        port = free_port()
        url = f"http://127.0.0.1:{port}/ipfs/{cid}"
        install()
        from wapo.cli.main import main as wapo

        flags = ["--guest-threads", args.guest_threads] if args.guest_threads is not None else []

        def load() -> None:
            try:
                time.sleep(4.0)  # the server starts
                loadgen(url, 2.0, args.concurrency, "hello")  # warm-up
                rec.clear()
                got = loadgen(url, args.seconds, args.concurrency, "hello")
                report(got["rps"])
            finally:
                os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=load, daemon=True).start()
        try:
            wapo(["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data), *flags])
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
