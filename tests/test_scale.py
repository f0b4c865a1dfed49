"""SCALE (`SCALE` / `ScaleCodec`, the reference's `Wapo.SCALE`): each type form, the value
conventions, errors with positions and offsets, and a property-based comparison with the PyPI
`scalecodec` library (the oracle) byte for byte, plus decode round-trips.

The property test generates types and values in Python and runs a whole batch of cases in ONE
sandbox (cases as JSON in scriptArgs[0], results as JSON in scriptOutput).
"""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import examples

scalecodec = pytest.importorskip("scalecodec")
from scalecodec.base import RuntimeConfigurationObject  # noqa: E402

from wapo.host import Limits  # noqa: E402
from wapo.js.runner import run_js  # noqa: E402

LIMITS = Limits(burst=30.0, time=60.0)

HEX = "const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');\n"
NORM = HEX + """
const norm = (v) => {
  if (typeof v === 'bigint') return {$big: v.toString()};
  if (v instanceof Uint8Array) return {$u8a: hex(v)};
  if (v === undefined) return null;
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = norm(v[k]);
    return o;
  }
  return v;
};
const fromHex = (s) => new Uint8Array(s.match(/../g) || [], ) .map((_, i) => parseInt(s.substr(i * 2, 2), 16));
const revive = (v) => {
  if (Array.isArray(v)) return v.map(revive);
  if (v !== null && typeof v === 'object') {
    if ('$big' in v) return BigInt(v.$big);
    if ('$u8a' in v) return fromHex(v.$u8a);
    if ('$undef' in v) return undefined;
    const o = {};
    for (const k of Object.keys(v)) o[k] = revive(v[k]);
    return o;
  }
  return v;
};
"""


def run(code: str, *args: str):
    r = run_js(code, list(args), limits=LIMITS, module=False)
    assert r.error is None, r.error
    return r


def js_json(code: str, *args: str):
    """Run `code` that sets `result`; returns it normalised (BigInt -> {$big}, bytes -> {$u8a})."""
    r = run(NORM + "let result;\n" + code + "\nscriptOutput = JSON.stringify(norm(result));", *args)
    return json.loads(r.output)


def js_error(code: str) -> str:
    """Run `code` that must throw; returns 'Name: message'."""
    r = run("try { " + code + "; scriptOutput = 'no error' } catch (e) { scriptOutput = e.name + ': ' + e.message }")
    return r.output.decode()


def enc_hex(value_js: str, type_id: str, types: str = "") -> str:
    r = run(HEX + f"scriptOutput = hex(SCALE.encode({value_js}, {type_id}, SCALE.parseTypes({json.dumps(types)})))")
    return r.output.decode()


# --- the API surface -----------------------------------------------------------------

def test_globals_are_the_same_object():
    assert js_json("result = [typeof SCALE, SCALE === ScaleCodec, Object.keys(SCALE).sort()]") == [
        "object", True, ["TypeRegistry", "appendTypes", "builtinTypes", "builtinTypesText", "codec", "decode",
                         "decodeAll", "encode", "encodeAll", "parseTypes"]]


def test_primitives_little_endian():
    assert enc_hex("[1, 258, 65536, 2n**64n-1n, 2n**127n]", "'(#u8,#u16,#u32,#u64,#u128)'") == (
        "01" "0201" "00000100" "ffffffffffffffff" "00000000000000000000000000000080")
    assert enc_hex("[-1, -2, -3, -4n, -5n, true, false]", "'(#i8,#i16,#i32,#i64,#i128,#bool,#bool)'") == (
        "ff" "feff" "fdffffff" "fcffffffffffffff" "fb" + "ff" * 15 + "01" "00")
    assert enc_hex("'hé'", "'#str'") == "0c68c3a9"
    assert enc_hex("'a'.repeat(70)", "'String'") == "1901" + "61" * 70


