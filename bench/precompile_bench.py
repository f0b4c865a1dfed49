#!/usr/bin/env python3
"""Per-agent snapshots (issue #7): an agent run from its precompiled image vs compiled per run.

    .venv/bin/python bench/precompile_bench.py [--runs 600]

In one process, for a hello agent and a synthetic bundle-sized agent (~150 KB of functions and
classes, as esbuild output of a small app would be), runs the agent through the in-process
agent path (wapo.agent.call_agent: a fresh sandbox per request) alternately with the image
(WAPO_PRECOMPILE on) and without it (the code handed to the guest and compiled per run), in
interleaved blocks so machine noise hits both alike. Prints p50/p90 per side and the ratio, the
image size and the time to make it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True

from wapo.agent.request import AgentRequest  # noqa: E402
from wapo.agent.runner import call_agent  # noqa: E402
from wapo.js import precompiled  # noqa: E402

HELLO = """async function main(request) {
  return JSON.stringify({status: 200, headers: {"content-type": "text/plain"}, body: "hello"});
}
"""
BLOCK = 25


def bundle_agent(functions: int = 600) -> str:
    """A bundle-like agent: many small functions and classes, one of them answering."""
    parts = ["var __modules = {};"]
    for i in range(functions):
        parts.append(
            f"function helper{i}(a, b) {{ const o = {{x: a, y: b, k: 'key{i}'}}; "
            f"if (a > {i}) return [o.x, o.y].map(v => v * {i}).reduce((s, v) => s + v, 0); "
            f"return String(o.k).length + b; }}\n"
            f"class Widget{i} {{ constructor(v) {{ this.v = v; }} get doubled() {{ return this.v * 2; }} "
            f"render() {{ return `<div id=\"w{i}\">${{this.doubled}}</div>`; }} }}\n"
            f"__modules['m{i}'] = {{ helper{i}, Widget{i} }};")
    parts.append("async function main(request) { return JSON.stringify({status: 200, headers: {}, "
                 "body: new Widget7(21).render() + helper3(1, 2)}); }")
    return "\n".join(parts)


async def one(code: str) -> float:
    t = time.perf_counter()
    result = await call_agent(code, AgentRequest(), name="agent.js", app_id="bench")
    elapsed = time.perf_counter() - t
    if result.response is None or result.response.status != 200:
        raise SystemExit(f"the agent failed: {result.error}")
    return elapsed


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def measure(label: str, code: str, runs: int) -> None:
    os.environ[precompiled.PRECOMPILE_ENV] = "1"
    t = time.perf_counter()
    image = precompiled.agent_image(code, "agent.js", "runAgent")
    made = time.perf_counter() - t
    sides: dict[str, list[float]] = {"image": [], "source": []}
    for side in sides:  # warm-up
        os.environ[precompiled.PRECOMPILE_ENV] = "1" if side == "image" else "0"
        for _ in range(20):
            await one(code)
    for block in range(max(1, runs // BLOCK)):
        for side in (("image", "source") if block % 2 == 0 else ("source", "image")):
            os.environ[precompiled.PRECOMPILE_ENV] = "1" if side == "image" else "0"
            for _ in range(BLOCK):
                sides[side].append(await one(code))
    os.environ[precompiled.PRECOMPILE_ENV] = "1"
    img, src = sides["image"], sides["source"]
    size = f"{image.nbytes / 1024:.0f} KiB in {len(image.runs)} runs" if image else "none"
    print(f"{label}: code {len(code) / 1024:.1f} KiB; image {size}, made in {made * 1000:.0f} ms")
    print(f"   from the image  p50 {pct(img, .5):.3f} ms  p90 {pct(img, .9):.3f} ms")
    print(f"   from the source p50 {pct(src, .5):.3f} ms  p90 {pct(src, .9):.3f} ms")
    print(f"   ratio image/source p50 {statistics.median(img) / statistics.median(src):.2f}x")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=600, help="runs per side and agent (default 600)")
    args = ap.parse_args()
    await measure("hello agent (below MIN_CODE: both sides compile it)", HELLO, args.runs)
    await measure("bundle-sized agent", bundle_agent(), args.runs)


if __name__ == "__main__":
    asyncio.run(main())
