"""Several `wapo serve` nodes sharing one PostgreSQL database and one cluster key (issue 14).

Real processes on 127.0.0.1 ports, the real PostgreSQL of the machine (a schema per test), and,
to take the database away from a node, a real TCP relay between that node and PostgreSQL."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import PG_URL
from wapo.store.pg import PG_SCHEMA_VERSION
from wapo.store.pgcache import CHECK_EVERY
from test_gateway_process import Server, free_port, http

SECRET_AGENT = """\
async function main(request) {
  const req = JSON.parse(request);
  console.log("ran " + req.path);
  return JSON.stringify({status: 200, headers: {"content-type": "application/json"},
                         body: JSON.stringify({secret: req.secret,
                                               derived: Wapo.hexEncode(Wapo.deriveSecret("salt"))})});
}
"""


def wapo(*argv: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wapo.cli.main", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def pg_rows(url: str, sql: str) -> list[tuple]:
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def cluster_key(tmp_path) -> Path:
    path = tmp_path / "cluster.key"
    done = wapo("cluster", "init", str(path))
    assert done.returncode == 0, done.stderr
    assert "every node" in done.stdout and "kubectl create secret" in done.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(bytes.fromhex(path.read_text().strip())) == 32
    again = wapo("cluster", "init", str(path))  # never overwrite the key of a cluster
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    return path


@pytest.fixture
def nodes():
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start_nodes(count: int, tmp_path: Path, database: str, key: Path) -> list[Server]:
    """``count`` nodes started at the same moment (each its own data directory and port)."""
    servers: list[Server | BaseException] = [None] * count  # type: ignore[list-item]

    def start(i: int) -> None:
        try:
            servers[i] = Server(tmp_path / f"node{i + 1}", "--database", database, "--cluster-key", str(key),
                                "--node-name", f"node{i + 1}")
        except BaseException as exc:  # noqa: BLE001 (raised below)
            servers[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [s for s in servers if isinstance(s, BaseException)]
    if errors:
        for s in servers:
            if isinstance(s, Server):
                s.stop()
        raise errors[0]
    return servers  # type: ignore[return-value]


def test_three_nodes_share_code_vaults_logs_and_keys(tmp_path, pg_url, cluster_key, nodes):
    n1, n2, n3 = start_nodes(3, tmp_path, pg_url, cluster_key)
    nodes += [n1, n2, n3]
    # three nodes started at once: the schema was migrated once, by one of them
    migrations = pg_rows(pg_url, "SELECT version, node FROM wapo_migrations ORDER BY version")
    assert [v for v, _ in migrations] == list(range(1, PG_SCHEMA_VERSION + 1))
    assert len({n for _, n in migrations}) == 1
    assert migrations[0][1] in ("node1", "node2", "node3")

    # publish into the cluster's database (as through node 1: same database and key)
    agent = tmp_path / "secret.js"
    agent.write_text(SECRET_AGENT)
    published = wapo("publish", str(agent), "--database", pg_url, "--cluster-key", str(cluster_key),
                     "--data-dir", str(tmp_path / "node1"))
    assert published.returncode == 0, published.stderr
    cid = published.stdout.strip().splitlines()[-1]

    # it runs on nodes 2 and 3, and every answer names its node
    derived = set()
    for node, name in ((n2, "node2"), (n3, "node3"), (n1, "node1")):
        status, headers, body = http("GET", f"{node.base}/ipfs/{cid}/x")
        assert status == 200, body
        assert headers["x-wapo-node"] == name
        derived.add(json.loads(body)["derived"])
    assert len(derived) == 1  # deriveSecret is the cluster's, not the node's
    called = wapo("call", cid, "--body-only", "--database", pg_url, "--cluster-key", str(cluster_key),
                  "--data-dir", str(tmp_path / "elsewhere"))
    assert called.returncode == 0, called.stderr
    assert {json.loads(called.stdout)["derived"]} == derived  # and `wapo call` on the cluster derives alike

    # a vault made through node 2 is used on node 3
    status, headers, body = http("POST", f"{n2.base}/vaults", json.dumps({"cid": cid, "data": {"API": "k-42"}}).encode())
    assert status == 200, body
    assert headers["x-wapo-node"] == "node2"
    vault = json.loads(body)
    status, _, body = http("GET", f"{n3.base}/ipfs/{cid}/v?key={vault['key']}")
    assert status == 200 and json.loads(body)["secret"] == {"API": "k-42"}
    status, _, body = http("GET", f"{n1.base}/vaults/{vault['key']}/{vault['token']}")
    assert status == 200 and json.loads(body)["data"] == {"API": "k-42"}

    # the logs of runs on all three, read from node 1, with the node of each run
    status, _, body = http("GET", f"{n1.base}/logs/all/ipfs/{cid}?format=json")
    assert status == 200
    records = json.loads(body)["logs"]
    ran = {(r["node"], r["message"]) for r in records if r["message"].startswith("ran ")}
    assert {("node1", "ran /x"), ("node2", "ran /x"), ("node3", "ran /x"), ("node3", "ran /v")} <= ran
    # the same through the command line
    cli_logs = wapo("logs", cid, "--format", "json", "--database", pg_url, "--cluster-key", str(cluster_key))
    assert cli_logs.returncode == 0, cli_logs.stderr
    assert {r["node"] for r in json.loads(cli_logs.stdout)} == {"node1", "node2", "node3"}

    # and the secrets command line reads the vault made over HTTP
    got = wapo("secrets", "get", vault["key"], vault["token"], "--database", pg_url, "--cluster-key", str(cluster_key))
    assert got.returncode == 0 and json.loads(got.stdout)["data"] == {"API": "k-42"}

    for node in (n1, n2, n3):
        status, headers, body = http("GET", f"{node.base}/readyz")
        assert status == 200 and json.loads(body)["ok"] is True, body
        status, headers, _ = http("GET", f"{node.base}/ipfs/QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        assert status == 404 and headers["x-wapo-node"]  # errors carry it too


def test_wrong_or_missing_cluster_key_refuses_to_start(tmp_path, pg_url, cluster_key):
    agent = tmp_path / "a.js"
    agent.write_text(SECRET_AGENT)
    ok = wapo("publish", str(agent), "--database", pg_url, "--cluster-key", str(cluster_key))
    assert ok.returncode == 0, ok.stderr
    other = tmp_path / "other.key"
    assert wapo("cluster", "init", str(other)).returncode == 0
    port = free_port()
    refused = wapo("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"), "--database", pg_url,
                   "--cluster-key", str(other), timeout=180)
    assert refused.returncode == 1
    assert "is not the key the database" in refused.stderr and "same key file" in refused.stderr
    with socket.socket() as s:  # and it never listened
        assert s.connect_ex(("127.0.0.1", port)) != 0
    # a database URL without a key, from the environment this time
    missing = wapo("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"),
                   env={"WAPO_DATABASE_URL": pg_url, "WAPO_CLUSTER_KEY_FILE": ""}, timeout=180)
    assert missing.returncode == 1 and "wapo cluster init" in missing.stderr
    # the other commands say the same
    missing = wapo("logs", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o", "--database", pg_url,
                   env={"WAPO_CLUSTER_KEY_FILE": ""})
    assert missing.returncode != 0 and "cluster key" in missing.stderr


def test_config_file_names_the_database_and_key(tmp_path, pg_url, cluster_key, nodes):
    config = tmp_path / "wapo.toml"
    (tmp_path / "app.js").write_text(HEADERS_APP)
    config.write_text(f'node_name = "from-config"\n[database]\nurl = "{pg_url}"\n[cluster]\nkey_file = "cluster.key"\n'
                      '[app.cfg]\nfile = "app.js"\n')
    server = Server(tmp_path / "d", "--config", str(config))
    nodes.append(server)
    status, headers, _ = http("GET", server.sample_url)
    assert status == 200 and headers["x-wapo-node"] == "from-config"
    assert pg_rows(pg_url, "SELECT COUNT(*) FROM code") == [(1,)]  # the sample agent, in the database
    assert not (tmp_path / "d" / "wapo.sqlite3").exists()  # and nothing in SQLite
    # the config file's app went into the database, and this node runs it
    assert pg_rows(pg_url, "SELECT id FROM apps") == [("cfg",)]
    assert app_owner([server], "cfg", time.monotonic() + 60)[0] == "from-config"


# ------------------------------------------------------------ the database goes away

class Relay:
    """A TCP relay 127.0.0.1:<port> -> PostgreSQL that the test can cut and restore."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target, self.port = target, port or free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Stop listening and break every connection (as a database that went away)."""
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_database_down_cached_agents_answer_logs_wait_and_come_back(tmp_path, pg_url, cluster_key, nodes):
    from urllib.parse import urlsplit
    real = urlsplit(PG_URL)
    relay = Relay((real.hostname or "127.0.0.1", real.port or 5432))
    relay.start()
    relayed = pg_url.replace(f"{real.hostname}:{real.port or 5432}", f"127.0.0.1:{relay.port}")
    assert relayed != pg_url
    try:
        server = Server(tmp_path / "d", "--database", relayed, "--cluster-key", str(cluster_key), "--node-name", "n")
        nodes.append(server)
        hello_url = server.sample_url
        assert http("GET", hello_url)[0] == 200  # its code is now cached in the node
        agent = tmp_path / "a.js"
        agent.write_text(SECRET_AGENT)
        cid = wapo("publish", str(agent), "--database", pg_url, "--cluster-key", str(cluster_key)).stdout.split()[-1]
        status, _, body = http("POST", f"{server.base}/vaults", json.dumps({"cid": cid, "data": {"a": 1}}).encode())
        assert status == 200
        vault_key = json.loads(body)["key"]
        assert http("GET", f"{server.base}/ipfs/{cid}?key={vault_key}")[0] == 200

        starts = "SELECT COUNT(*) FROM logs WHERE level = 'START' AND node = 'n'"
        before = pg_rows(pg_url, starts)[0][0]
        assert before == 2  # the sample run and the vault run

        relay.cut()
        # the vault cache trusts its rows until its listener has missed a check (store/pgcache.py:
        # at most CHECK_EVERY + 0.5 s after the last one); a request in that window may still be
        # answered from it (a loaded CI machine saw a 200), so the database is gone for good after it
        time.sleep(CHECK_EVERY + 0.6)
        # requests that need the database answer 503 with a message, quickly (never a hang)
        t0 = time.monotonic()
        status, headers, body = http("GET", f"{server.base}/ipfs/{cid}?key={vault_key}", timeout=30)
        assert status == 503 and "database" in json.loads(body)["error"] and headers["x-wapo-node"] == "n"
        assert time.monotonic() - t0 < 15
        status, _, body = http("GET", f"{server.base}/readyz", timeout=30)
        assert status == 503 and json.loads(body)["ok"] is False
        assert http("GET", f"{server.base}/healthz")[0] == 200  # the process itself is fine
        # an agent whose code is cached and that needs no vault keeps answering, promptly
        answered = []
        for _ in range(5):
            t0 = time.monotonic()
            status, headers, _ = http("GET", hello_url, timeout=30)
            answered.append((status, time.monotonic() - t0))
        assert all(status == 200 for status, _ in answered), answered
        assert sum(t for _, t in answered[1:]) < 4, answered  # after the first, no wait on the database
        assert pg_rows(pg_url, starts)[0][0] == before  # their logs are held in the node

        relay.start()  # the database is back
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, _, _ = http("GET", f"{server.base}/readyz", timeout=30)
            if status == 200 and pg_rows(pg_url, starts)[0][0] >= before + 5:
                break
            time.sleep(0.5)
        assert status == 200
        assert pg_rows(pg_url, starts)[0][0] == before + 5  # the five runs of the outage, logged once
        assert http("GET", f"{server.base}/ipfs/{cid}?key={vault_key}", timeout=30)[0] == 200
    finally:
        relay.cut()


