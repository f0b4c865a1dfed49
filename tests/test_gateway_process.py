"""`wapo serve` as a user runs it: a real process on a free port, with a tmp data directory."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 180  # the guest may be (re)built on a loaded machine before the server listens
SAMPLE_LINE = re.compile(r"sample agent: (http://\S+)")

SLEEPER = """\
async function main(request) {
  const req = JSON.parse(request);
  console.log("sleeper " + req.path);
  if (req.queries.sleep) await new Promise(r => setTimeout(r, 2000));
  return JSON.stringify({status: 200, headers: {"content-type": "application/json"},
                         body: JSON.stringify({path: req.path, secret: req.secret})});
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `wapo serve` subprocess; stdout is read by a thread so the pipe never fills."""

    def __init__(self, data_dir: Path | None, *extra: str, port: int | None = None, env: dict | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        argv = [sys.executable, "-m", "wapo.cli.main", "serve", *extra]
        if port is None:
            argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True, env={**os.environ, **(env or {})})
        threading.Thread(target=self._read, daemon=True).start()
        self.sample_url = self._wait_for_sample()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def _wait_for_sample(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            m = SAMPLE_LINE.search(line)
            if m:
                return m.group(1)
        self.stop()
        raise AssertionError(f"`wapo serve` printed no sample agent URL:\n{''.join(self.output)}")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the server and any worker processes it started
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
            except ProcessLookupError:
                pass


def http(method: str, url: str, body: bytes | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
    """One request on a fresh connection (urllib does not keep connections alive); header names lower case."""
    req = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def servers():
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()


def test_serve_prints_a_working_sample_url(data_dir, servers):
    server = Server(data_dir)
    servers.append(server)
    assert server.sample_url.startswith(f"{server.base}/ipfs/Qm")
    status, headers, body = http("GET", server.sample_url)
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert headers["x-request-id"]
    answer = json.loads(body)
    assert answer["hello"] == "you" and answer["method"] == "GET"
    status, _, body = http("GET", f"{server.base}/healthz")
    assert status == 200 and json.loads(body)["ok"] is True


def test_serve_with_the_data_dir_from_a_config_file(tmp_path, servers):
    port = free_port()
    config = tmp_path / "wapo.toml"
    config.write_text(f'host = "127.0.0.1"\nport = {port}\ndata_dir = "{tmp_path / "from-config"}"\n')
    # WAPO_DATA_DIR points at a scratch directory so the user's own default data dir is never touched
    server = Server(None, "--config", str(config), port=port, env={"WAPO_DATA_DIR": str(tmp_path / "default")})
    servers.append(server)
    assert str(tmp_path / "from-config") in "".join(server.output)
    status, _, body = http("GET", server.sample_url)
    assert status == 200, body


def test_apps_of_the_config_file_are_deployed_at_startup(tmp_path, data_dir, servers):
    port = free_port()
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "hi.js").write_text(
        "WapoServer.serve(async (req) => new Response('hi from ' + new URL(req.url).pathname));")
    config = tmp_path / "wapo.toml"
    config.write_text(f'host = "127.0.0.1"\nport = {port}\n[app.greeter]\nfile = "apps/hi.js"\n')
    server = Server(data_dir, "--config", str(config), port=port)
    servers.append(server)
    deadline = time.monotonic() + 30
    while True:
        status, _, body = http("GET", f"{server.base}/app/greeter/x")
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert (status, body) == (200, b"hi from /x")


def test_a_bad_app_entry_in_the_config_is_a_clear_error(tmp_path, data_dir):
    config = tmp_path / "wapo.toml"
    config.write_text('[app.greeter]\nfile = "missing.js"\n')
    p = subprocess.run([sys.executable, "-m", "wapo.cli.main", "serve", "--config", str(config), "--port",
                        str(free_port()), "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "config app 'greeter'" in p.stderr and "missing.js" in p.stderr, p.stderr


def listening_pids(port: int, root: int) -> set[int]:
    """PIDs in ``root``'s process tree holding a listening TCP socket on ``port`` (read from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A = LISTEN
                inodes.add(fields[9])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            tree.add(child)
            frontier.append(child)
    holders = set()
    for pid in tree:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    holders.add(pid)
        except OSError:
            continue
    return holders


def agent_requests_served(metrics: str) -> int:
    """The /ipfs/{cid} requests answered 200 by the process that answered this /metrics request."""
    total = 0
    for m in re.finditer(r'^wapo_requests_total\{(.*)\} (\S+)$', metrics, re.M):
        labels = m.group(1)
        if 'route="/ipfs/{cid}"' in labels and 'status="200"' in labels:
            total += int(float(m.group(2)))
    return total


def test_two_workers(data_dir, servers):
    server = Server(data_dir, "--workers", "2")
    servers.append(server)
    # two processes listen on the port (SO_REUSEPORT); /proc is cheap to read. The second worker may
    # still be starting when the first prints the sample URL: wait for it before sending requests.
    deadline = time.monotonic() + 60
    while len(holders := listening_pids(server.port, server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(holders) == 2, holders

    n = 16
    for _ in range(n):
        status, _, body = http("GET", server.sample_url)
        assert status == 200 and json.loads(body)["hello"] == "you"

    # both processes served requests: each wrote counters to the shared metrics folder (nothing else
    # was asked yet; 16 fresh connections all hashed to one worker: p = 2**-15) ...
    [shared] = (data_dir / "metrics").glob("serve-*")
    assert len(list(shared.glob("counter_*.db"))) == 2, "both processes served requests"
    # ... and /metrics sums the workers (issue 16): every answer counts the n requests
    for _ in range(12):
        status, _, body = http("GET", f"{server.base}/metrics")
        assert status == 200
        assert agent_requests_served(body.decode()) == n


APP = """
WapoServer.serve(async (req) => {
  const url = new URL(req.url);
  if (url.pathname === '/ws') {
    const { socket, response } = WapoServer.upgradeWebSocket(req);
    socket.onmessage = (e) => e.data === 'bye' ? socket.close(4000, 'bye') : socket.send('echo:' + e.data);
    return response;
  }
  if (url.pathname === '/stream') {
    const chunks = ['a', 'b', 'c'];
    return new Response(new ReadableStream({ pull(c) { chunks.length ? c.enqueue(new TextEncoder().encode(chunks.shift())) : c.close(); } }));
  }
  return new Response(`${req.method} ${url.pathname}${url.search} ${await req.text()}`, { headers: { 'x-app': 'yes' } });
});
WapoServer.serveQueries(async (q) => 'query ' + q.path + ' ' + new TextDecoder().decode(q.payload));
"""


def test_apps_answer_through_every_worker(tmp_path, data_dir, servers):
    """With --workers 2 the first process runs the app; the other forwards HTTP, streamed bodies,
    queries and WebSockets to it, so every connection gets the app's answer (none a 503)."""
    import asyncio

    import aiohttp

    from wapo.store.apps import AppRecords

    source = tmp_path / "echo.js"
    source.write_text(APP)
    AppRecords(data_dir).deploy(source, "echo")
    server = Server(data_dir, "--workers", "2")
    servers.append(server)
    deadline = time.monotonic() + 60
    while len(listening_pids(server.port, server.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    base = f"{server.base}/app/echo"

    async def scenario() -> None:
        for i in range(16):  # fresh connections: the kernel spreads them over both workers
            async with aiohttp.ClientSession() as s:
                async with s.post(f"{base}/x?i={i}", data=b"body") as r:
                    assert (r.status, await r.text(), r.headers.get("x-app")) == (200, f"POST /x?i={i} body", "yes")
                    assert r.headers.get("X-Request-Id")
                async with s.get(f"{base}/stream") as r:
                    assert (r.status, await r.text()) == (200, "abc")
                async with s.post(f"{base}/query/p", data=b"q") as r:
                    assert (r.status, await r.read()) == (200, b"query p q")
                if i % 4 == 0:
                    async with s.ws_connect(f"{base}/ws") as ws:
                        await ws.send_str(f"hi {i}")
                        assert (await ws.receive(timeout=10)).data == f"echo:hi {i}"
                        await ws.send_str("bye")
                        msg = await ws.receive(timeout=10)
                        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4000, msg
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{server.base}/app/nope/x") as r:
                assert r.status == 404

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_sigkill_mid_request_loses_nothing_committed(tmp_path, data_dir, servers):
    server = Server(data_dir)
    servers.append(server)
    agent = tmp_path / "sleeper.js"
    agent.write_text(SLEEPER)
    published = subprocess.run([sys.executable, "-m", "wapo.cli.main", "publish", str(agent),
                                "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120)
    assert published.returncode == 0, published.stderr
    cid = published.stdout.strip().splitlines()[-1]

    status, _, body = http("POST", f"{server.base}/vaults", json.dumps({"cid": cid, "data": {"pw": "x"}}).encode())
    assert status == 200, body
    vault = json.loads(body)

    done_ids = []
    for i in range(3):
        status, headers, body = http("GET", f"{server.base}/ipfs/{cid}/done{i}?key={vault['key']}")
        assert status == 200 and json.loads(body) == {"path": f"/done{i}", "secret": {"pw": "x"}}
        done_ids.append(headers["x-request-id"])

    slow_result: list = []

    def slow():
        try:
            slow_result.append(http("GET", f"{server.base}/ipfs/{cid}/slow?sleep=1", timeout=60))
        except Exception as exc:  # the server dies under it
            slow_result.append(exc)

    t = threading.Thread(target=slow)
    started = time.monotonic()
    t.start()
    time.sleep(0.8)  # the run is sleeping inside the sandbox now
    server.kill9()
    t.join(timeout=60)
    assert time.monotonic() - started < 30
    assert slow_result and isinstance(slow_result[0], Exception), slow_result

    restarted = Server(data_dir)
    servers.append(restarted)
    status, _, body = http("GET", f"{restarted.base}/ipfs/{cid}/after?key={vault['key']}")
    assert status == 200 and json.loads(body) == {"path": "/after", "secret": {"pw": "x"}}
    status, _, body = http("GET", f"{restarted.base}/vaults/{vault['key']}/{vault['token']}")
    assert status == 200 and json.loads(body) == {"data": {"pw": "x"}, "inherit": None, "succeed": True}
    for i, rid in enumerate(done_ids):
        status, _, body = http("GET", f"{restarted.base}/logs/all/ipfs/{cid}?requestId={rid}")
        assert status == 200
        text = body.decode()
        assert f"[{rid}] [REPORT] START Request: GET /ipfs/{cid}/done{i}" in text
        assert f"[{rid}] [INFO] sleeper /done{i}" in text
        assert f"[{rid}] [REPORT] END Request: Duration:" in text
    status, _, body = http("GET", restarted.sample_url)
    assert status == 200 and json.loads(body)["hello"] == "you"
