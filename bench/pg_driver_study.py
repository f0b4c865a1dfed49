#!/usr/bin/env python3
"""Driver study for the PostgreSQL store (docs/design.md, "A shared PostgreSQL store"): one vault read
(a row by key) from an event loop, 16 at a time, through psycopg 3 (sync pool + to_thread, as the
store does; and its async pool) and asyncpg. Needs `pip install asyncpg` (not a dependency) and
PostgreSQL at 127.0.0.1 with a schema drv14: `psql -c "create schema drv14"`, dropped by hand after."""
import asyncio, os, time, json, statistics
import asyncpg, psycopg
from psycopg_pool import ConnectionPool, AsyncConnectionPool
BASE="postgresql://postgres@127.0.0.1:5432/test"
URL=BASE+"?options=-csearch_path%3Ddrv14"
N=3000; C=16
def setup():
    with psycopg.connect(URL, autocommit=True) as c:
        c.execute("create table vaults (key text primary key, cid text, merged bytea, token_hash bytea)")
        c.execute("insert into vaults values ('k', 'c', %s, %s)", (os.urandom(200), os.urandom(32)))
async def run(label, one):
    for _ in range(100): await one()
    t=time.perf_counter(); p=time.process_time()
    async def w():
        for _ in range(N//C): await one()
    await asyncio.gather(*(w() for _ in range(C)))
    n=(N//C)*C
    return label, n/(time.perf_counter()-t), (time.process_time()-p)/n*1e6
async def main():
    res=[]
    for rnd in range(2):
        pool=ConnectionPool(URL, min_size=4, max_size=10, kwargs={"autocommit": True}); pool.wait()
        def read():
            with pool.connection() as c:
                return c.execute("select cid, merged, token_hash from vaults where key=%s", ("k",)).fetchone()
        res.append(await run("psycopg sync pool + to_thread", lambda: asyncio.to_thread(read)))
        pool.close()
        apool=AsyncConnectionPool(URL, min_size=4, max_size=10, kwargs={"autocommit": True}, open=False); await apool.open(); await apool.wait()
        async def aread():
            async with apool.connection() as c:
                cur=await c.execute("select cid, merged, token_hash from vaults where key=%s", ("k",))
                return await cur.fetchone()
        res.append(await run("psycopg async pool", aread))
        await apool.close()
        ap=await asyncpg.create_pool(BASE, min_size=4, max_size=10, server_settings={"search_path": "drv14"})
        async def asread():
            return await ap.fetchrow("select cid, merged, token_hash from vaults where key=$1", "k")
        res.append(await run("asyncpg pool", asread))
        await ap.close()
    for label, rps, cpu in res:
        print(f"{label:<32} {rps:8.0f} reads/s  {cpu:6.0f} us CPU of this process per read")
setup()
asyncio.run(main())
