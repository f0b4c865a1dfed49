#!/usr/bin/env python3
"""Fresh sandbox from the pre-initialized snapshot vs from scratch (issue 7).

    .venv/bin/python bench/snapshot_bench.py              # 1,000 sandboxes per row, interleaved
    .venv/bin/python bench/snapshot_bench.py --runs 300 --idle 100 --json out.json

Each row is the public path, one fresh sandbox per run:
``await js_instance("scriptOutput='x'", snapshot=...).run()``. Rows are
interleaved in blocks of 25 in the same process, so drift lands on both.
"idle RSS" starts N sandboxes whose script waits on a long timer (each has
made its first wapo_poll: runtime and context exist) and reports the growth of
the process RSS divided by N.

Goal (issue 17): the snapshot row p50 <= 0.1 ms and p90 <= 0.15 ms; exit 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True

from wapo.js.runner import js_instance, wapojs_module  # noqa: E402

def percentile(samples: list[float], q: float) -> float:
    s = sorted(samples)
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


SCRIPT, EXPECT = "scriptOutput='x'", b"x"
BLOCK = 25
ROWS = {"snapshot": True, "scratch": False}
GOAL_P50_MS, GOAL_P90_MS = 0.10, 0.15


async def block(n: int, snap: bool) -> list[int]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        r = await js_instance(SCRIPT, snapshot=snap).run()
        samples.append(time.perf_counter_ns() - t0)
        if not r.ok or r.output != EXPECT:
            raise SystemExit(f"trivial script failed ({'snapshot' if snap else 'scratch'}): {r.error}")
    return samples


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def idle_rss(n: int, snap: bool) -> float:
    gc.collect()
    before = rss()
    instances = [js_instance("setTimeout(() => {}, 600000)", snapshot=snap) for _ in range(n)]
    tasks = [asyncio.create_task(i.run()) for i in instances]
    for _ in range(1000):  # until every sandbox made its first poll
        await asyncio.sleep(0.005)
        if all(i._sandbox is not None and i._state is not None and not i._state.poll_requested for i in instances):
            break
    grown = rss() - before
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    del instances, tasks
    gc.collect()
    return grown / n


async def main_async(args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    for snap in ROWS.values():
        wapojs_module(snap)  # load / compile / snapshot (once per process; the snapshot is cached on disk)
    load_s = time.perf_counter() - t0
    for snap in ROWS.values():
        await block(args.warmup, snap)
    samples: dict[str, list[int]] = {k: [] for k in ROWS}
    done = 0
    while done < args.runs:
        n = min(BLOCK, args.runs - done)
        gc.collect()
        for name, snap in ROWS.items():
            samples[name] += await block(n, snap)
        done += n
    out: dict = {"runs": args.runs, "load_s": load_s, "rows": {}}
    for name, s in samples.items():
        ms = [x / 1e6 for x in s]
        out["rows"][name] = {"p50": percentile(ms, 50), "p90": percentile(ms, 90), "mean": sum(ms) / len(ms)}
    a, b = out["rows"]["snapshot"], out["rows"]["scratch"]
    out["ratio_p50"] = a["p50"] / b["p50"]
    out["ratio_p90"] = a["p90"] / b["p90"]
    if args.idle:
        out["idle_rss_kib"] = {name: await idle_rss(args.idle, snap) / 1024 for name, snap in ROWS.items()}
    out["sizes"] = {name: len(wapojs_module(snap).wasm) for name, snap in ROWS.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--idle", type=int, default=200, help="sandboxes for the idle RSS row (0: skip)")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    out = asyncio.run(main_async(args))
    print(f"fresh sandbox + {SCRIPT!r}, {out['runs']} runs per row, interleaved (module load {out['load_s']:.2f} s)")
    for name, r in out["rows"].items():
        print(f"  {name:9s} p50 {r['p50']:.3f} ms   p90 {r['p90']:.3f} ms   mean {r['mean']:.3f} ms")
    print(f"  snapshot/scratch: p50 {out['ratio_p50']:.2f}x   p90 {out['ratio_p90']:.2f}x")
    if "idle_rss_kib" in out:
        print("  RSS per live idle sandbox: " +
              ", ".join(f"{k} {v:.0f} KiB" for k, v in out["idle_rss_kib"].items()))
    print("  guest module: " + ", ".join(f"{k} {v // 1024} KiB" for k, v in out["sizes"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    snap = out["rows"]["snapshot"]
    met = snap["p50"] <= GOAL_P50_MS and snap["p90"] <= GOAL_P90_MS
    print(f"goal: snapshot p50 {snap['p50']:.3f} <= {GOAL_P50_MS} ms, p90 {snap['p90']:.3f} <= {GOAL_P90_MS} ms: "
          f"{'MET' if met else 'MISSED'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
