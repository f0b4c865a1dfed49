"""Gateway hardening: vault inheritance needs the parent's token, POST /vaults limits, slow clients.

Real gateways on 127.0.0.1 (``serve`` of test_gateway: make_app under GatewayRunner), real SQLite,
raw sockets where the point is what a misbehaving client does; nothing of the project is mocked.
"""

from __future__ import annotations

import json

from test_gateway import ECHO, RID, Client, publish, serve, store  # noqa: F401  (the store fixture)

# --- vault inheritance: the parent's token is the proof of ownership ---------------------------


def test_inheriting_a_vault_without_its_token_is_refused(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        owner = (await c.json("POST", "/vaults", json={"cid": cid, "data": {"apiKey": "owner-secret"}}))[2]
        # the attack: the parent's key is public (it travels in URLs), the token is not
        no_token = await c.json("POST", "/vaults", json={"cid": cid, "data": {"mine": 1}, "inherit": owner["key"]})
        wrong = await c.json("POST", "/vaults", json={"cid": cid, "data": {"mine": 1}, "inherit": owner["key"],
                                                     "inheritToken": "0" * 16})
        wrong_obj = await c.json("POST", "/vaults", json={"cid": cid, "data": {},
                                                         "inherit": {"key": owner["key"], "token": "1" * 16}})
        count_after_attacks = store._conn().execute("SELECT COUNT(*) FROM vaults").fetchone()[0]
        # the owner, with the token, in either form
        child = (await c.json("POST", "/vaults", json={"cid": cid, "data": {"region": "eu"}, "inherit": owner["key"],
                                                      "inheritToken": owner["token"]}))
        child2 = (await c.json("POST", "/vaults", json={"cid": cid, "data": {"region": "us"},
                                                       "inherit": {"key": owner["key"], "token": owner["token"]}}))
        seen = (await c.json("GET", f"/ipfs/{cid}?key={child[2]['key']}"))[2]["secret"]
        seen2 = (await c.json("GET", f"/ipfs/{cid}?key={child2[2]['key']}"))[2]["secret"]
        both = await c.json("POST", "/vaults", json={"cid": cid, "data": {}, "inheritToken": owner["token"],
                                                    "inherit": {"key": owner["key"], "token": owner["token"]}})
        token_alone = await c.json("POST", "/vaults", json={"cid": cid, "data": {}, "inheritToken": owner["token"]})
        return no_token, wrong, wrong_obj, count_after_attacks, child, child2, seen, seen2, both, token_alone

    no_token, wrong, wrong_obj, count, child, child2, seen, seen2, both, token_alone = serve(tmp_path, scenario, store)
    for status, headers, body in (no_token, wrong, wrong_obj):
        assert status == 403, body
        assert body["succeed"] is False and body["requestId"] == headers[RID]
        assert "owner-secret" not in json.dumps(body)
    assert "inheritToken" in no_token[2]["error"], "the error says what is needed"
    assert "token" in wrong[2]["error"]
    assert count == 1, "no vault was created by the refused requests"
    assert child[0] == 200 and child2[0] == 200
    assert seen == {"apiKey": "owner-secret", "region": "eu"}
    assert seen2 == {"apiKey": "owner-secret", "region": "us"}
    assert both[0] == 400 and token_alone[0] == 400


def test_cli_inherit_needs_the_token(tmp_path, wapo_cli):
    from wapo.store import Store
    data_dir = tmp_path / "data"
    with Store(data_dir) as s:
        cid = s.put_code(ECHO.encode())
        parent, parent_token = s.create_vault(cid, {"apiKey": "owner-secret"})
    missing = wapo_cli("secrets", "set", cid, "x=1", "--inherit", parent)
    assert missing.returncode == 2 and b"--inherit-token" in missing.stderr
    wrong = wapo_cli("secrets", "set", cid, "x=1", "--inherit", parent, "--inherit-token", "0" * 16)
    assert wrong.returncode == 1 and b"token" in wrong.stderr
    ok = wapo_cli("secrets", "set", cid, "x=1", "--inherit", parent, "--inherit-token", parent_token)
    assert ok.returncode == 0, ok.stderr
    child = json.loads(ok.stdout)
    with Store(data_dir) as s:
        assert s.secrets_for(cid, child["key"]) == {"apiKey": "owner-secret", "x": "1"}
        assert s._conn().execute("SELECT COUNT(*) FROM vaults").fetchone()[0] == 2


# --- POST /vaults: size, rate, existing code, depth, JSON errors -------------------------------


def _post_vault(c: Client, body: bytes, **headers: str):
    return c.request("POST", "/vaults", data=body, headers={"Content-Type": "application/json", **headers})


def assert_json_error(answer, status: int) -> dict:
    got, headers, raw = answer
    assert got == status, (got, raw[:300])
    assert headers["Content-Type"].startswith("application/json"), headers.get("Content-Type")
    body = json.loads(raw)
    assert body["requestId"] == headers[RID] and body["error"]
    return body


def test_vault_body_size_is_capped(tmp_path, store):
    cid = publish(store, ECHO)
    big = json.dumps({"cid": cid, "data": {"pad": "p" * 2_000_000}}).encode()  # ~2 MB: under max_request_body
    medium = json.dumps({"cid": cid, "data": {"pad": "p" * 70_000}}).encode()  # over the 64 KiB default

    async def chunks(data: bytes):
        for i in range(0, len(data), 16384):
            yield data[i:i + 16384]

    async def scenario(c: Client):
        return [await _post_vault(c, big), await _post_vault(c, medium),
                await c.request("POST", "/vaults", data=chunks(medium),  # chunked: no Content-Length
                                headers={"Content-Type": "application/json"}),
                await _post_vault(c, json.dumps({"cid": cid, "data": {"pad": "p" * 1000}}).encode())]

    *refused, ok = serve(tmp_path, scenario, store)
    for answer in refused:
        body = assert_json_error(answer, 413)
        assert "max_vault_size" in body["error"] and body["succeed"] is False
    assert ok[0] == 200
    assert store._conn().execute("SELECT COUNT(*) FROM vaults").fetchone()[0] == 1


def test_vault_creation_is_rate_limited_per_client(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        body = json.dumps({"cid": cid, "data": {"k": "v"}}).encode()
        return [await _post_vault(c, body) for _ in range(7)]

    answers = serve(tmp_path, scenario, store, vault_rate_limit=5)
    assert [s for s, _, _ in answers[:5]] == [200] * 5, "a burst as large as the rate passes"
    for answer in answers[5:]:
        assert_json_error(answer, 429)
        assert 1 <= int(answer[1]["Retry-After"]) <= 13  # one token comes back every 12 s at 5/min
    assert store._conn().execute("SELECT COUNT(*) FROM vaults").fetchone()[0] == 5


def test_vault_needs_code_on_this_gateway(tmp_path, store):
    from wapo.store import compute_cid, cidv1
    unknown = compute_cid(b"nobody published this")

    async def scenario(c: Client):
        return [await _post_vault(c, json.dumps({"cid": cid, "data": {"k": "v"}}).encode())
                for cid in (unknown, cidv1(unknown))]

    for answer in serve(tmp_path, scenario, store):
        body = assert_json_error(answer, 404)
        assert "wapo publish" in body["error"]
    assert store._conn().execute("SELECT COUNT(*) FROM vaults").fetchone()[0] == 0


def test_deeply_nested_vault_bodies_are_a_400(tmp_path, store):
    cid = publish(store, ECHO)
    very_deep = b"[" * 400_000 + b"]" * 400_000  # RecursionError in json.loads
    deep_in_limit = b"[" * 20_000 + b"]" * 20_000
    nested = {"x": 1}
    for _ in range(200):
        nested = {"n": nested}
    deep_data = json.dumps({"cid": cid, "data": nested}).encode()

    async def scenario(c: Client):
        return [await _post_vault(c, b) for b in (very_deep, deep_in_limit, deep_data)]

    answers = serve(tmp_path, scenario, store, max_vault_size=1_000_000)
    for answer in answers:
        assert assert_json_error(answer, 400)["succeed"] is False


def test_vault_route_errors_are_json(tmp_path, store):
    async def scenario(c: Client):
        return [await c.request("DELETE", "/vaults"), await c.get("/vaults"),
                await c.request("PUT", "/vaults/0123456789abcdef/0123456789abcdef"),
                await _post_vault(c, b"{"), await c.get("/no/such/route")]

    delete, get, put, bad, nowhere = serve(tmp_path, scenario, store)
    for answer in (delete, get, put):
        assert_json_error(answer, 405)
    assert "POST" in delete[1]["Allow"]
    assert_json_error(bad, 400)
    assert_json_error(nowhere, 404)


def test_unparseable_request_answers_json(tmp_path, store):
    import asyncio

    async def scenario(c: Client):
        port = int(c.base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /vaults HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), 30)
        writer.close()
        return data

    raw = serve(tmp_path, scenario, store)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert b"application/json" in head.lower()
    assert json.loads(body)["error"]


def test_vault_settings_from_the_config_file_and_flags(tmp_path):
    import argparse

    from wapo.cli import serve_cmd
    from wapo.gateway.config import GatewayConfig, load_config
    config = tmp_path / "wapo.toml"
    config.write_text('max_vault_size = "32KiB"\nvault_rate_limit = "1/s"\n')
    loaded = load_config(config)
    assert (loaded.max_vault_size, loaded.vault_rate_limit) == (32 * 1024, 60.0)
    assert (GatewayConfig().max_vault_size, GatewayConfig().vault_rate_limit) == (64 * 1024, 30.0)
    parser = argparse.ArgumentParser()
    serve_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--config", str(config), "--max-vault-size", "1KiB",
                              "--vault-rate-limit", "0", "--data-dir", str(tmp_path / "d")])
    flagged = serve_cmd.config_from(args)
    assert (flagged.max_vault_size, flagged.vault_rate_limit) == (1024, 0.0)