def test_compact_all_modes_up_to_u128():
    cases = {0: "00", 1: "04", 63: "fc", 64: "0101", 16383: "fdff", 16384: "02000100",
             2**30 - 1: "feffffff", 2**30: "0300000040", 2**32 - 1: "03ffffffff",
             2**32: "070000000001", 2**64 - 1: "13" + "ff" * 8, 2**128 - 1: "33" + "ff" * 16}
    values = ", ".join(f"{v}n" for v in cases)
    got = js_json(f"""const reg = SCALE.parseTypes('');
        result = [{values}].map((v) => hex(SCALE.encode(v, '@#u128', reg)));
        result.push(SCALE.decode(new Uint8Array([0x33, ...new Array(16).fill(255)]), '@#u128', reg));
        result.push(SCALE.decode('0x0300000040', 'Compact<u32>', reg));""")
    assert got[:-2] == list(cases.values())
    assert got[-2:] == [{"$big": str(2**128 - 1)}, 2**30]


def test_compact_range_and_kind_errors():
    assert "RangeError" in js_error("SCALE.encode(256, '@#u8')")
    assert "out of range" in js_error("SCALE.decode('0xc2450400', '@#u16')")
    assert "non-canonical" in js_error("SCALE.decode('0x0100', '@#u32')")
    assert "compact @T needs an unsigned integer" in js_error("SCALE.encode(1, '@#i32')")
    assert js_json("result = [hex(SCALE.encode(null, '@()')), SCALE.decode('0x', '@()')]") == ["", []]


def test_seq_array_tuple_struct_and_bytes():
    types = "P={x:#i16,y:[#u16;2]}; [P]; (#u8,#bool); [#u8;3]"
    got = js_json(f"""const reg = SCALE.parseTypes({json.dumps(types)});
        const b = SCALE.encode([{{x: -1, y: [1, 2]}}], 1, reg);
        result = [hex(b), SCALE.decode(b, 1, reg), hex(SCALE.encode([7, true], 2, reg)),
                  hex(SCALE.encode('0x0a0b0c', 3, reg)), hex(SCALE.encode(new Uint8Array([1,2,3]), 3, reg)),
                  hex(SCALE.encode([4, 5, 6], '[u8;3]', reg)), SCALE.decode('0x010203', 3, reg),
                  hex(SCALE.encode('0xdead', 'Vec<u8>', reg)), SCALE.decode('0x08dead', 'Bytes', reg),
                  hex(SCALE.encode([], '()', reg)), SCALE.decode('0x', '()', reg)]""")
    assert got == ["04ffff01000200", [{"x": -1, "y": [1, 2]}], "0701", "0a0b0c", "010203", "040506",
                   {"$u8a": "010203"}, "08dead", {"$u8a": "dead"}, "", []]


def test_enums_indices_separators_option_result():
    types = """E = <A, B:#u8, C::7 | D:#str:9>
               O = Option<#u32>
               R = Result<#u8, #str>"""
    got = js_json(f"""const reg = SCALE.parseTypes({json.dumps(types)});
        const e = (v, t) => hex(SCALE.encode(v, t, reg));
        result = [e({{A: null}}, 'E'), e('A', 'E'), e({{B: 5}}, 'E'), e({{C: null}}, 'E'), e({{D: 'x'}}, 'E'),
                  e(null, 'O'), e(undefined, 'O'), e(3, 'O'), e({{Ok: 1}}, 'R'), e({{Err: 'no'}}, 'R'),
                  SCALE.decode('0x07', 'E', reg), SCALE.decode('0x090478', 'E', reg),
                  SCALE.decode('0x00', 'O', reg), SCALE.decode('0x0103000000', 'O', reg),
                  SCALE.decode('0x01086e6f', 'R', reg)]""")
    assert got == ["00", "00", "0105", "07", "090478", "00", "00", "0103000000", "0001", "01086e6f",
                   {"C": None}, {"D": "x"}, None, 3, {"Err": "no"}]
    assert "unknown variant index 2" in js_error(
        f"SCALE.decode('0x02', 'E', SCALE.parseTypes({json.dumps(types)}))")
    assert "unknown variant \"Z\"" in js_error(
        f"SCALE.encode({{Z: 1}}, 'E', SCALE.parseTypes({json.dumps(types)}))")


