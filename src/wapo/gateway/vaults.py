"""``POST /vaults`` and ``GET /vaults/<key>/<token>``: an agent's secrets, kept encrypted by the store."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..store import InvalidCID, VaultForbidden, VaultNotFound, VaultUnauthorized, parse_cid
from .context import REQUEST_ID, STORE, error_response

SHAPE = '{"cid": string, "data": object, "inherit"?: parent key, "inheritToken"?: parent token}'
INHERIT_NEEDS_TOKEN = ("inheriting a vault needs its token, the proof that you own it: send "
                       "{\"inherit\": <parent key>, \"inheritToken\": <parent token>} "
                       "(or \"inherit\": {\"key\": ..., \"token\": ...})")


def _inherit_fields(body: dict) -> tuple[str | None, str | None]:
    """``(parent key, parent token)`` of a POST /vaults body; ValueError if they are malformed.

    The spec's ``"inherit": <key>`` takes the token in ``"inheritToken"``; ``"inherit": {"key",
    "token"}`` is the same in one field.
    """
    inherit, token = body.get("inherit"), body.get("inheritToken")
    if isinstance(inherit, dict):
        if token is not None:
            raise ValueError("give the token either in inherit.token or in inheritToken, not both")
        inherit, token = inherit.get("key"), inherit.get("token")
        if not isinstance(inherit, str):
            raise ValueError("inherit.key must be a vault key (string)")
    if inherit is not None and not isinstance(inherit, str):
        raise ValueError("inherit must be a vault key (string) or {\"key\", \"token\"}")
    if token is not None and not isinstance(token, str):
        raise ValueError("inheritToken must be a vault token (string)")
    if token is not None and not inherit:
        raise ValueError("inheritToken without inherit")
    return inherit or None, token


async def create_vault(request: web.Request) -> web.Response:
    request_id, store = request[REQUEST_ID], request.app[STORE]
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return error_response(400, f"the body must be JSON: {SHAPE}", request_id, succeed=False)
    if not isinstance(body, dict) or not isinstance(body.get("cid"), str) or not isinstance(body.get("data"), dict):
        return error_response(400, f"expected {SHAPE}", request_id, succeed=False)
    try:
        inherit, inherit_token = _inherit_fields(body)
    except ValueError as exc:
        return error_response(400, str(exc), request_id, succeed=False)
    try:
        cid = parse_cid(body["cid"]).v0
        key, token = await asyncio.to_thread(store.create_vault, cid, body["data"], inherit, inherit_token)
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request_id, succeed=False)
    except VaultUnauthorized:
        return error_response(403, INHERIT_NEEDS_TOKEN if inherit_token is None else
                              "wrong inheritToken: inheriting a vault needs its own token", request_id,
                              succeed=False)
    except VaultForbidden:
        return error_response(403, "the inherited vault belongs to another CID", request_id, succeed=False)
    except VaultNotFound:
        return error_response(404, "the inherited vault does not exist", request_id, succeed=False)
    except ValueError as exc:
        return error_response(400, str(exc), request_id, succeed=False)
    return web.json_response({"token": token, "key": key, "succeed": True})


async def get_vault(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        vault = await asyncio.to_thread(store.get_vault, request.match_info["key"], request.match_info["token"])
    except VaultNotFound:
        return web.json_response({"succeed": False, "error": "not found"}, status=404)
    return web.json_response({"data": vault["data"], "inherit": vault["inherit"], "succeed": True})