# ------------------------------------------------------------ long-running apps: one owner each

HEADERS_APP = """
WapoServer.serveQueries(async ({ path, payload }) =>
  JSON.stringify({ query: path, payload: new TextDecoder().decode(payload) }));
WapoServer.serve(async (req) => {
  const url = new URL(req.url);
  if (url.pathname === '/slow') await new Promise((r) => setTimeout(r, 5000));
  if (url.pathname === '/ws') {
    const { socket, response } = WapoServer.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send('echo:' + e.data);
    return response;
  }
  return new Response(
    JSON.stringify({path: url.pathname, body: await req.text(), headers: [...req.headers.keys()]}),
    {headers: {'content-type': 'application/json'}});
});
"""


def websocket_echo(url: str, text: str) -> str:
    import asyncio

    import aiohttp

    async def exchange() -> str:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url) as ws:
                await ws.send_str(text)
                message = await asyncio.wait_for(ws.receive(), 30)
                return message.data

    return asyncio.run(exchange())


def app_owner(nodes: list[Server], app_id: str, deadline: float) -> tuple[str, dict]:
    """Poll through every node until the app answers on all of them; (owner name, answers)."""
    answers: dict = {}
    while time.monotonic() < deadline:
        answers = {n.base: http("GET", f"{n.base}/app/{app_id}/hello", timeout=30) for n in nodes}
        if all(status == 200 for status, _, _ in answers.values()):
            owners = {headers.get("x-wapo-app-node") for _, headers, _ in answers.values()}
            assert len(owners) == 1, answers
            return owners.pop(), answers
        time.sleep(0.2)
    raise AssertionError(f"app {app_id} did not answer through every node: {answers}")


