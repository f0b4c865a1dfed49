#!/usr/bin/env python3
"""A/B of hello throughput at concurrency 16: `wapo serve` from this tree against `wapo serve` from
another source tree (a baseline, e.g. `git archive main src | tar -x -C /tmp/base`), loads
alternating in short slices so both see the same machine (docs/design.md, issue 12 follow-up 2).

    .venv/bin/python bench/hello_ab_bench.py --base-src /tmp/base/src [--mode default|inline]
        [--slice 2] [--rounds 6] [--concurrency 16] [--plain]

Prints each slice pair's ratio (change / base) and the median and total ratios."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from isolation_bench import HELLO_AGENT, PLAIN_SERVER, WAPO, Proc, free_port, loadgen, publish  # noqa: E402


def cpu_and_switches(pid: int) -> tuple[float, float, int]:
    """(seconds of CPU of the process, of its main (event loop) thread, context switches of all its threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    main = open(f"/proc/{pid}/task/{pid}/stat").read().rsplit(")", 1)[1].split()
    switches = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in open(f"/proc/{pid}/task/{tid}/status"):
                if "ctxt_switches" in line:
                    switches += int(line.split()[1])
        except FileNotFoundError:
            pass
    return (int(fields[11]) + int(fields[12])) / tick, (int(main[11]) + int(main[12])) / tick, switches


class EnvProc(Proc):
    def __init__(self, name: str, argv: list[str], ready: str, env: dict) -> None:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            super().__init__(name, argv, ready)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-src", required=True, type=Path, help="the baseline's src directory")
    parser.add_argument("--mode", choices=("default", "inline"), default="default")
    parser.add_argument("--slice", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--plain", action="store_true", help="also a plain aiohttp hello in the rotation")
    parser.add_argument("--base-env", action="append", default=[], metavar="K=V", help="an environment variable "
                        "of the baseline server (repeatable)")
    parser.add_argument("--change-env", action="append", default=[], metavar="K=V")
    args = parser.parse_args()
    flags = ["--guest-threads", "0"] if args.mode == "inline" else []
    with tempfile.TemporaryDirectory(prefix="wapo-ab-") as tmp:
        procs, urls = {}, {}
        for name in ("base", "change"):
            d = Path(tmp) / name
            d.mkdir()
            env = dict(os.environ)
            env.pop("WAPO_GUEST_THREADS", None)
            if name == "base":
                env["PYTHONPATH"] = str(args.base_src.resolve())
            env.update(kv.split("=", 1) for kv in (args.base_env if name == "base" else args.change_env))
            cid = publish(d, HELLO_AGENT)
            port = free_port()
            procs[name] = EnvProc(name, [*WAPO, "serve", "--host", "127.0.0.1", "--port", str(port),
                                         "--data-dir", str(d), *flags], "sample agent:", env)
            urls[name] = f"http://127.0.0.1:{port}/ipfs/{cid}"
        if args.plain:
            port = free_port()
            procs["plain"] = Proc("plain", [sys.executable, "-c", PLAIN_SERVER, str(port)], "ready")
            urls["plain"] = f"http://127.0.0.1:{port}/hello"
        try:
            for p in procs.values():
                p.wait_ready()
            for url in urls.values():  # warm-up (compile, first runs)
                loadgen(url, 1.0, args.concurrency, "hello")
            names = list(urls)
            got: dict[str, list[dict]] = {n: [] for n in names}
            for r in range(args.rounds):
                for name in (names if r % 2 == 0 else names[::-1]):
                    pid = procs[name].proc.pid
                    before = cpu_and_switches(pid)
                    one = loadgen(urls[name], args.slice, args.concurrency, "hello")
                    after = cpu_and_switches(pid)
                    n = max(1, one["requests"] + args.concurrency)
                    one["cpu_us"] = (after[0] - before[0]) / n * 1e6
                    one["loop_us"] = (after[1] - before[1]) / n * 1e6
                    one["cs"] = (after[2] - before[2]) / n
                    got[name].append(one)
        finally:
            for p in procs.values():
                p.stop()
    ratios = [c["rps"] / b["rps"] for b, c in zip(got["base"], got["change"])]
    total = {n: sum(x["requests"] for x in v) / sum(x["seconds"] for x in v) for n, v in got.items()}
    print(f"mode {args.mode}, c{args.concurrency}, {args.rounds} rounds x {args.slice:g} s slices, "
          f"load {os.getloadavg()[0]:.1f}")
    for i, (b, c) in enumerate(zip(got["base"], got["change"])):
        extra = f"  plain {got['plain'][i]['rps']:.0f}" if args.plain else ""
        print(f"  round {i}: base {b['rps']:.0f} req/s (p50 {b['p50_ms']:.1f} ms)  change {c['rps']:.0f} "
              f"(p50 {c['p50_ms']:.1f} ms)  change/base {c['rps'] / b['rps']:.2f}x{extra}")
    print(f"change/base: median {statistics.median(ratios):.2f}x, total {total['change'] / total['base']:.2f}x "
          f"({total['change']:.0f} / {total['base']:.0f} req/s)")
    for n in ("base", "change"):
        print(f"{n}: CPU per request {statistics.median(x['cpu_us'] for x in got[n]):.0f} us (median of slices), "
              f"loop thread {statistics.median(x['loop_us'] for x in got[n]):.0f} us, "
              f"context switches {statistics.median(x['cs'] for x in got[n]):.2f}, "
              f"failed requests {sum(x['errors'] for x in got[n])}")
    if args.plain:
        print(f"change/plain {total['change'] / total['plain']:.3f}x, base/plain {total['base'] / total['plain']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
