#!/usr/bin/env python3
"""Soak: `wapo serve --workers 2` under benign and hostile load for N minutes, one worker killed mid-run,
then a restart on the same data directory and a check that nothing acknowledged was lost.

    .venv/bin/python bench/soak.py                 # 10 minutes (+ ~30 s of setup and checks)
    .venv/bin/python bench/soak.py --minutes 1     # smoke run: ~1.5 minutes
    .venv/bin/python bench/soak.py --minutes 30 --json bench/results/soak.json

Everything runs on 127.0.0.1, started here and stopped on exit (also on Ctrl-C or an error): the
gateway (`wapo serve --workers 2`, defaults except `--allow-address 127.0.0.0/8` so the fetch agents
reach the local upstream, and a config file giving some hostile CIDs a 3 s time limit), an aiohttp
upstream in this process, and the load (aiohttp clients and raw sockets in this process).

Benign load, all at once, each a closed loop with a pause (bounded rate):
  hello      style A agents (several CIDs, so log retention never drops what is checked) that log a
             unique marker per request and answer it;
  fetch      a style A agent fetching the local upstream, the body checked;
  stream     a style C agent answering server-sent events from a ReadableStream, read to the end, checked;
  ws         a JS app (`wapo deploy`, WapoServer.serve + upgradeWebSocket) echoing WebSocket messages
             through /app/<id>/ on the gateway;
  vault      vaults created with POST /vaults (under the default rate limit), the vault agent called
             with ?key= answers the secret, checked; older vaults read again at random;
  publish    `wapo publish` (the CLI, into the running gateway's data directory) of new agents, each
             then called through the running gateway, its answer checked.
Hostile load at the same time, bounded in count and rate: an infinite loop (burst limit), allocation
until OOM (memory limit), a console.log flood and a setTimeout flood (3 s time limit), never-resolving
promises (with and without a live timer), answers over max_answer (whole and streamed), and slow clients
(raw sockets: one header byte a second; nothing at all).

At 50 % of the run (after the second interval) one worker (a child of the first process holding the
listening socket) gets SIGKILL; the bench waits for its replacement.

Every interval (a minute; a quarter of the run when it is shorter than 4 minutes) prints the requests by
kind and status, benign p50/p99, and the RSS and open fds of every process of the gateway.

At the end: SIGTERM (drain), start again on the same data directory, and check that every acknowledged
publish is still served, every acknowledged vault still gives its secret, every acknowledged hello
request's marker is in /logs/all/ipfs/<cid>?format=json under its request id.

Goals (exit status 1 when one is missed): 0 benign failures, except those in flight on the killed
worker (started before the kill, failed within 5 s after it); RSS of each process in the last interval
<= 1.1 x its second interval (processes without a second-interval figure, the replacement worker, are
excluded); open fds in the last interval <= second interval + 16; the killed worker replaced; nothing
acknowledged lost; the gateway stops cleanly (exit 0) on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

WAPO = [sys.executable, "-m", "wapo.cli.main"]
EXCUSE_AFTER_KILL = 5.0  # a benign failure is the kill's if it started before it and failed this soon after
RSS_FACTOR, FD_SLACK = 1.1, 16
BENIGN_TIMEOUT = 60.0
HELLO_LOOPS = 4  # each at most 10 requests a second

# --- agents ---------------------------------------------------------------------------------------

HELLO = """async function main(request) {
  const q = JSON.parse(request).queries;
  const m = q.m ? q.m[0] : "none";
  console.log("marker " + m);
  return JSON.stringify({status: 200, headers: {"content-type": "text/plain"}, body: "hello " + m});
}
// hello HELLO_ID
"""

FETCH = """async function main(request) {
  const q = JSON.parse(request).queries;
  const r = await fetch("UPSTREAM/data?m=" + encodeURIComponent(q.m[0]));
  const text = await r.text();
  return JSON.stringify({status: r.status === 200 ? 200 : 502, headers: {"content-type": "text/plain"}, body: text});
}
"""

STREAM = """export default {
  async fetch(request) {
    const n = Number(new URL(request.url).searchParams.get("n") || "5");
    const enc = new TextEncoder();
    let i = 0;
    const body = new ReadableStream({
      async pull(c) {
        if (i < n) { await new Promise(r => setTimeout(r, 20)); c.enqueue(enc.encode("data: " + i + "\\n\\n")); i++; }
        else c.close();
      },
    });
    return new Response(body, {headers: {"content-type": "text/event-stream"}});
  },
};
"""

VAULT = """async function main(request) {
  const req = JSON.parse(request);
  return JSON.stringify({status: 200, headers: {"content-type": "text/plain"}, body: "secret " + (req.secret.value || "-")});
}
"""

PUBLISHED = """async function main(request) {
  return JSON.stringify({status: 200, headers: {"content-type": "text/plain"}, body: "published PUB_ID"});
}
"""

WS_APP = """WapoServer.serve(async (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/ws") {
    const { socket, response } = WapoServer.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(typeof e.data === "string" ? "echo:" + e.data : e.data);
    return response;
  }
  return new Response("app " + path);
});
"""

HOSTILE = {  # name -> (code, per-CID time limit or None, pause between requests in s)
    "cpu": ("""async function main(request) { let x = 0; for (;;) x++; }""", None, 2.0),
    "oom": ("""async function main(request) { const a = []; for (;;) a.push(new Array(100000).fill(a.length)); }""",
            None, 2.0),
    "logflood": ("""async function main(request) {
  const big = "L".repeat(64 * 1024);
  for (let i = 0; ; i++) { console.log(big + i); if (i % 100 === 0) await new Promise(r => setTimeout(r, 0)); }
}""", "3s", 2.0),
    "timerflood": ("""async function main(request) {
  for (let i = 0; ; i++) { setTimeout(() => {}, 100000 + i); if (i % 10000 === 0) await new Promise(r => setTimeout(r, 0)); }
}""", "3s", 2.0),
    "never": ("""async function main(request) { await new Promise(() => {}); }""", "3s", 1.0),
    "never+timer": ("""async function main(request) { setInterval(() => {}, 100); await new Promise(() => {}); }""",
                    "3s", 1.0),
    "huge-a": ("""async function main(request) {
  return JSON.stringify({status: 200, headers: {}, body: "x".repeat(33 * 1024 * 1024)});
}""", None, 4.0),
    "huge": ("""export default { fetch() { return new Response("x".repeat(33 * 1024 * 1024)); } };""", None, 4.0),
    "hugestream": ("""export default { fetch() {
  const chunk = new Uint8Array(1024 * 1024).fill(120);
  return new Response(new ReadableStream({ pull(c) { c.enqueue(chunk); } }));
} };""", None, 5.0),
}


# --- processes ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STARTED: list["Gateway"] = []  # every gateway started: killed on the way out whatever happens


class Gateway:
    """`wapo serve` in a session of its own (so it and its workers are stopped together)."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.log = open(log_path, "a")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.pid = self.proc.pid
        STARTED.append(self)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.output.append(line)
            self.log.write(line)
            self.log.flush()
            self.lines.put(line)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if "sample agent:" in self.lines.get(timeout=1):
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        raise RuntimeError("wapo serve did not start:\n" + "".join(self.output[-40:]))

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM to the first process only (it drains its workers); its exit status, None if it had to be killed."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the whole session: workers included
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass


