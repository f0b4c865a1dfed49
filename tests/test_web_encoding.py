"""TextEncoder / TextDecoder (WHATWG Encoding, UTF-8)."""

from __future__ import annotations

import json

import pytest


def out(js, code, *args):
    r = js(code, *args)
    assert r.ok, r.error
    return json.loads(r.output)


DECODE = """
const [bytes, opts] = JSON.parse(scriptArgs[0]);
let res;
try { res = new TextDecoder('utf-8', opts).decode(new Uint8Array(bytes)) } catch (e) { res = e.name }
scriptOutput = JSON.stringify(res);
"""


@pytest.mark.parametrize("data", [
    b"plain ascii", "héllo €😀".encode(), b"\x61\xf0\x90\x80\x62", b"\xed\xa0\x80", b"\xe0\x80\xaf", b"\xc0\xaf",
    b"\xf1\x80\x80", b"\xf4\x90\x80\x80", b"\xff\xfe\xfd", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3", b"a\x80b\xbfc",
    b"\xef\xbf\xbe\xef\xbf\xbf", b"\xf8\x88\x80\x80\x80", b"\xe1\x80\xe2\xf0\x91\x92\xf1\xbf\x41",
])
def test_replacement_matches_the_whatwg_decoder(js, data):
    # Python's decoder replaces maximal subparts exactly as the Encoding standard does
    assert out(js, DECODE, json.dumps([list(data), {}])) == data.decode("utf-8", "replace")


def test_fatal_bom_and_options(js):
    assert out(js, DECODE, json.dumps([[0x61, 0xff], {"fatal": True}])) == "TypeError"
    assert out(js, DECODE, json.dumps([[0xe2, 0x82], {"fatal": True}])) == "TypeError"
    assert out(js, DECODE, json.dumps([[0xef, 0xbb, 0xbf, 0x41], {}])) == "A"
    assert out(js, DECODE, json.dumps([[0xef, 0xbb, 0xbf, 0x41], {"ignoreBOM": True}])) == "\ufeffA"
    assert out(js, DECODE, json.dumps([[0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf], {}])) == "\ufeff"
    assert out(js, """
        const r = [];
        for (const l of ['utf-8', 'UTF8', ' unicode-1-1-utf-8\\n', 'x-unicode20utf8', 'unicode11utf8']) r.push(new TextDecoder(l).encoding);
        for (const l of ['latin1', 'utf-16le', 'utf 8']) { try { new TextDecoder(l); r.push('ok') } catch (e) { r.push(e.name) } }
        const d = new TextDecoder(undefined, { fatal: true, ignoreBOM: true });
        r.push(d.encoding, d.fatal, d.ignoreBOM, new TextDecoder().fatal, new TextEncoder().encoding);
        r.push(new TextDecoder().decode(), new TextDecoder().decode(new Uint16Array([0x6968]).buffer),
               new TextDecoder().decode(new DataView(new Uint8Array([0x20, 0x41, 0x42]).buffer, 1)));
        try { new TextDecoder().decode('str') } catch (e) { r.push(e.name) }
        scriptOutput = JSON.stringify(r);
    """) == ["utf-8"] * 5 + ["RangeError"] * 3 + ["utf-8", True, True, False, "utf-8", "", "hi", "AB", "TypeError"]


def test_streaming_keeps_partial_sequences(js):
    assert out(js, """
        const r = [];
        const td = new TextDecoder();
        const chunks = [[0xef], [0xbb, 0xbf, 0xe2], [0x82], [0xac, 0xf0, 0x9f], [0x98, 0x80, 0x41]];
        r.push(chunks.map((c) => td.decode(new Uint8Array(c), { stream: true })).join('|') + td.decode());
        r.push(td.decode(new Uint8Array([0xe2, 0x82]), { stream: true }), td.decode());  // flush -> U+FFFD
        r.push(td.decode(new Uint8Array([0xe2]), { stream: true }) + td.decode(new Uint8Array([0x41]), { stream: true }) + td.decode());
        r.push(td.decode(new Uint8Array([0xf0, 0x80]), { stream: true }));  // invalid at once, not kept
        const bom = new TextDecoder();  // the BOM is stripped once per stream, also when split
        r.push(bom.decode(new Uint8Array([0xef, 0xbb]), { stream: true }) + bom.decode(new Uint8Array([0xbf, 0xef, 0xbb, 0xbf])));
        const f = new TextDecoder('utf-8', { fatal: true });
        f.decode(new Uint8Array([0xf0, 0x9f]), { stream: true });
        try { f.decode(); r.push('no error') } catch (e) { r.push(e.name) }
        r.push(f.decode(new Uint8Array([0x6f, 0x6b])));  // usable again after the error
        scriptOutput = JSON.stringify(r);
    """) == ["|||€|😀A", "", "\ufffd", "\ufffdA", "\ufffd\ufffd", "\ufeff", "TypeError", "ok"]