def test_names_indices_generics_recursion_and_append():
    types = """
    #u32                      // 0: reachable by index only
    Pair<A,B> = (A, B)        // generic definition
    Tree = {v: 0, kids: Vec<Tree>}
    L<T> = Option<(T, L<T>)>
    """
    got = js_json(f"""const reg = SCALE.parseTypes({json.dumps(types)});
        SCALE.appendTypes(reg, 'Extra = Pair<Tree, @#u64>');
        const t = {{v: 1, kids: [{{v: 2, kids: []}}]}};
        const b = SCALE.encode([t, 5n], 'Extra', reg);
        const l = SCALE.encode([1, [2, null]], 'L<#u8>', reg);
        result = [hex(b), SCALE.decode(b, 'Extra', reg), hex(l), SCALE.decode(l, 'L<u8>', reg), reg.length,
                  hex(SCALE.encode(9, 0, reg)), hex(SCALE.encode(['0x' + '11'.repeat(32), '0x' + '22'.repeat(20)], '(AccountId32,H160)',
                  reg).subarray(31, 33))]""")
    assert got[0] == "01000000" "04" "02000000" "00" "14"
    assert got[1] == [{"v": 1, "kids": [{"v": 2, "kids": []}]}, {"$big": "5"}]
    assert got[2] == "01" "01" "01" "02" "00"
    assert got[3] == [1, [2, None]]
    assert got[4] == 5
    assert got[5] == "09000000"
    assert got[6] == "1122"


def test_codec_and_all_variants():
    got = js_json("""const reg = SCALE.parseTypes('A=#u16; B=#str');
        const c = SCALE.codec(['A', 'B'], reg), one = SCALE.codec('A', reg);
        const b = c.encode([1, 'z']);
        result = [hex(b), c.decode(b), hex(SCALE.encodeAll([1, 'z'], ['A', 'B'], reg)),
                  SCALE.decodeAll(b, ['A', 'B'], reg), one.decode(one.encode(513))]""")
    assert got == ["0100047a", [1, "z"], "0100047a", [1, "z"], 513]


def test_big_integers_exact_and_safe_number_rule():
    got = js_json("""result = [SCALE.decode(SCALE.encode(2n**64n - 1n, '#u64'), '#u64'),
                  SCALE.decode(SCALE.encode(-(2n**127n), '#i128'), '#i128'),
                  SCALE.decode(SCALE.encode(9007199254740991, '#u64'), '#u64'),
                  hex(SCALE.encode('18446744073709551615', '#u64'))]""")
    assert got == [{"$big": str(2**64 - 1)}, {"$big": str(-(2**127))}, {"$big": str(2**53 - 1)}, "ff" * 8]
    assert "not a safe integer" in js_error("SCALE.encode(2**60, '#u64')")
    assert "RangeError" in js_error("SCALE.encode(2n**64n, '#u64')")
    assert "TypeError" in js_error("SCALE.encode(1.5, '#u32')")
    assert "TypeError" in js_error("SCALE.encode(1, '#bool')")


