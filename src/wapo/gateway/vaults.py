"""``POST /vaults`` and ``GET /vaults/<key>/<token>``: an agent's secrets, kept encrypted by the store."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..store import InvalidCID, VaultForbidden, VaultNotFound, parse_cid
from .context import REQUEST_ID, STORE, error_response


async def create_vault(request: web.Request) -> web.Response:
    request_id, store = request[REQUEST_ID], request.app[STORE]
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return error_response(400, "the body must be JSON: {\"cid\": ..., \"data\": {...}, \"inherit\"?: key}",
                              request_id, succeed=False)
    if not isinstance(body, dict) or not isinstance(body.get("cid"), str) or not isinstance(body.get("data"), dict):
        return error_response(400, "expected {\"cid\": string, \"data\": object, \"inherit\"?: key}", request_id,
                              succeed=False)
    inherit = body.get("inherit")
    if inherit is not None and not isinstance(inherit, str):
        return error_response(400, "inherit must be a vault key (string)", request_id, succeed=False)
    try:
        cid = parse_cid(body["cid"]).v0
        key, token = await asyncio.to_thread(store.create_vault, cid, body["data"], inherit or None)
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request_id, succeed=False)
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
