"""WebCrypto beyond HMAC (issue 15; the implementation is main's, tests/test_web_crypto_keys.py), against Node: ECDSA, Ed25519, RSA-PSS,
RSASSA-PKCS1-v1_5, RSA-OAEP, AES-GCM/CBC/CTR, PBKDF2, HKDF, ECDH, key formats raw/spki/pkcs8/jwk,
deriveKey, wrapKey/unwrapKey. tests/agents/webcrypto.mjs runs in the real guest and, when Node is
installed, on Node too: the answers (deterministic ones, and verify results) must be equal."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

SCRIPT = Path(__file__).resolve().parent / "agents" / "webcrypto.mjs"


def run_in_wapo(js, code: str, *args: str) -> dict:
    result = js(code, *args, module=True)
    assert result.error is None, result.error
    return json.loads(result.output)


def test_every_algorithm_answers_as_expected(js):
    out = run_in_wapo(js, SCRIPT.read_text())
    assert out["ecdsa"] == [64, True, False]
    assert out["jwk"] == ["EC", "P-256", "string", "private", "P-256"]
    assert out["ed"] == [64, True, 32]
    assert out["rsa"] == [256, True, 2048]
    assert out["gcm"][1] == "hello" and len(out["gcm"][0]) == 2 * (5 + 16)
    assert out["pbkdf2"] == "632c2812e46d4604102ba7618e9d6d7d2f8128f6266b4a03264d2a0460b7dcb3"  # PBKDF2-HMAC-SHA256("password", "salt", 1000), as Node computes it
    assert out["ecdh"] == [True, 96] and out["oaep"] == "secret" and out["unwrapped"] == "hello"
    assert out["derivedKey"] == ["AES-GCM", 128, 16] and out["spki"] is True and out["badAes"] == "DataError"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_answers_equal_nodes(js, tmp_path):
    ours = run_in_wapo(js, SCRIPT.read_text())
    node = subprocess.run(["node", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert node.returncode == 0, node.stderr
    assert ours == json.loads(node.stdout)


def test_an_ecdsa_signature_verifies_with_python_cryptography(js):
    out = run_in_wapo(js, """
        const s = crypto.subtle;
        const k = await s.generateKey({name: 'ECDSA', namedCurve: 'P-384'}, true, ['sign', 'verify']);
        const sig = await s.sign({name: 'ECDSA', hash: 'SHA-384'}, k.privateKey, new TextEncoder().encode('wapo'));
        const spki = await s.exportKey('spki', k.publicKey);
        const hex = (b) => Array.from(new Uint8Array(b)).map((x) => x.toString(16).padStart(2, '0')).join('');
        scriptOutput = JSON.stringify({sig: hex(sig), spki: hex(spki)});
    """)
    key = load_der_public_key(bytes.fromhex(out["spki"]))
    raw = bytes.fromhex(out["sig"])
    assert len(raw) == 96
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    key.verify(der, b"wapo", ec.ECDSA(hashes.SHA384()))  # raises if wrong


def test_errors_are_dom_exceptions(js):
    out = run_in_wapo(js, """
        const s = crypto.subtle, out = {};
        const attempt = async (label, f) => { try { await f(); out[label] = 'resolved'; } catch (e) { out[label] = e.name; } };
        const k = await s.generateKey({name: 'ECDSA', namedCurve: 'P-256'}, false, ['sign', 'verify']);
        await attempt('badCurve', () => s.generateKey({name: 'ECDSA', namedCurve: 'P-999'}, true, ['sign']));
        await attempt('verifyWithPrivate', () => s.verify({name: 'ECDSA', hash: 'SHA-256'}, k.privateKey, new Uint8Array(64), new Uint8Array(1)));
        await attempt('exportPrivateNotExtractable', () => s.exportKey('pkcs8', k.privateKey));
        await attempt('exportPublicAlways', () => s.exportKey('spki', k.publicKey));
        await attempt('badSpki', () => s.importKey('spki', new Uint8Array(10), {name: 'ECDSA', namedCurve: 'P-256'}, true, ['verify']));
        await attempt('gcmWrongKey', async () => {
            const a = await s.importKey('raw', new Uint8Array(16), 'AES-GCM', false, ['encrypt', 'decrypt']);
            const b = await s.importKey('raw', new Uint8Array(16).fill(1), 'AES-GCM', false, ['decrypt']);
            const ct = await s.encrypt({name: 'AES-GCM', iv: new Uint8Array(12)}, a, new Uint8Array(3));
            await s.decrypt({name: 'AES-GCM', iv: new Uint8Array(12)}, b, ct);
        });
        await attempt('pbkdf2Extractable', () => s.importKey('raw', new Uint8Array(4), 'PBKDF2', true, ['deriveBits']));
        scriptOutput = JSON.stringify(out);
    """)
    assert out == {"badCurve": "NotSupportedError", "verifyWithPrivate": "InvalidAccessError",
                   "exportPrivateNotExtractable": "InvalidAccessError", "exportPublicAlways": "resolved",
                   "badSpki": "DataError", "gcmWrongKey": "OperationError", "pbkdf2Extractable": "SyntaxError"}