def test_decode_errors_name_type_and_offset():
    types = "S={a:#u32,b:#u64}"
    msg = js_error(f"SCALE.decode('0x01000000020000', 'S', SCALE.parseTypes({json.dumps(types)}))")
    assert msg == "RangeError: SCALE decode: unexpected end of input decoding #u64 at offset 4: need 8 bytes, 3 left"
    msg = js_error("SCALE.decode('0x010203', '#u16')")
    assert msg == "RangeError: SCALE decode: 1 trailing byte after #u16 at offset 2"
    assert "trailing" in js_error("SCALE.decodeAll('0x0100ff', ['#u8', '#u8'])")
    assert "invalid #bool byte 2 at offset 0" in js_error("SCALE.decode('0x02', '#bool')")
    assert "invalid UTF-8" in js_error("SCALE.decode('0x04ff', '#str')")
    assert "unexpected end of input decoding [#u32]" in js_error("SCALE.decode('0xfdff', '[#u32]')")
    r = js_json("try { SCALE.decode('0x0000', '(#u8,#u32)') } catch (e) { result = e.offset }")
    assert r == 1


def test_encode_errors_name_the_path():
    types = "S={a:#u32,b:Vec<(#u8,#str)>}"
    msg = js_error(f"SCALE.encode({{a: 1, b: [[1, 'x'], [2, 3]]}}, 'S', SCALE.parseTypes({json.dumps(types)}))")
    assert msg == "TypeError: SCALE encode S at value.b[1][1]: expected a string for #str, got 3"
    assert "expected 3 bytes" in js_error("SCALE.encode('0x0102', '[u8;3]')")
    assert "hex" in js_error("SCALE.encode('0x0g', 'Bytes')")


def test_parse_errors_name_position_and_text():
    cases = {
        "A={x:#u32 y:#u8}": 'invalid syntax at 10..11 (line 1, column 11): expected "," or "}" in a struct, found "y"',
        "A=#u7": "invalid syntax at 2..5 (line 1, column 3): expected a primitive type",
        "A=[#u8;]": "invalid syntax at 7..8 (line 1, column 8): expected an array length, found \"]\"",
        "\nB=<X:#u8:300>": "invalid syntax at 10..13 (line 2, column 10): variant index above 255, found \"300\"",
        "A=Foo": "unknown type name Foo at 2..5 (line 1, column 3): \"Foo\"",
        "A=Vec<#u8,#u8>": "Vec takes 1 type argument, got 2 at 2..14",
        "A=#u8; A=#u16": "duplicate definition of A at 7..8",
        "A=3": "type index 3 out of range (1 definitions) at 2..3",
        "A=B; B=A": "type defined as an alias of itself",
        "A=<X,X>": "duplicate variant name X",
        "A=<X:#u8:1,Y>": "duplicate variant index 1",
    }
    for text, want in cases.items():
        msg = js_error(f"SCALE.parseTypes({json.dumps(text)})")
        assert msg.startswith("SyntaxError: SCALE: ") and want in msg, (text, msg)
    r = js_json("try { SCALE.parseTypes('A={x:#u32 y:#u8}') } catch (e) { result = [e.start, e.end] }")
    assert r == [10, 11]
    # a failed appendTypes leaves the registry as it was
    assert js_json("""const reg = SCALE.parseTypes('A=#u8');
        try { SCALE.appendTypes(reg, 'B=#u8; C=Nope') } catch (e) {}
        result = [reg.length, reg.typeNames()]""") == [1, ["A"]]


# --- property-based comparison with scalecodec -----------------------------------------

INT_RANGES = {
    "u8": (0, 2**8 - 1), "u16": (0, 2**16 - 1), "u32": (0, 2**32 - 1), "u64": (0, 2**64 - 1),
    "u128": (0, 2**128 - 1), "i8": (-2**7, 2**7 - 1), "i16": (-2**15, 2**15 - 1),
    "i32": (-2**31, 2**31 - 1), "i64": (-2**63, 2**63 - 1), "i128": (-2**127, 2**127 - 1),
}
WIDE = {"u64", "u128", "i64", "i128"}
NAMES = ["a", "b", "c", "x1", "foo", "_bar", "Id", "value", "z_9"]
VARIANTS = ["A", "B", "C", "Ok2", "V_1", "Zed", "Qq"]

