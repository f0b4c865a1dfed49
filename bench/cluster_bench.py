#!/usr/bin/env python3
"""A node on the shared PostgreSQL store vs a node on the embedded SQLite store, same run.

    .venv/bin/python bench/cluster_bench.py [--seconds 5] [--rounds 2] [--concurrency 16] [--pg URL]

Two `wapo serve` processes on 127.0.0.1, started in this run: one with `--data-dir` (SQLite), one
with `--database` on a fresh schema of the PostgreSQL at --pg (dropped afterwards) and a cluster
key. Two agents: hello (no store access but its run logs) and a vault reader (`?key=`: one
vault read per request, plus its logs). Loads alternate between the two nodes in slices of
--slice seconds, so both see the same machine (whatever else runs on it lands on both); the
figure is the ratio PostgreSQL/SQLite of the summed throughput.
Also printed: the CPU each node spent per request, and the CPU of its PostgreSQL server processes
(both from /proc; less noisy than throughput on a shared machine).
Goals (issue 14): hello >= 0.9x, vault >= 0.8x; exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gateway_bench import HELLO_AGENT, free_port, load, wait_for_line  # noqa: E402

VAULT_AGENT = """async function main(request) {
  const req = JSON.parse(request);
  return JSON.stringify({status: 200, headers: {"content-type": "text/plain"}, body: "key " + req.secret.API_KEY});
}
"""
GOALS = {"hello": 0.9, "vault": 0.8}


def wapo(*argv: str) -> str:
    return subprocess.run([sys.executable, "-m", "wapo.cli.main", *argv], check=True, capture_output=True,
                          text=True).stdout


def make_vault(base: str, cid: str) -> str:
    body = json.dumps({"cid": cid, "data": {"API_KEY": "sk-bench"}}).encode()
    req = urllib.request.Request(f"{base}/vaults", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["key"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_pids(conn, port: int) -> set[int]:
    """The PostgreSQL server processes serving the node on ``port`` (its application_name)."""
    rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                        (f"wapo 127.0.0.1:{port}",)).fetchall()
    return {r[0] for r in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--slice", type=float, default=1.0, help="seconds of load on one node before the other's turn")
    parser.add_argument("--pg", default=os.environ.get("WAPO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()

    import psycopg
    schema = "wapo_bench_" + os.urandom(4).hex()
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{args.pg}{'&' if '?' in args.pg else '?'}options=-csearch_path%3D{schema}"
    procs: list[subprocess.Popen] = []
    watch = psycopg.connect(args.pg, autocommit=True)  # finds the PostgreSQL node's server processes
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="wapo-cluster-bench-") as tmp:
            tmp_path = Path(tmp)
            key = tmp_path / "cluster.key"
            wapo("cluster", "init", str(key))
            (tmp_path / "hello.js").write_text(HELLO_AGENT)
            (tmp_path / "vault.js").write_text(VAULT_AGENT)
            stores = {"sqlite": ["--data-dir", str(tmp_path / "sqlite")],
                      "postgres": ["--data-dir", str(tmp_path / "pg"), "--database", url, "--cluster-key", str(key)]}
            cids: dict[str, dict[str, str]] = {}
            for name, flags in stores.items():
                cids[name] = {agent: wapo("publish", str(tmp_path / f"{agent}.js"), *flags).split()[-1]
                              for agent in ("hello", "vault")}
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            bases: dict[str, str] = {}
            nodes: dict[str, tuple[int, int]] = {}
            for name, flags in stores.items():
                port = free_port()
                proc = subprocess.Popen([sys.executable, "-m", "wapo.cli.main", "serve", "--port", str(port), "--quiet", *flags],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
                procs.append(proc)
                wait_for_line(proc, "sample agent:", 300)
                # what the node prints later (warnings) must not fill the pipe and block it
                threading.Thread(target=proc.stdout.read, daemon=True).start()
                bases[name] = f"http://127.0.0.1:{port}"
                nodes[name] = (proc.pid, port)
            urls = {}
            for name, base in bases.items():
                vault_key = make_vault(base, cids[name]["vault"])
                urls[(name, "hello")] = f"{base}/ipfs/{cids[name]['hello']}"
                urls[(name, "vault")] = f"{base}/ipfs/{cids[name]['vault']}?key={vault_key}"
            # each row's seconds are cut into slices that alternate between the nodes, so what else
            # runs on the machine meanwhile lands on both about equally
            slices = max(1, round(args.seconds / args.slice))
            for round_ in range(args.rounds):
                for agent in ("hello", "vault"):
                    for i in range(slices):
                        order = ("sqlite", "postgres") if (round_ + i) % 2 == 0 else ("postgres", "sqlite")
                        for name in order:
                            node_pid, port = nodes[name]
                            backends = backend_pids(watch, port) if name == "postgres" else set()
                            before = {pid: cpu_seconds(pid) for pid in backends | {node_pid}}
                            r = asyncio.run(load(urls[(name, agent)], args.seconds / slices, args.concurrency))
                            backends |= backend_pids(watch, port) if name == "postgres" else set()
                            r["node_cpu"] = cpu_seconds(node_pid) - before[node_pid]
                            r["db_cpu"] = sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in backends)
                            results.setdefault((name, agent), []).append(r)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        watch.close()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    print(f"cluster benchmark: {args.rounds} round(s) x {args.seconds:g} s per row in slices of {args.slice:g} s "
          f"alternating between the nodes, concurrency {args.concurrency}, "
          f"{os.cpu_count()} CPUs, load generator in-process, PostgreSQL at 127.0.0.1")
    print(f"{'node store':<12}{'agent':<8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
          f"{'node CPU us/req':>17}{'db CPU us/req':>15}")
    rps: dict[tuple[str, str], float] = {}
    for (name, agent), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        total = sum(r["requests"] for r in runs)
        rps[(name, agent)] = total / sum(r["requests"] / r["rps"] for r in runs if r["rps"])
        p50 = sorted(r["p50_ms"] for r in runs)[len(runs) // 2]
        p99 = max(r["p99_ms"] for r in runs)
        print(f"{name:<12}{agent:<8}{rps[(name, agent)]:>10.0f}{p50:>10.2f}{p99:>10.2f}"
              f"{sum(r['errors'] for r in runs):>8}{sum(r['node_cpu'] for r in runs) / total * 1e6:>17.0f}"
              f"{sum(r['db_cpu'] for r in runs) / total * 1e6:>15.0f}")
    missed = False
    for agent, goal in GOALS.items():
        ratio = rps[("postgres", agent)] / rps[("sqlite", agent)] if rps[("sqlite", agent)] else float("nan")
        met = ratio >= goal
        missed |= not met
        print(f"ratio postgres/sqlite, {agent}: {ratio:.3f}x (goal >= {goal}x: {'MET' if met else 'NOT MET'})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