def test_an_app_runs_on_one_node_answers_through_all_and_survives_its_owner(tmp_path, pg_url, cluster_key, nodes):
    from wapo.gateway.apps.cluster import TAKEOVER_BOUND
    started = start_nodes(3, tmp_path, pg_url, cluster_key)
    nodes += started
    by_name = {f"node{i + 1}": n for i, n in enumerate(started)}
    source = tmp_path / "headers.js"
    source.write_text(HEADERS_APP)
    deployed = wapo("deploy", str(source), "--id", "hdr", "--database", pg_url, "--cluster-key", str(cluster_key))
    assert deployed.returncode == 0, deployed.stderr

    owner, answers = app_owner(started, "hdr", time.monotonic() + 60)
    assert owner in by_name
    for base, (status, headers, body) in answers.items():
        answer = json.loads(body)
        assert answer["path"] == "/hello"
        assert "x-wapo-cluster-token" not in answer["headers"]  # the app never sees the cluster's token
        assert headers["x-wapo-node"] == {n.base: name for name, n in by_name.items()}[base]
    # it runs on exactly one node: only the owner lists it, and one lease is held
    running = [name for name, n in by_name.items() if "hdr" in {a["id"] for a in json.loads(http("GET", f"{n.base}/apps")[2])["apps"]}]
    assert running == [owner]
    assert pg_rows(pg_url, "SELECT app_id, node FROM app_leases") == [("hdr", owner)]
    assert len(pg_rows(pg_url, "SELECT instance FROM cluster_nodes")) == 3
    # a body streamed in through another node
    other = next(n for name, n in by_name.items() if name != owner)
    status, headers, body = http("POST", f"{other.base}/app/hdr/post", b"x" * 300_000)
    assert status == 200 and json.loads(body)["body"] == "x" * 300_000 and headers["x-wapo-app-node"] == owner
    # a query and a WebSocket, through a node that does not run the app
    status, headers, body = http("POST", f"{other.base}/app/hdr/query/q1", b"payload")
    assert status == 200 and json.loads(body) == {"query": "q1", "payload": "payload"}, body
    assert websocket_echo(f"{other.base.replace('http', 'ws')}/app/hdr/ws", "hi") == "echo:hi"
    # the internal route wants the cluster key
    status, _, body = http("GET", f"{by_name[owner].base}/_cluster/app/hdr/hello")
    assert status == 403 and "cluster key" in json.loads(body)["error"]

    # apps deployed while the three nodes are up spread over them (each node takes its share)
    for app_id in ("hdr2", "hdr3"):
        assert wapo("deploy", str(source), "--id", app_id, "--database", pg_url,
                    "--cluster-key", str(cluster_key)).returncode == 0
    owners = {app_owner(started, app_id, time.monotonic() + 60)[0] for app_id in ("hdr", "hdr2", "hdr3")}
    assert owners == set(by_name), pg_rows(pg_url, "SELECT app_id, node FROM app_leases")
    status = wapo("cluster", "status", "--format", "json", "--database", pg_url, "--cluster-key", str(cluster_key))
    assert status.returncode == 0, status.stderr
    status = json.loads(status.stdout)
    assert {n["node"] for n in status["nodes"]} == set(by_name) and status["apps"]["hdr"] == owner
    assert set(status["apps"].values()) == set(by_name) and status["schema"] == PG_SCHEMA_VERSION

    # SIGKILL the owner: a request in flight to it fails with 502/503, later ones fail fast, then
    # succeed after the takeover
    survivors = [n for name, n in by_name.items() if name != owner]
    in_flight: list = []
    slow = threading.Thread(target=lambda: in_flight.append(http("GET", f"{survivors[0].base}/app/hdr/slow")))
    slow.start()
    time.sleep(1.0)
    by_name[owner].kill9()
    killed = time.monotonic()
    slow.join(60)
    assert in_flight and in_flight[0][0] in (502, 503), in_flight
    status, _, _ = http("GET", f"{survivors[0].base}/app/hdr/hello", timeout=30)
    assert status in (200, 502, 503)
    new_owner, _ = app_owner(survivors, "hdr", killed + TAKEOVER_BOUND + 20)
    took = time.monotonic() - killed
    assert new_owner in by_name and new_owner != owner
    assert took <= 10, f"takeover took {took:.1f} s"
    print(f"takeover after SIGKILL: {took:.2f} s (bound {TAKEOVER_BOUND:g} s + the app's start)")