prims = st.sampled_from([*INT_RANGES, "bool", "str"]).map(lambda p: ("prim", p))
compacts = st.sampled_from(["u8", "u16", "u32", "u64", "u128"]).map(lambda p: ("compact", p))


@st.composite
def enum_types(draw, inner):
    names = draw(st.lists(st.sampled_from(VARIANTS), min_size=1, max_size=4, unique=True))
    indices = draw(st.lists(st.integers(0, 40), min_size=len(names), max_size=len(names), unique=True)
                   | st.just(list(range(len(names)))))
    variants = []
    for i, name in enumerate(names):
        t = draw(st.none() | inner)
        explicit = indices[i] != i or draw(st.booleans())
        variants.append((name, t, indices[i], explicit))
    return ("enum", variants, draw(st.sampled_from([",", "|", " | ", ", "])))


def not_option(t):
    return t[0] != "option"


def extend(inner):
    return st.one_of(
        inner.map(lambda t: ("seq", t)),
        inner.map(lambda t: ("vecg", t)),
        st.tuples(inner, st.integers(0, 3)).map(lambda x: ("array", *x)),
        st.sampled_from([1, 4, 32]).map(lambda n: ("array", ("prim", "u8"), n)),
        st.just(("seq", ("prim", "u8"))),
        st.lists(inner, max_size=3).map(lambda ts: ("tuple", ts)),
        st.lists(st.tuples(st.sampled_from(NAMES), inner), max_size=4, unique_by=lambda f: f[0]).map(
            lambda fs: ("struct", fs)),
        enum_types(inner),
        inner.filter(not_option).map(lambda t: ("option", t)),
        st.tuples(inner, inner).map(lambda x: ("result", *x)),
        st.tuples(inner, inner).map(lambda x: ("pair", *x)),
        inner.map(lambda t: ("named", t)),
        inner.map(lambda t: ("indexed", t)),
    )


types = st.recursive(prims | compacts, extend, max_leaves=8)


class Render:
    """One case: our type text and the scalecodec registrations of the same type."""

    def __init__(self, case: int):
        self.case = case
        self.stmts = ["Pair<K,V> = (K, V)"]
        self.sc: dict = {}
        self.n = 0

    def fresh(self) -> str:
        self.n += 1
        return f"C{self.case}T{self.n}"

    def sc_alias(self, definition) -> str:
        name = self.fresh()
        self.sc[name] = definition
        return name

    def ours(self, t) -> str:  # -> our type expression
        k = t[0]
        if k == "prim":
            return "#" + t[1]
        if k == "compact":
            return "@#" + t[1]
        if k == "seq":
            return f"[{self.ours(t[1])}]"
        if k == "vecg":
            return f"Vec<{self.ours(t[1])}>"
        if k == "array":
            return f"[{self.ours(t[1])}; {t[2]}]"
        if k == "tuple":
            return "(" + ", ".join(self.ours(x) for x in t[1]) + ")"
        if k == "struct":
            return "{" + ", ".join(f"{n}: {self.ours(x)}" for n, x in t[1]) + "}"
        if k == "enum":
            parts = []
            for name, vt, index, explicit in t[1]:
                s = name
                if vt is not None:
                    s += ":" + self.ours(vt)
                if explicit:
                    s += (":" if vt is not None else "::") + str(index)
                parts.append(s)
            return "<" + t[2].join(parts) + ">"
        if k == "option":
            return f"Option<{self.ours(t[1])}>"
        if k == "result":
            return f"Result<{self.ours(t[1])},{self.ours(t[2])}>"
        if k == "pair":
            return f"Pair<{self.ours(t[1])}, {self.ours(t[2])}>"
        if k == "named":
            body = self.ours(t[1])
            name = self.fresh()
            self.stmts.append(f"{name} = {body}")
            return name
        if k == "indexed":
            body = self.ours(t[1])
            self.stmts.append(body)
            return str(len(self.stmts) - 1)
        raise AssertionError(k)

    def theirs(self, t) -> str:  # -> a scalecodec type name
        k = t[0]
        if k == "prim":
            return t[1]
        if k == "compact":
            return f"Compact<{t[1]}>"
        if k in ("seq", "vecg"):
            return self.sc_alias(f"Vec<{self.theirs(t[1])}>")
        if k == "array":
            elem = self.theirs(t[1])
            if not elem.isalnum():  # scalecodec's `[T; N]` takes a plain name
                elem = self.sc_alias(elem)
            return self.sc_alias(f"[{elem}; {t[2]}]")
        if k in ("tuple", "pair"):
            ts = t[1] if k == "tuple" else [t[1], t[2]]
            if not ts:
                return "Null"
            return self.sc_alias({"type": "tuple", "type_mapping": [self.theirs(x) for x in ts]})
        if k == "struct":
            return self.sc_alias({"type": "struct", "type_mapping": [[n, self.theirs(x)] for n, x in t[1]]})
        if k == "enum":
            by_index = {index: (name, vt) for name, vt, index, _ in t[1]}
            mapping = []
            for i in range(max(by_index) + 1):
                name, vt = by_index.get(i, (f"_pad{i}", None))
                mapping.append([name, "Null" if vt is None else self.theirs(vt)])
            return self.sc_alias({"type": "enum", "type_mapping": mapping})
        if k == "option":
            return self.sc_alias(f"Option<{self.theirs(t[1])}>")
        if k == "result":
            return self.sc_alias({"type": "enum", "type_mapping": [["Ok", self.theirs(t[1])],
                                                                   ["Err", self.theirs(t[2])]]})
        if k in ("named", "indexed"):
            return self.theirs(t[1])
        raise AssertionError(k)