def process_tree(root: int) -> list[int]:
    tree, frontier = [root], [root]
    while frontier:
        pid = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in tree:
                    tree.append(child)
                    frontier.append(child)
    return tree


def listening_pids(port: int, pids: list[int]) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A":
                inodes.add(f[9])
    holders = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    holders.add(pid)
        except OSError:
            pass
    return holders


def role_of(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return "tracker" if b"resource_tracker" in cmdline else ""


def rss_fds(pid: int) -> tuple[int, int] | None:
    """(VmRSS in bytes, open fds) of a process, None if it is gone."""
    try:
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return None


def cli(*args: str, timeout: float = 120) -> str:
    p = subprocess.run([*WAPO, *args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"wapo {' '.join(args)} failed: {p.stderr}")
    return p.stdout


def publish(data_dir: Path, work: Path, name: str, code: str) -> str:
    path = work / f"{name}.js"
    path.write_text(code)
    return cli("publish", str(path), "--data-dir", str(data_dir)).strip().splitlines()[-1]


# --- records --------------------------------------------------------------------------------------

@dataclass
class Req:
    kind: str
    start: float  # time.monotonic()
    end: float
    ok: bool
    status: str  # HTTP status, or the exception's class name
    detail: str = ""


@dataclass
class State:
    t0: float
    end: float
    benign: list[Req] = field(default_factory=list)
    hostile: list[Req] = field(default_factory=list)
    kill_at: float | None = None
    killed_pid: int | None = None
    replaced_by: int | None = None
    replaced_after: float | None = None
    publishes: dict[str, str] = field(default_factory=dict)  # acknowledged cid -> expected body
    publish_failures: list[str] = field(default_factory=list)
    vaults: dict[str, str] = field(default_factory=dict)  # acknowledged vault key -> secret value
    markers: dict[str, tuple[str, str]] = field(default_factory=dict)  # request id -> (cid, marker)
    samples: list[tuple[float, dict[int, tuple[int, int]]]] = field(default_factory=list)
    roles: dict[int, str] = field(default_factory=dict)

    def stopping(self) -> bool:
        return time.monotonic() >= self.end


# --- benign load ----------------------------------------------------------------------------------

async def timed(state: State, kind: str, coro, hostile: bool = False) -> Req:
    start = time.monotonic()
    try:
        ok, status, detail = await coro
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001  (every failure is recorded)
        ok, status, detail = False, type(exc).__name__, str(exc)[:200]
    r = Req(kind, start, time.monotonic(), ok, str(status), detail)
    (state.hostile if hostile else state.benign).append(r)
    return r


async def hello_loop(state: State, s: aiohttp.ClientSession, base: str, cids: list[str], n: int) -> None:
    seq = 0
    while not state.stopping():
        seq += 1
        cid, marker = cids[seq % len(cids)], f"h{n}-{seq}-{random.getrandbits(32):08x}"

        async def one():
            async with s.get(f"{base}/ipfs/{cid}?m={marker}") as r:
                body = await r.read()
                ok = r.status == 200 and body == f"hello {marker}".encode()
                if ok:
                    state.markers[r.headers["X-Request-Id"]] = (cid, marker)
                return ok, r.status, body[:200].decode(errors="replace")
        await timed(state, "hello", one())
        await asyncio.sleep(0.1)


async def fetch_loop(state: State, s: aiohttp.ClientSession, base: str, cid: str, n: int) -> None:
    seq = 0
    while not state.stopping():
        seq += 1
        marker = f"f{n}-{seq}"

        async def one():
            async with s.get(f"{base}/ipfs/{cid}?m={marker}") as r:
                body = await r.read()
                return r.status == 200 and body == f"upstream {marker}".encode(), r.status, body[:200].decode(errors="replace")
        await timed(state, "fetch", one())
        await asyncio.sleep(0.2)


async def stream_loop(state: State, s: aiohttp.ClientSession, base: str, cid: str) -> None:
    while not state.stopping():
        n = random.randint(3, 12)
        expected = "".join(f"data: {i}\n\n" for i in range(n)).encode()

        async def one():
            async with s.get(f"{base}/ipfs/{cid}?n={n}") as r:
                chunks = []
                async for chunk in r.content.iter_any():
                    chunks.append(chunk)
                body = b"".join(chunks)
                ok = r.status == 200 and body == expected and r.headers.get("content-type", "").startswith("text/event-stream")
                return ok, r.status, body[:200].decode(errors="replace")
        await timed(state, "stream", one())
        await asyncio.sleep(0.2)


async def ws_loop(state: State, s: aiohttp.ClientSession, base: str, app_id: str) -> None:
    url = "ws" + base[len("http"):] + f"/app/{app_id}/ws"
    seq = 0
    while not state.stopping():
        seq += 1

        async def one():
            async with s.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
                for i in range(5):
                    text = f"m{seq}-{i}"
                    await ws.send_str(text)
                    got = await ws.receive_str(timeout=20)
                    if got != "echo:" + text:
                        return False, 101, f"got {got!r}"
                data = os.urandom(512)
                await ws.send_bytes(data)
                if await ws.receive_bytes(timeout=20) != data:
                    return False, 101, "binary echo differs"
            return True, 101, ""
        await timed(state, "ws", one())
        await asyncio.sleep(0.2)


async def vault_loop(state: State, s: aiohttp.ClientSession, base: str, cid: str) -> None:
    next_create, seq = 0.0, 0
    while not state.stopping():
        if time.monotonic() >= next_create:  # 12 a minute: under the default 30 a minute per address
            next_create = time.monotonic() + 5.0
            seq += 1
            value = f"v{seq}-{random.getrandbits(64):016x}"

            async def create():
                async with s.post(f"{base}/vaults", json={"cid": cid, "data": {"value": value}}) as r:
                    body = await r.json(content_type=None)
                    if r.status == 200 and body.get("succeed") and body.get("key"):
                        state.vaults[body["key"]] = value
                        return True, r.status, ""
                    return False, r.status, json.dumps(body)[:200]
            await timed(state, "vault-new", create())
            continue
        if state.vaults:
            key = random.choice(list(state.vaults))
            value = state.vaults[key]

            async def read():
                async with s.get(f"{base}/ipfs/{cid}?key={key}") as r:
                    body = await r.read()
                    return r.status == 200 and body == f"secret {value}".encode(), r.status, body[:200].decode(errors="replace")
            await timed(state, "vault", read())
        await asyncio.sleep(0.25)


async def publish_loop(state: State, s: aiohttp.ClientSession, base: str, data_dir: Path, work: Path) -> None:
    seq = 0
    while not state.stopping():
        seq += 1
        pub_id = f"p{seq}-{random.getrandbits(48):012x}"
        path = work / f"pub-{pub_id}.js"
        path.write_text(PUBLISHED.replace("PUB_ID", pub_id))
        proc = await asyncio.create_subprocess_exec(*WAPO, "publish", str(path), "--data-dir", str(data_dir),
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 120)
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            state.publish_failures.append(err.decode(errors="replace")[-300:])
            state.benign.append(Req("publish-cli", time.monotonic(), time.monotonic(), False,
                                    f"exit{proc.returncode}", err.decode(errors="replace")[-200:]))
        else:
            cid = out.decode().strip().splitlines()[-1]
            expected = f"published {pub_id}".encode()
            state.publishes[cid] = expected.decode()

            async def call():
                async with s.get(f"{base}/ipfs/{cid}") as r:
                    body = await r.read()
                    return r.status == 200 and body == expected, r.status, body[:200].decode(errors="replace")
            await timed(state, "publish", call())
        await asyncio.sleep(8.0)


# --- hostile load ---------------------------------------------------------------------------------

async def hostile_loop(state: State, s: aiohttp.ClientSession, base: str, name: str, cid: str, pause: float) -> None:
    while not state.stopping():
        async def one():
            async with s.get(f"{base}/ipfs/{cid}") as r:
                n = 0
                async for chunk in r.content.iter_chunked(1 << 20):
                    n += len(chunk)
                return True, r.status, f"{n} bytes"
        await timed(state, name, one(), hostile=True)
        await asyncio.sleep(pause)


async def slow_client_loop(state: State, port: int, name: str, trickle: bool) -> None:
    """A raw connection sending one header byte a second (trickle) or nothing; until the server cuts it
    (its header_timeout, 10 s by default) or 30 s."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        got = b""
        try:
            deadline = time.monotonic() + 30
            i = 0
            while time.monotonic() < deadline:
                if trickle and i < len(request):
                    writer.write(request[i:i + 1])
                    i += 1
                try:
                    data = await asyncio.wait_for(reader.read(4096), 1.0)
                except asyncio.TimeoutError:
                    continue
                except ConnectionError:
                    return True, "reset", ""
                if not data:
                    break
                got += data
            else:
                return True, "not-cut", ""
        finally:
            writer.close()
        status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/") else "closed"
        return True, status, ""
    while not state.stopping():
        r = await timed(state, name, one(), hostile=True)
        r.detail = f"{r.end - r.start:.1f} s"
        await asyncio.sleep(1.0)


# --- the kill, sampling ---------------------------------------------------------------------------

async def killer(state: State, gw: Gateway, port: int) -> None:
    await asyncio.sleep(max(0.0, state.kill_at - time.monotonic()))
    tree = process_tree(gw.pid)
    workers = sorted(listening_pids(port, tree) - {gw.pid})
    if not workers:
        print("soak: no worker to kill (no child of the first process listens on the port)", flush=True)
        return
    victim = workers[0]
    os.kill(victim, signal.SIGKILL)
    state.killed_pid, state.kill_at = victim, time.monotonic()
    print(f"soak: t={state.kill_at - state.t0:.0f} s: SIGKILL to worker pid {victim}", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        new = listening_pids(port, process_tree(gw.pid)) - {gw.pid, victim}
        if new:
            state.replaced_by, state.replaced_after = new.pop(), time.monotonic() - state.kill_at
            print(f"soak: worker replaced by pid {state.replaced_by} after {state.replaced_after:.1f} s", flush=True)
            return
    print("soak: the killed worker was NOT replaced within 60 s", flush=True)


async def sampler(state: State, gw: Gateway, port: int, every: float = 2.0) -> None:
    while not state.stopping():
        tree = process_tree(gw.pid)
        holders = listening_pids(port, tree)
        sample = {}
        for pid in tree:
            v = rss_fds(pid)
            if v is not None:
                sample[pid] = v
                if pid not in state.roles:
                    state.roles[pid] = "main" if pid == gw.pid else ("worker" if pid in holders else role_of(pid))
                elif not state.roles[pid] and pid in holders:
                    state.roles[pid] = "worker"
        state.samples.append((time.monotonic(), sample))
        await asyncio.sleep(every)


# --- reporting ------------------------------------------------------------------------------------

def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def excused(state: State, r: Req) -> bool:
    return (state.killed_pid is not None and r.start < state.kill_at
            and state.kill_at - 0.5 <= r.end <= state.kill_at + EXCUSE_AFTER_KILL)


def interval_of(state: State, t: float, interval: float, n: int) -> int:
    return max(0, min(n - 1, int((t - state.t0) // interval)))


def per_interval_proc(state: State, interval: float, n: int) -> dict[int, dict[int, tuple[float, float]]]:
    """pid -> interval -> (median RSS, median fds) of the samples in that interval."""
    by: dict[int, dict[int, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for t, sample in state.samples:
        i = interval_of(state, t, interval, n)
        for pid, v in sample.items():
            by[pid][i].append(v)
    return {pid: {i: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs))
                  for i, vs in d.items()} for pid, d in by.items()}


def print_interval(state: State, i: int, interval: float, n: int) -> dict:
    lo, hi = state.t0 + i * interval, state.t0 + (i + 1) * interval
    benign = [r for r in state.benign if lo <= r.end < hi or (i == n - 1 and r.end >= hi)]
    hostile = [r for r in state.hostile if lo <= r.end < hi or (i == n - 1 and r.end >= hi)]
    kinds = Counter((r.kind, r.status) for r in benign)
    failures = [r for r in benign if not r.ok]
    lat = [(r.end - r.start) * 1000 for r in benign if r.ok and r.kind in ("hello", "fetch", "vault")]
    h = Counter((r.kind, r.status) for r in hostile)
    row = {"interval": i + 1, "from_s": round(i * interval), "to_s": round((i + 1) * interval),
           "benign": {f"{k} {s}": c for (k, s), c in sorted(kinds.items())},
           "hostile": {f"{k} {s}": c for (k, s), c in sorted(h.items())},
           "benign_failures": len(failures), "excused": sum(1 for r in failures if excused(state, r)),
           "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "procs": {}}
    seen: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for t, sample in state.samples:
        if lo <= t < hi or (i == n - 1 and t >= hi):
            for pid, v in sample.items():
                seen[pid].append(v)
    for pid, vs in sorted(seen.items()):
        rss = [v[0] / 2**20 for v in vs]
        row["procs"][pid] = {"role": state.roles.get(pid, ""), "rss_mb": round(statistics.median(rss), 1),
                             "rss_min_mb": round(min(rss), 1), "rss_max_mb": round(max(rss), 1),
                             "fds": statistics.median(v[1] for v in vs), "samples": len(vs)}
    by_status = Counter(r.status for r in benign)
    print(f"--- interval {i + 1}/{n}  t={row['from_s']}-{row['to_s']} s", flush=True)
    print(f"  benign  {len(benign):6d} req  status {dict(sorted(by_status.items()))}  failures {len(failures)}"
          f" (excused {row['excused']})  p50 {row['p50_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms")
    print("  benign by kind  " + "  ".join(f"{k}:{s}={c}" for (k, s), c in sorted(kinds.items())))
    print("  hostile         " + "  ".join(f"{k}:{s}={c}" for (k, s), c in sorted(h.items())))
    print("  processes       " + "  ".join(f"{pid}({p['role'] or '?'}) RSS {p['rss_mb']:.0f} MB ({p['rss_min_mb']:.0f}-"
                                            f"{p['rss_max_mb']:.0f}) {p['fds']:.0f} fds"
                                            for pid, p in row["procs"].items()), flush=True)
    for r in failures[:5]:
        print(f"    failure {r.kind} t={r.start - state.t0:.1f}-{r.end - state.t0:.1f} s {r.status}: {r.detail[:160]}"
              f"{' (excused: the kill)' if excused(state, r) else ''}")
    return row


async def reporter(state: State, interval: float, n: int, rows: list) -> None:
    for i in range(n):
        await asyncio.sleep(max(0.0, state.t0 + (i + 1) * interval - time.monotonic()))
        await asyncio.sleep(0.5)  # requests ending at the boundary
        if i < n - 1:
            rows.append(print_interval(state, i, interval, n))


# --- upstream -------------------------------------------------------------------------------------

async def start_upstream() -> tuple[web.AppRunner, int]:
    async def data(request: web.Request) -> web.Response:
        return web.Response(text=f"upstream {request.query.get('m', '')}")
    app = web.Application()
    app.router.add_get("/data", data)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


# --- verification after the restart -----------------------------------------------------------------

async def verify(state: State, base: str, hello_cids: list[str], vault_cid: str) -> dict:
    lost = {"publishes": [], "vaults": [], "log markers": []}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=16)) as s:
        sem = asyncio.Semaphore(16)

        async def get(url: str) -> tuple[int, bytes]:
            async with sem:
                for attempt in range(3):
                    try:
                        async with s.get(url) as r:
                            return r.status, await r.read()
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        if attempt == 2:
                            raise
                        await asyncio.sleep(1)
            raise AssertionError

        async def check_pub(cid: str, expected: str) -> None:
            status, body = await get(f"{base}/ipfs/{cid}")
            if status != 200 or body != expected.encode():
                lost["publishes"].append(f"{cid}: {status} {body[:80]!r}")

        async def check_vault(key: str, value: str) -> None:
            status, body = await get(f"{base}/ipfs/{vault_cid}?key={key}")
            if status != 200 or body != f"secret {value}".encode():
                lost["vaults"].append(f"{key}: {status} {body[:80]!r}")

        await asyncio.gather(*(check_pub(c, e) for c, e in state.publishes.items()),
                             *(check_vault(k, v) for k, v in state.vaults.items()))
        seen: set[tuple[str, str]] = set()  # (request id, message)

        async def read_logs(cid: str) -> None:
            page = 1
            while True:
                status, body = await get(f"{base}/logs/all/ipfs/{cid}?format=json&limit=100&page={page}")
                if status != 200:
                    raise RuntimeError(f"logs of {cid}: {status} {body[:200]!r}")
                logs = json.loads(body)["logs"]
                if not logs:
                    return
                for rec in logs:
                    seen.add((rec["request_id"], rec["message"]))
                page += 1
        await asyncio.gather(*(read_logs(c) for c in hello_cids))
        for rid, (cid, marker) in state.markers.items():
            if (rid, f"marker {marker}") not in seen:
                lost["log markers"].append(f"{rid} ({cid}): marker {marker}")
    return lost


# --- main -----------------------------------------------------------------------------------------

async def soak(args: argparse.Namespace, work: Path) -> int:
    data_dir, port = work / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    duration = args.minutes * 60.0
    n = max(4, math.ceil(args.minutes))  # intervals: a minute each, or a quarter of a short run
    interval = duration / n
    upstream, up_port = await start_upstream()
    gw: Gateway | None = None
    tasks: list[asyncio.Task] = []
    sessions: list[aiohttp.ClientSession] = []
    try:
        # agents and the app, stored before the gateway starts (the config names some CIDs)
        t_setup = time.monotonic()
        # hello CIDs: at most HELLO_LOOPS * 10 requests a second; each run keeps 3 log records and a CID
        # keeps 10,000 (log_max_per_cid), so one CID per 2,500 requests (and never fewer than 3)
        n_hello = max(3, math.ceil(duration * HELLO_LOOPS * 10 / 2500))
        sources = {f"hello{i}": HELLO.replace("HELLO_ID", str(i)) for i in range(n_hello)}
        sources |= {"fetch": FETCH.replace("UPSTREAM", f"http://127.0.0.1:{up_port}"), "stream": STREAM,
                    "vault": VAULT}
        sources |= {f"hostile-{name}": code for name, (code, _, _) in HOSTILE.items()}
        # the first alone: it creates the database (several processes opening a fresh one at once
        # could fail with "database is locked" before wapo retried the switch to WAL mode)
        first = next(iter(sources))
        cids = {first: publish(data_dir, work, first, sources.pop(first))}
        with ThreadPoolExecutor(4) as pool:  # then `wapo publish` processes, a few at once
            cids |= dict(zip(sources, pool.map(lambda kv: publish(data_dir, work, *kv), sources.items())))
        hello_cids = [cids[f"hello{i}"] for i in range(n_hello)]
        fetch_cid, stream_cid, vault_cid = cids["fetch"], cids["stream"], cids["vault"]
        hostile_cids = {name: cids[f"hostile-{name}"] for name in HOSTILE}
        (work / "echo.js").write_text(WS_APP)
        cli("deploy", str(work / "echo.js"), "--id", "echo", "--data-dir", str(data_dir))
        config = work / "wapo.toml"
        config.write_text("".join(f'[cid."{hostile_cids[name]}"]\ntime = "{t}"\n'
                                  for name, (_, t, _) in HOSTILE.items() if t))
        argv = [*WAPO, "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
                str(data_dir), "--config", str(config), "--allow-address", "127.0.0.0/8"]
        gw = Gateway(argv, work / "gateway.log")
        gw.wait_ready()
        # both workers listening, and the app up
        deadline = time.monotonic() + 60
        while len(listening_pids(port, process_tree(gw.pid))) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the second worker did not start")
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as s:
            while True:
                async with s.get(f"{base}/app/echo/") as r:
                    if r.status == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start: {r.status}")
                await asyncio.sleep(0.3)
        print(f"soak: gateway pid {gw.pid} on {base}, workers {sorted(listening_pids(port, process_tree(gw.pid)))}, "
              f"data {data_dir}; setup {time.monotonic() - t_setup:.0f} s; {args.minutes:g} min, "
              f"{n} intervals of {interval:.0f} s", flush=True)

        t0 = time.monotonic()
        state = State(t0=t0, end=t0 + duration)
        state.kill_at = t0 + max(2.5 * interval, duration * 0.5)
        benign = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=BENIGN_TIMEOUT),
                                       connector=aiohttp.TCPConnector(limit=64))
        hostile = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                        connector=aiohttp.TCPConnector(limit=32))
        sessions += [benign, hostile]
        rows: list = []
        load = [
            *(hello_loop(state, benign, base, hello_cids, i) for i in range(HELLO_LOOPS)),
            *(fetch_loop(state, benign, base, fetch_cid, i) for i in range(2)),
            stream_loop(state, benign, base, stream_cid),
            ws_loop(state, benign, base, "echo"),
            vault_loop(state, benign, base, vault_cid),
            publish_loop(state, benign, base, data_dir, work),
            *(hostile_loop(state, hostile, base, name, hostile_cids[name], pause)
              for name, (_, _, pause) in HOSTILE.items()),
            *(slow_client_loop(state, port, f"slow-{i}", True) for i in range(2)),
            *(slow_client_loop(state, port, f"silent-{i}", False) for i in range(2)),
        ]
        tasks = [asyncio.create_task(c) for c in load]
        side = [asyncio.create_task(killer(state, gw, port)), asyncio.create_task(sampler(state, gw, port)),
                asyncio.create_task(reporter(state, interval, n, rows))]
        tasks += side
        await asyncio.sleep(duration)
        # let requests in flight finish (bounded), then the last interval
        done, pending = await asyncio.wait(tasks[:len(load)], timeout=BENIGN_TIMEOUT + 10)
        for t in pending:
            t.cancel()
        for t in done:
            if t.exception() is not None:
                print(f"soak: a load task failed: {t.exception()!r}", flush=True)
        for t in side:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        rows.append(print_interval(state, n - 1, interval, n))
        for sess in sessions:
            await sess.close()

        # restart and check what was acknowledged
        print("soak: SIGTERM to the gateway, then a restart on the same data directory", flush=True)
        t_stop = time.monotonic()
        code = await asyncio.to_thread(gw.terminate, 40.0)
        stop_seconds = time.monotonic() - t_stop
        deadline = time.monotonic() + 10  # the workers and multiprocessing's resource tracker follow the first process
        while (leftovers := [pid for pid in state.roles if rss_fds(pid) is not None and pid != gw.pid]) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        gw = Gateway(argv, work / "gateway.log")
        gw.wait_ready()
        lost = await verify(state, base, hello_cids, vault_cid)
        code2 = await asyncio.to_thread(gw.terminate, 40.0)
        gw = None
        return report(args, state, rows, interval, n, lost, code, stop_seconds, leftovers, code2)
    finally:
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for sess in sessions:
            await sess.close()
        if gw is not None:
            await asyncio.to_thread(gw.kill)
        await upstream.cleanup()


def report(args, state: State, rows: list, interval: float, n: int, lost: dict, code, stop_seconds: float,
           leftovers: list, code2) -> int:
    failures = [r for r in state.benign if not r.ok]
    unexcused = [r for r in failures if not excused(state, r)]
    procs = per_interval_proc(state, interval, n)
    goals: list[tuple[str, str, str, bool]] = []  # (what, figure, goal, met)
    total = Counter(r.kind for r in state.benign)
    goals.append(("benign failures (not the kill's)", f"{len(unexcused)} of {len(state.benign)} "
                  f"({len(failures) - len(unexcused)} excused)", "0", not unexcused))
    for pid in sorted(procs):
        role = state.roles.get(pid, "") or "other"
        if 1 not in procs[pid] or (n - 1) not in procs[pid]:
            continue
        (rss2, fd2), (rssl, fdl) = procs[pid][1], procs[pid][n - 1]
        goals.append((f"RSS {role} {pid}: last / 2nd interval", f"{rssl / 2**20:.0f} / {rss2 / 2**20:.0f} MB = "
                      f"{rssl / rss2:.2f}x", f"<= {RSS_FACTOR}x", rssl <= RSS_FACTOR * rss2))
        goals.append((f"fds {role} {pid}: last vs 2nd interval", f"{fdl:.0f} vs {fd2:.0f}", f"<= 2nd + {FD_SLACK}",
                      fdl <= fd2 + FD_SLACK))
    goals.append(("killed worker replaced", "no kill" if state.killed_pid is None else
                  (f"pid {state.killed_pid} -> {state.replaced_by} in {state.replaced_after:.1f} s"
                   if state.replaced_by else f"pid {state.killed_pid}: not replaced"), "yes",
                  state.replaced_by is not None))
    for what, items in lost.items():
        acked = {"publishes": len(state.publishes), "vaults": len(state.vaults),
                 "log markers": len(state.markers)}[what]
        goals.append((f"acknowledged {what} lost after restart", f"{len(items)} of {acked}", "0",
                      not items and acked > 0))
    goals.append(("gateway stops on SIGTERM", f"exit {code} in {stop_seconds:.1f} s" +
                  (f", left running: {leftovers}" if leftovers else ""), "exit 0, nothing left",
                  code == 0 and not leftovers))
    goals.append(("restarted gateway stops on SIGTERM", f"exit {code2}", "exit 0", code2 == 0))
    print()
    print(f"soak summary: {args.minutes:g} min, benign requests by kind {dict(sorted(total.items()))}, "
          f"hostile {len(state.hostile)} ({dict(sorted(Counter(r.kind for r in state.hostile).items()))})")
    ok_lat = [(r.end - r.start) * 1000 for r in state.benign if r.ok and r.kind in ("hello", "fetch", "vault")]
    print(f"benign p50 {pct(ok_lat, 0.5):.1f} ms, p99 {pct(ok_lat, 0.99):.1f} ms (hello, fetch, vault reads)")
    width = max(len(g[0]) for g in goals)
    fwidth = max(len(g[1]) for g in goals)
    print(f"{'goal':<{width}}  {'figure':<{fwidth}}  {'target':<16}  verdict")
    for what, figure, goal, met in goals:
        print(f"{what:<{width}}  {figure:<{fwidth}}  {goal:<16}  {'MET' if met else 'NOT MET'}")
    for r in unexcused[:20]:
        print(f"  unexcused failure: {r.kind} t={r.start - state.t0:.1f}-{r.end - state.t0:.1f} s {r.status}: {r.detail}")
    for what, items in lost.items():
        for item in items[:10]:
            print(f"  lost {what}: {item}")
    ok = all(g[3] for g in goals)
    print(f"\nsoak: {'all goals MET' if ok else 'goal(s) NOT MET'}", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "minutes": args.minutes, "intervals": rows, "goals": [dict(zip(("what", "figure", "goal", "met"), g))
                                                                   for g in goals],
            "unexcused": [r.__dict__ for r in unexcused], "lost": lost,
            "samples": [[round(t - state.t0, 1), {pid: v for pid, v in sample.items()}] for t, sample in state.samples],
            "roles": state.roles}, indent=1, default=str))
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the load phase (default 10; 1 = smoke run)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--keep", action="store_true", help="keep the temp directory (data, gateway.log) and print it")
    args = p.parse_args()
    if args.minutes <= 0:
        p.error("--minutes must be positive")

    def on_term(signum, frame):  # SIGTERM as Ctrl-C: the finally clauses stop what was started
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    work = Path(tempfile.mkdtemp(prefix="wapo-soak-"))
    try:
        return asyncio.run(soak(args, work))
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        for gw in STARTED:
            gw.kill()
        if args.keep:
            print(f"soak: kept {work}", flush=True)
        else:
            import shutil
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