# --- slow and idle clients: raw sockets against a real gateway -----------------------------------

import asyncio  # noqa: E402
import time  # noqa: E402

from wapo.gateway.server import BODY_RATE_WINDOW  # noqa: E402


def _port(c: Client) -> int:
    return int(c.base.rsplit(":", 1)[1])


async def _read_until_closed(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (bounded by ``timeout``), and when it closed."""
    started, data = time.monotonic(), b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), max(0.01, timeout - (time.monotonic() - started)))
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


async def _request(reader, writer, path: str = "/healthz") -> bytes:
    """One keep-alive GET on an open connection; the whole answer (its body has a Content-Length)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    return head + await asyncio.wait_for(reader.readexactly(length), 30)


def test_header_timeout_closes_silent_and_trickling_connections(tmp_path, store):
    async def trickle(writer, stop):
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":  # never ends its headers
            if stop.is_set():
                return
            writer.write(bytes([byte]))
            await asyncio.sleep(0.2)

    async def scenario(c: Client):
        silent_r, silent_w = await asyncio.open_connection("127.0.0.1", _port(c))
        slow_r, slow_w = await asyncio.open_connection("127.0.0.1", _port(c))
        stop = asyncio.Event()
        task = asyncio.create_task(trickle(slow_w, stop))
        silent, slow = await asyncio.gather(_read_until_closed(silent_r, 20), _read_until_closed(slow_r, 20))
        stop.set()
        await task
        ok_r, ok_w = await asyncio.open_connection("127.0.0.1", _port(c))
        ok = await _request(ok_r, ok_w)
        for w in (silent_w, slow_w, ok_w):
            w.close()
        return silent, slow, ok

    (silent, silent_t), (slow, slow_t), ok = serve(tmp_path, scenario, store, header_timeout=1.0)
    assert silent == b"" and 0.5 <= silent_t < 5, (silent, silent_t)
    assert slow.startswith(b"HTTP/1.1 408 ") and 0.5 <= slow_t < 5, (slow[:200], slow_t)
    body = json.loads(slow.partition(b"\r\n\r\n")[2])
    assert "header_timeout" in body["error"] and body["requestId"]
    assert ok.startswith(b"HTTP/1.1 200 "), "a prompt client is served"


def test_header_timeout_counts_from_a_later_requests_first_byte(tmp_path, store):
    async def scenario(c: Client):
        r, w = await asyncio.open_connection("127.0.0.1", _port(c))
        first = await _request(r, w)
        await asyncio.sleep(1.5)  # idle, within keepalive_timeout
        w.write(b"GET /healthz HTTP/1.1\r\n")  # then a request that never ends its headers
        await w.drain()
        rest = await _read_until_closed(r, 20)
        w.close()
        return first, rest

    first, (rest, elapsed) = serve(tmp_path, scenario, store, header_timeout=1.0, keepalive_timeout=30.0)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 408 ") and 0.5 <= elapsed < 5, (rest[:100], elapsed)


def test_keepalive_timeout_closes_idle_connections(tmp_path, store):
    async def scenario(c: Client):
        r, w = await asyncio.open_connection("127.0.0.1", _port(c))
        answers = [await _request(r, w), await _request(r, w)]  # kept alive between them
        rest = await _read_until_closed(r, 20)
        w.close()
        return answers, rest

    answers, (rest, elapsed) = serve(tmp_path, scenario, store, keepalive_timeout=1.0, header_timeout=30.0)
    assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers)
    assert rest == b"" and 0.5 <= elapsed < 5, (rest, elapsed)