def test_log_backlog_is_bounded_and_written_when_the_database_returns(tmp_path, pg_url):
    """The gateway's log writer on a store whose database goes away: writes return at once, at most
    max_buffered lines are kept (the oldest runs dropped and counted), the rest land on return."""
    import asyncio
    from urllib.parse import urlsplit

    from wapo.gateway.logwriter import LogWriter
    from wapo.store import ClusterKey, open_store

    real = urlsplit(PG_URL)
    relay = Relay((real.hostname or "127.0.0.1", real.port or 5432))
    relay.start()
    relayed = pg_url.replace(f"{real.hostname}:{real.port or 5432}", f"127.0.0.1:{relay.port}")
    key = ClusterKey(os.urandom(32))
    store = open_store(relayed, cluster_key=key, node="w")
    cid = store.put_code(b"logged agent")

    async def scenario() -> LogWriter:
        writer = LogWriter(store, max_buffered=30, retry_every=0.2)
        await writer.write(cid, "before", [("START", "Request: GET /"), ("END", "done")])
        relay.cut()
        t0 = time.monotonic()
        await writer.write(cid, "first-down", [("info", "x")])  # finds the database gone (bounded wait)
        assert time.monotonic() - t0 < 15
        t0 = time.monotonic()
        for i in range(20):  # 20 runs of 3 lines: only the newest 30 lines can be kept
            await writer.write(cid, f"down-{i}", [("START", "s"), ("info", f"line {i}"), ("END", "e")])
        assert time.monotonic() - t0 < 1.0  # no wait on the database while it is away
        assert writer.buffered_lines <= 30 and writer.dropped_lines >= 30
        relay.start()
        deadline = time.monotonic() + 30
        while writer.buffered_lines and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert writer.buffered_lines == 0
        await writer.write(cid, "after", [("info", "back")])
        await writer.close()
        return writer

    try:
        writer = asyncio.run(scenario())
    finally:
        relay.cut()
        store.close()
    with open_store(pg_url, cluster_key=key) as s:
        ids = {r.request_id for r in s.query_logs(cid, limit=100)}
    assert {"before", "after", "down-19", "down-10"} <= ids  # the newest runs of the outage were kept
    assert "down-0" not in ids  # the oldest were dropped, and counted
    assert writer.dropped_lines + 30 >= 20 * 3


