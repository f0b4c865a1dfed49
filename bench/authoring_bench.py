#!/usr/bin/env python3
"""What authoring features cost (issue 15): bundling at publish, and source-mapped errors per request.

    .venv/bin/python bench/authoring_bench.py [--runs 5] [--seconds 5] [--rounds 3]

In one run, with npm/esbuild available:
  publish   `wapo publish src/index.ts` (esbuild bundles it, the map is stored) vs `wapo publish
            --no-bundle` of the same bundle, median wall time of --runs each, alternating
  errors    one `wapo serve --quiet` answering the same failing agent twice: published with its
            source map (every 500 maps the stack to src/index.ts) and without; req/s of the two in
            interleaved rounds

Goal (exit 1 on a miss): mapped/unmapped error throughput >= 0.8x (mapping happens on the error path
only; it must not make a failing agent much more expensive). The publish ratio is printed, not judged:
it is npm's and esbuild's start-up, paid once per publish.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import free_port, wait_for_line  # noqa: E402
from operating_bench import drain  # noqa: E402

GOAL = 0.8
SOURCE = """\
function check(n: number): never {
  throw new Error("the check failed at " + n);
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.searchParams.get("fail")) check(Number(url.searchParams.get("fail")));
    return new Response("ok");
  },
};
"""
WAPO = [sys.executable, "-m", "wapo.cli.main"]


def publish(data_dir: Path, *args: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    done = subprocess.run([*WAPO, "publish", *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          timeout=600)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"wapo publish {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1], elapsed


async def load(url: str, seconds: float, concurrency: int, status: int) -> tuple[float, int]:
    """req/s of answers with ``status``, and how many had another."""
    done = wrong = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def worker() -> None:
            nonlocal done, wrong
            while time.monotonic() < stop:
                async with session.get(url) as r:
                    await r.read()
                    if r.status == status:
                        done += 1
                    else:
                        wrong += 1
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - started), wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="publishes of each kind")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from wapo.cli.bundling import bundle

    with tempfile.TemporaryDirectory(prefix="wapo-authbench-") as tmp:
        project, data_dir = Path(tmp) / "project", Path(tmp) / "data"
        (project / "src").mkdir(parents=True)
        entry = project / "src" / "index.ts"
        entry.write_text(SOURCE)
        plain = Path(tmp) / "agent.js"
        plain.write_bytes(bundle(entry, name="agent.js").code)  # the same code, to store without its map

        times: dict[str, list[float]] = {"bundled": [], "plain": []}
        mapped_cid = plain_cid = ""
        for _ in range(args.runs):
            mapped_cid, elapsed = publish(data_dir, str(entry))
            times["bundled"].append(elapsed)
            plain_cid, elapsed = publish(data_dir, str(plain), "--no-bundle", "--force")
            times["plain"].append(elapsed)

        port = free_port()
        server = subprocess.Popen([*WAPO, "serve", "--quiet", "--port", str(port), "--data-dir", str(data_dir)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=dict(os.environ, PYTHONUNBUFFERED="1"))
        rps: dict[str, list[float]] = {"mapped": [], "unmapped": []}
        wrong = 0
        try:
            wait_for_line(server, "sample agent:", 300)
            drain(server)
            urls = {"mapped": f"http://127.0.0.1:{port}/ipfs/{mapped_cid}?fail=7",
                    "unmapped": f"http://127.0.0.1:{port}/ipfs/{plain_cid}?fail=7"}
            for _ in range(args.rounds):
                for name, url in urls.items():
                    value, bad = asyncio.run(load(url, args.seconds, args.concurrency, 500))
                    rps[name].append(value)
                    wrong += bad
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/logs/all/ipfs/{mapped_cid}?format=text") as r:
                mapped_logs = r.read().decode()
        finally:
            server.terminate()
            server.wait(timeout=10)

    pub = {name: statistics.median(values) for name, values in times.items()}
    err = {name: statistics.median(values) for name, values in rps.items()}
    ratio = err["mapped"] / err["unmapped"]
    print(f"authoring bench: {args.runs} publishes of each kind; errors {args.rounds} rounds x {args.seconds:g} s, "
          f"concurrency {args.concurrency}, {os.cpu_count()} CPUs; {wrong} answers other than 500")
    print(f"  publish .ts (bundled, map stored)  median {pub['bundled']:.2f} s")
    print(f"  publish --no-bundle (same code)    median {pub['plain']:.2f} s   bundled/plain {pub['bundled'] / pub['plain']:.2f}x"
          "  (not judged)")
    print(f"  failing agent with its map         median {err['mapped']:.0f} req/s  rounds "
          f"{', '.join(f'{v:.0f}' for v in rps['mapped'])}")
    print(f"  failing agent without a map        median {err['unmapped']:.0f} req/s  rounds "
          f"{', '.join(f'{v:.0f}' for v in rps['unmapped'])}")
    mapped = "index.ts:2:" in mapped_logs  # the throw, at its line in the TypeScript
    print(f"  the mapped agent's logged stacks point into index.ts: {'yes' if mapped else 'NO'}")
    verdict = "MET" if ratio >= GOAL and not wrong and mapped else "NOT MET"
    print(f"  mapped/unmapped errors  {ratio:.3f}x   goal >= {GOAL}x   {verdict}")
    return 0 if verdict == "MET" else 1


if __name__ == "__main__":
    sys.exit(main())