def test_min_body_rate_cuts_a_trickling_body(tmp_path, store):
    cid = publish(store, ECHO)

    async def scenario(c: Client):
        r, w = await asyncio.open_connection("127.0.0.1", _port(c))
        w.write(f"POST /ipfs/{cid}/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode())
        started = time.monotonic()

        async def trickle():
            try:
                while time.monotonic() - started < 30:
                    w.write(b"x" * 20)  # 100 bytes a second, under 1000
                    await asyncio.sleep(0.2)
            except (ConnectionError, RuntimeError):
                pass

        task = asyncio.create_task(trickle())
        cut = await _read_until_closed(r, 30)
        task.cancel()
        w.close()
        # a prompt body of the same size is fine
        r2, w2 = await asyncio.open_connection("127.0.0.1", _port(c))
        w2.write(f"POST /ipfs/{cid}/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n"
                 .encode() + b"y" * 100000)
        fine = await _read_until_closed(r2, 60)
        w2.close()
        return cut, fine

    (cut, elapsed), (fine, _) = serve(tmp_path, scenario, store, min_body_rate=1000)
    assert cut.startswith(b"HTTP/1.1 408 "), cut[:200]
    assert "min_body_rate" in json.loads(cut.partition(b"\r\n\r\n")[2])["error"]
    assert BODY_RATE_WINDOW - 0.5 <= elapsed < BODY_RATE_WINDOW + 5, elapsed
    assert fine.startswith(b"HTTP/1.1 200 "), fine[:200]


def test_connections_over_the_cap_are_refused_at_once(tmp_path, store):
    async def scenario(c: Client):
        conns = [await asyncio.open_connection("127.0.0.1", _port(c)) for _ in range(3)]
        first = await _request(*conns[0])
        extra_r, extra_w = await asyncio.open_connection("127.0.0.1", _port(c))
        refused = await _read_until_closed(extra_r, 10)
        extra_w.close()
        still = [await _request(r, w) for r, w in conns]  # the existing ones keep working
        conns[2][1].close()
        await asyncio.sleep(0.3)
        again_r, again_w = await asyncio.open_connection("127.0.0.1", _port(c))
        again = await _request(again_r, again_w)
        for _, w in conns[:2] + [(again_r, again_w)]:
            w.close()
        return first, refused, still, again

    first, (refused, elapsed), still, again = serve(tmp_path, scenario, store, max_connections=3)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert elapsed < 2, "closed at once"
    assert refused == b"" or refused.startswith(b"HTTP/1.1 503 "), refused[:200]
    if refused:
        assert "max_connections" in json.loads(refused.partition(b"\r\n\r\n")[2])["error"]
    assert all(a.startswith(b"HTTP/1.1 200 ") for a in still)
    assert again.startswith(b"HTTP/1.1 200 "), "a slot freed is a slot usable"


def test_connection_settings_from_the_config_file_and_flags(tmp_path):
    import argparse

    from wapo.cli import serve_cmd
    from wapo.gateway.config import GatewayConfig, load_config
    config = tmp_path / "wapo.toml"
    config.write_text('header_timeout = "5s"\nkeepalive_timeout = "20s"\nmin_body_rate = "2KiB"\n'
                      'max_connections = 50\n')
    loaded = load_config(config)
    assert (loaded.header_timeout, loaded.keepalive_timeout, loaded.min_body_rate, loaded.max_connections) == \
        (5.0, 20.0, 2048, 50)
    d = GatewayConfig()
    assert (d.header_timeout, d.keepalive_timeout, d.min_body_rate, d.max_connections) == (10.0, 30.0, 1024, 1000)
    parser = argparse.ArgumentParser()
    serve_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--config", str(config), "--header-timeout", "2s", "--keepalive-timeout",
                              "3s", "--min-body-rate", "100", "--max-connections", "7",
                              "--data-dir", str(tmp_path / "d")])
    flagged = serve_cmd.config_from(args)
    assert (flagged.header_timeout, flagged.keepalive_timeout, flagged.min_body_rate, flagged.max_connections) == \
        (2.0, 3.0, 100, 7)
