"""WebCrypto beyond HMAC (ECDSA, Ed25519, RSA, AES, PBKDF2, HKDF, ECDH, X25519, JWK, key wrapping):
every result checked against the ``cryptography`` library or Python's hashlib in the same test,
in both directions where the algorithm allows (JS signs or encrypts, Python verifies or decrypts, and
the reverse)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MESSAGE = "the message ✓".encode()


def out(r):
    assert r.ok, r.error and r.error.describe()
    return json.loads(r.output)


def pkcs8(key) -> str:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).hex()


def spki(key) -> str:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo).hex()


def p1363_to_der(sig: bytes) -> bytes:
    half = len(sig) // 2
    return encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))


PRELUDE = """
const hex = (b) => Wapo.hexEncode(b);
const unhex = (s) => Wapo.hexDecode(s);
const msg = new TextEncoder().encode(scriptArgs[0]);
const subtle = crypto.subtle;
"""


def run(js, body: str, *args: str):
    return out(js(PRELUDE + "(async () => {" + body + "})();", MESSAGE.decode(), *args))


@pytest.mark.parametrize("curve,pycurve,hash_name,pyhash", [("P-256", ec.SECP256R1, "SHA-256", hashes.SHA256),
                                                             ("P-384", ec.SECP384R1, "SHA-384", hashes.SHA384)])
def test_ecdsa_both_ways(js, curve, pycurve, hash_name, pyhash):
    py_key = ec.generate_private_key(pycurve())
    py_sig = py_key.sign(MESSAGE, ec.ECDSA(pyhash()))
    r, s = decode_dss_signature(py_sig)
    size = {"P-256": 32, "P-384": 48}[curve]
    py_p1363 = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    got = run(js, """
        const alg = {name: 'ECDSA', namedCurve: scriptArgs[1]}, sigAlg = {name: 'ECDSA', hash: scriptArgs[2]};
        const pair = await subtle.generateKey(alg, true, ['sign', 'verify']);
        const sig = await subtle.sign(sigAlg, pair.privateKey, msg);
        const imported = await subtle.importKey('pkcs8', unhex(scriptArgs[3]), alg, false, ['sign']);
        const pub = await subtle.importKey('spki', unhex(scriptArgs[4]), alg, true, ['verify']);
        const sig2 = await subtle.sign(sigAlg, imported, msg);
        scriptOutput = JSON.stringify({
            spki: hex(await subtle.exportKey('spki', pair.publicKey)), sig: hex(sig), sig2: hex(sig2),
            pyOk: await subtle.verify(sigAlg, pub, unhex(scriptArgs[5]), msg),
            pyBad: await subtle.verify(sigAlg, pub, unhex(scriptArgs[5]), new Uint8Array([1])),
            jwk: await subtle.exportKey('jwk', pair.privateKey),
            alg: pair.privateKey.algorithm, pubUsages: pair.publicKey.usages, privUsages: pair.privateKey.usages,
            pubExtractable: pair.publicKey.extractable, types: [pair.publicKey.type, pair.privateKey.type],
        });
    """, curve, hash_name, pkcs8(py_key), spki(py_key.public_key()), py_p1363.hex())
    js_pub = serialization.load_der_public_key(bytes.fromhex(got["spki"]))
    js_pub.verify(p1363_to_der(bytes.fromhex(got["sig"])), MESSAGE, ec.ECDSA(pyhash()))
    py_key.public_key().verify(p1363_to_der(bytes.fromhex(got["sig2"])), MESSAGE, ec.ECDSA(pyhash()))
    assert len(bytes.fromhex(got["sig"])) == 2 * size
    assert got["pyOk"] is True and got["pyBad"] is False
    jwk = got["jwk"]
    assert jwk["kty"] == "EC" and jwk["crv"] == curve and jwk["ext"] is True
    d = int.from_bytes(base64.urlsafe_b64decode(jwk["d"] + "=" * (-len(jwk["d"]) % 4)), "big")
    assert ec.derive_private_key(d, pycurve()).public_key() == js_pub
    assert got["alg"] == {"name": "ECDSA", "namedCurve": curve}
    assert got["pubUsages"] == ["verify"] and got["privUsages"] == ["sign"]
    assert got["pubExtractable"] is True and got["types"] == ["public", "private"]


def test_ed25519_signatures_match_python(js):
    py_key = ed25519.Ed25519PrivateKey.generate()
    raw_pub = py_key.public_key().public_bytes_raw()
    got = run(js, """
        const k = await subtle.importKey('pkcs8', unhex(scriptArgs[1]), 'Ed25519', true, ['sign']);
        const pub = await subtle.importKey('raw', unhex(scriptArgs[2]), {name: 'Ed25519'}, true, ['verify']);
        const sig = await subtle.sign('Ed25519', k, msg);
        const pair = await subtle.generateKey('Ed25519', false, ['sign', 'verify']);
        const sig2 = await subtle.sign('Ed25519', pair.privateKey, msg);
        scriptOutput = JSON.stringify({
            sig: hex(sig), ok: await subtle.verify('Ed25519', pub, sig, msg),
            raw2: hex(await subtle.exportKey('raw', pair.publicKey)), sig2: hex(sig2),
            jwk: await subtle.exportKey('jwk', k),
        });
    """, pkcs8(py_key), raw_pub.hex())
    assert bytes.fromhex(got["sig"]) == py_key.sign(MESSAGE)  # Ed25519 is deterministic
    assert got["ok"] is True
    ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(got["raw2"])).verify(bytes.fromhex(got["sig2"]), MESSAGE)
    assert got["jwk"]["kty"] == "OKP" and got["jwk"]["crv"] == "Ed25519"
    assert base64.urlsafe_b64decode(got["jwk"]["x"] + "=") == raw_pub


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(65537, 2048)


def test_rsa_signatures_both_ways(js, rsa_key):
    pss = rsa_padding.PSS(rsa_padding.MGF1(hashes.SHA256()), 32)
    py_pss = rsa_key.sign(MESSAGE, pss, hashes.SHA256())
    got = run(js, """
        const v15 = {name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256'}, pss = {name: 'RSA-PSS', hash: 'SHA-256'};
        const k15 = await subtle.importKey('pkcs8', unhex(scriptArgs[1]), v15, false, ['sign']);
        const kpss = await subtle.importKey('pkcs8', unhex(scriptArgs[1]), pss, false, ['sign']);
        const pub = await subtle.importKey('spki', unhex(scriptArgs[2]), pss, true, ['verify']);
        scriptOutput = JSON.stringify({
            v15: hex(await subtle.sign('RSASSA-PKCS1-v1_5', k15, msg)),
            pss: hex(await subtle.sign({name: 'RSA-PSS', saltLength: 32}, kpss, msg)),
            pyOk: await subtle.verify({name: 'RSA-PSS', saltLength: 32}, pub, unhex(scriptArgs[3]), msg),
            pyWrongSalt: await subtle.verify({name: 'RSA-PSS', saltLength: 20}, pub, unhex(scriptArgs[3]), msg),
            alg: {...k15.algorithm, publicExponent: Array.from(k15.algorithm.publicExponent)},
            jwk: await subtle.exportKey('jwk', pub),
        });
    """, pkcs8(rsa_key), spki(rsa_key.public_key()), py_pss.hex())
    assert bytes.fromhex(got["v15"]) == rsa_key.sign(MESSAGE, rsa_padding.PKCS1v15(), hashes.SHA256())
    rsa_key.public_key().verify(bytes.fromhex(got["pss"]), MESSAGE, pss, hashes.SHA256())
    assert got["pyOk"] is True and got["pyWrongSalt"] is False
    assert got["alg"] == {"name": "RSASSA-PKCS1-v1_5", "modulusLength": 2048, "publicExponent": [1, 0, 1],
                          "hash": {"name": "SHA-256"}}
    assert got["jwk"]["kty"] == "RSA" and got["jwk"]["alg"] == "PS256" and got["jwk"]["e"] == "AQAB"


def test_rsa_oaep_both_ways(js, rsa_key):
    oaep = rsa_padding.OAEP(rsa_padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    py_ct = rsa_key.public_key().encrypt(b"from python", oaep)
    got = run(js, """
        const alg = {name: 'RSA-OAEP', hash: 'SHA-256'};
        const pub = await subtle.importKey('spki', unhex(scriptArgs[2]), alg, true, ['encrypt']);
        const priv = await subtle.importKey('pkcs8', unhex(scriptArgs[1]), alg, false, ['decrypt']);
        scriptOutput = JSON.stringify({
            ct: hex(await subtle.encrypt({name: 'RSA-OAEP'}, pub, msg)),
            pt: new TextDecoder().decode(await subtle.decrypt({name: 'RSA-OAEP'}, priv, unhex(scriptArgs[3]))),
        });
    """, pkcs8(rsa_key), spki(rsa_key.public_key()), py_ct.hex())
    assert rsa_key.decrypt(bytes.fromhex(got["ct"]), oaep) == MESSAGE
    assert got["pt"] == "from python"


def test_aes_modes_match_python(js):
    key, iv, aad = bytes(range(32)), bytes(range(100, 112)), b"header"
    iv16, counter = bytes(range(16)), b"\0" * 15 + b"\xfe"  # the counter wraps within 8 bits
    got = run(js, """
        const key = unhex(scriptArgs[1]), iv = unhex(scriptArgs[2]), iv16 = unhex(scriptArgs[3]);
        const counter = unhex(scriptArgs[4]), aad = new TextEncoder().encode('header');
        const gcm = await subtle.importKey('raw', key, 'AES-GCM', true, ['encrypt', 'decrypt']);
        const cbc = await subtle.importKey('raw', key, {name: 'AES-CBC'}, false, ['encrypt', 'decrypt']);
        const ctr = await subtle.importKey('raw', key, {name: 'AES-CTR'}, false, ['encrypt', 'decrypt']);
        const g = await subtle.encrypt({name: 'AES-GCM', iv, additionalData: aad}, gcm, msg);
        const tampered = new Uint8Array(g.slice(0)); tampered[0] ^= 1;
        let tamperError;
        try { await subtle.decrypt({name: 'AES-GCM', iv, additionalData: aad}, gcm, tampered); }
        catch (e) { tamperError = [e.name, e instanceof DOMException]; }
        const c = await subtle.encrypt({name: 'AES-CBC', iv: iv16}, cbc, msg);
        const t = await subtle.encrypt({name: 'AES-CTR', counter, length: 8}, ctr, new Uint8Array(64));
        scriptOutput = JSON.stringify({
            gcm: hex(g), cbc: hex(c), ctr: hex(t), tamperError,
            gcmBack: new TextDecoder().decode(await subtle.decrypt({name: 'AES-GCM', iv, additionalData: aad}, gcm, g)),
            cbcBack: new TextDecoder().decode(await subtle.decrypt({name: 'AES-CBC', iv: iv16}, cbc, c)),
            alg: gcm.algorithm, jwk: await subtle.exportKey('jwk', gcm),
        });
    """, key.hex(), iv.hex(), iv16.hex(), counter.hex())
    assert bytes.fromhex(got["gcm"]) == AESGCM(key).encrypt(iv, MESSAGE, aad)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv16)).encryptor()
    pad = 16 - len(MESSAGE) % 16
    assert bytes.fromhex(got["cbc"]) == enc.update(MESSAGE + bytes([pad]) * pad) + enc.finalize()
    # 4 blocks from counter ...fe: fe, ff, then the low 8 bits wrap to 00, 01 (the high bits stay)
    blocks = [b"\0" * 15 + bytes([n]) for n in (0xfe, 0xff, 0x00, 0x01)]
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    assert bytes.fromhex(got["ctr"]) == b"".join(ecb.update(b) for b in blocks)
    assert got["tamperError"] == ["OperationError", True]
    assert got["gcmBack"] == got["cbcBack"] == MESSAGE.decode()
    assert got["alg"] == {"name": "AES-GCM", "length": 256}
    assert got["jwk"]["kty"] == "oct" and got["jwk"]["alg"] == "A256GCM"
    assert base64.urlsafe_b64decode(got["jwk"]["k"] + "=") == key


def test_pbkdf2_and_hkdf_match_python(js):
    got = run(js, """
        const pw = await subtle.importKey('raw', new TextEncoder().encode('password'), 'PBKDF2', false, ['deriveBits', 'deriveKey']);
        const salt = new TextEncoder().encode('salt'), info = new TextEncoder().encode('info');
        const pb = await subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt, iterations: 1000}, pw, 256);
        const ikm = await subtle.importKey('raw', unhex('0b0b0b0b'), 'HKDF', false, ['deriveBits']);
        const hk = await subtle.deriveBits({name: 'HKDF', hash: 'SHA-512', salt, info}, ikm, 512);
        const aes = await subtle.deriveKey({name: 'PBKDF2', hash: 'SHA-1', salt, iterations: 10}, pw,
                                           {name: 'AES-GCM', length: 128}, true, ['encrypt']);
        scriptOutput = JSON.stringify({pb: hex(pb), hk: hex(hk), aes: hex(await subtle.exportKey('raw', aes)),
                                       aesAlg: aes.algorithm, pwAlg: pw.algorithm, pwExtractable: pw.extractable});
    """)
    assert got["pb"] == hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 1000, 32).hex()
    assert got["hk"] == HKDF(hashes.SHA512(), 64, b"salt", b"info").derive(b"\x0b" * 4).hex()
    assert got["aes"] == hashlib.pbkdf2_hmac("sha1", b"password", b"salt", 10, 16).hex()
    assert got["aesAlg"] == {"name": "AES-GCM", "length": 128}
    assert got["pwAlg"] == {"name": "PBKDF2"} and got["pwExtractable"] is False


def test_ecdh_and_x25519_agree_with_python(js):
    py_ec = ec.generate_private_key(ec.SECP256R1())
    py_x = x25519.X25519PrivateKey.generate()
    got = run(js, """
        const ecAlg = {name: 'ECDH', namedCurve: 'P-256'};
        const mine = await subtle.generateKey(ecAlg, false, ['deriveBits']);
        const theirs = await subtle.importKey('spki', unhex(scriptArgs[1]), ecAlg, true, []);
        const xMine = await subtle.generateKey('X25519', false, ['deriveBits', 'deriveKey']);
        const xTheirs = await subtle.importKey('raw', unhex(scriptArgs[2]), 'X25519', true, []);
        scriptOutput = JSON.stringify({
            ecPub: hex(await subtle.exportKey('raw', mine.publicKey)),
            ec: hex(await subtle.deriveBits({name: 'ECDH', public: theirs}, mine.privateKey, 256)),
            ecNull: hex(await subtle.deriveBits({name: 'ECDH', public: theirs}, mine.privateKey, null)),
            xPub: hex(await subtle.exportKey('raw', xMine.publicKey)),
            x: hex(await subtle.deriveBits({name: 'X25519', public: xTheirs}, xMine.privateKey, 256)),
        });
    """, spki(py_ec.public_key()), py_x.public_key().public_bytes_raw().hex())
    js_ec = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(got["ecPub"]))
    assert got["ec"] == got["ecNull"] == py_ec.exchange(ec.ECDH(), js_ec).hex()
    js_x = x25519.X25519PublicKey.from_public_bytes(bytes.fromhex(got["xPub"]))
    assert got["x"] == py_x.exchange(js_x).hex()


def test_jwk_round_trips_and_hmac_jwk(js):
    got = run(js, """
        const ecAlg = {name: 'ECDSA', namedCurve: 'P-256'};
        const pair = await subtle.generateKey(ecAlg, true, ['sign', 'verify']);
        const jwk = await subtle.exportKey('jwk', pair.privateKey);
        const back = await subtle.importKey('jwk', jwk, ecAlg, true, ['sign']);
        const pubJwk = await subtle.exportKey('jwk', pair.publicKey);
        const pubBack = await subtle.importKey('jwk', pubJwk, ecAlg, true, ['verify']);
        const sig = await subtle.sign({name: 'ECDSA', hash: 'SHA-256'}, back, msg);
        const hmacJwk = {kty: 'oct', k: 'c2VjcmV0', alg: 'HS256'};
        const h = await subtle.importKey('jwk', hmacJwk, {name: 'HMAC', hash: 'SHA-256'}, true, ['sign']);
        scriptOutput = JSON.stringify({
            ok: await subtle.verify({name: 'ECDSA', hash: 'SHA-256'}, pubBack, sig, msg),
            same: JSON.stringify(await subtle.exportKey('jwk', back)) === JSON.stringify(jwk),
            hmac: hex(await subtle.sign('HMAC', h, msg)), hmacJwk: await subtle.exportKey('jwk', h),
        });
    """)
    assert got["ok"] is True and got["same"] is True
    import hmac as _hmac
    assert got["hmac"] == _hmac.new(b"secret", MESSAGE, "sha256").hexdigest()
    assert got["hmacJwk"]["k"] == "c2VjcmV0" and got["hmacJwk"]["alg"] == "HS256"


def test_wrap_and_unwrap(js):
    got = run(js, """
        const kek = await subtle.generateKey({name: 'AES-GCM', length: 256}, false, ['wrapKey', 'unwrapKey']);
        const key = await subtle.generateKey({name: 'HMAC', hash: 'SHA-256'}, true, ['sign']);
        const iv = new Uint8Array(12);
        const wrapped = await subtle.wrapKey('jwk', key, kek, {name: 'AES-GCM', iv});
        const back = await subtle.unwrapKey('jwk', wrapped, kek, {name: 'AES-GCM', iv},
                                            {name: 'HMAC', hash: 'SHA-256'}, true, ['sign']);
        const rawWrapped = await subtle.wrapKey('raw', key, kek, {name: 'AES-GCM', iv});
        scriptOutput = JSON.stringify({
            same: hex(await subtle.exportKey('raw', back)) === hex(await subtle.exportKey('raw', key)),
            rawLen: rawWrapped.byteLength,
        });
    """)
    assert got == {"same": True, "rawLen": 64 + 16}


def test_bad_inputs_reject_with_webcrypto_errors(js):
    got = run(js, """
        const res = {};
        const attempt = async (label, f) => {
            let p;
            try { p = f(); } catch (e) { res[label] = 'threw synchronously'; return; }
            try { await p; res[label] = 'resolved'; } catch (e) { res[label] = e.name; }
        };
        const ecAlg = {name: 'ECDSA', namedCurve: 'P-256'};
        const pair = await subtle.generateKey(ecAlg, false, ['sign', 'verify']);
        const aes = await subtle.generateKey({name: 'AES-GCM', length: 128}, false, ['encrypt', 'decrypt']);
        const other = await subtle.generateKey({name: 'AES-GCM', length: 128}, false, ['decrypt']);
        const pw = await subtle.importKey('raw', msg, 'PBKDF2', false, ['deriveBits']);
        await attempt('garbageSpki', () => subtle.importKey('spki', new Uint8Array([1, 2, 3]), ecAlg, true, ['verify']));
        await attempt('wrongCurve', () => subtle.importKey('spki', unhex(scriptArgs[1]), ecAlg, true, ['verify']));
        await attempt('badCurve', () => subtle.generateKey({name: 'ECDSA', namedCurve: 'P-192'}, true, ['sign']));
        await attempt('noCurve', () => subtle.generateKey({name: 'ECDSA'}, true, ['sign']));
        await attempt('publicUsageOnPrivate', () => subtle.importKey('pkcs8', unhex(scriptArgs[2]), ecAlg, true, ['verify']));
        await attempt('exportPrivateNotExtractable', () => subtle.exportKey('pkcs8', pair.privateKey));
        await attempt('signWithPublic', () => subtle.sign({name: 'ECDSA', hash: 'SHA-256'}, pair.publicKey, msg));
        await attempt('ecdsaNoHash', () => subtle.sign({name: 'ECDSA'}, pair.privateKey, msg));
        await attempt('gcmWrongKey', async () => {
            const ct = await subtle.encrypt({name: 'AES-GCM', iv: new Uint8Array(12)}, aes, msg);
            return subtle.decrypt({name: 'AES-GCM', iv: new Uint8Array(12)}, other, ct);
        });
        await attempt('gcmNoIv', () => subtle.encrypt({name: 'AES-GCM'}, aes, msg));
        await attempt('gcmEmptyIv', () => subtle.encrypt({name: 'AES-GCM', iv: new Uint8Array(0)}, aes, msg));
        await attempt('gcmBadTag', () => subtle.encrypt({name: 'AES-GCM', iv: new Uint8Array(12), tagLength: 20}, aes, msg));
        await attempt('aesBadLength', () => subtle.generateKey({name: 'AES-CBC', length: 100}, true, ['encrypt']));
        await attempt('aesRawBadSize', () => subtle.importKey('raw', new Uint8Array(5), 'AES-CBC', true, ['encrypt']));
        await attempt('pbkdf2Extractable', () => subtle.importKey('raw', msg, 'PBKDF2', true, ['deriveBits']));
        await attempt('pbkdf2TooMany', () => subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt: msg, iterations: 1e9}, pw, 256));
        await attempt('pbkdf2Zero', () => subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt: msg, iterations: 0}, pw, 256));
        await attempt('pbkdf2OddBits', () => subtle.deriveBits({name: 'PBKDF2', hash: 'SHA-256', salt: msg, iterations: 1}, pw, 12));
        await attempt('jwkNotObject', () => subtle.importKey('jwk', new Uint8Array(3), ecAlg, true, ['sign']));
        await attempt('jwkBadKty', () => subtle.importKey('jwk', {kty: 'XYZ'}, ecAlg, true, ['sign']));
        await attempt('jwkBadBase64', () => subtle.importKey('jwk', {kty: 'EC', crv: 'P-256', x: '!!', y: '!!'}, ecAlg, true, ['verify']));
        await attempt('jwkOffCurve', () => subtle.importKey('jwk', {kty: 'EC', crv: 'P-256', x: 'AQ', y: 'AQ'}, ecAlg, true, ['verify']));
        await attempt('aesKw', () => subtle.generateKey({name: 'AES-KW', length: 128}, true, ['wrapKey']));
        await attempt('rsaHuge', () => subtle.generateKey({name: 'RSA-PSS', modulusLength: 16384, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256'}, true, ['sign']));
        await attempt('rsaBadExponent', () => subtle.generateKey({name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([7]), hash: 'SHA-256'}, true, ['sign']));
        await attempt('ecdhWrongPeer', () => subtle.deriveBits({name: 'ECDH', public: aes}, pair.privateKey, 256));
        await attempt('ctrBadCounter', async () => {
            const k = await subtle.generateKey({name: 'AES-CTR', length: 128}, false, ['encrypt']);
            return subtle.encrypt({name: 'AES-CTR', counter: new Uint8Array(4), length: 64}, k, msg);
        });
        scriptOutput = JSON.stringify(res);
    """, spki(ec.generate_private_key(ec.SECP384R1()).public_key()), pkcs8(ec.generate_private_key(ec.SECP256R1())))
    assert got == {
        "garbageSpki": "DataError", "wrongCurve": "DataError", "badCurve": "NotSupportedError",
        "noCurve": "TypeError", "publicUsageOnPrivate": "SyntaxError",
        "exportPrivateNotExtractable": "InvalidAccessError", "signWithPublic": "InvalidAccessError",
        "ecdsaNoHash": "TypeError", "gcmWrongKey": "OperationError", "gcmNoIv": "TypeError",
        "gcmEmptyIv": "OperationError", "gcmBadTag": "OperationError", "aesBadLength": "OperationError",
        "aesRawBadSize": "DataError", "pbkdf2Extractable": "SyntaxError", "pbkdf2TooMany": "OperationError",
        "pbkdf2Zero": "OperationError", "pbkdf2OddBits": "OperationError", "jwkNotObject": "TypeError",
        "jwkBadKty": "DataError", "jwkBadBase64": "DataError", "jwkOffCurve": "DataError",
        "aesKw": "NotSupportedError", "rsaHuge": "OperationError", "rsaBadExponent": "OperationError",
        "ecdhWrongPeer": "InvalidAccessError", "ctrBadCounter": "OperationError",
    }


def test_subtle_host_service_refuses_malformed_requests():
    from wapo.host.services import call

    def header(h: dict, *parts: bytes) -> bytes:
        head = json.dumps({**h, "parts": [len(p) for p in parts]}).encode()
        return len(head).to_bytes(4, "little") + head + b"".join(parts)

    assert call(None, "subtle", b"").startswith(b"\1TypeError")
    assert call(None, "subtle", b"\xff\xff\xff\x7f{").startswith(b"\1TypeError")
    assert call(None, "subtle", b"\2\0\0\0[]").startswith(b"\1TypeError")
    assert call(None, "subtle", header({"op": "nope"})).startswith(b"\1TypeError")
    assert call(None, "subtle", header({"op": "sign"}, b"x")).startswith(b"\1TypeError")  # too few parts
    lying = json.dumps({"op": "import", "parts": [1000]}).encode()
    assert call(None, "subtle", len(lying).to_bytes(4, "little") + lying + b"x").startswith(b"\1TypeError")
    assert call(None, "subtle", header({"op": "import", "alg": "ECDSA", "format": "pkcs8"}, b"\0" * 40)
                ).startswith(b"\1DataError")
    assert call(None, "subtle", header({"op": "derive", "alg": "PBKDF2", "hash": "MD5", "length": 128,
                                        "iterations": 1}, b"k", b"s")).startswith(b"\1NotSupportedError")
