"""`/metrics` of the whole service: with `--workers 2` every scrape sums both processes, and the
per-CID series keep a bounded label set."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families

from test_gateway_process import Server, http, servers  # noqa: F401  (the servers fixture)
from test_workers import publish, wait_for_workers

from wapo.gateway.metrics import OTHER, Metrics

HELLO = """\
async function main(request) {
  return JSON.stringify({status: 200, headers: {"content-type": "text/plain"}, body: "hello"});
}
"""


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_with_two_workers_count_every_request(tmp_path, servers):
    data_dir = tmp_path / "data"
    server = Server(data_dir, "--workers", "2")
    servers.append(server)
    wait_for_workers(server, 2)
    cid = publish(tmp_path, data_dir, "hello.js", HELLO)
    n = 60
    with ThreadPoolExecutor(8) as pool:  # fresh connections, some at once: both workers answer
        answers = list(pool.map(lambda _: http("GET", f"{server.base}/ipfs/{cid}"), range(n)))
    assert [status for status, _, _ in answers] == [200] * n
    shared = list((data_dir / "metrics").glob("serve-*"))
    assert len(shared) == 1
    writers = {f.name.rsplit("_", 1)[-1] for f in shared[0].glob("counter_*.db")}
    assert len(writers) >= 2, f"both processes counted requests: {writers}"
    for _ in range(6):  # whichever worker answers the scrape, the sums are the same
        status, _, body = http("GET", f"{server.base}/metrics")
        assert status == 200
        values = samples(body.decode())
        assert values[("wapo_requests_total", (("route", "/ipfs/{cid}"), ("status", "200")))] == n
        assert values[("wapo_agent_requests_total", (("cid", cid), ("status", "200")))] == n
        assert values[("wapo_agent_request_seconds_count", (("cid", cid),))] == n
        assert values[("wapo_agent_run_seconds_count", ())] == n
    server.stop()
    assert not shared[0].exists(), "the shared metrics folder is removed when the gateway stops"


def test_per_cid_labels_are_bounded():
    metrics = Metrics(top_cids=2)
    for cid in ("QmA", "QmB", "QmC", "QmD", "QmA"):
        metrics.observe_run(cid, 200, 0.01)
    values = samples(metrics.render()[0].decode())
    counts = {dict(labels)["cid"]: v for (name, labels), v in values.items() if name == "wapo_agent_requests_total"}
    assert counts == {"QmA": 2, "QmB": 1, OTHER: 2}


def test_first_steps_run_on_the_loop_are_counted(tmp_path, servers):
    """`wapo_speculative_steps{outcome}`: once a hello agent has earned it (8 short first steps on
    the guest threads), its first steps run on the event loop, and the scrape says how many."""
    data_dir = tmp_path / "data"
    server = Server(data_dir, env={"WAPO_GUEST_THREADS": "", "WAPO_SNAPSHOT": "", "WAPO_SPECULATE": ""})
    servers.append(server)
    cid = publish(tmp_path, data_dir, "hello.js", HELLO)
    for _ in range(30):
        assert http("GET", f"{server.base}/ipfs/{cid}")[0] == 200
    values = samples(http("GET", f"{server.base}/metrics")[2].decode())
    ran = values[("wapo_speculative_steps", (("outcome", "ran"),))]
    stopped = values[("wapo_speculative_steps", (("outcome", "stopped"),))]
    assert ran >= 10, (ran, stopped)  # 30 runs, 8 to earn it, a cold first one and ticks may cost a few