def big(v: int):
    return {"$big": str(v)}


@st.composite
def values(draw, t):
    """-> (value for JS as JSON, value for scalecodec, expected decoded value normalised)."""
    k = t[0]
    if k == "prim":
        p = t[1]
        if p == "bool":
            v = draw(st.booleans())
            return v, v, v
        if p == "str":
            v = draw(st.text(max_size=12).filter(lambda s: not s.startswith("0x")) | st.text(
                string.ascii_letters, min_size=60, max_size=70))
            return v, v, v
        lo, hi = INT_RANGES[p]
        v = draw(st.integers(lo, hi))
        if p in WIDE:
            as_number = -(2**53) < v < 2**53 and draw(st.booleans())
            return (v if as_number else big(v)), v, big(v)
        return (big(v) if draw(st.integers(0, 9)) == 0 else v), v, v
    if k == "compact":
        lo, hi = INT_RANGES[t[1]]
        v = draw(st.integers(lo, hi) | st.sampled_from([n for n in (63, 64, 16383, 16384, 2**30 - 1, 2**30,
                                                                     2**32, 2**53, 2**64 - 1) if n <= hi]))
        wide = t[1] in WIDE
        js = v if (v < 2**53 and draw(st.booleans())) else big(v)
        return js, v, (big(v) if wide else v)
    if k in ("seq", "vecg", "array"):
        elem = t[1]
        while elem[0] in ("named", "indexed"):  # an alias of #u8 is still bytes
            elem = elem[1]
        if elem == ("prim", "u8"):
            size = t[2] if k == "array" else draw(st.integers(0, 40))
            b = draw(st.binary(min_size=size, max_size=size))
            form = draw(st.sampled_from(["hex", "u8a", "list"]))
            js = "0x" + b.hex() if form == "hex" else {"$u8a": b.hex()} if form == "u8a" else list(b)
            return js, b, {"$u8a": b.hex()}
        size = t[2] if k == "array" else draw(st.integers(0, 4))
        items = [draw(values(elem)) for _ in range(size)]
        return [i[0] for i in items], [i[1] for i in items], [i[2] for i in items]
    if k in ("tuple", "pair"):
        ts = t[1] if k == "tuple" else [t[1], t[2]]
        items = [draw(values(x)) for x in ts]
        return [i[0] for i in items], ([i[1] for i in items] if ts else None), [i[2] for i in items]
    if k == "struct":
        items = {n: draw(values(x)) for n, x in t[1]}
        return ({n: v[0] for n, v in items.items()}, {n: v[1] for n, v in items.items()},
                {n: v[2] for n, v in items.items()})
    if k in ("enum", "result"):
        variants = t[1] if k == "enum" else [("Ok", t[1]), ("Err", t[2])]
        name, vt = draw(st.sampled_from([(v[0], v[1]) for v in variants]))
        if vt is None:
            js = name if draw(st.booleans()) else {name: None}
            return js, {name: None}, {name: None}
        v = draw(values(vt))
        return {name: v[0]}, {name: v[1]}, {name: v[2]}
    if k == "option":
        inner = draw(values(t[1]))
        # scalecodec encodes Some(x) as None when x is None itself (Some(()), Some(None)): draw None then
        if inner[1] is None or draw(st.booleans()):
            return (None if draw(st.booleans()) else {"$undef": 1}), None, None
        return inner
    if k in ("named", "indexed"):
        return draw(values(t[1]))
    raise AssertionError(k)