def test_encode_and_encode_into(js):
    assert out(js, """
        const te = new TextEncoder();
        const r = [Array.from(te.encode('a\\ud800b\\udc00\\ud83d\\ude00')), Array.from(te.encode()), Array.from(te.encode(12))];
        const buf = new Uint8Array(5);
        r.push(te.encodeInto('a€😀', buf), Array.from(buf));
        const b2 = new Uint8Array(8);
        r.push(te.encodeInto('x\\ud800y😀', b2), Array.from(b2));
        r.push(te.encodeInto('', new Uint8Array(0)));
        try { te.encodeInto('a', new Uint16Array(2)) } catch (e) { r.push(e.name) }
        r.push(te.encode('é') instanceof Uint8Array);
        scriptOutput = JSON.stringify(r);
    """) == [[97, 239, 191, 189, 98, 239, 191, 189, 240, 159, 152, 128], [], [49, 50],
             {"read": 2, "written": 4}, [97, 226, 130, 172, 0],
             {"read": 3, "written": 5}, [120, 239, 191, 189, 121, 0, 0, 0],
             {"read": 0, "written": 0}, "TypeError", True]


def test_large_round_trip_is_fast(js):
    r = js("""
        const s = 'aé€😀'.repeat(50000);
        const bytes = new TextEncoder().encode(s);
        const broken = bytes.slice(); broken[7] = 0xff;
        const t0 = performance.now();
        const back = new TextDecoder().decode(bytes);
        const repl = new TextDecoder().decode(broken);
        scriptOutput = JSON.stringify([back === s, bytes.length, repl.length, performance.now() - t0 < 5000]);
    """)
    assert r.ok, r.error
    assert json.loads(r.output) == [True, 500000, 250002, True]  # F0 FF 98 80: four U+FFFD for a surrogate pair


def test_text_encoder_and_decoder_streams(js):
    # chunks split inside a UTF-8 sequence and between the halves of a surrogate pair (issue 15)
    r = js(r"""
        (async () => {
            const out = {};
            const enc = new TextEncoderStream();
            const writer = enc.writable.getWriter();
            const reading = new Response(enc.readable).arrayBuffer();
            for (const part of ['h\u00e9', 'llo \ud83d', '\ude00!']) await writer.write(part);
            await writer.close();
            out.encoded = Array.from(new Uint8Array(await reading));
            const bytes = new TextEncoder().encode('\u20ac and \ud83d\ude00');
            const source = new ReadableStream({ start(c) { for (const b of bytes) c.enqueue(new Uint8Array([b])); c.close(); } });
            const parts = [];
            const reader = source.pipeThrough(new TextDecoderStream()).getReader();
            for (;;) { const { done, value } = await reader.read(); if (done) break; parts.push(value); }
            out.decoded = parts.join('');
            const loneTail = new TextEncoderStream();
            const w = loneTail.writable.getWriter();
            const tail = new Response(loneTail.readable).arrayBuffer();
            await w.write('a\ud83d'); await w.close();
            out.lone = Array.from(new Uint8Array(await tail));
            const fatal = new TextDecoderStream('utf-8', { fatal: true });
            const fw = fatal.writable.getWriter();
            fw.write(new Uint8Array([0xff])).catch(() => {});
            try { await fatal.readable.getReader().read(); out.fatal = 'read'; } catch (e) { out.fatal = e.name; }
            out.props = [new TextEncoderStream().encoding, new TextDecoderStream().encoding, String(new TextDecoderStream())];
            scriptOutput = JSON.stringify(out);
        })();
    """)
    assert r.error is None, r.error
    out = json.loads(r.output)
    assert bytes(out["encoded"]) == "héllo 😀!".encode()
    assert out["decoded"] == "€ and 😀"
    assert bytes(out["lone"]) == b"a\xef\xbf\xbd"
    assert out["fatal"] == "TypeError"
    assert out["props"] == ["utf-8", "utf-8", "[object TextDecoderStream]"]
