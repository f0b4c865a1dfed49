"""The JavaScript the benchmark runs, as Python strings.

Every speed workload is one JS source that defines two functions:

* ``setup()`` builds the input (not timed) and returns it;
* ``work(state)`` is the timed part; it returns a checksum, so the two engines
  can be checked to have computed the same thing.

The same source runs on both engines; only the small driver appended to it
differs (see ``wapo_script`` / ``native_script``). The driver times ``work``
inside the guest with ``performance.now()`` and hands back
``{"ms": ..., "check": ...}`` as JSON: through ``scriptOutput`` in wapo, as the
value of the script in native QuickJS. Host-side overhead (sandbox creation,
argument passing, output copying) is therefore *not* part of these figures;
row 1 of the benchmark measures that separately.

Inputs come from a seeded PRNG (mulberry32), never ``Math.random``, and no
workload uses transcendental ``Math`` functions, so both engines must produce
identical checksums. Sizes are chosen so ``work`` takes roughly 100-250 ms on
native QuickJS-ng on a typical x86-64 core; in wapo it must stay well inside
the default 1 s burst limit. In wapo the timed part runs in a ``setTimeout``
callback, i.e. in a poll of its own, so the untimed ``setup`` does not eat
into the burst of the timed part.
"""

from __future__ import annotations

from dataclasses import dataclass

# The trivial script of row 1 (fresh sandbox creation).
TRIVIAL_SCRIPT = "scriptOutput='x'"

# A second script for the crossing count: one log line and one real timer wait.
TIMER_SCRIPT = "console.log('hi'); setTimeout(() => { scriptOutput = 'x'; }, 1);"

_PRNG = """
function mulberry32(seed) {
  return function () {
    seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
"""


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    source: str


FIB = Workload(
    "fib(30)",
    "recursive Fibonacci: function calls, small-integer arithmetic",
    """
function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
function setup() { return 30; }
function work(n) { return fib(n); }
""",
)

JSON_RT = Workload(
    "json 1MB x3",
    "JSON.parse + JSON.stringify of a ~1 MB document, 3 times",
    _PRNG + """
function setup() {
  const rnd = mulberry32(42);
  const words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"];
  const items = [];
  let i = 0;
  // 5,300 records: the JSON text is ~1.0 MB
  for (; i < 5300; i++) {
    items.push({
      id: i,
      name: "user-" + i + "-" + words[i % words.length],
      email: "user" + i + "@example.com",
      score: Math.floor(rnd() * 1e6) / 100,
      active: rnd() < 0.5,
      tags: [words[(i * 3) % 8], words[(i * 5) % 8], words[(i * 7) % 8]],
      geo: { lat: Math.floor(rnd() * 18000) / 100 - 90, lon: Math.floor(rnd() * 36000) / 100 - 180 },
      note: null,
    });
  }
  const text = JSON.stringify({ version: 1, items: items });
  return text;
}
function work(text) {
  let total = 0;
  for (let r = 0; r < 3; r++) {
    const doc = JSON.parse(text);
    const out = JSON.stringify(doc);
    total += out.length + doc.items.length;
  }
  return total;
}
""",
)

SORT = Workload(
    "sort 200k",
    "Array.prototype.sort of 200,000 random doubles with a (a, b) => a - b comparator",
    _PRNG + """
function setup() {
  const rnd = mulberry32(7);
  const a = new Array(200000);
  for (let i = 0; i < a.length; i++) a[i] = rnd() * 1e6;
  return a;
}
function work(a) {
  const s = a.slice().sort((x, y) => x - y);
  return s[0] + s[100000] + s[199999];
}
""",
)

REGEX = Workload(
    "regex log parse",
    "RegExp exec + string building over 60,000 log lines (~4.9 MB of text)",
    _PRNG + """
function setup() {
  const rnd = mulberry32(3);
  const levels = ["info", "warn", "error", "debug"];
  const lines = [];
  for (let i = 0; i < 60000; i++) {
    lines.push("2024-05-" + (10 + (i % 20)) + "T12:" + (10 + (i % 50)) + ":00Z level=" + levels[i % 4] +
               " user=u" + Math.floor(rnd() * 5000) + " latency=" + Math.floor(rnd() * 900) +
               "ms path=/api/v1/items/" + i);
  }
  return lines.join("\\n");
}
function work(text) {
  const re = /level=(\\w+) user=(u\\d+) latency=(\\d+)ms path=(\\S+)/;
  const perLevel = {};
  let slow = 0, keyLen = 0;
  const lines = text.split("\\n");
  for (let i = 0; i < lines.length; i++) {
    const m = re.exec(lines[i]);
    if (!m) continue;
    perLevel[m[1]] = (perLevel[m[1]] || 0) + 1;
    if (+m[3] > 800) slow++;
    keyLen += (m[2] + ":" + m[4].toUpperCase()).length;
  }
  return JSON.stringify(perLevel) + "/" + slow + "/" + keyLen;
}
""",
)

MAP = Workload(
    "map + objects",
    "Map with 150,000 string keys: insert, look up, update; one small object per entry",
    """
function setup() { return 150000; }
function work(n) {
  const m = new Map();
  for (let i = 0; i < n; i++) m.set("key:" + i, { x: i, y: i * 2 });
  let sum = 0;
  for (let i = 0; i < n; i += 3) {
    const o = m.get("key:" + i);
    o.y += 1;
    sum += o.x + o.y;
  }
  for (const [k, v] of m) if (v.x % 1000 === 0) sum += k.length;
  return sum;
}
""",
)

MANDEL = Workload(
    "mandelbrot",
    "Mandelbrot set, 240x240, up to 100 iterations: double arithmetic in tight loops, Uint8Array",
    """
function setup() { return 240; }
function work(size) {
  const out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    const ci = (2 * y) / size - 1;
    for (let x = 0; x < size; x++) {
      const cr = (2.5 * x) / size - 2;
      let zr = 0, zi = 0, k = 0;
      while (k < 100 && zr * zr + zi * zi < 4) {
        const t = zr * zr - zi * zi + cr;
        zi = 2 * zr * zi + ci;
        zr = t;
        k++;
      }
      out[y * size + x] = k;
    }
  }
  let sum = 0;
  for (let i = 0; i < out.length; i++) sum += out[i];
  return sum;
}
""",
)

WORKLOADS: list[Workload] = [FIB, JSON_RT, SORT, REGEX, MAP, MANDEL]

_WAPO_DRIVER = """
;const __state = setup();
setTimeout(function () {
  const t0 = performance.now();
  const check = work(__state);
  const ms = performance.now() - t0;
  scriptOutput = JSON.stringify({ ms: ms, check: String(check) });
}, 1);
"""

_NATIVE_DRIVER = """
;(function () {
  const state = setup();
  const t0 = performance.now();
  const check = work(state);
  const ms = performance.now() - t0;
  return JSON.stringify({ ms: ms, check: String(check) });
})();
"""


def wapo_script(w: Workload) -> str:
    """The workload as run in a wapo sandbox (result through ``scriptOutput``)."""
    return w.source + _WAPO_DRIVER


def native_script(w: Workload) -> str:
    """The workload as run by native QuickJS-ng (result is the script's value)."""
    return w.source + _NATIVE_DRIVER
