"""Web Crypto in WapoJS: getRandomValues, randomUUID, subtle.digest and HMAC keys, checked against Python."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest


def _json(r):
    assert r.ok, r.error and r.error.describe()
    return json.loads(r.output)


def test_get_random_values_fills_integer_arrays(js):
    r = js("""
        const out = {};
        for (const T of [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array,
                         Uint32Array, BigInt64Array, BigUint64Array]) {
            const a = new T(64);
            const same = crypto.getRandomValues(a) === a;
            out[T.name] = { same, nonzero: Array.from(a).filter((x) => x != 0).length };
        }
        const big = crypto.getRandomValues(new Uint8Array(65536));
        const view = new Uint8Array(16);
        crypto.getRandomValues(new Uint8Array(view.buffer, 4, 8));
        out.edges = Array.from(view.slice(0, 4)).concat(Array.from(view.slice(12)));
        out.bigLen = big.length;
        out.distinct = Wapo.hexEncode(crypto.getRandomValues(new Uint8Array(32))) !==
                       Wapo.hexEncode(crypto.getRandomValues(new Uint8Array(32)));
        out.empty = crypto.getRandomValues(new Uint8Array(0)).length;
        scriptOutput = JSON.stringify(out);
    """)
    out = _json(r)
    for name in ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array",
                 "Uint32Array", "BigInt64Array", "BigUint64Array"]:
        assert out[name]["same"]
        assert out[name]["nonzero"] > 40, name  # 64 random elements: all zero-ish would be a failure
    assert out["edges"] == [0] * 8  # only the view's bytes were written
    assert out["bigLen"] == 65536 and out["distinct"] and out["empty"] == 0


def test_get_random_values_errors(js):
    r = js("""
        const res = [];
        const attempt = (f) => { try { f(); res.push('no error'); }
                                 catch (e) { res.push([e.name, e instanceof DOMException, e.constructor.name]); } };
        attempt(() => crypto.getRandomValues(new Float32Array(4)));
        attempt(() => crypto.getRandomValues(new Float64Array(4)));
        attempt(() => crypto.getRandomValues(new DataView(new ArrayBuffer(4))));
        attempt(() => crypto.getRandomValues(new Uint8Array(65537)));
        attempt(() => crypto.getRandomValues(new Uint32Array(16385)));
        attempt(() => crypto.getRandomValues([1, 2, 3]));
        attempt(() => crypto.getRandomValues(new ArrayBuffer(8)));
        attempt(() => crypto.getRandomValues());
        scriptOutput = JSON.stringify(res);
    """)
    res = _json(r)
    assert res[0][:2] == ["TypeMismatchError", True]
    assert res[1][:2] == ["TypeMismatchError", True]
    assert res[2][:2] == ["TypeMismatchError", True]
    assert res[3][:2] == ["QuotaExceededError", True]
    assert res[4][:2] == ["QuotaExceededError", True]
    assert res[5] == ["TypeError", False, "TypeError"]
    assert res[6] == ["TypeError", False, "TypeError"]
    assert res[7] == ["TypeError", False, "TypeError"]


def test_random_uuid_is_v4(js):
    r = js("const s = new Set(); for (let i = 0; i < 200; i++) s.add(crypto.randomUUID());"
           "scriptOutput = JSON.stringify([...s])")
    uuids = _json(r)
    assert len(uuids) == 200
    for u in uuids:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u), u


def test_crypto_interfaces(js):
    r = js("""
        const out = [crypto instanceof Crypto, crypto.subtle instanceof SubtleCrypto,
                     Object.prototype.toString.call(crypto), Object.prototype.toString.call(crypto.subtle),
                     crypto.subtle === crypto.subtle, typeof CryptoKey];
        for (const C of [Crypto, SubtleCrypto, CryptoKey]) {
            try { new C(); out.push('constructed'); } catch (e) { out.push(e.name); }
        }
        scriptOutput = JSON.stringify(out);
    """)
    assert _json(r) == [True, True, "[object Crypto]", "[object SubtleCrypto]", True, "function",
                        "TypeError", "TypeError", "TypeError"]


def test_digest_matches_hashlib(js):
    data = "héllo wapo " * 50
    r = js("""
        (async () => {
            const out = {};
            const bytes = new TextEncoder().encode(scriptArgs[0]);
            for (const alg of ['SHA-1', 'SHA-256', 'sha-384', {name: 'SHA-512'}]) {
                const d = await crypto.subtle.digest(alg, bytes);
                out[alg.name || alg] = [d instanceof ArrayBuffer, Wapo.hexEncode(d)];
            }
            // a view into a larger buffer digests only its bytes; an ArrayBuffer works as well
            const big = new Uint8Array([9, 9, 97, 98, 99, 9]);
            out.view = Wapo.hexEncode(await crypto.subtle.digest('SHA-256', big.subarray(2, 5)));
            out.buffer = Wapo.hexEncode(await crypto.subtle.digest('SHA-256', new Uint8Array([97, 98, 99]).buffer));
            out.empty = Wapo.hexEncode(await crypto.subtle.digest('SHA-256', new Uint8Array(0)));
            scriptOutput = JSON.stringify(out);
        })();
    """, data)
    out = _json(r)
    raw = data.encode()
    assert out["SHA-1"] == [True, hashlib.sha1(raw).hexdigest()]
    assert out["SHA-256"] == [True, hashlib.sha256(raw).hexdigest()]
    assert out["sha-384"] == [True, hashlib.sha384(raw).hexdigest()]
    assert out["SHA-512"] == [True, hashlib.sha512(raw).hexdigest()]
    assert out["view"] == out["buffer"] == hashlib.sha256(b"abc").hexdigest()
    assert out["empty"] == hashlib.sha256(b"").hexdigest()


def test_digest_errors_reject(js):
    r = js("""
        (async () => {
            const out = [];
            const attempt = async (f) => {
                let p;
                try { p = f(); } catch (e) { out.push('threw synchronously'); return; }
                try { await p; out.push('resolved'); } catch (e) { out.push([e.name, e instanceof DOMException]); }
            };
            await attempt(() => crypto.subtle.digest('MD5', new Uint8Array(1)));
            await attempt(() => crypto.subtle.digest({name: 'SHA-3'}, new Uint8Array(1)));
            await attempt(() => crypto.subtle.digest('SHA-256', 'a string'));
            await attempt(() => crypto.subtle.digest({}, new Uint8Array(1)));
            await attempt(() => crypto.subtle.encrypt({name: 'AES-GCM'}, null, new Uint8Array(1)));
            await attempt(() => crypto.subtle.deriveBits({name: 'PBKDF2'}, null, 128));
            scriptOutput = JSON.stringify(out);
        })();
    """)
    # the last two: a null key is not a CryptoKey (WebCrypto's TypeError)
    assert _json(r) == [["NotSupportedError", True], ["NotSupportedError", True], ["TypeError", False],
                        ["TypeError", False], ["TypeError", False], ["TypeError", False]]


@pytest.mark.parametrize("hash_name,algorithm", [("SHA-1", "sha1"), ("SHA-256", "sha256"),
                                                  ("SHA-384", "sha384"), ("SHA-512", "sha512")])
def test_hmac_sign_verify_matches_python(js, hash_name, algorithm):
    key = bytes(range(7, 7 + 45))
    message = "the message ✓" * 10
    r = js("""
        (async () => {
            const key = Wapo.hexDecode(scriptArgs[0]);
            const msg = new TextEncoder().encode(scriptArgs[1]);
            const k = await crypto.subtle.importKey('raw', key, {name: 'HMAC', hash: scriptArgs[2]}, true,
                                                    ['sign', 'verify']);
            const sig = await crypto.subtle.sign('HMAC', k, msg);
            const bad = new Uint8Array(sig.slice(0)); bad[0] ^= 1;
            scriptOutput = JSON.stringify({
                sig: Wapo.hexEncode(sig), isBuffer: sig instanceof ArrayBuffer,
                ok: await crypto.subtle.verify({name: 'HMAC'}, k, sig, msg),
                tampered: await crypto.subtle.verify('HMAC', k, bad, msg),
                short: await crypto.subtle.verify('HMAC', k, new Uint8Array(sig).slice(1), msg),
                otherMsg: await crypto.subtle.verify('HMAC', k, sig, new Uint8Array([1])),
                exported: Wapo.hexEncode(await crypto.subtle.exportKey('raw', k)),
                type: k.type, extractable: k.extractable, algorithm: k.algorithm, usages: k.usages,
            });
        })();
    """, key.hex(), message, hash_name)
    out = _json(r)
    assert out["sig"] == hmac.new(key, message.encode(), algorithm).hexdigest()
    assert out["isBuffer"] and out["ok"] is True
    assert out["tampered"] is False and out["short"] is False and out["otherMsg"] is False
    assert out["exported"] == key.hex()
    assert out["type"] == "secret" and out["extractable"] is True
    assert out["algorithm"] == {"name": "HMAC", "hash": {"name": hash_name}, "length": len(key) * 8}
    assert out["usages"] == ["sign", "verify"]


def test_hmac_generate_key_and_round_trip(js):
    r = js("""
        (async () => {
            const k = await crypto.subtle.generateKey({name: 'HMAC', hash: 'SHA-256'}, true, ['sign', 'verify']);
            const k512 = await crypto.subtle.generateKey({name: 'hmac', hash: {name: 'SHA-512'}}, false, ['sign']);
            const k16 = await crypto.subtle.generateKey({name: 'HMAC', hash: 'SHA-1', length: 128}, true, ['verify']);
            const raw = await crypto.subtle.exportKey('raw', k);
            const msg = new Uint8Array([1, 2, 3]);
            const sig = await crypto.subtle.sign('HMAC', k, msg);
            // the exported bytes, imported again, make the same MAC
            const again = await crypto.subtle.importKey('raw', raw, {name: 'HMAC', hash: 'SHA-256'}, false, ['verify']);
            const k2 = await crypto.subtle.generateKey({name: 'HMAC', hash: 'SHA-256'}, true, ['sign']);
            scriptOutput = JSON.stringify({
                raw: Wapo.hexEncode(raw), sig: Wapo.hexEncode(sig),
                verified: await crypto.subtle.verify('HMAC', again, sig, msg),
                lengths: [k.algorithm.length, k512.algorithm.length, k16.algorithm.length],
                k512: [k512.extractable, k512.usages], k16: k16.usages,
                different: Wapo.hexEncode(await crypto.subtle.exportKey('raw', k2)) !== Wapo.hexEncode(raw),
            });
        })();
    """)
    out = _json(r)
    raw = bytes.fromhex(out["raw"])
    assert len(raw) == 64
    assert out["sig"] == hmac.new(raw, b"\1\2\3", "sha256").hexdigest()
    assert out["verified"] is True and out["different"] is True
    assert out["lengths"] == [512, 1024, 128]
    assert out["k512"] == [False, ["sign"]] and out["k16"] == ["verify"]


def test_hmac_errors(js):
    r = js("""
        (async () => {
            const out = {};
            const attempt = async (label, f) => {
                let p;
                try { p = f(); } catch (e) { out[label] = 'threw synchronously'; return; }
                try { await p; out[label] = 'resolved'; } catch (e) { out[label] = e.name; }
            };
            const raw = new Uint8Array(32).fill(7);
            const hmac = {name: 'HMAC', hash: 'SHA-256'};
            const signOnly = await crypto.subtle.importKey('raw', raw, hmac, false, ['sign']);
            const verifyOnly = await crypto.subtle.importKey('raw', raw, hmac, true, ['verify']);
            const msg = new Uint8Array(4);
            await attempt('verifyWithSignOnlyKey', () => crypto.subtle.verify('HMAC', signOnly, new Uint8Array(32), msg));
            await attempt('signWithVerifyOnlyKey', () => crypto.subtle.sign('HMAC', verifyOnly, msg));
            await attempt('exportNotExtractable', () => crypto.subtle.exportKey('raw', signOnly));
            await attempt('exportSpki', () => crypto.subtle.exportKey('spki', verifyOnly));
            await attempt('importJwk', () => crypto.subtle.importKey('jwk', {}, hmac, true, ['sign']));
            await attempt('importAesSignUsage', () => crypto.subtle.importKey('raw', raw, {name: 'AES-GCM'}, true, ['sign']));
            await attempt('importBadHash', () => crypto.subtle.importKey('raw', raw, {name: 'HMAC', hash: 'MD5'}, true, ['sign']));
            await attempt('importNoHash', () => crypto.subtle.importKey('raw', raw, {name: 'HMAC'}, true, ['sign']));
            await attempt('importBadUsage', () => crypto.subtle.importKey('raw', raw, hmac, true, ['encrypt']));
            await attempt('importNoUsage', () => crypto.subtle.importKey('raw', raw, hmac, true, []));
            await attempt('importEmptyKey', () => crypto.subtle.importKey('raw', new Uint8Array(0), hmac, true, ['sign']));
            await attempt('importWrongLength', () => crypto.subtle.importKey('raw', raw, {...hmac, length: 100}, true, ['sign']));
            await attempt('signNotAKey', () => crypto.subtle.sign('HMAC', {type: 'secret'}, msg));
            await attempt('signOtherAlgorithm', () => crypto.subtle.sign('ECDSA', signOnly, msg));
            await attempt('signUnknownAlgorithm', () => crypto.subtle.sign('FOO', signOnly, msg));
            await attempt('generateAesBadLength', () => crypto.subtle.generateKey({name: 'AES-GCM', length: 100}, true, ['encrypt']));
            await attempt('generateEd25519Encrypt', () => crypto.subtle.generateKey('Ed25519', true, ['encrypt']));
            await attempt('generateBadUsage', () => crypto.subtle.generateKey(hmac, true, ['decrypt']));
            scriptOutput = JSON.stringify(out);
        })();
    """)
    assert _json(r) == {
        "verifyWithSignOnlyKey": "InvalidAccessError",
        "signWithVerifyOnlyKey": "InvalidAccessError",
        "exportNotExtractable": "InvalidAccessError",
        "exportSpki": "NotSupportedError",
        "importJwk": "DataError",
        "importAesSignUsage": "SyntaxError",
        "importBadHash": "NotSupportedError",
        "importNoHash": "TypeError",
        "importBadUsage": "SyntaxError",
        "importNoUsage": "SyntaxError",
        "importEmptyKey": "DataError",
        "importWrongLength": "DataError",
        "signNotAKey": "TypeError",
        "signOtherAlgorithm": "InvalidAccessError",
        "signUnknownAlgorithm": "NotSupportedError",
        "generateAesBadLength": "OperationError",
        "generateEd25519Encrypt": "SyntaxError",
        "generateBadUsage": "SyntaxError",
    }


def test_key_material_is_not_reachable(js):
    r = js("""
        (async () => {
            const k = await crypto.subtle.importKey('raw', new Uint8Array([1, 2, 3]), {name: 'HMAC', hash: 'SHA-256'},
                                                    false, ['sign']);
            const names = Object.getOwnPropertyNames(k).concat(Object.getOwnPropertySymbols(k).map(String));
            let mutated;
            k.algorithm.name = 'x';  // frozen: ignored (sloppy mode)
            try { k.usages.push('verify'); mutated = 'pushed'; } catch (e) { mutated = [k.algorithm.name, e.name]; }
            scriptOutput = JSON.stringify({names, json: JSON.stringify(k), mutated});
        })();
    """)
    assert _json(r) == {"names": [], "json": "{}", "mutated": ["HMAC", "TypeError"]}


def test_random_host_service_limits():
    from wapo.host.services import call

    assert call(None, "random", (16).to_bytes(4, "little"))[:1] == b"\0"
    assert len(call(None, "random", (65536).to_bytes(4, "little"))) == 65537
    assert call(None, "random", (65537).to_bytes(4, "little")).startswith(b"\1QuotaExceededError")
    assert call(None, "random", b"12").startswith(b"\1TypeError")
    assert call(None, "hmac", b"MD5\0\0\0\0\0").startswith(b"\1NotSupportedError")
    assert call(None, "hmac", b"SHA-256\0\xff\0\0\0key").startswith(b"\1TypeError")
    assert call(None, "hmac", b"SHA-256\0\3\0\0\0keymsg") == b"\0" + hmac.new(b"key", b"msg", "sha256").digest()
