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
