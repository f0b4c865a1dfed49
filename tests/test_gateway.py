"""The gateway over real HTTP: a real aiohttp server on 127.0.0.1, real agents in real sandboxes.

Each test starts ``make_app(GatewayConfig(...), store)`` under ``web.AppRunner`` on a free port
inside ``asyncio.run`` and talks to it with ``aiohttp.ClientSession`` (spec section 6).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from wapo.gateway.app import make_app
from wapo.gateway.config import GatewayConfig
from wapo.gateway.server import GatewayRunner
from wapo.host import Limits
from wapo.store import Store, cidv1, compute_cid

RID = "X-Request-Id"
SCENARIO_TIMEOUT = 120  # the machine is shared and loaded: generous, but bounded

# A style A agent that echoes the request it received, and answers with what the query asks for.
ECHO = """\
async function main(request) {
  const req = JSON.parse(request);
  console.log("echo " + req.method + " " + req.path);
  console.warn("a warning");
  console.error("an error line");
  return JSON.stringify({
    status: 200,
    headers: {"content-type": "application/json", "x-method": req.method, "x-body-length": String((req.body || "").length)},
    body: JSON.stringify(req),
  });
}
"""

CUSTOM = """\
async function main(request) {
  const req = JSON.parse(request);
  return JSON.stringify({status: 418, headers: {"x-custom": "v1", "content-type": "text/plain; charset=utf-8"},
                         body: "short and stout"});
}
"""

THROWS = """\
async function main(request) {
  console.log("about to fail");
  throw new Error("SECRET-DETAIL-9f3a the database password is hunter2");
}
"""

NO_STATUS = """\
async function main(request) {
  return JSON.stringify({headers: {"x-a": "b"}, body: "no status here"});
}
"""

BIG_ANSWER = """\
async function main(request) {
  return JSON.stringify({status: 200, headers: {}, body: "x".repeat(5000)});
}
"""

SPIN = """\
async function main(request) {
  console.log("spinning");
  for (;;) {}
}
"""

SLOW = """\
async function main(request) {
  await new Promise(r => setTimeout(r, 1500));
  return JSON.stringify({status: 200, headers: {}, body: "slow"});
}
"""

FAST = """\
async function main(request) {
  return JSON.stringify({status: 200, headers: {}, body: "fast"});
}
"""

# Allocates ~40 MB: passes under the default 100 MB, fails under a 16 MiB limit.
HUNGRY = """\
async function main(request) {
  const a = [];
  for (let i = 0; i < 40; i++) a.push(new Uint8Array(1 << 20).fill(1));
  return JSON.stringify({status: 200, headers: {}, body: "allocated " + a.length});
}
"""

LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) \[([^\]]+)\] \[(REPORT|INFO|WARN|ERROR)\] (.*)$")


@dataclass
class Client:
    session: aiohttp.ClientSession
    base: str
    store: Store

    def url(self, path: str) -> URL:
        return URL(self.base + path, encoded=True)

    async def request(self, method: str, path: str, **kw) -> tuple[int, "aiohttp.typedefs.LooseHeaders", bytes]:
        async with self.session.request(method, self.url(path), **kw) as r:
            return r.status, r.headers, await r.read()

    async def get(self, path: str, **kw):
        return await self.request("GET", path, **kw)

    async def json(self, method: str, path: str, **kw):
        status, headers, body = await self.request(method, path, **kw)
        return status, headers, json.loads(body)


def serve(tmp_path: Path, scenario, store: Store | None = None, **config):
    """Run ``await scenario(client)`` against a real gateway listening on 127.0.0.1; return its result."""
    data_dir = tmp_path / "data"
    store = store or Store(data_dir)

    async def main():
        app = make_app(GatewayConfig(data_dir=data_dir, **config), store)
        runner = GatewayRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            timeout = aiohttp.ClientTimeout(total=SCENARIO_TIMEOUT)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                return await asyncio.wait_for(scenario(Client(session, f"http://127.0.0.1:{port}", store)),
                                              SCENARIO_TIMEOUT)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "data")
    yield s
    s.close()


def publish(store: Store, code: str) -> str:
    return store.put_code(code.encode())


def parse_log_text(text: str) -> list[tuple[str, str, str, str]]:
    lines = [line for line in text.splitlines() if line]
    parsed = []
    for line in lines:
        m = LOG_LINE.match(line)
        assert m, f"log line not in 'ISO-time [request id] [LEVEL] message' form: {line!r}"
        parsed.append(m.groups())
    return parsed


# --- agents: the request in, the answer out ------------------------------------------------------

def test_style_a_answer_status_headers_body(tmp_path, store):
    cid = publish(store, CUSTOM)

    async def scenario(c: Client):
        return await c.get(f"/ipfs/{cid}")

    status, headers, body = serve(tmp_path, scenario, store)
    assert status == 418
    assert headers["x-custom"] == "v1"
    assert headers["content-type"].startswith("text/plain")
    assert body == b"short and stout"
    assert re.fullmatch(r"[0-9A-Za-z-]{8,}", headers[RID])


def test_agent_receives_the_request(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        get = await c.json("GET", f"/ipfs/{cid}/a/b/c?q=a&q=b&one=1&empty=",
                           headers={"X-Mixed-Case": "Value", "Accept": "text/plain"})
        post = await c.json("POST", f"/ipfs/{cid}/submit", data=b'{"x": 1}',
                            headers={"Content-Type": "application/json"})
        root = await c.json("GET", f"/ipfs/{cid}")
        return c.base, get, post, root

    base, (s1, h1, req), (s2, h2, preq), (s3, _, rreq) = serve(tmp_path, scenario, store)
    assert s1 == 200 and s2 == 200 and s3 == 200
    assert req["method"] == "GET"
    assert req["path"] == "/a/b/c"
    assert req["queries"] == {"q": ["a", "b"], "one": ["1"], "empty": [""]}
    assert req["headers"]["x-mixed-case"] == "Value"
    assert req["headers"]["accept"] == "text/plain"
    assert all(name == name.lower() for name in req["headers"]), req["headers"]
    assert "body" not in req, "GET and HEAD payloads carry no body (docs/design.md)"
    assert req["secret"] in ({}, None, "")
    # the URL an agent sees: the gateway origin + the path after /ipfs/<cid> + the query (docs/design.md)
    assert req["url"] == f"{base}/a/b/c?q=a&q=b&one=1&empty="
    assert preq["method"] == "POST" and preq["path"] == "/submit"
    assert preq["body"] == '{"x": 1}'
    assert preq["headers"]["content-type"] == "application/json"
    assert preq["queries"] == {}
    assert rreq["path"] == "/"
    assert rreq["url"] == f"{base}/"


def test_every_method(tmp_path, store):
    cid = publish(store, ECHO)
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

    async def scenario(c: Client):
        out = {}
        for m in methods:
            kw = {"data": b"payload-" + m.encode()} if m in ("POST", "PUT", "PATCH", "DELETE") else {}
            out[m] = await c.request(m, f"/ipfs/{cid}/m", **kw)
        return out

    results = serve(tmp_path, scenario, store)
    for m in methods:
        status, headers, body = results[m]
        assert status == 200, (m, body)
        assert headers["x-method"] == m
        assert headers[RID]
        if m in ("POST", "PUT", "PATCH", "DELETE"):
            assert json.loads(body)["body"] == f"payload-{m}", m
            assert headers["x-body-length"] == str(len(f"payload-{m}"))
        elif m == "HEAD":
            assert body == b""
        else:
            assert json.loads(body)["method"] == m


def test_every_answer_carries_a_request_id(tmp_path, store):
    cid = publish(store, ECHO)
    bad = publish(store, THROWS)

    async def scenario(c: Client):
        answers = [
            await c.get(f"/ipfs/{cid}"),
            await c.get(f"/ipfs/{bad}"),
            await c.get("/ipfs/not-a-cid"),
            await c.get(f"/ipfs/{compute_cid(b'nobody published this')}"),
            await c.request("POST", "/vaults", data=b"not json"),
            await c.get("/vaults/0123456789abcdef/0123456789abcdef"),
            await c.get(f"/logs/all/ipfs/{cid}?page=0"),
            await c.get(f"/logs/all/ipfs/{cid}"),
            await c.get("/healthz"),
            await c.get("/metrics"),
            await c.get("/no/such/route"),
            await c.request("DELETE", "/vaults"),
        ]
        return answers

    answers = serve(tmp_path, scenario, store)
    ids = [headers.get(RID) for _, headers, _ in answers]
    assert all(ids), [(s, dict(h)) for s, h, _ in answers]
    assert len(set(ids)) == len(ids), "request ids must be unique"
    assert [s for s, _, _ in answers] == [200, 500, 400, 404, 400, 404, 400, 200, 200, 200, 404, 405]


def test_body_over_the_limit_on_vaults_carries_a_request_id(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        body = json.dumps({"cid": cid, "data": {"pad": "p" * 2000}}).encode()
        return await c.request("POST", "/vaults", data=body, headers={"Content-Type": "application/json"})

    status, headers, _ = serve(tmp_path, scenario, store, max_request_body=1000)
    assert status == 413
    assert headers[RID]


def test_unparseable_request_still_gets_a_request_id(tmp_path, store):
    async def scenario(c: Client):
        port = int(c.base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), 30)
        writer.close()
        return data

    raw = serve(tmp_path, scenario, store)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert head.split(" ")[1] == "400"
    assert re.search(r"^x-request-id: \S+", head, re.I | re.M), head


def test_cidv1_of_published_code(tmp_path, store):
    cid = publish(store, FAST)
    v1 = cidv1(cid)
    assert v1.startswith("bafy")

    async def scenario(c: Client):
        return await c.get(f"/ipfs/{v1}/x"), await c.get(f"/logs/all/ipfs/{v1}?format=json")

    (status, _, body), (lstatus, _, logs) = serve(tmp_path, scenario, store)
    assert (status, body) == (200, b"fast")
    assert lstatus == 200
    assert json.loads(logs)["logs"], "a run through the CIDv1 is logged under the same CID"


def test_malformed_and_unknown_cid(tmp_path, store):
    async def scenario(c: Client):
        return [await c.get("/ipfs/not-a-cid"), await c.get("/ipfs/Qm123"),
                await c.get("/ipfs/bafyinvalid!!"),
                await c.get(f"/ipfs/{compute_cid(b'unknown code')}/some/path"),
                await c.get(f"/ipfs/{cidv1(compute_cid(b'unknown code'))}"),
                await c.get("/logs/all/ipfs/not-a-cid")]

    results = serve(tmp_path, scenario, store)
    assert [s for s, _, _ in results] == [400, 400, 400, 404, 404, 400]
    for _, headers, body in results:
        assert json.loads(body)["requestId"] == headers[RID]


# --- vaults ------------------------------------------------------------------------------------

def test_vault_secrets_reach_the_agent(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        created = await c.json("POST", "/vaults", json={"cid": cid, "data": {"apiKey": "s3cr3t", "n": {"a": 1}}})
        key, token = created[2]["key"], created[2]["token"]
        run = await c.json("GET", f"/ipfs/{cid}/p?key={key}&x=1")
        got = await c.json("GET", f"/vaults/{key}/{token}")
        wrong = await c.json("GET", f"/vaults/{key}/{'0' * 16 if token != '0' * 16 else '1' * 16}")
        unknown_key = await c.json("GET", f"/vaults/{'f' * 16}/{token}")
        no_key = await c.json("GET", f"/ipfs/{cid}")
        return created, run, got, wrong, unknown_key, no_key

    created, run, got, wrong, unknown_key, no_key = serve(tmp_path, scenario, store)
    status, headers, body = created
    assert status == 200
    assert body["succeed"] is True
    assert re.fullmatch(r"[0-9a-f]{16}", body["key"]) and re.fullmatch(r"[0-9a-f]{16}", body["token"])
    assert body["key"] != body["token"]
    status, _, req = run
    assert status == 200
    assert req["secret"] == {"apiKey": "s3cr3t", "n": {"a": 1}}
    assert req["queries"] == {"x": ["1"]}, "the key parameter itself is not passed to the agent"
    status, _, vault = got
    assert status == 200
    assert vault == {"data": {"apiKey": "s3cr3t", "n": {"a": 1}}, "inherit": None, "succeed": True}
    assert wrong[0] == 404 and wrong[2]["succeed"] is False
    assert unknown_key[0] == 404 and unknown_key[2]["succeed"] is False
    assert no_key[0] == 200 and no_key[2]["secret"] in ({}, None, "")


def test_vault_key_not_in_the_agent_url(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        key = (await c.json("POST", "/vaults", json={"cid": cid, "data": {"k": "v"}}))[2]["key"]
        return c.base, key, (await c.json("GET", f"/ipfs/{cid}/p?a=1&key={key}&b=2"))[2]

    base, key, req = serve(tmp_path, scenario, store)
    assert req["secret"] == {"k": "v"}
    assert req["queries"] == {"a": ["1"], "b": ["2"]}
    assert key not in req["url"]
    assert req["url"] == f"{base}/p?a=1&b=2"


def test_vault_inherit_deep_merge(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        parent = (await c.json("POST", "/vaults", json={
            "cid": cid, "data": {"db": {"user": "u", "password": "p"}, "region": "eu", "keep": [1, 2]}}))[2]
        child = (await c.json("POST", "/vaults", json={
            "cid": cid, "data": {"db": {"password": "p2"}, "extra": True, "keep": [3]},
            "inherit": parent["key"], "inheritToken": parent["token"]}))[2]
        seen = (await c.json("GET", f"/ipfs/{cid}?key={child['key']}"))[2]["secret"]
        own = await c.json("GET", f"/vaults/{child['key']}/{child['token']}")
        parent_seen = (await c.json("GET", f"/ipfs/{cid}?key={parent['key']}"))[2]["secret"]
        missing_parent = await c.json("POST", "/vaults", json={"cid": cid, "data": {}, "inherit": "0" * 16})
        return parent, child, seen, own, parent_seen, missing_parent

    parent, child, seen, own, parent_seen, missing_parent = serve(tmp_path, scenario, store)
    assert child["succeed"] is True
    assert seen == {"db": {"user": "u", "password": "p2"}, "region": "eu", "keep": [3], "extra": True}
    assert own[0] == 200
    assert own[2]["inherit"] == parent["key"]
    assert own[2]["data"] == {"db": {"password": "p2"}, "extra": True, "keep": [3]}
    assert parent_seen == {"db": {"user": "u", "password": "p"}, "region": "eu", "keep": [1, 2]}
    assert missing_parent[0] == 404 and missing_parent[2]["succeed"] is False


def test_vault_key_bound_to_its_cid(tmp_path, store):
    cid = publish(store, ECHO)
    other = publish(store, ECHO + "\n// another agent\n")

    async def scenario(c: Client):
        key = (await c.json("POST", "/vaults", json={"cid": cid, "data": {"k": "v"}}))[2]["key"]
        used_elsewhere = await c.json("GET", f"/ipfs/{other}?key={key}")
        inherit_elsewhere = await c.json("POST", "/vaults", json={"cid": other, "data": {}, "inherit": key})
        unknown = await c.json("GET", f"/ipfs/{cid}?key={'e' * 16}")
        return used_elsewhere, inherit_elsewhere, unknown

    used_elsewhere, inherit_elsewhere, unknown = serve(tmp_path, scenario, store)
    status, headers, body = used_elsewhere
    assert status == 403
    assert "k" not in json.dumps(body.get("secret", {}))
    assert body["requestId"] == headers[RID]
    assert inherit_elsewhere[0] == 403 and inherit_elsewhere[2]["succeed"] is False
    assert unknown[0] in (403, 404), "an unknown vault key is refused, the agent does not run"
    assert "secret" not in unknown[2]


def test_malformed_vault_bodies(tmp_path, store):
    cid = publish(store, ECHO)
    bodies = [
        b"not json",
        b"[1, 2]",
        b'"a string"',
        json.dumps({"data": {"k": "v"}}).encode(),  # no cid
        json.dumps({"cid": cid}).encode(),  # no data
        json.dumps({"cid": cid, "data": "a string"}).encode(),
        json.dumps({"cid": cid, "data": [1]}).encode(),
        json.dumps({"cid": 42, "data": {}}).encode(),
        json.dumps({"cid": "not-a-cid", "data": {}}).encode(),
        json.dumps({"cid": cid, "data": {}, "inherit": 5}).encode(),
        b"",
    ]

    async def scenario(c: Client):
        return [await c.request("POST", "/vaults", data=b, headers={"Content-Type": "application/json"})
                for b in bodies]

    results = serve(tmp_path, scenario, store)
    for raw, (status, headers, body) in zip(bodies, results):
        assert status == 400, (raw, status, body)
        assert json.loads(body)["succeed"] is False
        assert headers[RID]


# --- failures ----------------------------------------------------------------------------------

def test_failing_agent_hides_details(tmp_path, store):
    cid = publish(store, THROWS)

    async def scenario(c: Client):
        return await c.get(f"/ipfs/{cid}"), await c.get(f"/logs/all/ipfs/{cid}")

    (status, headers, body), (_, _, logs) = serve(tmp_path, scenario, store)
    assert status == 500
    rid = headers[RID]
    text = body.decode()
    assert rid in text
    assert json.loads(text)["requestId"] == rid
    for leak in ("SECRET-DETAIL", "hunter2", "Error:", " at ", "<eval>", "main ("):
        assert leak not in text, f"the answer leaks {leak!r}: {text}"
    # the operator still finds the error in the logs of that request
    assert "SECRET-DETAIL-9f3a" in logs.decode()
    assert f"[{rid}] [ERROR]" in logs.decode()


def test_failing_agent_details_in_debug_mode(tmp_path, store):
    cid = publish(store, THROWS)

    async def scenario(c: Client):
        return await c.get(f"/ipfs/{cid}")

    status, headers, body = serve(tmp_path, scenario, store, debug=True)
    assert status == 500
    assert headers[RID] in body.decode()
    assert "SECRET-DETAIL-9f3a" in body.decode()


def test_agent_without_status(tmp_path, store):
    cid = publish(store, NO_STATUS)

    async def scenario(c: Client):
        return await c.get(f"/ipfs/{cid}")

    status, headers, body = serve(tmp_path, scenario, store)
    assert status == 500
    assert headers[RID] in body.decode()
    assert "no status here" not in body.decode()


@pytest.mark.parametrize("status", ['"abc"', "99", "600", "null", "true", "2.5"])
def test_agent_with_an_invalid_status(tmp_path, store, status):
    cid = publish(store, NO_STATUS.replace("{headers:", f"{{status: {status}, headers:"))

    async def scenario(c: Client):
        return await c.get(f"/ipfs/{cid}")

    code, headers, body = serve(tmp_path, scenario, store)
    assert code == 500
    assert headers[RID] in body.decode()


def test_agent_framing_headers_do_not_corrupt_the_answer(tmp_path, store):
    cid = publish(store, """\