def test_an_owner_cut_off_from_the_database_stops_its_apps_and_another_node_takes_them(
        tmp_path, pg_url, cluster_key, nodes):
    from urllib.parse import urlsplit

    from wapo.gateway.apps.cluster import FENCE_AFTER, TAKEOVER_BOUND
    real = urlsplit(PG_URL)
    relay = Relay((real.hostname or "127.0.0.1", real.port or 5432))
    relay.start()
    relayed = pg_url.replace(f"{real.hostname}:{real.port or 5432}", f"127.0.0.1:{relay.port}")
    try:
        source = tmp_path / "headers.js"
        source.write_text(HEADERS_APP)
        assert wapo("deploy", str(source), "--id", "fenced", "--database", pg_url,
                    "--cluster-key", str(cluster_key)).returncode == 0
        cut_off = Server(tmp_path / "a", "--database", relayed, "--cluster-key", str(cluster_key), "--node-name", "a")
        nodes.append(cut_off)
        assert app_owner([cut_off], "fenced", time.monotonic() + 60)[0] == "a"  # the first node holds it
        other = Server(tmp_path / "b", "--database", pg_url, "--cluster-key", str(cluster_key), "--node-name", "b")
        nodes.append(other)
        assert app_owner([other], "fenced", time.monotonic() + 30)[0] == "a"  # b forwards to a

        relay.cut()  # a is still alive but cannot reach the database: it must give the app up
        cut = time.monotonic()
        owner = "a"
        while owner != "b" and time.monotonic() < cut + TAKEOVER_BOUND + 20:
            time.sleep(0.2)
            status, headers, _ = http("GET", f"{other.base}/app/fenced/hello", timeout=30)
            owner = headers.get("x-wapo-app-node") if status == 200 else None
        assert owner == "b"
        took = time.monotonic() - cut
        assert took <= 10, took
        listed = json.loads(http("GET", f"{cut_off.base}/apps")[2])["apps"]
        assert [a["id"] for a in listed] == []  # stopped on a (fenced after FENCE_AFTER s)
        assert FENCE_AFTER < TAKEOVER_BOUND - 1
    finally:
        relay.cut()


