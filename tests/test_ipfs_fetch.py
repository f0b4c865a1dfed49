"""Code fetched from the configured IPFS gateways: every failure of one gateway moves on to the next.

The "gateways" are real aiohttp servers on 127.0.0.1, each failing in its own way.
"""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from wapo.gateway.app import make_app
from wapo.gateway.config import GatewayConfig
from wapo.gateway.ipfs import CodeNotFound, fetch_from_gateways
from wapo.gateway.server import GatewayRunner
from wapo.store import Store, compute_cid

CODE = b"""\
async function main(request) {
  return JSON.stringify({status: 200, headers: {}, body: "from the second gateway"});
}
"""
CID = compute_cid(CODE)
MAX_SIZE = 64 * 1024
TIMEOUT = 1.0


async def oversize_with_length(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * (MAX_SIZE + 1))


async def oversize_streamed(request: web.Request) -> web.StreamResponse:
    # no Content-Length: the limit must be found while reading
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for _ in range(8):
        await response.write(b"y" * (16 * 1024))
    await response.write_eof()
    return response


async def bad_status(request: web.Request) -> web.Response:
    return web.Response(status=502, text="upstream down")


async def not_found(request: web.Request) -> web.Response:
    return web.Response(status=404)


async def mismatch(request: web.Request) -> web.Response:
    return web.Response(body=CODE.replace(b"second", b"FORGED!"))


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(TIMEOUT * 5)
    return web.Response(body=CODE)


async def good(request: web.Request) -> web.Response:
    if request.match_info["cid"] != CID:
        return web.Response(status=404)
    return web.Response(body=CODE)


HANDLERS = {"oversize": oversize_with_length, "oversize-streamed": oversize_streamed, "status": bad_status,
            "404": not_found, "mismatch": mismatch, "timeout": slow, "good": good}
REASONS = {"oversize": f"content larger than {MAX_SIZE} bytes", "oversize-streamed": f"content larger than {MAX_SIZE}",
           "status": "HTTP 502", "404": "HTTP 404", "mismatch": "does not match the CID",
           "timeout": f"no answer within {TIMEOUT:g} s", "refused": "ClientConnectorError"}


def refused_url() -> str:
    """A port on 127.0.0.1 where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


class Gateways:
    """One local server per kind, each counting the requests it got."""

    def __init__(self, kinds: list[str]) -> None:
        self.kinds = kinds
        self.hits = {kind: 0 for kind in kinds}
        self.urls: list[str] = []
        self._runners: list[web.AppRunner] = []

    async def __aenter__(self) -> "Gateways":
        for kind in self.kinds:
            if kind == "refused":
                self.urls.append(refused_url())
                continue
            handler = HANDLERS[kind]

            async def counted(request, handler=handler, kind=kind):
                self.hits[kind] += 1
                return await handler(request)

            app = web.Application()
            app.router.add_get("/ipfs/{cid}", counted)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self._runners.append(runner)
            self.urls.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        return self

    async def __aexit__(self, *exc) -> None:
        for runner in self._runners:
            await runner.cleanup()


def fetch(kinds: list[str]) -> tuple[bytes | CodeNotFound, Gateways]:
    async def main():
        async with Gateways(kinds) as gateways:
            try:
                return await fetch_from_gateways(CID, tuple(gateways.urls), max_size=MAX_SIZE,
                                                 timeout=TIMEOUT), gateways
            except CodeNotFound as exc:
                return exc, gateways
    return asyncio.run(main())


def test_oversize_first_gateway_then_the_second_one_answers():
    body, gateways = fetch(["oversize", "good"])
    assert body == CODE
    assert gateways.hits == {"oversize": 1, "good": 1}


@pytest.mark.parametrize("first", ["oversize-streamed", "status", "404", "mismatch", "timeout", "refused"])
def test_every_kind_of_failure_moves_on_to_the_next_gateway(first):
    body, gateways = fetch([first, "good"])
    assert body == CODE, body
    assert gateways.hits["good"] == 1


def test_all_failing_says_what_each_gateway_answered():
    kinds = ["oversize", "oversize-streamed", "status", "mismatch", "timeout", "refused", "404"]
    error, gateways = fetch(kinds)
    assert isinstance(error, CodeNotFound)
    message = str(error)
    parts = message.split("; ")
    assert len(parts) == len(kinds), message
    for kind, url, part in zip(kinds, gateways.urls, parts):
        assert part.startswith(url + ": ") and REASONS[kind] in part, (kind, part)
    assert all(gateways.hits[k] == 1 for k in kinds if k != "refused")


def test_through_the_gateway_http_api(tmp_path):
    """/ipfs/<cid> with an oversize first gateway: the second one's code runs (and is stored)."""
    store = Store(tmp_path / "data")
    missing = compute_cid(b"nowhere")

    async def main():
        async with Gateways(["oversize", "good"]) as gateways:
            app = make_app(GatewayConfig(data_dir=tmp_path / "data", ipfs_gateways=tuple(gateways.urls),
                                         ipfs_timeout=TIMEOUT * 10, max_code_size=MAX_SIZE), store)
            runner = GatewayRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                    async with session.get(f"{base}/ipfs/{CID}") as r:
                        ok = r.status, await r.text()
                    async with session.get(f"{base}/ipfs/{missing}") as r:
                        nowhere = r.status, await r.text()
                return ok, nowhere, gateways
            finally:
                await runner.cleanup()

    try:
        ok, nowhere, gateways = asyncio.run(main())
        assert ok == (200, "from the second gateway")
        assert store.get_code(CID) == CODE
        status, text = nowhere
        assert status == 404
        # the good gateway has only CID: for another one, both answers are told
        assert f"{gateways.urls[0]}: content larger than {MAX_SIZE} bytes" in text, text
        assert f"{gateways.urls[1]}: HTTP 404" in text, text
    finally:
        store.close()