async function main(request) {
  return JSON.stringify({status: 200, body: "hello world",
    headers: {"content-length": "3", "transfer-encoding": "chunked", "connection": "close", "x-kept": "yes"}});
}
""")

    async def scenario(c: Client):
        return await c.get(f"/ipfs/{cid}"), await c.get("/healthz")  # the connection is still usable

    (status, headers, body), (hstatus, _, _) = serve(tmp_path, scenario, store)
    assert (status, body) == (200, b"hello world")
    assert headers["x-kept"] == "yes"
    assert hstatus == 200


def test_agent_without_status_is_explained_in_the_logs(tmp_path, store):
    cid = publish(store, NO_STATUS)

    async def scenario(c: Client):
        answer = await c.get(f"/ipfs/{cid}")
        return answer, (await c.get(f"/logs/all/ipfs/{cid}?requestId={answer[1][RID]}"))[2].decode()

    (status, _, _), logs = serve(tmp_path, scenario, store)
    assert status == 500
    assert "[ERROR]" in logs and "status" in logs, logs


# --- logs --------------------------------------------------------------------------------------

def test_logs_text_json_filter_and_paging(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        rids = []
        for i in range(3):
            rids.append((await c.get(f"/ipfs/{cid}/run{i}?x={i}"))[1][RID])
        base = f"/logs/all/ipfs/{cid}"
        text = (await c.get(base))[2].decode()
        text_fmt = (await c.get(base + "?format=text"))[2].decode()
        js = (await c.json("GET", base + "?format=json"))[2]
        one = (await c.get(f"{base}?requestId={rids[1]}"))[2].decode()
        one_json = (await c.json("GET", f"{base}?requestId={rids[1]}&format=json"))[2]
        pages = [(await c.json("GET", f"{base}?format=json&limit=4&page={p}"))[2] for p in (1, 2, 3, 4, 5)]
        edges = [(await c.json("GET", f"{base}?format=json&page={p}&limit={lim}"))[0]
                 for p, lim in ((1, 1), (100, 100), (1, 100))]
        bad = [(await c.get(f"{base}?{q}")) for q in
               ("page=0", "page=101", "limit=0", "limit=101", "page=abc", "limit=-1", "format=xml")]
        return rids, text, text_fmt, js, one, one_json, pages, edges, bad

    rids, text, text_fmt, js, one, one_json, pages, edges, bad = serve(tmp_path, scenario, store)
    assert text == text_fmt
    lines = parse_log_text(text)
    # newest first: the last request's END is the first line, the first request's START the last
    assert lines[0][1] == rids[2] and lines[0][3].startswith("END Request: Duration: ")
    assert lines[-1][1] == rids[0] and lines[-1][3].startswith("START Request: GET /ipfs/")
    times = [line[0] for line in lines]
    assert times == sorted(times, reverse=True)
    for i, rid in enumerate(rids):
        run = [line for line in lines if line[1] == rid][::-1]  # oldest first
        assert run[0][2] == "REPORT" and run[0][3] == f"START Request: GET /ipfs/{cid}/run{i}"
        assert run[-1][2] == "REPORT" and re.fullmatch(r"END Request: Duration: \d+ ms", run[-1][3])
        middle = [(level, message) for _, _, level, message in run[1:-1]]
        assert ("INFO", f"echo GET /run{i}") in middle
        assert ("WARN", "a warning") in middle
        assert ("ERROR", "an error line") in middle
    assert {line[1] for line in lines} == set(rids)

    assert isinstance(js["logs"], list) and len(js["logs"]) == len(lines)
    for rec, line in zip(js["logs"], lines):
        assert rec["request_id"] == line[1]
        assert line[3].endswith(rec["message"])
    assert {line[1] for line in parse_log_text(one)} == {rids[1]}
    assert len(parse_log_text(one)) == 5
    assert {r["request_id"] for r in one_json["logs"]} == {rids[1]}

    all_ids = [r["id"] for r in js["logs"]]
    paged = [r["id"] for p in pages for r in p["logs"]]
    assert [len(p["logs"]) for p in pages] == [4, 4, 4, 3, 0]
    assert paged == all_ids
    assert edges == [200, 200, 200]
    for status, headers, body in bad:
        assert status == 400, body
        assert headers[RID]


# --- size limits -------------------------------------------------------------------------------

def test_request_body_over_the_limit(tmp_path, store):
    cid = publish(store, ECHO)

    async def chunked(n):
        for _ in range(n):
            yield b"y" * 500

    async def scenario(c: Client):
        ok = await c.request("POST", f"/ipfs/{cid}", data=b"x" * 1000)
        too_big = await c.request("POST", f"/ipfs/{cid}", data=b"x" * 1001)
        way_too_big = await c.request("PUT", f"/ipfs/{cid}", data=b"x" * 5000)
        streamed = await c.request("POST", f"/ipfs/{cid}", data=chunked(6))
        logs = await c.json("GET", f"/logs/all/ipfs/{cid}?format=json")
        return ok, too_big, way_too_big, streamed, logs

    ok, too_big, way_too_big, streamed, logs = serve(tmp_path, scenario, store, max_request_body=1000)
    assert ok[0] == 200 and json.loads(ok[2])["body"] == "x" * 1000
    for status, headers, body in (too_big, way_too_big, streamed):
        assert status == 413, body
        assert headers[RID]
    runs = {r["request_id"] for r in logs[2]["logs"]}
    assert runs == {ok[1][RID]}, "a refused body does not run the agent"


def test_agent_answer_over_the_limit(tmp_path, store):
    cid = publish(store, BIG_ANSWER)

    async def scenario(c: Client):
        return await c.get(f"/ipfs/{cid}")

    status, headers, body = serve(tmp_path, scenario, store, max_answer=1000)
    assert status == 502
    assert headers[RID] in body.decode()
    assert "xxxxxxxxxx" not in body.decode()

    status, _, body = serve(tmp_path, scenario, store, max_answer=100_000)
    assert status == 200 and body == b"x" * 5000


STREAMED_BIG = """\
export default {
  async fetch(request) {
    const enc = new TextEncoder();
    let i = 0;
    const body = new ReadableStream({
      pull(c) { if (i++ < 10) c.enqueue(enc.encode("y".repeat(500))); else c.close(); },
    });
    return new Response(body, {headers: {"content-type": "text/plain"}});
  },
};
"""


def test_streamed_answer_over_the_limit_is_not_silently_truncated(tmp_path, store):
    cid = publish(store, STREAMED_BIG)

    async def scenario(c: Client):
        try:
            async with c.session.get(c.url(f"/ipfs/{cid}")) as r:
                return r.status, await r.read()
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            return "aborted", repr(exc)

    status, body = serve(tmp_path, scenario, store, max_answer=100_000)
    assert (status, body) == (200, b"y" * 5000), "within the limit the whole stream arrives"
    status, body = serve(tmp_path, scenario, store, max_answer=1000)
    assert status in (502, "aborted"), f"a clean {status} with {len(body)} of 5000 bytes"


STREAM_THEN_THROW = """\
export default {
  async fetch(request) {
    const enc = new TextEncoder();
    let i = 0;
    const body = new ReadableStream({
      pull(c) { if (i++ < 3) c.enqueue(enc.encode("part" + i + ";")); else throw new Error("mid-stream failure"); },
    });
    return new Response(body);
  },
};
"""


def test_streamed_answer_failing_mid_body_is_not_a_clean_200(tmp_path, store):
    cid = publish(store, STREAM_THEN_THROW)

    async def scenario(c: Client):
        try:
            async with c.session.get(c.url(f"/ipfs/{cid}")) as r:
                return r.status, await r.read()
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError) as exc:
            return "aborted", repr(exc)

    status, body = serve(tmp_path, scenario, store)
    assert status == "aborted", f"a clean {status} with body {body!r}"


# --- per-run limits ----------------------------------------------------------------------------

def test_burst_limit_from_the_config(tmp_path, store):
    cid = publish(store, SPIN)

    async def scenario(c: Client):
        started = time.monotonic()
        answer = await c.get(f"/ipfs/{cid}")
        elapsed = time.monotonic() - started
        logs = (await c.get(f"/logs/all/ipfs/{cid}?requestId={answer[1][RID]}"))[2].decode()
        return answer, elapsed, logs

    (status, headers, body), elapsed, logs = serve(tmp_path, scenario, store, limits=Limits(burst=0.2))
    assert status == 500
    assert headers[RID] in body.decode()
    assert "burst limit" in logs
    assert "200 ms" in logs
    assert elapsed < 30


def test_per_cid_limits_capped_by_max_limits(tmp_path, store):
    spin = publish(store, SPIN)
    hungry = publish(store, HUNGRY)
    hungry_other = publish(store, HUNGRY + "\n// same code, another CID\n")
    small = Limits(memory=16 * 1024 * 1024, burst=0.2)

    async def scenario(c: Client):
        spin_answer = await c.get(f"/ipfs/{spin}")
        spin_logs = (await c.get(f"/logs/all/ipfs/{spin}?requestId={spin_answer[1][RID]}"))[2].decode()
        return spin_answer, spin_logs, await c.get(f"/ipfs/{hungry}"), await c.get(f"/ipfs/{hungry_other}")

    # the override raises the memory limit of one CID only; the burst override is capped at 0.4 s
    config = dict(limits=small, max_limits=Limits(memory=200 * 1000 * 1000, burst=0.4),
                  cid_limits={spin: Limits(burst=5.0), hungry: Limits(memory=100 * 1000 * 1000)})
    spin_answer, spin_logs, raised, default = serve(tmp_path, scenario, store, **config)
    assert spin_answer[0] == 500
    assert "burst limit" in spin_logs and "400 ms" in spin_logs, spin_logs
    assert raised[0] == 200 and raised[2] == b"allocated 40"
    assert default[0] == 500

    # a cap below the override wins
    config = dict(limits=small, max_limits=Limits(memory=20 * 1024 * 1024, burst=0.4),
                  cid_limits={hungry: Limits(memory=100 * 1000 * 1000)})

    async def only_hungry(c: Client):
        answer = await c.get(f"/ipfs/{hungry}")
        return answer, (await c.get(f"/logs/all/ipfs/{hungry}?requestId={answer[1][RID]}"))[2].decode()

    (status, _, _), logs = serve(tmp_path, only_hungry, store, **config)
    assert status == 500
    # (a synchronous script reports "memory limit exceeded"; inside an async main QuickJS's
    # "InternalError: out of memory" surfaces as an unhandled rejection instead)
    assert "memory limit" in logs or "out of memory" in logs, logs


# --- concurrency -------------------------------------------------------------------------------

def test_slow_agent_does_not_block_a_fast_one(tmp_path, store):
    slow, fast = publish(store, SLOW), publish(store, FAST)

    async def scenario(c: Client):
        await c.get(f"/ipfs/{fast}")  # warm up (module load) before timing
        t0 = time.monotonic()
        done: dict[str, float] = {}

        async def call(name, cid):
            answer = await c.get(f"/ipfs/{cid}")
            done[name] = time.monotonic() - t0
            return answer

        slow_task = asyncio.create_task(call("slow", slow))
        await asyncio.sleep(0.2)
        fast_answer = await call("fast", fast)
        slow_answer = await slow_task
        return slow_answer, fast_answer, done

    slow_answer, fast_answer, done = serve(tmp_path, scenario, store)
    assert slow_answer[0] == 200 and slow_answer[2] == b"slow"
    assert fast_answer[0] == 200 and fast_answer[2] == b"fast"
    assert done["slow"] >= 1.4
    assert done["fast"] < done["slow"] - 0.5, done


# --- health and metrics ------------------------------------------------------------------------

def test_healthz_and_metrics(tmp_path, store):
    cid = publish(store, FAST)
    bad = publish(store, THROWS)

    async def scenario(c: Client):
        health = await c.json("GET", "/healthz")
        await c.get(f"/ipfs/{cid}")
        await c.get(f"/ipfs/{bad}")
        return health, await c.get("/metrics")

    (hstatus, hheaders, hbody), (mstatus, mheaders, mbody) = serve(tmp_path, scenario, store)
    assert hstatus == 200 and hbody.get("ok") is True and hheaders[RID]
    assert mstatus == 200
    assert mheaders["content-type"].startswith("text/plain")
    text = mbody.decode()
    for name in ("wapo_requests_total", "wapo_agent_errors_total", "wapo_agent_run_seconds",
                 "wapo_sandboxes_live"):
        assert re.search(rf"^{name}\w*(\{{.*\}})? \S+$", text, re.M), f"{name} has no sample:\n{text}"
    assert re.search(r'^wapo_requests_total\{route="/ipfs/\{cid\}",status="200"\} 1\.0$', text, re.M), text
    assert re.search(r'^wapo_requests_total\{route="/ipfs/\{cid\}",status="500"\} 1\.0$', text, re.M), text
    assert re.search(r'^wapo_agent_errors_total\{kind="[^"]+"\} 1\.0$', text, re.M), text
    assert re.search(r"^wapo_agent_run_seconds_count [1-9]", text, re.M)
    assert re.search(r"^wapo_sandboxes_live 0\.0$", text, re.M)


# --- code from a remote IPFS gateway -----------------------------------------------------------

def test_remote_ipfs_gateway(tmp_path, store):
    good_code = FAST.replace('"fast"', '"from ipfs"')
    good = compute_cid(good_code.encode())
    forged = compute_cid(b"async function main(){ return JSON.stringify({status: 200, body: 'expected'}) }")
    forged_body = b"async function main(){ return JSON.stringify({status: 200, body: 'FORGED'}) }"
    served: list[str] = []

    async def ipfs(request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        served.append(cid)
        if cid == good:
            return web.Response(body=good_code.encode())
        if cid == forged:
            return web.Response(body=forged_body)
        return web.Response(status=404)

    async def scenario(c: Client):
        ok = await c.get(f"/ipfs/{good}")
        again = await c.get(f"/ipfs/{cidv1(good)}")
        bad = await c.get(f"/ipfs/{forged}")
        missing = await c.get(f"/ipfs/{compute_cid(b'nowhere')}")
        return ok, again, bad, missing

    async def run_all():
        fake = web.Application()
        fake.router.add_get("/ipfs/{cid}", ipfs)
        fake_runner = web.AppRunner(fake, access_log=None)
        await fake_runner.setup()
        await web.TCPSite(fake_runner, "127.0.0.1", 0).start()
        fake_url = f"http://127.0.0.1:{fake_runner.addresses[0][1]}"
        data_dir = tmp_path / "data"
        app = make_app(GatewayConfig(data_dir=data_dir, ipfs_gateways=(fake_url,),
                                     ipfs_timeout=30), store)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SCENARIO_TIMEOUT)) as session:
                c = Client(session, f"http://127.0.0.1:{runner.addresses[0][1]}", store)
                return await asyncio.wait_for(scenario(c), SCENARIO_TIMEOUT)
        finally:
            await runner.cleanup()
            await fake_runner.cleanup()

    ok, again, bad, missing = asyncio.run(run_all())
    assert ok[0] == 200 and ok[2] == b"from ipfs"
    assert again[0] == 200 and again[2] == b"from ipfs"
    assert served.count(good) == 1, "fetched once, then served from the store"
    assert store.get_code(good) == good_code.encode()

    assert bad[0] == 404, bad
    assert b"FORGED" not in bad[2]
    assert store.get_code(forged) is None
    assert not store.has_code(compute_cid(forged_body)), "content that does not match is not stored at all"
    assert store.query_logs(forged) == [], "rejected content never ran"
    assert missing[0] == 404
