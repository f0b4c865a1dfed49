#!/usr/bin/env python3
"""Per-agent snapshots (issues 7 and 17): big agents from their images vs a hello agent.

    .venv/bin/python bench/precompile_bench.py [--runs 400]

In one process, through the in-process agent path (wapo.agent.call_agent: a fresh sandbox per
request), in interleaved blocks so machine noise hits every side alike:
- ``hello``: a hello agent (under MIN_CODE: compiled per run, as in production);
- ``bundle``: a synthetic 215 KB bundle-sized agent (600 functions and 600 classes defined at top
  level, as esbuild output of a small app would be), from its image compiled into a module of
  its own (``module``, issue 17) and from the image copied into each sandbox (``copy``, issue 7),
  and (a few runs) compiled from source;
- ``lazy``: the same 215 KB of code inside a function that is never called, so its image is as
  big but its top level defines one function: what the image itself costs a request.
The bundle's own top-level time is read inside the guest (performance.now()).
Goal (issue 17): bundle from its module <= 1.5x hello per request (p50). Exit 1 on a miss.
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


LAZY_PREFIX = "function unused() {\n"
GOAL = 1.5


def lazy_agent() -> str:
    """The bundle's code, never run: an image as big as the bundle's, a top level of one function."""
    return LAZY_PREFIX + bundle_agent().replace("async function main", "async function main_") + "\n}\n" + HELLO


def timed_bundle() -> str:
    """The bundle answering the time its top level took, read inside the guest."""
    return ("globalThis.__t0 = performance.now();\n" + bundle_agent()).replace(
        "body: new Widget7(21).render() + helper3(1, 2)",
        "body: String(performance.now() - globalThis.__t0) + new Widget7(21).render().slice(0, 0)")


async def one(code: str) -> tuple[float, bytes]:
    t = time.perf_counter()
    result = await call_agent(code, AgentRequest(), name="agent.js", app_id="bench")
    elapsed = time.perf_counter() - t
    if result.response is None or result.response.status != 200:
        raise SystemExit(f"the agent failed: {result.error}")
    return elapsed, result.response.body


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=400, help="runs per side (default 400)")
    args = ap.parse_args()
    os.environ[precompiled.PRECOMPILE_ENV] = "1"
    codes = {"bundle": timed_bundle(), "lazy": lazy_agent()}
    images = {}
    for name, code in codes.items():
        t = time.perf_counter()
        image = images[name] = precompiled.agent_image(code, "agent.js", "runAgent")
        made = time.perf_counter() - t
        t = time.perf_counter()
        module = precompiled.compile_module(image)
        compiled = time.perf_counter() - t
        if module is None:
            raise SystemExit(f"{name}: no image module")
        print(f"{name}: code {len(code) / 1024:.1f} KiB; image {image.nbytes / 1024:.0f} KiB in {len(image.runs)} runs "
              f"(memory {image.size / 1024:.0f} KiB), made in {made * 1000:.0f} ms; module compiled or loaded "
              f"in {compiled * 1000:.0f} ms")
    sides = {"hello": [], "bundle module": [], "bundle copy": [], "lazy module": [], "lazy copy": []}
    top_level: list[float] = []

    async def side(label: str, n: int) -> None:
        name, _, how = label.partition(" ")
        image = images.get(name)
        held = list(image.compiled) if image else []
        if how == "copy":
            image.compiled.clear()
        try:
            for _ in range(n):
                elapsed, body = await one(HELLO if name == "hello" else codes[name])
                sides[label].append(elapsed)
                if label == "bundle module":
                    top_level.append(float(body))
        finally:
            if how == "copy":
                image.compiled[:] = held

    for label in sides:  # warm-up
        await side(label, 20)
        sides[label].clear()
    top_level.clear()
    for block in range(max(1, args.runs // BLOCK)):
        order = list(sides) if block % 2 == 0 else list(reversed(sides))
        for label in order:
            await side(label, BLOCK)
    os.environ[precompiled.PRECOMPILE_ENV] = "0"
    source = [(await one(codes["bundle"]))[0] for _ in range(max(3, args.runs // 40))]
    os.environ[precompiled.PRECOMPILE_ENV] = "1"

    hello = statistics.median(sides["hello"])
    print(f"\n{'side':<16} {'p50 ms':>8} {'p90 ms':>8} {'/hello':>7}")
    for label, values in [*sides.items(), ("bundle source", source)]:
        print(f"{label:<16} {pct(values, .5):8.3f} {pct(values, .9):8.3f} {statistics.median(values) / hello:6.2f}x")
    print(f"bundle top level inside the guest: p50 {statistics.median(top_level):.3f} ms "
          f"({statistics.median(top_level) / (hello * 1000):.2f}x a whole hello request)")
    ratio = statistics.median(sides["bundle module"]) / hello
    lazy = statistics.median(sides["lazy module"]) / hello
    copy = statistics.median(sides["bundle copy"]) / statistics.median(sides["bundle module"])
    print(f"\nimage cost: lazy 215 KB from its module / hello {lazy:.2f}x "
          f"(copied: {statistics.median(sides['lazy copy']) / hello:.2f}x); bundle copy / module {copy:.2f}x")
    verdict = "MET" if ratio <= GOAL else "MISSED"
    print(f"goal: 215 KB bundle from its module / hello {ratio:.2f}x <= {GOAL}x: {verdict}")
    sys.exit(0 if verdict == "MET" else 1)


if __name__ == "__main__":
    asyncio.run(main())
