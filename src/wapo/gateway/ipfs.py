"""Fetching code that is not in the local store from IPFS HTTP gateways, verified against its CID."""

from __future__ import annotations

import asyncio

import aiohttp

from ..store import CidBuilder, parse_cid


class CodeNotFound(LookupError):
    """No configured source has content for the CID (or none matched it)."""


async def fetch_from_gateways(cid: str, gateways: tuple[str, ...], *, max_size: int, timeout: float) -> bytes:
    """Try each gateway in turn; return bytes only if they hash to ``cid`` (the reference did not check).

    Any failure of one gateway (an error status, content over ``max_size``, content that does not
    match the CID, a timeout, a refused connection, ...) moves on to the next; if none has it,
    ``CodeNotFound`` says what each one answered.
    """
    wanted = parse_cid(cid)
    reasons = []
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        for base in gateways:
            try:
                body = await _fetch_one(session, base, wanted.v0, max_size)
            except _GatewayFailed as exc:
                reasons.append(f"{base}: {exc}")
                continue
            except (TimeoutError, asyncio.TimeoutError):
                reasons.append(f"{base}: no answer within {timeout:g} s")
                continue
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                reasons.append(f"{base}: {type(exc).__name__}" + (f": {exc}" if str(exc) else ""))
                continue
            return body
    raise CodeNotFound("; ".join(reasons) or "no IPFS gateway is configured")


class _GatewayFailed(Exception):
    """This gateway's answer is unusable (the message says why); the next one is tried."""


async def _fetch_one(session: aiohttp.ClientSession, base: str, cid_v0: str, max_size: int) -> bytes:
    async with session.get(f"{base.rstrip('/')}/ipfs/{cid_v0}") as response:
        if response.status != 200:
            raise _GatewayFailed(f"HTTP {response.status}")
        if response.content_length is not None and response.content_length > max_size:
            raise _GatewayFailed(f"content larger than {max_size} bytes ({response.content_length})")
        builder = CidBuilder()
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > max_size:
                raise _GatewayFailed(f"content larger than {max_size} bytes")
            builder.update(chunk)
        if builder.finish().v0 != cid_v0:
            raise _GatewayFailed("content does not match the CID (rejected)")
        return bytes(body)
