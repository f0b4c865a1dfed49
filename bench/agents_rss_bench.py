#!/usr/bin/env python3
"""Memory of N concurrent agents each awaiting a slow fetch (issue 17: 1,000 agents, peak RSS < 1 GB).

    .venv/bin/python bench/agents_rss_bench.py [--agents 1000] [--delay 60] [--no-snapshot] [--pool-slots N]

What it measures, and why: a gateway process holds one WapoJS sandbox per agent
in flight, and agents spend most of their life awaiting a fetch. The goal is
that one process holds 1,000 such agents at once with a peak RSS under 1 GB (issue 7 asked
for 2 GB). So:

* A slow HTTP server (aiohttp, 127.0.0.1, in this driver process) counts the
  requests to ``/slow`` and holds each one until the driver releases them (or
  ``--delay`` seconds pass; a request answered by that timeout means the
  measurement did not see all N waiting at once, and says so).
* A child process (fresh interpreter, so no phase inherits another's freed
  memory; the server is outside it, so its sockets are not counted) runs N
  agents concurrently through ``wapo.agent.call_agent``, the in-process call the
  gateway's ``/ipfs/<cid>`` route makes (``AgentRun``). The agent is style A
  (``async function main(request)`` resolving to JSON of {status, headers,
  body}), identical for every run; it does ``await fetch(<slow url>?i=<i>)``
  and answers the text, which the child checks per agent. The network policy
  allows 127.0.0.0/8 (denied by default).
* When the server has seen all N requests, the driver asks the child to read
  its /proc/self/status (VmRSS, VmHWM), then releases the server. The child
  checks every answer, times the batch, and reads its RSS again after the
  batch and a ``gc.collect()`` (and once more after glibc ``malloc_trim``).
* The same is measured for two baselines, each in its own child: N asyncio
  tasks awaiting the same URL with one shared aiohttp ClientSession (the floor
  of "something awaiting a fetch"), and with one ClientSession + connector per
  fetch (which is what wapo's host fetch does: no connection shared between
  runs), so the sandbox's own share can be told apart from the host's fetch.

Reported per phase: RSS before (after a one-request warm-up), RSS with N
waiting, the increment per agent/task, peak (VmHWM), batch times, RSS after;
each RSS with its split (anon / file / shmem) and Pss, since RSS counts a page
shared by many mappings (the guest's memory image in every sandbox) once per
mapping. Then the ratio agent / baseline per waiter, and the goal: MET when
every agent answered and the agents' process peak RSS (VmHWM) over the whole
batch (all N waiting, the answers and the teardown) is below 1 GB (1.0e9
bytes, stricter than 1 GiB); exit status 1 otherwise. The peak up to the moment
all N were waiting is printed next to it.

The agents' child runs with the project's defaults: WAPO_POOL_SLOTS (128) sandboxes
in the pooling allocator's slots, the rest on the on-demand engine, up to
WAPO_MAX_SANDBOXES (4096; raised to N + 16 if N is larger). ``--pool-slots N`` sets
WAPO_POOL_SLOTS (0: no pooling), to compare. ``--no-snapshot`` runs
the agents with WAPO_SNAPSHOT=0; ``WAPO_FAULT_AROUND=1`` in the environment keeps the kernel's
fault-around on the sandboxes' memory images (wapo.host.fault_around), to compare. Fetch and run limits are passed as configuration
so that the hold never trips them: fetch head timeout max(30, delay + 15) s (default
30 s) and run time max(60, delay + 30) s (default 60 s); nothing else is changed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # leave no __pycache__ behind in bench/

from aiohttp import web  # noqa: E402

MIB = 1024 * 1024
GOAL_BYTES = 1_000_000_000  # issue 17: "RSS < 1 GB at the peak" (issue 7: under 2 GB)
POOL_MARGIN = 16            # extra pool slots: the warm-up sandbox may not be collected yet
SETTLE = 0.5                # s between "the server has seen all N" and the RSS sample
EVENT = "@@agents-rss "     # prefix of the child's report lines on stdout
PHASES = {
    "baseline-shared": "asyncio task + aiohttp GET, one shared ClientSession",
    "baseline-session": "asyncio task + aiohttp GET, one ClientSession per fetch (as wapo's host)",
    "agents": "wapo agent (style A) awaiting fetch(), via call_agent",
}

AGENT_CODE = """\
async function main(request) {
  const req = JSON.parse(request);
  const res = await fetch(%s + "?i=" + req.queries.i[0]);
  const text = await res.text();
  return JSON.stringify({status: res.status, headers: {"content-type": "text/plain"}, body: text});
}
"""


def expected_body(i: int) -> str:
    return f"slow answer {i}"


# --- memory ------------------------------------------------------------------------------------------

STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def proc_status() -> dict[str, int]:
    """This process's memory, in bytes: VmRSS, VmHWM (peak RSS) and the RSS split from
    /proc/self/status, and Pss from /proc/self/smaps_rollup (a page shared by several mappings,
    e.g. a module image mapped into many sandboxes, counts once per mapping in RSS, once in Pss)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in STATUS_KEYS:
                out[key] = int(value.split()[0]) * 1024  # the kernel writes "... kB"
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def malloc_trim() -> bool:
    """Ask glibc to give freed heap back to the OS (what "memory goes back" can mean at best);
    False if there is no glibc to ask."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


# --- the slow server (driver process) ---------------------------------------------------------------

class SlowServer:
    """``/slow?i=K`` is counted and held until ``release`` (or ``delay`` s); ``/fast`` answers at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.reset(0)

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.timed_out = 0
        self.all_seen = asyncio.Event()
        self.release = asyncio.Event()

    async def slow(self, request: web.Request) -> web.Response:
        self.seen += 1
        if self.seen >= self.expected:
            self.all_seen.set()
        try:
            await asyncio.wait_for(self.release.wait(), self.delay)
        except TimeoutError:
            self.timed_out += 1
        return web.Response(text=expected_body(int(request.query["i"])))

    async def fast(self, request: web.Request) -> web.Response:
        return web.Response(text=expected_body(int(request.query["i"])))

    async def start(self, backlog: int) -> tuple[web.AppRunner, str]:
        app = web.Application()
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/fast", self.fast)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=backlog)
        await site.start()
        port = runner.addresses[0][1]
        return runner, f"http://127.0.0.1:{port}"


