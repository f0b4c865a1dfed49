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
