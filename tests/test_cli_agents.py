"""The agent commands as a user runs them: `wapo publish`, `call`, `secrets`, `logs` in a subprocess."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from wapo.gateway.app import make_app
from wapo.gateway.config import GatewayConfig
from wapo.store import Store, cidv1

HELLO_CID = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"  # `ipfs add` of b"hello world\n"

ECHO = """\
async function main(request) {
  const req = JSON.parse(request);
  console.log("echo " + req.method + " " + req.path);
  return JSON.stringify({status: 200, headers: {"content-type": "application/json", "x-echo": "yes"},
                         body: JSON.stringify(req)});
}
"""

URL_ECHO = """\
async function main(request) {
  const req = JSON.parse(request);
  const u = new URL(req.url);
  return JSON.stringify({status: 200, headers: {}, body: JSON.stringify(u.searchParams.getAll("q"))});
}
"""

THROWS = """\
async function main(request) {
  throw new Error("boom from the agent");
}
"""


def run_wapo(*argv: str, data_dir: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "wapo.cli.main", *argv]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def echo_file(tmp_path):
    path = tmp_path / "echo.js"
    path.write_text(ECHO)
    return path


def split_http(out: str) -> tuple[str, list[tuple[str, str]], str]:
    head, sep, body = out.replace("\r\n", "\n").partition("\n\n")
    assert sep, f"no blank line between headers and body: {out!r}"
    status, *header_lines = head.split("\n")
    headers = []
    for line in header_lines:
        name, colon, value = line.partition(":")
        assert colon, f"not a header line: {line!r}"
        headers.append((name.strip().lower(), value.strip()))
    return status, headers, body


def test_publish_prints_the_cid_last(tmp_path, data_dir):
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"hello world\n")
    proc = run_wapo("publish", "--force", str(hello), data_dir=data_dir)  # not an agent: the CID is the point
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == HELLO_CID
    with Store(data_dir) as store:
        assert store.get_code(HELLO_CID) == b"hello world\n"
        assert store.get_code(cidv1(HELLO_CID)) == b"hello world\n"
    # publishing twice gives the same CID
    again = run_wapo("publish", "--force", str(hello), data_dir=data_dir)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == HELLO_CID


def test_publish_errors(tmp_path, data_dir):
    missing = run_wapo("publish", str(tmp_path / "nope.js"), data_dir=data_dir)
    assert missing.returncode == 2 and "nope.js" in missing.stderr
    binary = tmp_path / "bin.js"
    binary.write_bytes(b"\xff\xfe\x00")
    bad = run_wapo("publish", str(binary), data_dir=data_dir)
    assert bad.returncode == 2 and "UTF-8" in bad.stderr


def test_call_file_with_a_full_request(echo_file, data_dir):
    proc = run_wapo("call", str(echo_file), "--method", "POST", "--path", "/p", "--query", "a=1", "--query", "a=2",
                    "--header", "X-T: v", "--data", "BODY", "--secret", '{"k":"v"}', data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    status, headers, body = split_http(proc.stdout)
    assert status == "HTTP/1.1 200 OK"
    assert ("content-type", "application/json") in headers
    assert ("x-echo", "yes") in headers
    req = json.loads(body)
    assert req["method"] == "POST"
    assert req["path"] == "/p"
    assert req["queries"] == {"a": ["1", "2"]}
    assert req["headers"] == {"x-t": "v"}
    assert req["body"] == "BODY"
    assert req["secret"] == {"k": "v"}
    assert req["url"].endswith("/p?a=1&a=2")
    assert "echo POST /p" in proc.stderr, "logs go to stderr"


def test_call_body_only_and_data_from_file(tmp_path, echo_file):
    body_file = tmp_path / "body.txt"
    body_file.write_text("from a file")
    proc = run_wapo("call", str(echo_file), "-X", "put", "-d", f"@{body_file}", "--body-only")
    assert proc.returncode == 0, proc.stderr
    req = json.loads(proc.stdout)
    assert req["method"] == "PUT" and req["body"] == "from a file" and req["path"] == "/"


def test_call_url_query_is_encoded(tmp_path):
    agent = tmp_path / "url.js"
    agent.write_text(URL_ECHO)
    proc = run_wapo("call", str(agent), "--query", "q=a&b", "--query", "q=c d", "--body-only")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["a&b", "c d"]


def test_call_published_cid(tmp_path, echo_file, data_dir):
    published = run_wapo("publish", str(echo_file), data_dir=data_dir)
    cid = published.stdout.strip().splitlines()[-1]
    proc = run_wapo("call", cid, "--path", "/x", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    status, _, body = split_http(proc.stdout)
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body)["path"] == "/x"
    v1 = run_wapo("call", cidv1(cid), "--body-only", data_dir=data_dir)
    assert v1.returncode == 0 and json.loads(v1.stdout)["method"] == "GET"
    # an unknown CID, or something that is neither a file nor a CID, is a clear error
    unknown = run_wapo("call", HELLO_CID, data_dir=data_dir)
    assert unknown.returncode != 0 and HELLO_CID in unknown.stderr
    nonsense = run_wapo("call", "no-such-file-or-cid", data_dir=data_dir)
    assert nonsense.returncode != 0 and "no-such-file-or-cid" in nonsense.stderr


@pytest.mark.parametrize("flags, words", [
    (["--query", "novalue"], "--query"),
    (["--header", "no colon"], "--header"),
    (["--header", ": empty name"], "--header"),
    (["--secret", "not json"], "--secret"),
    (["--secret", "[1, 2]"], "--secret"),
])
def test_call_bad_flags(echo_file, data_dir, flags, words):
    proc = run_wapo("call", str(echo_file), *flags, data_dir=data_dir)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert words in proc.stderr
    assert proc.stdout == ""


def test_call_failing_agent(tmp_path, data_dir):
    agent = tmp_path / "throws.js"
    agent.write_text(THROWS)
    proc = run_wapo("call", str(agent), data_dir=data_dir)
    assert proc.returncode == 1
    assert "boom from the agent" in proc.stderr
    assert "HTTP/1.1 200" not in proc.stdout


def gateway(data_dir: Path, scenario):
    """Run ``scenario(session, base_url)`` against an in-process gateway on ``data_dir``."""
    async def main():
        app = make_app(GatewayConfig(data_dir=data_dir))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90)) as session:
                return await scenario(session, f"http://127.0.0.1:{runner.addresses[0][1]}")
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def test_secrets_set_is_usable_with_the_gateway(echo_file, data_dir):
    cid = run_wapo("publish", str(echo_file), data_dir=data_dir).stdout.strip().splitlines()[-1]
    proc = run_wapo("secrets", "set", cid, "apiKey=abc", "region=eu", "--json", '{"n": {"x": 1}}', data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    vault = json.loads(proc.stdout)
    assert set(vault) == {"key", "token"}
    assert re.fullmatch(r"[0-9a-f]{16}", vault["key"]) and re.fullmatch(r"[0-9a-f]{16}", vault["token"])
    expected = {"apiKey": "abc", "region": "eu", "n": {"x": 1}}

    async def scenario(session, base):
        async with session.get(f"{base}/ipfs/{cid}?key={vault['key']}") as r:
            seen = (r.status, await r.json(content_type=None))
        async with session.get(f"{base}/vaults/{vault['key']}/{vault['token']}") as r:
            stored = (r.status, await r.json())
        return seen, stored

    (status, req), (vstatus, stored) = gateway(data_dir, scenario)
    assert status == 200 and req["secret"] == expected
    assert vstatus == 200 and stored == {"data": expected, "inherit": None, "succeed": True}

    got = run_wapo("secrets", "get", vault["key"], vault["token"], data_dir=data_dir)
    assert got.returncode == 0 and json.loads(got.stdout)["data"] == expected
    wrong = run_wapo("secrets", "get", vault["key"], "0" * 16, data_dir=data_dir)
    assert wrong.returncode == 1


@pytest.mark.parametrize("argv", [
    ["secrets", "set", "not-a-cid", "k=v"],
    ["secrets", "set", HELLO_CID, "novalue"],
    ["secrets", "set", HELLO_CID, "--json", "not json"],
    ["secrets", "set", HELLO_CID, "--json", "[1]"],
])
def test_secrets_set_errors(data_dir, argv):
    proc = run_wapo(*argv, data_dir=data_dir)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip() and proc.stdout == ""


def test_logs_after_gateway_requests(echo_file, data_dir):
    cid = run_wapo("publish", str(echo_file), data_dir=data_dir).stdout.strip().splitlines()[-1]

    # `wapo call` runs locally and prints the logs to stderr: it stores none
    called = run_wapo("call", cid, "--path", "/local", data_dir=data_dir)
    assert called.returncode == 0 and "echo GET /local" in called.stderr
    empty = run_wapo("logs", cid, data_dir=data_dir)
    assert empty.returncode == 0 and empty.stdout == ""

    async def scenario(session, base):
        ids = []
        for path in ("/one", "/two"):
            async with session.get(f"{base}/ipfs/{cid}{path}") as r:
                assert r.status == 200
                ids.append(r.headers["X-Request-Id"])
        return ids

    first, second = gateway(data_dir, scenario)
    proc = run_wapo("logs", cid, data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 6
    assert f"[{second}] [REPORT] END Request: Duration:" in lines[0]
    assert f"[{second}] [INFO] echo GET /two" in lines[1]
    assert f"[{first}] [REPORT] START Request: GET /ipfs/{cid}/one" in lines[-1]
    for line in lines:
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z \[[^\]]+\] \[(REPORT|INFO|WARN|ERROR)\] ", line)

    only = run_wapo("logs", cidv1(cid), "--request-id", first, "--format", "json", data_dir=data_dir)
    assert only.returncode == 0, only.stderr
    records = json.loads(only.stdout)
    assert len(records) == 3 and {r["request_id"] for r in records} == {first}
    paged = run_wapo("logs", cid, "--limit", "2", "--page", "2", data_dir=data_dir)
    assert paged.returncode == 0 and paged.stdout.splitlines() == lines[2:4]
    for bad in (["--page", "0"], ["--limit", "101"]):
        proc = run_wapo("logs", cid, *bad, data_dir=data_dir)
        assert proc.returncode == 2 and proc.stderr.strip()
    malformed = run_wapo("logs", "not-a-cid", data_dir=data_dir)
    assert malformed.returncode == 2


@pytest.mark.parametrize("argv", [
    ["serve"], ["publish"], ["call"], ["secrets"], ["secrets", "set"], ["secrets", "get"], ["logs"],
])
def test_help(argv):
    proc = run_wapo(*argv, "--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
