"""Numbers read by the guest's JSON.parse are exact: its strtod is our own (guest/numparse.h),
so every result is checked bit for bit against Python's correctly rounded float(). Numbers
written by String(x) and JSON.stringify go through a fast path of ours too (wapo_js_dtoa), checked
against ECMAScript's Number::toString computed from Python's shortest repr."""

from __future__ import annotations

import decimal
import json
import random
import struct

EDGE_CASES = [
    "0", "-0", "0.0", "-0.0e0", "1", "-1", "0.1", "0.2", "0.30000000000000004", "123.456e-7",
    "9007199254740991", "9007199254740992", "9007199254740993", "18014398509481985",
    "1e22", "1e23", "-1e22", "1.5e22", "4.35679e-10", "1e-22", "1e-23", "123456789012345678",
    "1234567890123456789", "12345678901234567890", "0.000000000000000000000000001",
    "0.00000000000000000000001", "100000000000000000000000",
    "2.2250738585072011e-308", "2.2250738585072014e-308", "4.9406564584124654e-324", "5e-324",
    "2e-324", "1e-400", "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
    "1e309", "-1e309", "0.1e1", "7.0E+2", "7E-2", "3.14159265358979323846264338327950288",
    "1.00000000000000011102230246251565404236316680908203125",
    "1.00000000000000011102230246251565404236316680908203124",
    "1.00000000000000011102230246251565404236316680908203126",
    "8.98846567431158e307", "100000000000000000000001e-1", "0.0000000000000000000000000000000000001e37",
]


def random_numbers(n: int, seed: int = 17) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        digits = "".join(rnd.choice("0123456789") for _ in range(rnd.choice([1, 2, 5, 9, 15, 16, 17, 18, 19, 20, 25])))
        intpart = digits.lstrip("0") or "0"
        text = intpart
        if rnd.random() < 0.6:
            text += "." + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 12)))
        if rnd.random() < 0.4:
            text += rnd.choice("eE") + rnd.choice(["", "+", "-"]) + str(rnd.randint(0, 330))
        out.append(("-" if rnd.random() < 0.3 else "") + text)
    return out


def long_mantissas(n: int, seed: int = 29) -> list[str]:
    """16 to 19 significant digits with a point or a small exponent, as JSON.stringify writes
    sums and differences (-45.670000000000002): above 2^53, read exactly in 128-bit integers."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        digits = str(rnd.randrange(10**15, 10**rnd.choice([16, 17, 18, 19])))
        point = rnd.randint(0, len(digits))
        text = (digits[:point] or "0") + "." + (digits[point:] or "0")
        if rnd.random() < 0.3:
            text += "e" + str(rnd.randint(-19, 19))
        out.append(("-" if rnd.random() < 0.3 else "") + text)
    return out


def bits(x: float) -> str:
    return struct.pack(">d", x).hex()


def test_json_parse_numbers_are_correctly_rounded(js):
    texts = EDGE_CASES + random_numbers(3000) + long_mantissas(3000)
    code = """
const texts = JSON.parse(scriptArgs[0]);
const view = new DataView(new ArrayBuffer(8));
scriptOutput = JSON.stringify(texts.map((t) => {
  view.setFloat64(0, JSON.parse(t));
  let h = '';
  for (let i = 0; i < 8; i++) h += view.getUint8(i).toString(16).padStart(2, '0');
  return h;
}));
"""
    r = js(code, json.dumps(texts))
    assert r.ok, r.error
    got = json.loads(r.output)
    wrong = [(t, g, bits(float(t))) for t, g in zip(texts, got) if g != bits(float(t))]
    assert not wrong, wrong[:10]


def test_json_parse_numbers_inside_documents(js):
    r = js("const d = JSON.parse('{\"a\":[1.5,-2e3,0.1,1e400,-0],\"b\":12345678901234567890123}');"
           "scriptOutput = JSON.stringify([d.a, Object.is(d.a[4], -0), d.b])")
    assert r.ok, r.error
    assert json.loads(r.output) == [[1.5, -2000, 0.1, None, 0], True, 1.2345678901234568e22]


def js_number_to_string(x: float) -> str:
    """ECMAScript Number::toString(x) in base 10, from Python's shortest round-trip repr."""
    if x != x:
        return "NaN"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_to_string(-x)
    if x == float("inf"):
        return "Infinity"
    _, digits, exp = decimal.Decimal(repr(x)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    k, n = len(ds), exp + len(ds)
    if k <= n <= 21:
        return ds + "0" * (n - k)
    if 0 < n <= 21:
        return ds[:n] + "." + ds[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + ds
    e = f"{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
    return ds + "e" + e if k == 1 else ds[0] + "." + ds[1:] + "e" + e


def doubles_to_format(n: int, seed: int = 23) -> list[float]:
    """Numbers as data holds them (few decimals, sums of them, money, coordinates), numbers at
    the guest's fast-path limits (1e-6, 2^50, 15-17 digits), and random bit patterns."""
    rnd = random.Random(seed)
    out = [0.1, 0.2, 0.1 + 0.2, 1e-6, 9.99e-7, 1.0000000000000002e-6, 2.0**50, 2.0**50 - 1, 2.0**50 - 0.5,
           2.0**50 + 2, 2.0**53, 2.0**53 + 2, 1e15, 1e16, 1e21, 1e-7, 123456789012345.6,
           1125899906842623.8, 0.30000000000000004, 5e-324, 1.7976931348623157e308, 4.35, 1.005,
           -0.0, 100.0, 1e20, 12345.678e-10, 0.000001234, 1 / 3, 2 / 3, 1e-5, 1e14 + 0.5]
    for _ in range(n):
        kind = rnd.randrange(5)
        if kind == 0:
            x = rnd.randrange(10**rnd.randint(1, 17)) / 10**rnd.randint(0, 20)
        elif kind == 1:
            x = rnd.randrange(18000) / 100 - 90
        elif kind == 2:
            x = sum(rnd.randrange(100000) / 100 for _ in range(rnd.randint(2, 5)))
        elif kind == 3:
            x = struct.unpack(">d", rnd.getrandbits(64).to_bytes(8, "big"))[0]
        else:
            x = rnd.random() * 10.0 ** rnd.randint(-8, 17)
        out.append(-x if rnd.random() < 0.3 else x)
    return out


def test_numbers_to_strings_match_ecmascript(js):
    """String(x) and JSON.stringify(x) in the guest (a fast path in guest/numparse.h for the
    positional forms, dtoa.c otherwise) against ECMAScript's Number::toString computed here."""
    xs = doubles_to_format(5000)
    code = """
const hexes = JSON.parse(scriptArgs[0]);
const view = new DataView(new ArrayBuffer(8));
scriptOutput = JSON.stringify(hexes.map((h) => {
  for (let i = 0; i < 8; i++) view.setUint8(i, parseInt(h.slice(2 * i, 2 * i + 2), 16));
  const x = view.getFloat64(0);
  return [String(x), JSON.stringify([x])];
}));
"""
    r = js(code, json.dumps([bits(x) for x in xs]))
    assert r.ok, r.error
    got = json.loads(r.output)
    wrong = []
    for x, (s, j) in zip(xs, got):
        want = js_number_to_string(x)
        want_json = "[" + (want if want not in ("NaN", "Infinity", "-Infinity") else "null") + "]"
        if s != want or j != want_json:
            wrong.append((repr(x), s, j, want))
    assert not wrong, wrong[:10]
