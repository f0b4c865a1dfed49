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

# A full BIP-39 seed is 2,048 PBKDF2 iterations (~5 s in native QuickJS here); the row runs an
# eighth of it (BIP39_ITERATIONS) so that the bench stays short; bench/run.py scales it to a seed.
BIP39_ITERATIONS = 256
BIP39 = Workload(
    "bip39 seed /8",
    "1/8 of a BIP-39 mnemonic -> seed: PBKDF2-HMAC-SHA512, 256 of the 2,048 iterations, in pure JS with 32-bit halves "
    "(as ethers' Wallet.createRandom / viem's mnemonicToAccount do it, through @noble/hashes-style code)",
    f"const ITERATIONS = {BIP39_ITERATIONS};" + """
const K512 = (function () {
  const hex = [
    "428a2f98d728ae22", "7137449123ef65cd", "b5c0fbcfec4d3b2f", "e9b5dba58189dbbc", "3956c25bf348b538",
    "59f111f1b605d019", "923f82a4af194f9b", "ab1c5ed5da6d8118", "d807aa98a3030242", "12835b0145706fbe",
    "243185be4ee4b28c", "550c7dc3d5ffb4e2", "72be5d74f27b896f", "80deb1fe3b1696b1", "9bdc06a725c71235",
    "c19bf174cf692694", "e49b69c19ef14ad2", "efbe4786384f25e3", "0fc19dc68b8cd5b5", "240ca1cc77ac9c65",
    "2de92c6f592b0275", "4a7484aa6ea6e483", "5cb0a9dcbd41fbd4", "76f988da831153b5", "983e5152ee66dfab",
    "a831c66d2db43210", "b00327c898fb213f", "bf597fc7beef0ee4", "c6e00bf33da88fc2", "d5a79147930aa725",
    "06ca6351e003826f", "142929670a0e6e70", "27b70a8546d22ffc", "2e1b21385c26c926", "4d2c6dfc5ac42aed",
    "53380d139d95b3df", "650a73548baf63de", "766a0abb3c77b2a8", "81c2c92e47edaee6", "92722c851482353b",
    "a2bfe8a14cf10364", "a81a664bbc423001", "c24b8b70d0f89791", "c76c51a30654be30", "d192e819d6ef5218",
    "d69906245565a910", "f40e35855771202a", "106aa07032bbd1b8", "19a4c116b8d2d0c8", "1e376c085141ab53",
    "2748774cdf8eeb99", "34b0bcb5e19b48a8", "391c0cb3c5c95a63", "4ed8aa4ae3418acb", "5b9cca4f7763e373",
    "682e6ff3d6b2b8a3", "748f82ee5defb2fc", "78a5636f43172f60", "84c87814a1f0ab72", "8cc702081a6439ec",
    "90befffa23631e28", "a4506cebde82bde9", "bef9a3f7b2c67915", "c67178f2e372532b", "ca273eceea26619c",
    "d186b8c721c0c207", "eada7dd6cde0eb1e", "f57d4f7fee6ed178", "06f067aa72176fba", "0a637dc5a2c898a6",
    "113f9804bef90dae", "1b710b35131c471b", "28db77f523047d84", "32caab7b40c72493", "3c9ebe0a15c9bebc",
    "431d67c49c100d4c", "4cc5d4becb3e42b6", "597f299cfc657e2a", "5fcb6fab3ad6faec", "6c44198c4a475817"];
  const k = new Int32Array(160);
  for (let i = 0; i < 80; i++) {
    k[2 * i] = parseInt(hex[i].slice(0, 8), 16) | 0;
    k[2 * i + 1] = parseInt(hex[i].slice(8), 16) | 0;
  }
  return k;
})();
const IV512 = [0x6a09e667, 0xf3bcc908, 0xbb67ae85, 0x84caa73b, 0x3c6ef372, 0xfe94f82b, 0xa54ff53a,
               0x5f1d36f1, 0x510e527f, 0xade682d1, 0x9b05688c, 0x2b3e6c1f, 0x1f83d9ab, 0xfb41bd6b,
               0x5be0cd19, 0x137e2179];
const W = new Int32Array(160);

// one 128-byte block into the state h (16 int32: hi, lo pairs)
function compress(h, block, off) {
  for (let i = 0; i < 32; i++) {
    const j = off + 4 * i;
    W[i] = (block[j] << 24) | (block[j + 1] << 16) | (block[j + 2] << 8) | block[j + 3];
  }
  for (let i = 16; i < 80; i++) {
    let xh = W[2 * i - 30], xl = W[2 * i - 29];
    const s0h = ((xh >>> 1) | (xl << 31)) ^ ((xh >>> 8) | (xl << 24)) ^ (xh >>> 7);
    const s0l = ((xl >>> 1) | (xh << 31)) ^ ((xl >>> 8) | (xh << 24)) ^ ((xl >>> 7) | (xh << 25));
    xh = W[2 * i - 4]; xl = W[2 * i - 3];
    const s1h = ((xh >>> 19) | (xl << 13)) ^ ((xl >>> 29) | (xh << 3)) ^ (xh >>> 6);
    const s1l = ((xl >>> 19) | (xh << 13)) ^ ((xh >>> 29) | (xl << 3)) ^ ((xl >>> 6) | (xh << 26));
    let lo = (s0l >>> 0) + (s1l >>> 0) + (W[2 * i - 13] >>> 0) + (W[2 * i - 31] >>> 0);
    W[2 * i] = s0h + s1h + W[2 * i - 14] + W[2 * i - 32] + ((lo / 4294967296) | 0);
    W[2 * i + 1] = lo | 0;
  }
  let ah = h[0], al = h[1], bh = h[2], bl = h[3], ch = h[4], cl = h[5], dh = h[6], dl = h[7];
  let eh = h[8], el = h[9], fh = h[10], fl = h[11], gh = h[12], gl = h[13], hh = h[14], hl = h[15];
  for (let i = 0; i < 80; i++) {
    const S1h = ((eh >>> 14) | (el << 18)) ^ ((eh >>> 18) | (el << 14)) ^ ((el >>> 9) | (eh << 23));
    const S1l = ((el >>> 14) | (eh << 18)) ^ ((el >>> 18) | (eh << 14)) ^ ((eh >>> 9) | (el << 23));
    const chh = (eh & fh) ^ (~eh & gh), chl = (el & fl) ^ (~el & gl);
    let lo = (hl >>> 0) + (S1l >>> 0) + (chl >>> 0) + (K512[2 * i + 1] >>> 0) + (W[2 * i + 1] >>> 0);
    const t1h = (hh + S1h + chh + K512[2 * i] + W[2 * i] + ((lo / 4294967296) | 0)) | 0;
    const t1l = lo | 0;
    const S0h = ((ah >>> 28) | (al << 4)) ^ ((al >>> 2) | (ah << 30)) ^ ((al >>> 7) | (ah << 25));
    const S0l = ((al >>> 28) | (ah << 4)) ^ ((ah >>> 2) | (al << 30)) ^ ((ah >>> 7) | (al << 25));
    const mh = (ah & bh) ^ (ah & ch) ^ (bh & ch), ml = (al & bl) ^ (al & cl) ^ (bl & cl);
    hh = gh; hl = gl; gh = fh; gl = fl; fh = eh; fl = el;
    lo = (dl >>> 0) + (t1l >>> 0);
    eh = (dh + t1h + ((lo / 4294967296) | 0)) | 0; el = lo | 0;
    dh = ch; dl = cl; ch = bh; cl = bl; bh = ah; bl = al;
    lo = (t1l >>> 0) + (S0l >>> 0) + (ml >>> 0);
    ah = (t1h + S0h + mh + ((lo / 4294967296) | 0)) | 0; al = lo | 0;
  }
  const v = [ah, al, bh, bl, ch, cl, dh, dl, eh, el, fh, fl, gh, gl, hh, hl];
  for (let i = 0; i < 16; i += 2) {
    const lo = (h[i + 1] >>> 0) + (v[i + 1] >>> 0);
    h[i] = (h[i] + v[i] + ((lo / 4294967296) | 0)) | 0;
    h[i + 1] = lo | 0;
  }
}

function sha512(msg) {  // Uint8Array -> Uint8Array(64)
  const h = new Int32Array(IV512);
  const padded = new Uint8Array(((msg.length + 17 + 127) >> 7) << 7);
  padded.set(msg);
  padded[msg.length] = 0x80;
  const bits = msg.length * 8;
  padded[padded.length - 4] = bits >>> 24; padded[padded.length - 3] = bits >>> 16;
  padded[padded.length - 2] = bits >>> 8; padded[padded.length - 1] = bits;
  for (let off = 0; off < padded.length; off += 128) compress(h, padded, off);
  const out = new Uint8Array(64);
  for (let i = 0; i < 16; i++) {
    out[4 * i] = h[i] >>> 24; out[4 * i + 1] = h[i] >>> 16; out[4 * i + 2] = h[i] >>> 8; out[4 * i + 3] = h[i];
  }
  return out;
}

function hmacSha512(key, msg) {
  if (key.length > 128) key = sha512(key);
  const ipad = new Uint8Array(128 + msg.length), opad = new Uint8Array(128 + 64);
  for (let i = 0; i < 128; i++) { const k = i < key.length ? key[i] : 0; ipad[i] = k ^ 0x36; opad[i] = k ^ 0x5c; }
  ipad.set(msg, 128);
  opad.set(sha512(ipad), 128);
  return sha512(opad);
}

function pbkdf2Sha512(password, salt, iterations) {  // one 64-byte block: all BIP-39 needs
  const s1 = new Uint8Array(salt.length + 4);
  s1.set(salt); s1[salt.length + 3] = 1;
  let u = hmacSha512(password, s1);
  const t = u.slice();
  for (let i = 1; i < iterations; i++) {
    u = hmacSha512(password, u);
    for (let j = 0; j < 64; j++) t[j] ^= u[j];
  }
  return t;
}

function utf8(s) { const b = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i); return b; }

function setup() {
  // the BIP-39 test vector: sha512("abc") checks the hash, the seed checks PBKDF2
  const abc = Array.from(sha512(utf8("abc")), (x) => x.toString(16).padStart(2, "0")).join("");
  if (!abc.startsWith("ddaf35a193617aba")) throw new Error("sha512 is wrong: " + abc);
  return "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
}
function work(mnemonic) {
  const seed = pbkdf2Sha512(utf8(mnemonic), utf8("mnemonicTREZOR"), ITERATIONS);
  return Array.from(seed, (x) => x.toString(16).padStart(2, "0")).join("");
}
""",
)

WORKLOADS: list[Workload] = [FIB, JSON_RT, SORT, REGEX, MAP, MANDEL, BIP39]
NODE_TOO = {BIP39.name}  # also measured in Node (bench/run.py)

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
