#!/usr/bin/env python3
"""SCALE encode speed inside the WapoJS guest, against JSON.stringify of the same object.

    .venv/bin/python bench/scale_bench.py [--n 10000] [--repeats 5]

Both loops run in the same sandbox, timed with performance.now(): N encodes of a
10-field struct with `SCALE.encode` versus N `JSON.stringify` calls on the same
object (its 64/128-bit fields given as safe-integer numbers so that JSON can
serialise them). The figure is the median over the repeats of the ratio
SCALE time / JSON time; the target of the issue is below 10.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from wapo.host import Limits
from wapo.js.runner import run_js

TYPES = """
Transfer = {
  id: #u32,
  nonce: #u64,
  amount: #u128,
  fee: @#u128,
  tip: #u16,
  kind: <Plain|Batch:#u8|Scheduled:#u32>,
  ok: #bool,
  memo: #str,
  dest: AccountId32,
  era: Option<#u32>,
}
"""

SCRIPT = r"""
const [typesText, nText, repeatsText] = scriptArgs;
const N = Number(nText), R = Number(repeatsText);
const reg = SCALE.parseTypes(typesText);
const dest = '0x' + 'ab'.repeat(32);
const value = {
  id: 7, nonce: 123456789, amount: 1000000000000, fee: 5000, tip: 3,
  kind: {Batch: 2}, ok: true, memo: 'payment for invoice 42', dest, era: 64,
};
const codec = SCALE.codec('Transfer', reg);
let sink = 0;
function timeScale() {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) sink += SCALE.encode(value, 'Transfer', reg).length;
  return performance.now() - t0;
}
function timeCodec() {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) sink += codec.encode(value).length;
  return performance.now() - t0;
}
function timeJson() {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) sink += JSON.stringify(value).length;
  return performance.now() - t0;
}
timeScale(); timeJson(); timeCodec();  // warm-up
const rows = [];
for (let r = 0; r < R; r++) rows.push({scale: timeScale(), codec: timeCodec(), json: timeJson()});
scriptOutput = JSON.stringify({rows, bytes: SCALE.encode(value, 'Transfer', reg).length,
                               jsonChars: JSON.stringify(value).length, sink});
"""


def measure(n: int = 10_000, repeats: int = 5) -> dict:
    r = run_js(SCRIPT, [TYPES, str(n), str(repeats)], limits=Limits(burst=60.0, time=120.0), module=False)
    if r.error:
        raise RuntimeError(r.error)
    data = json.loads(r.output)
    rows = data["rows"]
    data["ratio"] = statistics.median(row["scale"] / row["json"] for row in rows)
    data["codec_ratio"] = statistics.median(row["codec"] / row["json"] for row in rows)
    data["scale_ms"] = statistics.median(row["scale"] for row in rows)
    data["json_ms"] = statistics.median(row["json"] for row in rows)
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    d = measure(args.n, args.repeats)
    print(f"{args.n} encodes of a 10-field struct ({d['bytes']} bytes; JSON {d['jsonChars']} chars), "
          f"median of {args.repeats}, inside the WapoJS guest:")
    print(f"  SCALE.encode(value, 'Transfer', reg): {d['scale_ms']:8.1f} ms  "
          f"({d['scale_ms'] * 1000 / args.n:.2f} us each)")
    print(f"  JSON.stringify(value):                {d['json_ms']:8.1f} ms  "
          f"({d['json_ms'] * 1000 / args.n:.2f} us each)")
    print(f"  ratio SCALE.encode / JSON.stringify:  {d['ratio']:.2f}x (target < 10x)")
    print(f"  ratio codec.encode / JSON.stringify:  {d['codec_ratio']:.2f}x")
    return 0 if d["ratio"] < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
