"""Fetching code that is not in the local store from IPFS HTTP gateways, verified against its CID."""

from __future__ import annotations

import aiohttp

from ..store import CidBuilder, parse_cid


class CodeNotFound(LookupError):
    """No configured source has content for the CID (or none matched it)."""


async def fetch_from_gateways(cid: str, gateways: tuple[str, ...], *, max_size: int, timeout: float) -> bytes:
    """Try each gateway in turn; return bytes only if they hash to ``cid`` (the reference did not check)."""
    wanted = parse_cid(cid)
    reasons = []
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        for base in gateways:
            url = f"{base.rstrip('/')}/ipfs/{wanted.v0}"
            try:
                async with session.get(url) as response:
                    if response.status != 200:
                        reasons.append(f"{base}: HTTP {response.status}")
                        continue
                    builder = CidBuilder()
                    body = bytearray()
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        body += chunk
                        builder.update(chunk)
                        if len(body) > max_size:
                            raise CodeNotFound(f"{base}: content larger than {max_size} bytes")
                    if builder.finish().v0 != wanted.v0:
                        reasons.append(f"{base}: content does not match the CID (rejected)")
                        continue
                    return bytes(body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                reasons.append(f"{base}: {type(exc).__name__}: {exc}")
    raise CodeNotFound("; ".join(reasons) or "no IPFS gateway is configured")
