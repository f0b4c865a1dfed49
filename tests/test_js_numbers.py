"""Numbers read by the guest's JSON.parse are exact: its strtod is our own (guest/numparse.h),
so every result is checked bit for bit against Python's correctly rounded float()."""

from __future__ import annotations

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


def bits(x: float) -> str:
    return struct.pack(">d", x).hex()


def test_json_parse_numbers_are_correctly_rounded(js):
    texts = EDGE_CASES + random_numbers(3000)
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