# ------------------------------------------------------------ cron on a cluster (issue 16 meets 14)

CRON_TICKER = """\
export default {
  async fetch(request) { return new Response("fetched"); },
  async scheduled(event, env, ctx) { console.log("tick " + event.scheduledTime); },
};
"""


def test_each_cron_tick_runs_on_one_node_of_the_cluster(tmp_path, pg_url, cluster_key, nodes):
    from collections import Counter
    agent = tmp_path / "ticker.js"
    agent.write_text(CRON_TICKER)
    cid = wapo("publish", str(agent), "--database", pg_url, "--cluster-key", str(cluster_key)).stdout.split()[-1]
    config = tmp_path / "wapo.toml"
    config.write_text(f'admin_token = "t"\n[cron.ticker]\ncid = "{cid}"\nschedule = "* * * * * *"\n')
    for name in ("c1", "c2"):  # each node its own data directory: the ledger must be the database's
        nodes.append(Server(tmp_path / name, "--config", str(config), "--database", pg_url, "--cluster-key",
                            str(cluster_key), "--node-name", name))
    deadline = time.monotonic() + 60
    ticks: list = []
    while time.monotonic() < deadline and len(ticks) < 6:
        time.sleep(0.5)
        ticks = pg_rows(pg_url, "SELECT message, node FROM logs WHERE message LIKE 'tick %'")
    assert len(ticks) >= 6, ticks
    per_tick = Counter(message for message, _ in ticks)
    assert max(per_tick.values()) == 1, per_tick  # never twice, though both nodes schedule every tick
    claimed = pg_rows(pg_url, "SELECT tick, node FROM cron_runs WHERE job = 'ticker'")
    assert len(claimed) == len({tick for tick, _ in claimed}) >= 6
    # the dashboard of either node shows the cluster's ticks
    import urllib.request
    req = urllib.request.Request(f"{nodes[0].base}/admin/api/cron", headers={"Authorization": "Bearer t"})
    with urllib.request.urlopen(req, timeout=60) as r:
        shown = json.loads(r.read())["jobs"][0]["ticks"]
    assert len(shown) >= 6 and {t["node"] for t in shown} <= {"c1", "c2"}


def test_cron_trigger_with_a_database_runs_against_the_cluster(tmp_path, pg_url, cluster_key):
    """`wapo cron trigger --database URL` takes the code from, and writes the logs to, the cluster's
    database (it used to open the data directory's SQLite store whatever the flags said)."""
    agent = tmp_path / "ticker.js"
    agent.write_text(CRON_TICKER)
    cid = wapo("publish", str(agent), "--database", pg_url, "--cluster-key", str(cluster_key)).stdout.split()[-1]
    config = tmp_path / "wapo.toml"
    config.write_text(f'[cron.once]\ncid = "{cid}"\nschedule = "0 0 1 1 *"\n')
    done = wapo("cron", "trigger", "once", "--config", str(config), "--data-dir", str(tmp_path / "empty"),
                "--database", pg_url, "--cluster-key", str(cluster_key))
    assert done.returncode == 0, done.stderr
    request_id = done.stdout.strip().splitlines()[-1].split()[-1]
    rows = pg_rows(pg_url, f"SELECT message FROM logs WHERE request_id = '{request_id}' AND message LIKE 'tick %'")
    assert len(rows) == 1, rows