@st.composite
def cases(draw, case: int):
    t = draw(types)
    r = Render(case)
    root = r.ours(t)
    by_index = draw(st.booleans())
    r.stmts.append(root if by_index else f"Root = {root}")
    sep = draw(st.sampled_from(["\n", "; ", " ;\n"]))
    js, sc, expected = draw(values(t))
    return {"text": sep.join(r.stmts), "id": len(r.stmts) - 1 if by_index else "Root", "value": js,
            "type": t, "render": r, "sc": sc, "expected": expected}


CASE_RUNNER = NORM + """
const out = [];
for (const c of JSON.parse(scriptArgs[0])) {
  try {
    const reg = SCALE.parseTypes(c.text);
    const b = SCALE.encode(revive(c.value), c.id, reg);
    const d = SCALE.decode(b, c.id, reg);
    out.push({hex: hex(b), dec: norm(d), again: hex(SCALE.encode(d, c.id, reg))});
  } catch (e) {
    out.push({error: e.name + ': ' + e.message});
  }
}
scriptOutput = JSON.stringify(out);
"""

STATS = {"batches": 0, "cases": 0}
BATCH = 40


# No shrinking phase: shrinking a batch of 40 cases takes minutes, and the assertion messages
# already name the failing case (its type text and value).
@settings(max_examples=examples(30), deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.data())
def test_scale_matches_scalecodec_byte_for_byte(data):
    batch = [data.draw(cases(i)) for i in range(BATCH)]
    payload = json.dumps([{"text": c["text"], "id": c["id"], "value": c["value"]} for c in batch])
    results = json.loads(run(CASE_RUNNER, payload).output)
    rc = RuntimeConfigurationObject()
    for c, res in zip(batch, results):
        r: Render = c["render"]
        their_type = r.theirs(c["type"])
        rc.update_type_registry_types(r.sc)
        want = rc.create_scale_object(their_type).encode(c["sc"]).data.hex()
        assert "error" not in res, (c["text"], c["value"], res)
        assert res["hex"] == want, (c["text"], c["value"])
        assert res["again"] == want, (c["text"], c["value"])
        assert res["dec"] == c["expected"], (c["text"], c["value"])
    STATS["batches"] += 1
    STATS["cases"] += len(batch)


def test_scale_property_test_ran_enough_cases():
    # Runs after the property test in file order; reports the count (visible with -rA or -s).
    if STATS["batches"] == 0:
        pytest.skip("the property test did not run in this session")
    print(f"\nSCALE vs scalecodec: {STATS['cases']} generated cases in {STATS['batches']} sandbox runs")
    assert STATS["cases"] >= 1000
