"""Scheduled runs ([cron.<name>]): real `wapo serve` processes with seconds-level schedules, the
ledger that gives each tick to one worker, overlapping ticks skipped, and `wapo cron trigger`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from test_gateway_process import Server, http, servers  # noqa: F401  (the servers fixture)
from test_workers import publish, wait_for_workers

from wapo.gateway.config import load_config
from wapo.gateway.cronspec import CronJob, CronSpecError, next_tick

# style C with scheduled(): logs the tick it was called for, and which process ran it
TICKER = """\
export default {
  async fetch(request) { return new Response("fetched " + new URL(request.url).pathname); },
  async scheduled(event, env, ctx) {
    ctx.waitUntil(new Promise(r => setTimeout(r, 5)));
    console.log("tick " + event.scheduledTime + " " + event.cron + " " + env.region);
  },
};
"""

# style A: a scheduled run is a request; this one takes longer than its schedule's period
SLOW = """\
async function main(request) {
  const req = JSON.parse(request);
  console.log("slow " + req.method + " " + req.path + " " + req.body + " " + req.scheduled.scheduledTime);
  await new Promise(r => setTimeout(r, 2500));
  return JSON.stringify({status: 201, headers: {}, body: "slow done " + req.path});
}
"""


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wapo.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def logs(server: Server, cid: str) -> list[dict]:
    status, _, body = http("GET", f"{server.base}/logs/all/ipfs/{cid}?format=json&limit=100")
    assert status == 200, body
    return json.loads(body)["logs"]


def test_schedules_parse_with_time_zones_and_seconds(tmp_path):
    config = tmp_path / "wapo.toml"
    cid = "QmWJZroKsxMHGtYA2jp2fmKpafGWguqyvzXrJu3a4b9hR3"
    config.write_text(f'[cron.nightly]\ncid = "{cid}"\nschedule = "0 3 * * *"\ntimezone = "America/New_York"\n'
                      f'[cron.fast]\ncid = "{cid}"\nschedule = "CRON_TZ=Europe/Paris */2 * * * * *"\n'
                      f'method = "post"\npath = "tick"\nbody = "x"\nvault_key = "k"\n')
    nightly, fast = load_config(config).cron
    assert nightly == CronJob("nightly", cid, "0 3 * * *", "America/New_York")
    assert (fast.timezone, fast.schedule, fast.method, fast.path, fast.vault_key) == \
        ("Europe/Paris", "*/2 * * * * *", "POST", "/tick", "k")
    # 2026-01-15 12:00 UTC is 07:00 in New York (EST): the next 03:00 there is 08:00 UTC on the 16th
    start = 1768478400.0
    assert next_tick(nightly, start) == 1768550400.0
    assert next_tick(fast, start) == start + 2  # six fields: seconds first
    for bad, says in (('schedule = "61 * * * *"', "schedule"), ('schedule = "* * *"', "5 (minute"),
                      ('schedule = "* * * * *"\ntimezone = "Mars/Olympus"', "unknown time zone"),
                      ('schedule = "* * * * *"\nevery = 1', "unknown key")):
        config.write_text(f'[cron.bad]\ncid = "{cid}"\n{bad}\n')
        with pytest.raises(CronSpecError, match=r"\[cron.bad\]") as info:
            load_config(config)
        assert says in str(info.value)


def test_jobs_fire_once_per_tick_with_two_workers_and_overlaps_are_skipped(tmp_path, servers):
    data_dir = tmp_path / "data"
    ticker = publish(tmp_path, data_dir, "ticker.js", TICKER)
    slow = publish(tmp_path, data_dir, "slow.js", SLOW)
    created = cli("secrets", "set", ticker, "region=eu", "--data-dir", str(data_dir))
    assert created.returncode == 0, created.stderr
    vault_key = json.loads(created.stdout)["key"]
    config = tmp_path / "wapo.toml"
    config.write_text(f'admin_token = "t"\n[cron.ticker]\ncid = "{ticker}"\nschedule = "* * * * * *"\nvault_key = "{vault_key}"\n'
                      f'[cron.slow]\ncid = "{slow}"\nschedule = "* * * * * *"\nmethod = "POST"\npath = "/job"\n'
                      f'body = "payload"\n')
    server = Server(data_dir, "--config", str(config), "--workers", "2")
    servers.append(server)
    wait_for_workers(server, 2)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ticks = [r for r in logs(server, ticker) if r["message"].startswith("tick ")]
        runs = logs(server, slow)
        slow_done = [r for r in runs if r["level"] == "END" and r["message"].startswith("Cron")]
        skipped = [r for r in runs if "is skipped" in r["message"]]
        if len(ticks) >= 6 and len(slow_done) >= 2 and skipped:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"not enough scheduled runs seen\n{''.join(server.output)}")
    times = Counter(r["message"].split()[1] for r in ticks)
    assert max(times.values()) == 1, f"a tick ran more than once: {times}"
    assert all(r["message"].endswith(" * * * * * * eu") for r in ticks), ticks[:2]  # the cron and the vault
    assert len({r["request_id"] for r in ticks}) == len(ticks), "each run has its own request id"
    # the slow job: its runs never overlap (each START comes after the previous END), the ticks in
    # between are skipped, logged under the CID with their own request id and by the gateway
    assert any(r["message"].startswith("slow POST /job payload ") for r in runs)
    by_request: dict[str, list[float]] = {}
    for r in runs:
        if r["level"] in ("START", "END") and r["message"].startswith("Cron"):
            by_request.setdefault(r["request_id"], []).append(r["time"])
    spans = sorted(tuple(sorted(v)) for v in by_request.values() if len(v) == 2)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"overlapping runs: {spans}"
    assert "slow: the tick of" in "".join(server.output)
    # on the dashboard, as scheduled runs, and the jobs with their latest ticks
    req = urllib.request.Request(f"{server.base}/admin/api/cron", headers={"Authorization": "Bearer t"})
    with urllib.request.urlopen(req, timeout=60) as r:
        jobs = {job["name"]: job for job in json.loads(r.read())["jobs"]}
    assert set(jobs) == {"ticker", "slow"} and jobs["slow"]["method"] == "POST"
    assert "skipped" in {t["state"] for t in jobs["slow"]["ticks"]}
    assert {t["state"] for t in jobs["ticker"]["ticks"]} <= {"running", "ok"}
    req = urllib.request.Request(f"{server.base}/admin/api/agents/{ticker}", headers={"Authorization": "Bearer t"})
    with urllib.request.urlopen(req, timeout=60) as r:
        shown = json.loads(r.read())["runs"]
    assert shown and {run["trigger"] for run in shown} == {"cron"} and {run["status"] for run in shown} == {200}


def test_trigger_runs_a_job_at_once_and_prints_its_answer(tmp_path):
    data_dir = tmp_path / "data"
    slow = publish(tmp_path, data_dir, "slow.js", SLOW)
    ticker = publish(tmp_path, data_dir, "ticker.js", TICKER)
    config = tmp_path / "wapo.toml"
    config.write_text(f'[cron.slow]\ncid = "{slow}"\nschedule = "0 0 1 1 *"\npath = "/now"\n'
                      f'[cron.ticker]\ncid = "{ticker}"\nschedule = "0 0 1 1 *"\n'
                      f'[cron.missing]\ncid = "QmWJZroKsxMHGtYA2jp2fmKpafGWguqyvzXrJu3a4b9hR3"\nschedule = "@daily"\n')
    listed = cli("cron", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["slow", "ticker", "missing"]
    assert "next 2027-01-01T00:00:00Z" in listed.stdout or "next 20" in listed.stdout
    done = cli("cron", "trigger", "slow", "--config", str(config), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "status 201" and lines[1] == "slow done /now", lines
    request_id = lines[-1].removeprefix("requestId ")
    shown = cli("logs", slow, "--data-dir", str(data_dir), "--request-id", request_id)
    assert "slow GET /now" in shown.stdout and "START Cron: slow" in shown.stdout, shown.stdout
    scheduled = cli("cron", "trigger", "ticker", "--config", str(config), "--data-dir", str(data_dir))
    assert scheduled.returncode == 0 and scheduled.stdout.startswith("status 200"), scheduled.stderr
    nothing = cli("cron", "trigger", "missing", "--config", str(config), "--data-dir", str(data_dir))
    assert nothing.returncode == 1 and "no code for" in nothing.stderr and "wapo publish" in nothing.stderr
    unknown = cli("cron", "trigger", "nope", "--config", str(config), "--data-dir", str(data_dir))
    assert unknown.returncode == 2 and "jobs: slow, ticker, missing" in unknown.stderr


HELD = """\
export default {
  async fetch(request) {
    const gate = new URL(request.url).searchParams.get("gate");
    if (gate) await (await fetch(gate)).text();  // a request held by the test
    return new Response("ran");
  },
};
"""


def test_the_per_cid_cap_holds_for_scheduled_runs(tmp_path, servers):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    release, entered = threading.Event(), threading.Event()

    class Gate(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            entered.set()
            release.wait(60)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass
    gate = ThreadingHTTPServer(("127.0.0.1", 0), Gate)
    threading.Thread(target=gate.serve_forever, daemon=True).start()
    try:
        data_dir = tmp_path / "data"
        cid = publish(tmp_path, data_dir, "held.js", HELD)
        config = tmp_path / "wapo.toml"
        config.write_text(f'max_runs_per_cid = 1\n[cron.tick]\ncid = "{cid}"\nschedule = "* * * * * *"\n')
        server = Server(data_dir, "--config", str(config), "--allow-address", "127.0.0.0/8")
        servers.append(server)
        for _ in range(20):  # a scheduled run may hold the only slot just then (503): ask again
            holder = threading.Thread(target=http, args=(
                "GET", f"{server.base}/ipfs/{cid}?gate=http://127.0.0.1:{gate.server_address[1]}/"))
            holder.start()
            while holder.is_alive() and not entered.wait(0.1):
                pass
            if entered.is_set():
                break
        assert entered.is_set(), "a request holds the agent"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "(max_runs_per_cid)" not in "".join(server.output):
            time.sleep(0.2)
        assert "Cron: tick: not run: " in "".join(server.output), "".join(server.output)
        assert any("(max_runs_per_cid)" in r["message"] for r in logs(server, cid))
        release.set()
        holder.join(60)
    finally:
        release.set()
        gate.shutdown()
