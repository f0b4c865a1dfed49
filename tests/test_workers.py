"""`wapo serve --workers N`: one node key for all, a dead worker replaced, SIGTERM drains in-flight requests.

Real `wapo serve` processes on 127.0.0.1 (the Server of test_gateway_process) on fresh data
directories; worker pids are found through /proc.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from test_gateway_process import Server, http, listening_pids, servers  # noqa: F401  (the servers fixture)


def _load_key_at(data_dir: str, when: float, out) -> None:
    from wapo.host.keys import NodeKey
    while time.time() < when:  # start together, to the microsecond as far as the scheduler allows
        pass
    out.put(NodeKey.load_or_create(Path(data_dir)).public.hex())


def test_processes_creating_the_node_key_at_once_agree(tmp_path):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(20):
        data_dir = tmp_path / f"d{round_}"
        out = ctx.Queue()
        when = time.time() + 0.3
        procs = [ctx.Process(target=_load_key_at, args=(str(data_dir), when, out)) for _ in range(6)]
        for p in procs:
            p.start()
        keys = {out.get(timeout=20) for _ in procs}
        for p in procs:
            p.join(timeout=30)
        on_disk = (data_dir / "node_key").read_bytes()
        from wapo.host.keys import NodeKey
        assert keys == {NodeKey(on_disk).public.hex()}, f"round {round_}: {len(keys)} different node keys"
        assert [f.name for f in data_dir.iterdir()] == ["node_key"], "no temp file is left behind"


DERIVE = """\
async function main(request) {
  return JSON.stringify({status: 200, headers: {"content-type": "text/plain"},
                         body: Wapo.hexEncode(Wapo.deriveSecret("salt"))});
}
"""

STREAM = """\
export default {
  async fetch(request) {
    const enc = new TextEncoder();
    let i = 0;
    const body = new ReadableStream({
      async pull(c) {
        if (i++ < 8) { await new Promise(r => setTimeout(r, 400)); c.enqueue(enc.encode("chunk" + i + ";")); }
        else c.close();
      },
    });
    return new Response(body, {headers: {"content-type": "text/plain"}});
  },
};
"""
STREAMED = "".join(f"chunk{i};" for i in range(1, 9)).encode()


def publish(tmp_path: Path, data_dir: Path, name: str, code: str) -> str:
    source = tmp_path / name
    source.write_text(code)
    done = subprocess.run([sys.executable, "-m", "wapo.cli.main", "publish", str(source), "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def wait_for_workers(server: Server, n: int, exclude: set[int] = frozenset(), timeout: float = 60) -> set[int]:
    """The pids listening on the server's port once there are ``n`` of them (none of ``exclude``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holders = listening_pids(server.port, server.proc.pid)
        if len(holders) == n and not holders & exclude:
            return holders
        time.sleep(0.2)
    raise AssertionError(f"expected {n} listening processes, have {listening_pids(server.port, server.proc.pid)}"
                         f"\n{''.join(server.output)}")


def test_workers_share_one_node_key(tmp_path, servers):
    data_dir = tmp_path / "fresh"
    server = Server(data_dir, "--workers", "2")
    servers.append(server)
    assert (data_dir / "node_key").is_file(), "the node key exists before any request (made before the fork)"
    assert (data_dir / "vault.key").is_file()
    wait_for_workers(server, 2)
    cid = publish(tmp_path, data_dir, "derive.js", DERIVE)
    url = f"{server.base}/ipfs/{cid}"
    with ThreadPoolExecutor(8) as pool:  # fresh connections (urllib), some at once: both workers answer
        answers = list(pool.map(lambda _: http("GET", url), range(40)))
    assert all(status == 200 for status, _, _ in answers), answers[:3]
    values = {body for _, _, body in answers}
    assert len(values) == 1 and len(values.pop()) == 128, "every worker derives the same secret"


