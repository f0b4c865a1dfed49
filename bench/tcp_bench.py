#!/usr/bin/env python3
"""TCP throughput guest <-> host over loopback, through the tcp_echo guest (tests/guests/tcp_echo.wat).

    .venv/bin/python bench/tcp_bench.py [--mib 64] [--connections 1] [--repeats 3]

Python clients connect to the guest on 127.0.0.1, each sends MIB MiB (1 MiB writes) while
reading the echo back; the figure is payload MB/s (10^6 bytes per second, one direction) from
the first connect to the last byte echoed, median over the repeats. Every byte crosses the ABI
twice (poll_read into the guest, poll_write out of it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
from pathlib import Path

from wapo.host import GuestModule, Instance, Limits
from wapo.host.net.policy import NetworkPolicy

GUEST = Path(__file__).resolve().parent.parent / "tests" / "guests" / "tcp_echo.wat"


async def client(port: int, payload: bytes) -> int:
    for _ in range(250):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.02)
    else:
        raise RuntimeError("the guest did not listen")

    async def send() -> None:
        view = memoryview(payload)
        for k in range(0, len(payload), 1 << 20):
            writer.write(view[k:k + (1 << 20)])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    got = 0
    while chunk := await reader.read(1 << 20):
        got += len(chunk)
    await sender
    writer.close()
    return got


async def once(module: GuestModule, mib: int, connections: int) -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = Instance(module, args=[f"127.0.0.1:{port}", str(connections)], limits=Limits(time=300),
                        network=NetworkPolicy(listen_ports=(port, port)))
    running = asyncio.create_task(instance.run())
    payload = os.urandom(1 << 20) * mib
    started = time.perf_counter()
    got = await asyncio.gather(*(client(port, payload) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    result = await running
    if result.error is not None or got != [len(payload)] * connections:
        raise RuntimeError(f"echo failed: {result.error and result.error.describe()} {got}")
    return len(payload) * connections / elapsed / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    module = GuestModule(GUEST.read_bytes(), name=GUEST.name)
    rates = [asyncio.run(once(module, args.mib, args.connections)) for _ in range(args.repeats)]
    print(f"tcp echo through the guest, {args.connections} connection(s) x {args.mib} MiB: "
          f"median {statistics.median(rates):.0f} MB/s (runs: {', '.join(f'{r:.0f}' for r in rates)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