# --- the child: one phase, N concurrent waiters -----------------------------------------------------

def report(event: str, **data) -> None:
    print(EVENT + json.dumps({"event": event, **data}), flush=True)


async def stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def make_baseline(shared: bool):
    """A fetch function ``(url) -> (status, text)`` made of plain aiohttp, and its cleanup."""
    import aiohttp

    shared_session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) if shared else None

    async def fetch(url: str) -> tuple[int, str]:
        if shared_session is not None:
            async with shared_session.get(url) as r:
                return r.status, await r.text()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, force_close=True)) as session:
            async with session.get(url) as r:
                return r.status, await r.text()

    async def close() -> None:
        if shared_session is not None:
            await shared_session.close()

    return fetch, close


def make_agents(base_url: str, delay: float):
    """A fetch function that runs one wapo agent per call; the agent fetches the URL itself."""
    from wapo.agent import AgentRequest, call_agent
    from wapo.host import Limits
    from wapo.host.net.policy import HttpLimits, NetworkPolicy

    network = NetworkPolicy(allow=("127.0.0.0/8",), http=HttpLimits(timeout=max(30.0, delay + 15)))
    limits = Limits(time=max(60.0, delay + 30))

    def code_for(path: str) -> str:
        return AGENT_CODE % json.dumps(base_url + path)

    codes = {"/slow": code_for("/slow"), "/fast": code_for("/fast")}

    async def fetch(url: str) -> tuple[int, str]:
        path, _, query = url[len(base_url):].partition("?")
        result = await call_agent(codes[path], AgentRequest.from_query_string(query), limits=limits,
                                  network=network)
        if result.response is None:
            return 0, f"agent failed ({result.error_kind}): {result.error}"
        return result.response.status, result.response.body.decode("utf-8", "replace")

    async def close() -> None:
        pass

    return fetch, close


def check(results: list, n: int) -> dict:
    """How many answers are right; the distinct failures (first few)."""
    ok, failures = 0, {}
    for i, res in enumerate(results):
        if isinstance(res, BaseException):
            why = f"{type(res).__name__}: {res}"
        elif res == (200, expected_body(i)):
            ok += 1
            continue
        else:
            why = f"status {res[0]}: {res[1][:200]}"
        failures[why] = failures.get(why, 0) + 1
    return {"ok": ok, "n": n, "failures": dict(list(failures.items())[:5])}


