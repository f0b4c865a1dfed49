"""The `Wapo` namespace: encodings, hashes, derived secrets, memory stats, httpRequest and nested runs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time

import pytest
from Crypto.Hash import keccak

import wapo
from wapo.host import Limits


def _json(r):
    assert r.ok, r.error and r.error.describe()
    return json.loads(r.output)


def test_names_and_version(js):
    r = js("""
        const names = ['version', 'print', 'hexEncode', 'hexDecode', 'utf8Encode', 'utf8Decode', 'base64Encode',
                       'base64Decode', 'parseURL', 'parseURLParams', 'hash', 'httpRequest', 'wsOpen', 'wsSend',
                       'wsClose', 'deriveSecret', 'memoryStats', 'run'];
        scriptOutput = JSON.stringify({missing: names.filter((n) => !(n in Wapo)), version: Wapo.version,
                                       tag: Object.prototype.toString.call(Wapo), scale: Wapo.SCALE === globalThis.SCALE});
    """)
    out = _json(r)
    assert out["missing"] == []
    assert out["version"] == wapo.__version__
    assert out["tag"] == "[object Wapo]" and out["scale"] is True


def test_print_goes_to_the_log(js):
    r = js("Wapo.print('info', 'a', 1); Wapo.print('warn', {x: 1}); Wapo.print(1, 'e'); Wapo.print('debug');"
           "try { Wapo.print('loud', 'x') } catch (e) { console.log(e.name) }")
    assert r.ok
    assert [(log.level, log.message) for log in r.logs] == [
        ("info", "a 1"), ("warn", '{"x":1}'), ("error", "e"), ("debug", ""), ("info", "TypeError")]


def test_hex_utf8_base64(js):
    data = bytes(range(256))
    r = js("""
        const bytes = Wapo.hexDecode(scriptArgs[0]);
        const out = {
            len: bytes.length, hex: Wapo.hexEncode(bytes), prefixed: Wapo.hexEncode(Wapo.hexDecode('0xDEADbeef')),
            upper: Array.from(Wapo.hexDecode('0XFF')), empty: Wapo.hexDecode('').length + Wapo.hexDecode('0x').length,
            fromString: Wapo.hexEncode('hé'), fromBuffer: Wapo.hexEncode(new Uint16Array([0x0102]).buffer),
            utf8: Array.from(Wapo.utf8Encode('h€')), text: Wapo.utf8Decode(Wapo.utf8Encode('✓ ok')),
            lossy: Wapo.utf8Decode(new Uint8Array([104, 0xff, 105])),
            b64: Wapo.base64Encode(bytes), b64s: ['', 'f', 'fo', 'foo', 'foob'].map((s) => Wapo.base64Encode(s)),
            b64nopad: Wapo.base64Encode('fo', false),
            back: Wapo.hexEncode(Wapo.base64Decode(Wapo.base64Encode(bytes))),
            urlsafe: Array.from(Wapo.base64Decode('-_8')), unpadded: Wapo.utf8Decode(Wapo.base64Decode('Zm9vYg')),
            spaced: Wapo.utf8Decode(Wapo.base64Decode('Zm9v\\nYmFy')),
        };
        const bad = [];
        for (const f of [() => Wapo.hexDecode('abc'), () => Wapo.hexDecode('zz'), () => Wapo.hexDecode('0xg0'),
                         () => Wapo.hexDecode(12), () => Wapo.base64Decode('a'), () => Wapo.base64Decode('ab$d'),
                         () => Wapo.hexEncode({}), () => Wapo.base64Decode('a=bc')]) {
            try { f(); bad.push('ok'); } catch (e) { bad.push(e.name); }
        }
        out.bad = bad;
        scriptOutput = JSON.stringify(out);
    """, data.hex())
    out = _json(r)
    assert out["len"] == 256 and out["hex"] == data.hex()
    assert out["prefixed"] == "deadbeef" and out["upper"] == [255] and out["empty"] == 0
    assert out["fromString"] == "hé".encode().hex() and out["fromBuffer"] == "0201"
    assert out["utf8"] == list("h€".encode()) and out["text"] == "✓ ok" and out["lossy"] == "h\ufffdi"
    assert out["b64"] == base64.b64encode(data).decode()
    assert out["b64s"] == [base64.b64encode(s.encode()).decode() for s in ["", "f", "fo", "foo", "foob"]]
    assert out["b64nopad"] == "Zm8"
    assert out["back"] == data.hex()
    assert out["urlsafe"] == list(base64.urlsafe_b64decode("-_8="))
    assert out["unpadded"] == "foob" and out["spaced"] == "foobar"
    assert out["bad"] == ["TypeError"] * 8


def test_hash_matches_python(js):
    msg = "wapo ✓ " * 30
    r = js("""
        const out = {};
        for (const alg of ['sha256', 'keccak256', 'blake2b128', 'blake2b256', 'blake2b512']) {
            const h = Wapo.hash(alg, scriptArgs[0]);
            out[alg] = [h instanceof Uint8Array, Wapo.hexEncode(h)];
        }
        out.bytes = Wapo.hexEncode(Wapo.hash('keccak256', new Uint8Array([1, 2, 3])));
        out.empty = Wapo.hexEncode(Wapo.hash('blake2b256', ''));
        try { Wapo.hash('whirlpool', 'x'); out.bad = 'ok'; } catch (e) { out.bad = [e.name, e.message]; }
        try { Wapo.hash('sha256', 42); out.badMsg = 'ok'; } catch (e) { out.badMsg = e.name; }
        scriptOutput = JSON.stringify(out);
    """, msg)
    out = _json(r)
    raw = msg.encode()
    assert out["sha256"] == [True, hashlib.sha256(raw).hexdigest()]
    assert out["keccak256"] == [True, keccak.new(digest_bits=256, data=raw).hexdigest()]
    assert out["blake2b128"] == [True, hashlib.blake2b(raw, digest_size=16).hexdigest()]
    assert out["blake2b256"] == [True, hashlib.blake2b(raw, digest_size=32).hexdigest()]
    assert out["blake2b512"] == [True, hashlib.blake2b(raw, digest_size=64).hexdigest()]
    assert out["bytes"] == keccak.new(digest_bits=256, data=b"\1\2\3").hexdigest()
    # the well-known keccak256("") differs from sha3_256(""): make sure it is Ethereum's keccak
    assert keccak.new(digest_bits=256, data=b"").hexdigest().startswith("c5d2460186f7233c")
    assert out["empty"] == hashlib.blake2b(b"", digest_size=32).hexdigest()
    assert out["bad"][0] == "TypeError" and "whirlpool" in out["bad"][1]
    assert out["badMsg"] == "TypeError"


def test_derive_secret_uses_the_node_key(tmp_path):
    from wapo.host.keys import NodeKey
    from wapo.js.runner import js_instance

    code = """
        const a = Wapo.deriveSecret('salt'), b = Wapo.deriveSecret(new TextEncoder().encode('salt'));
        const c = Wapo.deriveSecret('other');
        let big;
        try { Wapo.deriveSecret('x'.repeat(257)); big = 'ok'; } catch (e) { big = e.name; }
        scriptOutput = JSON.stringify({a: Wapo.hexEncode(a), same: Wapo.hexEncode(b) === Wapo.hexEncode(a),
                                       c: Wapo.hexEncode(c), len: a.length, big});
    """
    r = asyncio.run(js_instance(code, data_dir=tmp_path).run())
    out = _json(r)
    key = NodeKey.load_or_create(tmp_path)
    app = hashlib.sha256(b"wapo-js:" + code.encode()).digest()
    assert out["len"] == 64 and out["same"] is True
    assert out["a"] == key.derive_secret(app, b"salt").hex()
    assert out["c"] == key.derive_secret(app, b"other").hex()
    assert out["big"] == "RangeError"


def test_memory_stats(js):
    r = js("const before = Wapo.memoryStats(); const keep = new Array(100000).fill('x'.repeat(10));"
           "const after = Wapo.memoryStats(); scriptOutput = JSON.stringify({before, after})")
    out = _json(r)
    before, after = out["before"], out["after"]
    for key in ["mallocSize", "mallocLimit", "memoryUsedSize", "mallocCount", "objCount", "wasmMemorySize"]:
        assert isinstance(before[key], int) and before[key] >= 0, key
    assert after["mallocSize"] > before["mallocSize"] + 400_000
    assert 0 < before["mallocSize"] < before["mallocLimit"] <= Limits().memory


def test_parse_url(js):
    r = js("""
        scriptOutput = JSON.stringify({
            url: Wapo.parseURL('https://user:pw@Example.com:8080/a/b?q=1&q=2&x=%20y#frag'),
            rel: Wapo.parseURL('../c', 'https://h.io/a/b').href,
            params: Wapo.parseURLParams('?a=1&b=2&a=3&__proto__=p&e'),
            bad: (() => { try { Wapo.parseURL('not a url'); return 'ok'; } catch (e) { return e.name; } })(),
        });
    """)
    out = _json(r)
    url = out["url"]
    assert url["scheme"] == "https" and url["protocol"] == "https:"
    assert url["username"] == "user" and url["password"] == "pw"
    assert url["hostname"] == "example.com" and url["port"] == "8080" and url["host"] == "example.com:8080"
    assert url["path"] == url["pathname"] == "/a/b"
    assert url["query"] == "q=1&q=2&x=%20y" and url["fragment"] == "frag"
    assert url["params"] == {"q": ["1", "2"], "x": [" y"]}
    assert out["rel"] == "https://h.io/c"
    assert out["params"] == {"a": ["1", "3"], "b": ["2"], "__proto__": ["p"], "e": [""]}
    assert out["bad"] == "TypeError"


def test_http_request_over_fetch(js):
    r = js("""
        const seen = [];
        globalThis.fetch = async (url, init) => {
            seen.push([url, init.method, init.headers, typeof init.body === 'string' ? init.body : Array.from(init.body)]);
            if (url.includes('fail')) throw new TypeError('network down');
            return {status: 201, statusText: 'Created', headers: new Map([['x-a', 'b']]),
                    arrayBuffer: async () => new Uint8Array([104, 105]).buffer};
        };
        const events = [];
        Wapo.httpRequest({url: 'https://example.com/x', method: 'POST', headers: {'X-Foo': 'Bar'}, bodyText: 'hi'},
            (cmd, data) => { events.push([cmd, data instanceof Uint8Array ? Array.from(data) : data]);
                             if (cmd === 'end') next(); });
        function next() {
            Wapo.httpRequest({url: 'https://example.com/fail', body: new Uint8Array([1])}, (cmd, data) => {
                events.push([cmd, data]);
                scriptOutput = JSON.stringify({seen, events});
            });
        }
    """)
    out = _json(r)
    assert out["seen"] == [["https://example.com/x", "POST", {"X-Foo": "Bar"}, "hi"],
                           ["https://example.com/fail", "GET", None, [1]]]
    assert out["events"] == [["head", {"status": 201, "statusText": "Created", "headers": {"x-a": "b"}}],
                             ["data", [104, 105]], ["end", None], ["error", "network down"]]


def test_http_request_without_fetch_and_websockets(js):
    r = js("""
        const out = [];
        globalThis.fetch = undefined;
        for (const f of [() => Wapo.httpRequest({url: 'https://a.b'}, () => {}), () => Wapo.wsOpen('wss://a.b'),
                         () => Wapo.wsSend(1, 'x'), () => Wapo.wsClose(1)]) {
            try { f(); out.push('ok'); } catch (e) { out.push(e.message); }
        }
        scriptOutput = JSON.stringify(out);
    """)
    out = _json(r)
    assert "needs the fetch API" in out[0]
    assert "callback must be a function" in out[1]
    assert all("not a WebSocket handle" in m for m in out[2:]), out


# ---- Wapo.run ---------------------------------------------------------------------------------

def test_run_returns_value_logs_and_args(js):
    r = js("""
        Wapo.run("console.log('inner', scriptArgs.length); console.warn('w'); scriptOutput = 'got ' + scriptArgs.join(',')",
                 {args: ['a', 2]}).then((res) => {
            scriptOutput = JSON.stringify({...res, output: Array.from(res.output)});
        });
    """)
    out = _json(r)
    assert out["isOk"] is True and out["isError"] is False and out["error"] is None
    assert out["value"] == "got a,2" and out["output"] == list(b"got a,2")
    assert [(log["level"], log["message"]) for log in out["logs"]] == [("info", "inner 2"), ("warn", "w")]
    assert all(abs(log["time"] / 1000 - time.time()) < 60 for log in out["logs"])
    assert r.logs == []  # the inner logs are the inner run's, not the outer's


def test_run_env_reaches_the_inner_sandbox(js):
    r = js("""
        Wapo.run("scriptOutput = typeof process === 'object' && process.env ? String(process.env.HELLO) : 'no process'",
                 {env: {HELLO: 'world'}}).then((res) => { scriptOutput = res.value; });
    """)
    assert r.ok, r.error
    if r.output in (b"no process", b"undefined"):
        pytest.skip("process.env does not read the sandbox environment in this build (needs host.environ)")
    assert r.output == b"world"


def test_run_whose_code_throws(js):
    r = js("""
        Wapo.run("console.log('before'); function boom() { throw new RangeError('inner failure') }\\nboom()")
            .then((res) => { scriptOutput = JSON.stringify(res); });
    """)
    out = _json(r)
    assert out["isOk"] is False and out["isError"] is True
    assert out["error"] == "RangeError: inner failure"
    assert out["errorKind"] == "guest_error" and "boom" in out["errorStack"]
    assert out["value"] == ""
    assert out["logs"][0]["message"] == "before"
    assert out["logs"][-1]["level"] == "error" and "inner failure" in out["logs"][-1]["message"]


def test_run_unhandled_rejection_and_syntax_error(js):
    r = js("""
        Promise.all([Wapo.run("Promise.reject(new Error('nope'))"), Wapo.run("let = = 1")]).then(([a, b]) => {
            scriptOutput = JSON.stringify([a.isError, a.errorKind, a.error, b.isError, b.error]);
        });
    """)
    out = _json(r)
    assert out[:2] == [True, "unhandled_rejection"] and "nope" in out[2]
    assert out[3] is True and out[4].startswith("SyntaxError")


def test_run_exceeding_its_time_limit(js):
    started = time.monotonic()
    r = js("""
        Promise.all([Wapo.run("for (;;) {}", {timeLimit: 200}),
                     Wapo.run("setTimeout(() => { scriptOutput = 'late' }, 5000)", {timeLimit: 200})])
            .then((rs) => { scriptOutput = JSON.stringify(rs.map((r) => [r.isError, r.errorKind, r.error, r.value])); });
    """)
    out = _json(r)
    assert time.monotonic() - started < 4
    for is_error, kind, error, value in out:
        assert is_error is True and kind == "time_limit" and "time limit exceeded" in error and value == ""


def test_run_memory_and_gas_limits(js):
    r = js("""
        Promise.all([Wapo.run("const a = []; for (;;) a.push(new Array(10000).fill(1))", {memoryLimit: 16e6}),
                     Wapo.run("let x = 0; for (;;) x++", {gasLimit: 20000})])
            .then((rs) => { scriptOutput = JSON.stringify(rs.map((r) => [r.isError, r.errorKind])); });
    """, time=20)
    assert _json(r) == [[True, "memory_limit"], [True, "fuel_limit"]]


def test_nested_runs_and_output(js):
    r = js("""
        const inner = "Wapo.run('scriptOutput = String(6 * 7)').then((r) => { scriptOutput = 'middle(' + r.value + ')' })";
        Wapo.run(inner).then((r) => { scriptOutput = 'outer(' + r.value + ')'; });
    """)
    assert r.ok, r.error
    assert r.output == b"outer(middle(42))"


def test_run_argument_errors(js):
    r = js("""
        const out = [];
        const attempt = async (f) => { try { await f(); out.push('resolved'); } catch (e) { out.push(e.name); } };
        (async () => {
            await attempt(() => Wapo.run(42));
            await attempt(() => Wapo.run('1', {timeLimit: -5}));
            await attempt(() => Wapo.run('1', {memoryLimit: 'lots'}));
            await attempt(() => Wapo.run('1', {args: 7}));
            await attempt(() => Wapo.run('1', 'options'));
            await attempt(() => Wapo.run('a\\0b'));
            scriptOutput = JSON.stringify(out);
        })();
    """)
    assert _json(r) == ["TypeError"] * 6


def test_inner_limits_are_capped_by_the_outer_run():
    from wapo.js.services import MIN_MEMORY, inner_limits

    outer = Limits(memory=64 * 2**20, time=10, fuel=10**9)
    lim = inner_limits(outer, 4.0, {})
    assert 5.9 < lim.time <= 6 and lim.memory == 64 * 2**20 and lim.fuel == 10**9
    lim = inner_limits(outer, 4.0, {"timeLimit": 60_000, "memoryLimit": 2**40, "gasLimit": 10**12})
    assert lim.time <= 6 and lim.memory == 64 * 2**20 and lim.fuel == 10**9
    lim = inner_limits(outer, 4.0, {"timeLimit": 500, "memoryLimit": 1000, "gasLimit": 100})
    assert lim.time == 0.5 and lim.memory == MIN_MEMORY and lim.fuel == 100 * 1024
    unlimited = Limits(time=0)
    lim = inner_limits(unlimited, 0.0, {})
    assert lim.time == 0 and lim.fuel is None
    assert inner_limits(unlimited, 0.0, {"timeLimit": 1500}).time == 1.5


def test_run_depth_and_concurrency_limits(js):
    from wapo.js import services

    r = js("""
        const rs = [];
        for (let i = 0; i < 6; i++) {
            rs.push(Wapo.run('setTimeout(() => {}, 50)').catch((e) => e.name));
        }
        Promise.all(rs).then((all) => { scriptOutput = JSON.stringify(all.map((r) => typeof r === 'string' ? r : r.isOk)); });
    """)
    out = _json(r)
    n = services.MAX_CONCURRENT
    assert out == [True] * n + ["RangeError"] * (6 - n)

    # nesting: each level runs the same program (its own text, passed as an argument) one level deeper
    code = """
        const d = Number(scriptArgs[1]);
        Wapo.run(scriptArgs[0], {args: [scriptArgs[0], String(d + 1)]}).then(
            (r) => { scriptOutput = r.isOk ? r.value : 'E ' + r.error; },
            (e) => { scriptOutput = 'depth ' + d + ': ' + e.name; });
    """
    r = js(code, code, "0")
    assert r.ok, r.error
    assert r.output.decode() == f"depth {services.MAX_DEPTH}: RangeError"
