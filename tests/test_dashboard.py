"""The dashboard's admin routes on real `wapo serve` processes: off (404) without a token, 404
without the token when on, the agents / agent / logs tail / vaults / apps answers, the login
form's cookie, and the same answers from any worker of `--workers 2`."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_gateway_process import Server, free_port, http, servers  # noqa: F401  (the servers fixture)
from test_workers import publish, wait_for_workers

TOKEN = "correct horse battery staple"

AGENT = """\
async function main(request) {
  const req = JSON.parse(request);
  console.log("line " + (req.queries.n || ["-"])[0]);
  if (req.queries.fail) throw new Error("asked to fail");
  return JSON.stringify({status: 200, headers: {}, body: "ok"});
}
"""


def admin(method: str, url: str, token: str | None = TOKEN, body: bytes | None = None,
          headers: dict | None = None) -> tuple[int, dict, bytes]:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=all_headers)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
            return None
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_without_a_token_the_dashboard_does_not_exist(tmp_path, servers):
    server = Server(tmp_path / "data")
    servers.append(server)
    for path in ("/dashboard", "/admin/api/agents", "/admin/api/vaults", "/dashboard/static/app.js"):
        status, _, _ = admin("GET", server.base + path)
        assert status == 404, path
    assert "turn it on with --admin-token" in "".join(server.output)


def test_admin_routes_answer_only_with_the_token(tmp_path, servers):
    data_dir = tmp_path / "data"
    server = Server(data_dir, env={"WAPO_ADMIN_TOKEN": TOKEN})
    servers.append(server)
    assert f"dashboard: {server.base}/dashboard" in "".join(server.output)
    cid = publish(tmp_path, data_dir, "agent.js", AGENT)
    ids = [http("GET", f"{server.base}/ipfs/{cid}?n={i}")[1]["x-request-id"] for i in range(5)]
    status, _, _ = http("GET", f"{server.base}/ipfs/{cid}?fail=1")
    assert status == 500
    status, _, body = http("POST", f"{server.base}/vaults",
                           json.dumps({"cid": cid, "data": {"apiKey": "TOP-SECRET-VALUE"}}).encode())
    assert status == 200, body
    vault_key = json.loads(body)["key"]

    unknown = json.loads(admin("GET", f"{server.base}/no/such/route")[2])
    for token in (None, "wrong", TOKEN + "x"):
        for path in ("/admin/api/agents", f"/admin/api/agents/{cid}", "/admin/api/vaults", "/admin/api/apps"):
            status, _, body = admin("GET", server.base + path, token)
            assert status == 404, (token, path)
            assert json.loads(body)["error"] == unknown["error"], "the same answer as a route that does not exist"

    deadline = time.monotonic() + 30
    while True:  # the runs are recorded a moment after their answers
        status, _, body = admin("GET", f"{server.base}/admin/api/agents")
        assert status == 200
        agents = {a["cid"]: a for a in json.loads(body)["agents"]}
        if agents.get(cid, {}).get("requests") == 6 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    agent = agents[cid]
    assert agent["requests"] == 6 and agent["errors"] == 1 and abs(agent["errorRate"] - 1 / 6) < 1e-9
    assert 0 < agent["p50Ms"] <= agent["p99Ms"]

    status, _, body = admin("GET", f"{server.base}/admin/api/agents/{cid}")
    detail = json.loads(body)
    assert {r["requestId"] for r in detail["runs"]} >= set(ids)
    assert sorted(r["status"] for r in detail["runs"]) == [200] * 5 + [500]
    assert sum(point["requests"] for point in detail["series"]) == 6

    status, _, body = admin("GET", f"{server.base}/admin/api/vaults")
    assert status == 200 and b"TOP-SECRET-VALUE" not in body
    assert {"key": vault_key, "cid": cid} in [{"key": v["key"], "cid": v["cid"]} for v in json.loads(body)["vaults"]]

    # the live tail: the stored lines first, then a line written after the stream opened
    lines: list[dict] = []
    opened, seen = threading.Event(), threading.Event()

    def read_tail() -> None:
        req = urllib.request.Request(f"{server.base}/admin/api/agents/{cid}/logs",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            opened.set()
            for raw in r:
                if raw.startswith(b"data: "):
                    lines.append(json.loads(raw[6:]))
                    if lines[-1]["message"] == "line tail-me":
                        seen.set()
                        return
    reader = threading.Thread(target=read_tail, daemon=True)
    reader.start()
    assert opened.wait(30)
    http("GET", f"{server.base}/ipfs/{cid}?n=tail-me")
    assert seen.wait(30), lines[-3:]
    assert any(line["message"] == "line 0" for line in lines), "the stored lines come first"


def test_the_login_form_sets_an_http_only_cookie(tmp_path, servers):
    server = Server(tmp_path / "data", "--admin-token", TOKEN)
    servers.append(server)
    status, _, body = admin("GET", f"{server.base}/dashboard", token=None)
    assert status == 200 and b'name="token"' in body  # the login form
    status, _, body = admin("POST", f"{server.base}/dashboard/login", token=None, body=b"token=nope",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 401 and b"Wrong token" in body
    form = urllib.parse.urlencode({"token": TOKEN}).encode()
    status, headers, _ = admin("POST", f"{server.base}/dashboard/login", token=None, body=form,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["location"] == "/dashboard"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    session = cookie.split(";")[0]
    status, _, body = admin("GET", f"{server.base}/dashboard", token=None, headers={"Cookie": session})
    assert status == 200 and b"/dashboard/static/app.js" in body
    assert admin("GET", f"{server.base}/admin/api/agents", token=None, headers={"Cookie": session})[0] == 200
    assert admin("GET", f"{server.base}/admin/api/agents", token=None, headers={"Cookie": session + "0"})[0] == 404


def test_any_worker_answers_for_the_whole_service(tmp_path, servers):
    data_dir = tmp_path / "data"
    (tmp_path / "hi.js").write_text("WapoServer.serve(async (req) => new Response('hi'));")
    config = tmp_path / "wapo.toml"
    config.write_text(f'admin_token = "{TOKEN}"\n[app.greeter]\nfile = "hi.js"\n')
    server = Server(data_dir, "--config", str(config), "--workers", "2")
    servers.append(server)
    wait_for_workers(server, 2)
    cid = publish(tmp_path, data_dir, "agent.js", AGENT)
    n = 30
    with ThreadPoolExecutor(6) as pool:  # fresh connections, some at once: both workers answer
        statuses = list(pool.map(lambda _: http("GET", f"{server.base}/ipfs/{cid}")[0], range(n)))
    assert statuses == [200] * n
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answers = [json.loads(admin("GET", f"{server.base}/admin/api/agents")[2]) for _ in range(6)]
        counts = [{a["cid"]: a["requests"] for a in answer["agents"]}.get(cid) for answer in answers]
        if counts == [n] * 6:
            break
        time.sleep(0.3)
    assert counts == [n] * 6, counts
    for _ in range(6):  # the apps run in the first process; the others ask it
        status, _, body = admin("GET", f"{server.base}/admin/api/apps")
        assert status == 200, body
        assert [a["id"] for a in json.loads(body)["apps"]] == ["greeter"]


LONG = """\
export default {
  async fetch(request) {
    console.log("long run started");
    const gate = await fetch(new URL(request.url).searchParams.get("gate"));  // held by the test
    console.log("long run released: " + (await gate.text()));
    return new Response("done");
  },
};
"""


def test_the_live_tail_shows_lines_of_a_run_still_going(tmp_path, servers):
    release = threading.Event()

    class Gate(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            release.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"go")

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass
    gate = ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    try:
        data_dir = tmp_path / "data"
        server = Server(data_dir, "--admin-token", TOKEN, "--allow-address", "127.0.0.0/8", "--workers", "2")
        servers.append(server)
        wait_for_workers(server, 2)
        cid = publish(tmp_path, data_dir, "long.js", LONG)
        seen: list[str] = []
        started, finished = threading.Event(), threading.Event()

        def read_tail() -> None:
            req = urllib.request.Request(f"{server.base}/admin/api/agents/{cid}/logs",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(req, timeout=90) as r:
                started.set()
                for raw in r:
                    if raw.startswith(b"data: "):
                        record = json.loads(raw[6:])
                        seen.append(record["message"])
                        if record["level"] == "END":
                            finished.set()
                            return
        threading.Thread(target=read_tail, daemon=True).start()
        assert started.wait(30)
        answer: list = []
        caller = threading.Thread(target=lambda: answer.append(
            http("GET", f"{server.base}/ipfs/{cid}?gate=http://127.0.0.1:{gate.server_address[1]}/")))
        caller.start()
        deadline = time.monotonic() + 30
        while "long run started" not in seen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "long run started" in seen, seen
        assert caller.is_alive() and not release.is_set(), "the line came while the run was still going"
        release.set()
        caller.join(60)
        assert answer and answer[0][0] == 200 and answer[0][2] == b"done"
        assert finished.wait(30), seen
        assert seen.count("long run started") == 1, "a line seen live and then stored is sent once"
        assert "long run released: go" in seen
    finally:
        release.set()
        gate.shutdown()


FLOOD = """\
async function main(request) {
  const line = "L".repeat(64 * 1024);
  for (let i = 0; i < 3000; i++) {
    console.log(i + " " + line);
    if (i % 100 === 0) await new Promise((r) => setTimeout(r, 40));
  }
  return JSON.stringify({status: 200, headers: {}, body: "flooded"});
}
"""


def test_the_live_tail_of_a_flooding_run_stops_at_the_runs_log_caps(tmp_path, servers):
    """A run printing 3,000 lines of 64 KiB over ~1.2 s goes live (past LIVE_AFTER) and would publish
    every line: the tail keeps what the stored logs keep (1 MiB of messages), no more. Unbounded, such
    runs took a gateway past 3 GB in bench/soak.py."""
    import sqlite3

    data_dir = tmp_path / "data"
    server = Server(data_dir, "--admin-token", TOKEN)
    servers.append(server)
    cid = publish(tmp_path, data_dir, "flood.js", FLOOD)
    status, headers, body = http("GET", f"{server.base}/ipfs/{cid}")
    assert (status, body) == (200, b"flooded")
    request_id = headers["x-request-id"]
    deadline = time.monotonic() + 10
    while True:  # the run log flushes every 0.1 s, off the loop
        with sqlite3.connect(data_dir / "runs.sqlite") as db:
            count, size = db.execute("SELECT count(*), coalesce(sum(length(message)), 0) FROM live_lines "
                                     "WHERE request_id = ?", (request_id,)).fetchone()
            recorded = db.execute("SELECT count(*) FROM runs WHERE request_id = ?", (request_id,)).fetchone()[0]
        if recorded or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert recorded == 1
    assert 0 < count <= 16 + 1, f"{count} live lines of one run ({size} bytes)"  # 1 MiB / 64 KiB lines
    status, _, logs = http("GET", f"{server.base}/logs/all/ipfs/{cid}?format=json")
    assert status == 200 and b"dropped" in logs  # the stored logs say how many lines were dropped