async def child_main(phase: str, n: int, base_url: str, delay: float) -> None:
    commands = await stdin_reader()
    if phase == "agents":
        fetch, close = make_agents(base_url, delay)
    else:
        fetch, close = make_baseline(shared=(phase == "baseline-shared"))
    status, text = await fetch(f"{base_url}/fast?i=0")  # warm-up: imports, guest module, first connection
    if (status, text) != (200, expected_body(0)):
        raise SystemExit(f"warm-up failed: {status} {text}")
    gc.collect()
    report("ready", **proc_status())

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(fetch(f"{base_url}/slow?i={i}")) for i in range(n)]
    await commands.readline()  # the driver: "the server has seen them all"
    waiting = sum(not t.done() for t in tasks)
    report("waiting", waiting=waiting, open_fetches=open_fetches(), elapsed=time.perf_counter() - t0,
           **proc_status())

    await commands.readline()  # the driver: "released"
    t_release = time.perf_counter()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    t_done = time.perf_counter()
    outcome = check(results, n)
    del tasks, results
    await close()
    gc.collect()
    await asyncio.sleep(0.2)
    after = proc_status()
    trimmed = malloc_trim()
    report("done", batch_s=t_done - t0, drain_s=t_done - t_release, after=after,
           after_trim=proc_status() if trimmed else None, **outcome)


def open_fetches() -> int | None:
    """Fetches in flight in wapo's host (None in a baseline, which does not load wapo)."""
    client = sys.modules.get("wapo.host.http.client")
    return client.open_counts()["fetches"] if client else None


# --- the driver ---------------------------------------------------------------------------------------

async def read_event(proc: asyncio.subprocess.Process, want: str, timeout: float) -> dict:
    async def read() -> dict:
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the child exited (code {await proc.wait()}) before '{want}'")
            text = line.decode()
            if text.startswith(EVENT):
                data = json.loads(text[len(EVENT):])
                if data["event"] != want:
                    raise RuntimeError(f"expected '{want}' from the child, got {data}")
                return data
            sys.stdout.write("  [child] " + text)
    return await asyncio.wait_for(read(), timeout)


def pool_slots(args: argparse.Namespace) -> str:
    return "default" if args.pool_slots is None else str(args.pool_slots)


def child_env(phase: str, args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    if phase == "agents":
        if args.pool_slots is not None:
            env["WAPO_POOL_SLOTS"] = str(args.pool_slots)
        env["WAPO_MAX_SANDBOXES"] = str(max(4096, args.agents + POOL_MARGIN))
        if args.no_snapshot:
            env["WAPO_SNAPSHOT"] = "0"
    return env


async def run_phase(server: SlowServer, base_url: str, phase: str, args: argparse.Namespace) -> dict:
    server.reset(args.agents)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--phase", phase, "--agents", str(args.agents), "--url", base_url,
        "--delay", str(args.delay), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        env=child_env(phase, args), limit=1 << 20)
    try:
        ready = await read_event(proc, "ready", 300)
        try:
            await asyncio.wait_for(server.all_seen.wait(), args.delay)
        except TimeoutError:
            pass  # reported: seen < N
        seen_at_sample = server.seen
        await asyncio.sleep(SETTLE)  # let the last arrivals reach their await
        proc.stdin.write(b"sample\n")
        waiting = await read_event(proc, "waiting", 60)
        server.release.set()
        proc.stdin.write(b"released\n")
        done = await read_event(proc, "done", args.delay + 120)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return {"phase": phase, "ready": ready, "waiting": waiting, "done": done, "seen": seen_at_sample,
            "timed_out": server.timed_out}


def per_item(row: dict, n: int, key: str = "VmRSS") -> float:
    """MiB per waiter: growth of ``key`` from before the batch to N waiting, divided by N."""
    return (row["waiting"][key] - row["ready"][key]) / n / MIB


def mem(d: dict) -> str:
    def m(key: str) -> str:
        return f"{d[key] / MIB:.1f}" if key in d else "?"
    return (f"{m('VmRSS'):>7} MiB (anon {m('RssAnon')}, file {m('RssFile')}, shmem {m('RssShmem')}; "
            f"Pss {m('Pss')}; peak VmHWM {m('VmHWM')})")


