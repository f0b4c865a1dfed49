"""``POST /vaults`` and ``GET /vaults/<key>/<token>``: an agent's secrets, kept encrypted by the store.

``POST /vaults`` is open to anyone, so it is bounded: a rate per client address
(``vault_rate_limit``, 429 with Retry-After), a body size (``max_vault_size``,
413), a nesting depth (400), and only for code this gateway holds (404).
Every answer is JSON.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from ..store import InvalidCID, VaultForbidden, VaultNotFound, VaultUnauthorized, parse_cid
from .context import CONFIG, REQUEST_ID, STORE, VAULT_RATE, error_response, read_body
from .ratelimit import RateLimiter

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


MAX_DEPTH = 64  # nesting of a vault's data: deep enough for any real configuration


def _too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """True if ``value`` nests objects/arrays more than ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


async def create_vault(request: web.Request) -> web.Response:
    request_id, store, config = request[REQUEST_ID], request.app[STORE], request.app[CONFIG]

    def fail(status: int, message: str, **headers: str) -> web.Response:
        response = error_response(status, message, request_id, succeed=False)
        response.headers.update(headers)
        return response

    wait = await asyncio.to_thread(request.app[VAULT_RATE].take, request.remote or "")  # a file's transaction
    if wait:
        return fail(429, f"too many vaults created from your address: at most {config.vault_rate_limit:g} a minute",
                    **{"Retry-After": RateLimiter.retry_after(wait)})
    limit = min(config.max_vault_size, config.max_request_body)
    too_large = f"a vault request is at most {limit} bytes (max_vault_size)"
    if request.content_length is not None and request.content_length > limit:
        return fail(413, too_large)
    try:
        raw = await read_body(request, limit)
    except web.HTTPRequestEntityTooLarge:
        return fail(413, too_large)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return fail(400, f"the body must be JSON: {SHAPE}")
    except RecursionError:
        return fail(400, f"the body is nested too deeply (at most {MAX_DEPTH} levels)")
    if not isinstance(body, dict) or not isinstance(body.get("cid"), str) or not isinstance(body.get("data"), dict):
        return fail(400, f"expected {SHAPE}")
    if _too_deep(body["data"]):
        return fail(400, f"the data is nested too deeply (at most {MAX_DEPTH} levels)")
    try:
        inherit, inherit_token = _inherit_fields(body)
    except ValueError as exc:
        return fail(400, str(exc))
    try:
        cid = parse_cid(body["cid"]).v0
    except InvalidCID as exc:
        return fail(400, f"malformed CID: {exc}")
    if not await asyncio.to_thread(store.has_code, cid):
        return fail(404, f"no code with CID {cid} on this gateway: store it first (`wapo publish FILE`), "
                         "then create its vault")
    try:
        key, token = await asyncio.to_thread(store.create_vault, cid, body["data"], inherit, inherit_token)
    except VaultUnauthorized:
        return fail(403, INHERIT_NEEDS_TOKEN if inherit_token is None else
                    "wrong inheritToken: inheriting a vault needs its own token")
    except VaultForbidden:
        return fail(403, "the inherited vault belongs to another CID")
    except VaultNotFound:
        return fail(404, "the inherited vault does not exist")
    except ValueError as exc:
        return fail(400, str(exc))
    return web.json_response({"token": token, "key": key, "succeed": True})


async def get_vault(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        vault = await asyncio.to_thread(store.get_vault, request.match_info["key"], request.match_info["token"])
    except VaultNotFound:
        return web.json_response({"succeed": False, "error": "not found"}, status=404)
    return web.json_response({"data": vault["data"], "inherit": vault["inherit"], "succeed": True})
