#!/usr/bin/env python3
"""How to send a batch of log lines to PostgreSQL: client and server CPU per 12-row batch.

    .venv/bin/python bench/pg_log_batch_study.py

INSERT ... SELECT FROM json_array_elements(?) with and without RETURNING id, COPY, and INSERT
from unnest(arrays), on the logs table with its three indexes and without logs_by_request. One
connection, autocommit, synchronous_commit off (as the gateway's writer); server CPU from
/proc/<backend pid>/stat, so run it on the database's machine. A study, not a goal: it prints
figures only (docs/design.md, "The hello gap on PostgreSQL").
"""
import json
import os
import time

import psycopg

url = os.environ.get("WAPO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
conn = psycopg.connect(url, autocommit=True)
schema = "wapo_study_" + os.urandom(4).hex()
conn.execute(f"CREATE SCHEMA {schema}")
conn.execute(f"SET search_path={schema}")
conn.execute("SET synchronous_commit=off")
def mk(idx):
    conn.execute("DROP TABLE IF EXISTS logs")
    conn.execute("CREATE TABLE logs (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, cid TEXT NOT NULL, request_id TEXT NOT NULL, time DOUBLE PRECISION NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL, node TEXT NOT NULL DEFAULT '')")
    conn.execute("CREATE INDEX logs_by_cid ON logs (cid, id)")
    if idx: conn.execute("CREATE INDEX logs_by_request ON logs (cid, request_id, id)")
    conn.execute("CREATE INDEX logs_by_time ON logs (time)")
pid = conn.execute("select pg_backend_pid()").fetchone()[0]
def srv():
    f = open(f"/proc/{pid}/stat").read().split(")")[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def rows(i):
    return [("QmVorxud4LfivoSPNBoDDPhKsHPoLktDnniyFZdm96MuZk", f"req{i}-{j//3}", time.time(), ["START","log","END"][j%3], "Request: GET /ipfs/QmVorxud4LfivoSPNBoDDPhKsHPoLktDnniyFZdm96MuZk", "127.0.0.1:1") for j in range(12)]
def ins_ret(r):
    conn.execute("INSERT INTO logs (cid, request_id, time, level, message, node) SELECT r->>0, r->>1, (r->>2)::float8, r->>3, r->>4, r->>5 FROM json_array_elements(%s::json) r RETURNING id", (json.dumps(r),)).fetchall()
def ins(r):
    conn.execute("INSERT INTO logs (cid, request_id, time, level, message, node) SELECT r->>0, r->>1, (r->>2)::float8, r->>3, r->>4, r->>5 FROM json_array_elements(%s::json) r", (json.dumps(r),))
def copy(r):
    with conn.cursor().copy("COPY logs (cid, request_id, time, level, message, node) FROM STDIN") as cp:
        for row in r: cp.write_row(row)
def unnest(r):
    c = list(zip(*r))
    conn.execute("INSERT INTO logs (cid, request_id, time, level, message, node) SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[], %s::text[], %s::text[])", [list(x) for x in c])
N = 2000
for idx in (True, False):
  for name, f in [("ins_ret", ins_ret), ("ins", ins), ("copy", copy), ("unnest", unnest), ("ins_ret", ins_ret)]:
    mk(idx)
    for i in range(200): f(rows(i))
    c0 = time.process_time(); s0 = srv(); t0 = time.perf_counter()
    for i in range(N): f(rows(i))
    print(f"idx3={idx} {name:8} wall {(time.perf_counter()-t0)/N*1e6:6.0f} us client {(time.process_time()-c0)/N*1e6:5.0f} us server {(srv()-s0)/N*1e6:5.0f} us per 12-row batch")
conn.execute(f"DROP SCHEMA {schema} CASCADE")
