#!/usr/bin/env python3
"""What operating and authoring features cost a plain request: one hello agent through several
`wapo serve` variants started in the same run, in interleaved rounds, as ratios of one another.

    .venv/bin/python bench/operating_bench.py [--seconds 5] [--rounds 3] [--concurrency 16]
    .venv/bin/python bench/operating_bench.py --baseline-python ../wt-base/.venv/bin/python

Variants (each its own process and data directory, 1 worker):
  quiet      `wapo serve --quiet`: the defaults (run log for the dashboard, per-CID metrics, node
             header), no access log
  access     `wapo serve`: the same plus one access-log line per request (issue 15), its stdout read
  otlp       `wapo serve --quiet --otlp-endpoint URL`: spans and logs exported (issue 16) to a local
             receiver that answers 200 to every export
  baseline   (with --baseline-python) the gateway of another checkout, e.g. the commit before these
             features, run by that checkout's interpreter: what they cost together

Goals (exit 1 on a miss): access/quiet >= 0.9x (a log line must not cost a tenth of a request);
quiet/baseline >= 0.9x when a baseline is given (the always-on parts stay under a tenth). otlp/quiet
is printed, not judged: exporting is opt-in work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import HELLO_AGENT, free_port, load, wait_for_line  # noqa: E402

GOALS = {"access/quiet": 0.9, "quiet/baseline": 0.9}


def start_receiver() -> tuple[int, callable]:
    """An OTLP/HTTP receiver that accepts every export (its body is read and dropped)."""
    loop = asyncio.new_event_loop()
    received = [0]

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        received[0] += 1
        return web.Response(status=200)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", accept)
    app.router.add_post("/v1/logs", accept)
    runner = web.AppRunner(app, access_log=None)
    loop.run_until_complete(runner.setup())
    port = free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def stop() -> int:
        loop.call_soon_threadsafe(loop.stop)
        return received[0]
    return port, stop


def drain(proc: subprocess.Popen) -> None:
    """Read a server's output for as long as it runs (an unread pipe would stall its access log)."""
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()


def start(python: str, cwd: Path | None, data_dir: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    agent = data_dir / "hello.js"
    agent.write_text(HELLO_AGENT)
    cid = subprocess.run([python, "-m", "wapo.cli.main", "publish", str(agent), "--data-dir", str(data_dir)],
                         check=True, capture_output=True, text=True, cwd=cwd).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([python, "-m", "wapo.cli.main", "serve", "--port", str(port), "--data-dir", str(data_dir),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wait_for_line(proc, "sample agent:", 300)
    drain(proc)
    return proc, f"http://127.0.0.1:{port}/ipfs/{cid}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="load per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--baseline-python", help="the interpreter of another checkout's venv")
    args = parser.parse_args()

    receiver_port, stop_receiver = start_receiver()
    variants = {"quiet": ["--quiet"], "access": [],
                "otlp": ["--quiet", "--otlp-endpoint", f"http://127.0.0.1:{receiver_port}"]}
    procs: list[subprocess.Popen] = []
    urls: dict[str, str] = {}
    rps: dict[str, list[float]] = {}
    errors = 0
    with tempfile.TemporaryDirectory(prefix="wapo-opbench-") as tmp:
        try:
            for name, extra in variants.items():
                data_dir = Path(tmp) / name
                data_dir.mkdir()
                proc, urls[name] = start(sys.executable, None, data_dir, extra)
                procs.append(proc)
            if args.baseline_python:
                data_dir = Path(tmp) / "baseline"
                data_dir.mkdir()
                proc, urls["baseline"] = start(args.baseline_python, Path(args.baseline_python).resolve().parents[2],
                                               data_dir, [])
                procs.append(proc)
            for _ in range(args.rounds):  # interleaved: a noisy minute hurts every variant alike
                for name, url in urls.items():
                    result = asyncio.run(load(url, args.seconds, args.concurrency))
                    rps.setdefault(name, []).append(result["rps"])
                    errors += result["errors"]
        finally:
            for proc in procs:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    exports = stop_receiver()

    median = {name: statistics.median(values) for name, values in rps.items()}
    print(f"operating bench: {args.rounds} rounds x {args.seconds:g} s per variant, concurrency {args.concurrency}, "
          f"1 worker each, {os.cpu_count()} CPUs; {errors} failed requests; {exports} OTLP exports received")
    for name, values in rps.items():
        print(f"  {name:<10} median {median[name]:>7.0f} req/s   rounds {', '.join(f'{v:.0f}' for v in values)}")
    missed = False
    ratios = {"access/quiet": median["access"] / median["quiet"], "otlp/quiet": median["otlp"] / median["quiet"]}
    if "baseline" in median:
        ratios["quiet/baseline"] = median["quiet"] / median["baseline"]
    for name, ratio in ratios.items():
        goal = GOALS.get(name)
        verdict = "(not judged)" if goal is None else ("MET" if ratio >= goal else "NOT MET")
        missed |= goal is not None and ratio < goal
        print(f"  {name:<15} {ratio:.3f}x   goal {'>= ' + str(goal) + 'x' if goal else '-':<9} {verdict}")
    if errors or (exports == 0):
        print("  requests failed or nothing was exported: the figures are not comparable")
        missed = True
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