def print_phase(row: dict, n: int) -> None:
    ready, waiting, done = row["ready"], row["waiting"], row["done"]
    print(f"\n{row['phase']}: {PHASES[row['phase']]}")
    print(f"  server saw {row['seen']}/{n} requests at the sample; {waiting['waiting']} still waiting in the child"
          + (f"; wapo fetches in flight {waiting['open_fetches']}" if waiting["open_fetches"] is not None else "")
          + f"; sampled {waiting['elapsed']:.2f} s after the first start")
    if row["seen"] < n or row["timed_out"]:
        print(f"  WARNING: not all {n} were waiting at once ({row['timed_out']} answered by the --delay timeout)")
    print(f"  RSS before (after warm-up)  {mem(ready)}")
    print(f"  RSS with {n:>5} waiting     {mem(waiting)}")
    print(f"  RSS increment per waiter    {per_item(row, n) * 1024:7.1f} KiB  (Pss {per_item(row, n, 'Pss') * 1024:.1f} KiB)")
    print(f"  answers correct             {done['ok']}/{n}" + (f"  failures: {done['failures']}" if done["failures"] else ""))
    print(f"  batch {done['batch_s']:.2f} s (first start to last answer, hold included); "
          f"drain after release {done['drain_s']:.2f} s")
    print(f"  RSS after the batch + gc    {mem(done['after'])}")
    if done["after_trim"]:
        print(f"  ... after malloc_trim(0)    {mem(done['after_trim'])}")


def print_summary(rows: dict[str, dict], n: int) -> bool:
    agents = rows["agents"]
    mib = per_item(agents, n)
    print("\nsummary")
    for name in ("baseline-shared", "baseline-session"):
        base = per_item(rows[name], n)
        ratio = f"{mib / base:.0f}x" if base > 0 else "n/a"
        print(f"  per waiter: agent {mib:.3f} MiB vs {name} {base:.3f} MiB: {ratio}")
    all_ok = agents["done"]["ok"] == n and agents["seen"] >= n and not agents["timed_out"]
    held = agents["waiting"]["VmHWM"]
    whole = agents["done"]["after"]["VmHWM"]
    met = whole < GOAL_BYTES and all_ok
    goal = f"{GOAL_BYTES / 1e9:g} GB"
    pss = (agents["waiting"].get("Pss", 0) - agents["ready"].get("Pss", 0)) / n / 1024
    print(f"  per waiting agent: Pss {pss:.0f} KiB")
    print(f"  peak RSS (VmHWM) until all were waiting {held / 1e9:.3f} GB")
    print(f"  goal: {n} agents awaiting a fetch in one process, peak RSS over the whole batch (answers and "
          f"teardown included) {whole / 1e9:.3f} GB < {goal}, all answered correctly: {all_ok} -> "
          f"{'MET' if met else 'NOT MET'}")
    per_gb = (GOAL_BYTES - agents["ready"]["VmRSS"]) / (mib * MIB) if mib > 0 else float("inf")
    print(f"  at this increment, {goal} would hold ~{per_gb:,.0f} waiting agents")
    return met


async def driver_main(args: argparse.Namespace) -> int:
    from importlib.metadata import version
    print(f"{args.agents} concurrent waiters per phase; slow server holds each request until sampled "
          f"(at most {args.delay:g} s); snapshot {'off' if args.no_snapshot else 'on'}; "
          f"agents' WAPO_POOL_SLOTS={pool_slots(args)}; "
          f"wasmtime {version('wasmtime')}, aiohttp {version('aiohttp')}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    server = SlowServer(args.delay)
    runner, base_url = await server.start(backlog=max(args.agents, 128) + 64)
    try:
        rows = {}
        for phase in PHASES:
            rows[phase] = await run_phase(server, base_url, phase, args)
            print_phase(rows[phase], args.agents)
    finally:
        await runner.cleanup()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"agents": args.agents, "delay": args.delay, "snapshot": not args.no_snapshot,
                       "pool_slots": pool_slots(args), "phases": rows}, f, indent=2)
    return 0 if print_summary(rows, args.agents) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=1000, help="concurrent agents (and baseline tasks)")
    ap.add_argument("--delay", type=float, default=60.0,
                    help="longest hold of a slow request, s (released earlier, once RSS is sampled)")
    ap.add_argument("--no-snapshot", action="store_true", help="run the agents with WAPO_SNAPSHOT=0")
    ap.add_argument("--pool-slots", type=int,
                    help="WAPO_POOL_SLOTS of the agents' process (default: the project's, 128; 0: no pooling)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)  # internal: run as a child
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        asyncio.run(child_main(args.phase, args.agents, args.url, args.delay))
        return 0
    return asyncio.run(driver_main(args))


if __name__ == "__main__":
    sys.exit(main())
