"""``GET /logs/all/ipfs/<cid>``: the console output of an agent's runs, as text or JSON (the same
answer serves an app's logs, ``GET /apps/<id>/logs``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..store import InvalidCID, format_text, parse_cid
from .context import REQUEST_ID, STORE, error_response


async def get_logs(request: web.Request) -> web.Response:
    try:
        cid = parse_cid(request.match_info["cid"]).v0
    except InvalidCID as exc:
        return error_response(400, f"malformed CID: {exc}", request[REQUEST_ID])
    return await logs_answer(request, cid)


async def logs_answer(request: web.Request, key: str) -> web.Response:
    """The logs stored under ``key`` (a CID or an app id), paged as the query asks, text or JSON."""
    request_id, store = request[REQUEST_ID], request.app[STORE]
    q = request.query
    fmt = q.get("format", "text")
    if fmt not in ("text", "json"):
        return error_response(400, "format must be text or json", request_id)
    try:
        page, limit = int(q.get("page", "1")), int(q.get("limit", "100"))
        records = await asyncio.to_thread(store.query_logs, key, q.get("requestId") or None, page, limit)
    except ValueError as exc:
        return error_response(400, f"bad paging: {exc}", request_id)
    if fmt == "json":
        return web.json_response({"logs": [r.as_dict() for r in records], "page": page, "limit": limit})
    return web.Response(text=format_text(records), content_type="text/plain")