def test_workers_share_the_vault_rate_limit(tmp_path, servers):
    """--vault-rate-limit is per client address for the whole `wapo serve`, not per worker: 20 POSTs
    on fresh connections (spread over both workers) get at most the rate (5 a minute, plus what
    refills while the test runs) before the 429s."""
    data_dir = tmp_path / "fresh"
    server = Server(data_dir, "--workers", "2", "--vault-rate-limit", "5")
    servers.append(server)
    wait_for_workers(server, 2)
    body = json.dumps({"cid": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "data": {}}).encode()
    started = time.monotonic()
    answers = [http("POST", f"{server.base}/vaults", body) for _ in range(20)]
    refilled = int((time.monotonic() - started) / 12)  # 5 a minute: one more every 12 s
    limited = [headers for status, headers, _ in answers if status == 429]
    assert 20 - len(limited) <= 5 + refilled, [status for status, _, _ in answers]
    assert limited and all(int(h["retry-after"]) >= 1 for h in limited)
    assert (data_dir / "vault_rate.sqlite").stat().st_mode & 0o777 == 0o600


def test_a_dead_worker_is_replaced(tmp_path, servers):
    data_dir = tmp_path / "data"
    server = Server(data_dir, "--workers", "3")
    servers.append(server)
    holders = wait_for_workers(server, 3)
    victim = next(pid for pid in holders if pid != server.proc.pid)
    os.kill(victim, signal.SIGKILL)
    replaced = wait_for_workers(server, 3, exclude={victim}, timeout=30)
    assert server.proc.pid in replaced
    for _ in range(20):  # fresh connections spread over the three processes, the new one included
        status, _, body = http("GET", server.sample_url)
        assert status == 200 and json.loads(body)["hello"] == "you"
    output = "".join(server.output)
    assert f"pid {victim}) killed by signal {int(signal.SIGKILL)}" in output, output
    assert "started again" in output
    for _ in range(2):  # killed again at once: it comes back, after a back-off
        victim = next(pid for pid in replaced if pid != server.proc.pid)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for_workers(server, 3, exclude={victim}, timeout=40)


def _stream(url: str, first_chunk: threading.Event, out: list) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read(7)
            first_chunk.set()
            out.append((r.status, data + r.read()))
    except Exception as exc:  # noqa: BLE001  (the test reports it)
        first_chunk.set()
        out.append(exc)


def test_sigterm_lets_requests_in_flight_finish(tmp_path, servers):
    data_dir = tmp_path / "data"
    server = Server(data_dir, "--workers", "2", "--shutdown-grace", "15s")
    servers.append(server)
    wait_for_workers(server, 2)
    cid = publish(tmp_path, data_dir, "stream.js", STREAM)
    url = f"{server.base}/ipfs/{cid}"
    results: list[list] = [[] for _ in range(6)]
    firsts = [threading.Event() for _ in results]
    threads = [threading.Thread(target=_stream, args=(url, first, out)) for first, out in zip(firsts, results)]
    for t in threads:  # fresh connections: in flight on both processes
        t.start()
    for first in firsts:
        assert first.wait(30)
    signalled = time.monotonic()
    os.kill(server.proc.pid, signal.SIGTERM)  # the parent only: it tells its workers
    time.sleep(1.0)
    with socket.socket() as s:  # no new connection is accepted
        s.settimeout(5)
        refused = s.connect_ex(("127.0.0.1", server.port))
    for t in threads:
        t.join(60)
    assert all(out and out[0] == (200, STREAMED) for out in results), results
    code = server.proc.wait(timeout=30)
    elapsed = time.monotonic() - signalled
    assert code == 0, "".join(server.output)
    assert elapsed < 15, f"exited {elapsed:.1f} s after SIGTERM, the grace is 15 s"
    assert refused != 0, "a connection was accepted after SIGTERM"


def test_shutdown_grace_setting(tmp_path):
    import argparse

    from wapo.cli import serve_cmd
    from wapo.gateway.config import GatewayConfig, load_config
    config = tmp_path / "wapo.toml"
    config.write_text('shutdown_grace = "3s"\n')
    assert load_config(config).shutdown_grace == 3.0
    assert GatewayConfig().shutdown_grace == 10.0
    parser = argparse.ArgumentParser()
    serve_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--config", str(config), "--shutdown-grace", "500ms",
                              "--data-dir", str(tmp_path / "d")])
    assert serve_cmd.config_from(args).shutdown_grace == 0.5
