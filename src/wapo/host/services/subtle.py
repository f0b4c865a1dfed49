"""WebCrypto's public-key, AES and key-derivation algorithms, done by the ``cryptography`` library.

The guest keeps a key as bytes it never shows to user code (PKCS#8 for a private key, SPKI for
a public one, the raw bytes of a secret one) and sends them with each operation, so the host keeps
no per-guest key table to grow or free. One service, ``subtle``, takes a request in the layout of
``_unpack`` (a JSON header naming the operation, then its byte strings) and answers in the same
layout. Errors carry WebCrypto's exception names (``DataError``, ``OperationError``,
``NotSupportedError``, ``InvalidAccessError``), which the guest turns into DOMExceptions.

Everything here is CPU work on the guest's own thread, bounded so one call stays short: PBKDF2
iterations (``MAX_PBKDF2_ITERATIONS``), RSA modulus sizes, data sizes (the guest's own memory).
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import TYPE_CHECKING, Any, Callable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .cryptokeys import (CURVES, CURVE_BYTES, EC_ALGORITHMS, RSA_ALGORITHMS, check_family, fail, from_jwk, hash_algorithm,
                         int_bytes, int_of, load_key, pkcs8, private_key, public_key, raw_public,
                         spki, to_jwk)
from .registry import ServiceError, service, u32

if TYPE_CHECKING:
    from ..state import GuestState

MAX_PBKDF2_ITERATIONS = 2_000_000  # ~1 s of SHA-256 on one core: a call must not outlive a burst
MAX_DERIVED_BITS = 8 * 16320  # HKDF-SHA512's own limit (255 blocks); PBKDF2 gets the same cap
RSA_GENERATE_MAX_BITS = 4096  # generating 8192-bit keys takes seconds



# ---- the wire layout ------------------------------------------------------------------------


def _unpack(payload: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """u32 LE header length, the header (JSON, with "parts": the byte strings' lengths), the parts."""
    if len(payload) < 4:
        raise fail("TypeError", "subtle: the request is too short")
    (n,) = struct.unpack_from("<I", payload)
    try:
        header = json.loads(payload[4:4 + n])
    except ValueError as exc:
        raise fail("TypeError", f"subtle: the request header is not JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("parts", []), list):
        raise fail("TypeError", "subtle: the request header must be an object with a parts list")
    parts, at = [], 4 + n
    for length in header.get("parts", []):
        if not isinstance(length, int) or length < 0 or at + length > len(payload):
            raise fail("TypeError", "subtle: a part is longer than the request")
        parts.append(payload[at:at + length])
        at += length
    return header, parts


def _pack(header: dict[str, Any], *parts: bytes) -> bytes:
    head = json.dumps({**header, "parts": [len(p) for p in parts]}).encode()
    return u32(len(head)) + head + b"".join(parts)


# ---- operations ------------------------------------------------------------------------------


def op_import(h: dict[str, Any], parts: list[bytes]) -> bytes:
    alg, fmt, (data,) = h.get("alg"), h.get("format"), parts
    if fmt == "jwk":
        try:
            jwk = json.loads(data)
        except ValueError:
            raise fail("DataError", "the JWK is not JSON") from None
        if not isinstance(jwk, dict):
            raise fail("DataError", "the JWK must be an object")
        kind, key = from_jwk(alg, jwk)
        if kind == "secret":
            return _pack({"type": "secret"}, key)
    elif fmt == "raw":
        kind, key = "public", raw_public(alg, h.get("namedCurve"), data)
    elif fmt == "spki":
        kind, key = "public", public_key(data)
    elif fmt == "pkcs8":
        kind, key = "private", private_key(data)
    else:
        raise fail("NotSupportedError", f"key format {fmt!r} is not one of raw, spki, pkcs8, jwk")
    extra = check_family(alg, key, h.get("namedCurve"))
    return _pack({"type": kind, **extra}, pkcs8(key) if kind == "private" else spki(key))


def op_export(h: dict[str, Any], parts: list[bytes]) -> bytes:
    fmt, kind, (material,) = h.get("format"), h.get("type"), parts
    if fmt == "jwk":
        return _pack({}, json.dumps(to_jwk(h, kind, material)).encode())
    if kind == "secret":
        if fmt != "raw":
            raise fail("NotSupportedError", f"a secret key exports as raw or jwk, not {fmt!r}")
        return _pack({}, material)
    if fmt == "spki" and kind == "public" or fmt == "pkcs8" and kind == "private":
        return _pack({}, material)
    if fmt == "raw" and kind == "public":
        key = public_key(material)
        if isinstance(key, ec.EllipticCurvePublicKey):
            return _pack({}, key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        if isinstance(key, (ed25519.Ed25519PublicKey, x25519.X25519PublicKey)):
            return _pack({}, key.public_bytes_raw())
    raise fail("InvalidAccessError", f"a {kind} {h.get('alg')} key cannot be exported as {fmt!r}")


def op_generate(h: dict[str, Any], parts: list[bytes]) -> bytes:
    alg = h.get("alg")
    if alg in EC_ALGORITHMS:
        curve = CURVES.get(h.get("namedCurve"))
        if curve is None:
            raise fail("NotSupportedError", f"namedCurve {h.get('namedCurve')!r} is not one of {', '.join(CURVES)}")
        key: Any = ec.generate_private_key(curve())
    elif alg == "Ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif alg == "X25519":
        key = x25519.X25519PrivateKey.generate()
    elif alg in RSA_ALGORITHMS:
        bits, exponent = h.get("modulusLength"), int_of(bytes.fromhex(str(h.get("publicExponent", "010001"))))
        if not isinstance(bits, int) or not 1024 <= bits <= RSA_GENERATE_MAX_BITS or bits % 8:
            raise fail("OperationError", f"modulusLength must be a multiple of 8 from 1024 to {RSA_GENERATE_MAX_BITS}")
        if exponent not in (3, 65537):
            raise fail("OperationError", "publicExponent must be 3 or 65537 ([1, 0, 1])")
        key = rsa.generate_private_key(exponent, bits)
    else:
        raise fail("NotSupportedError", f"{alg} has no key pair")
    extra = check_family(alg, key, h.get("namedCurve"))
    return _pack(extra, pkcs8(key), spki(key.public_key()))


def _signer(h: dict[str, Any], key: Any) -> tuple[str, Any]:
    alg = h.get("alg")
    check_family(alg, key, h.get("namedCurve"))
    if alg == "ECDSA":
        return "ecdsa", ec.ECDSA(hash_algorithm(h.get("hash")))
    if alg == "RSASSA-PKCS1-v1_5":
        return "rsa", (rsa_padding.PKCS1v15(), hash_algorithm(h.get("hash")))
    if alg == "RSA-PSS":
        salt = h.get("saltLength")
        if not isinstance(salt, int) or salt < 0:
            raise fail("TypeError", "RSA-PSS needs a saltLength (a non-negative integer of bytes)")
        hash_ = hash_algorithm(h.get("hash"))
        return "rsa", (rsa_padding.PSS(rsa_padding.MGF1(hash_), salt), hash_)
    if alg == "Ed25519":
        return "eddsa", None
    raise fail("NotSupportedError", f"{alg} does not sign")


def op_sign(h: dict[str, Any], parts: list[bytes]) -> bytes:
    der, data = parts
    key = private_key(der)
    kind, params = _signer(h, key)
    try:
        if kind == "ecdsa":
            r, s = decode_dss_signature(key.sign(data, params))
            size = CURVE_BYTES[h["namedCurve"]]
            return _pack({}, int_bytes(r, size) + int_bytes(s, size))  # IEEE P1363, as WebCrypto
        if kind == "rsa":
            return _pack({}, key.sign(data, *params))
        return _pack({}, key.sign(data))
    except ValueError as exc:
        raise fail("OperationError", f"{h.get('alg')} signing failed ({exc})") from None


def op_verify(h: dict[str, Any], parts: list[bytes]) -> bytes:
    der, signature, data = parts
    key = public_key(der)
    kind, params = _signer(h, key)
    try:
        if kind == "ecdsa":
            size = CURVE_BYTES[h["namedCurve"]]
            if len(signature) != 2 * size:
                return _pack({"ok": False})
            key.verify(encode_dss_signature(int_of(signature[:size]), int_of(signature[size:])), data, params)
        elif kind == "rsa":
            key.verify(signature, data, *params)
        else:
            key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return _pack({"ok": False})
    return _pack({"ok": True})


def _aes_key(raw: bytes) -> algorithms.AES:
    if len(raw) not in (16, 24, 32):
        raise fail("DataError", f"an AES key is 128, 192 or 256 bits, not {len(raw) * 8}")
    return algorithms.AES(raw)


def _ctr_blocks(key: bytes, counter: bytes, length: int, data: bytes) -> bytes:
    """AES-CTR where only the low ``length`` bits of the counter block count (WebCrypto): past
    their end the counter wraps to zero inside those bits, which plain CTR mode would carry."""
    if len(counter) != 16 or not 1 <= length <= 128:
        raise fail("OperationError", "AES-CTR needs a 16-byte counter and a length from 1 to 128 bits")
    value, mask = int_of(counter), (1 << length) - 1
    blocks = (len(data) + 15) // 16
    if blocks > (1 << length):
        raise fail("OperationError", f"the data is longer than a {length}-bit counter allows")
    first = (1 << length) - (value & mask)  # blocks before the counter wraps
    out = b""
    for start, block_counter in ((0, value), (first * 16, value & ~mask)):
        chunk = data[start:first * 16] if start == 0 else data[start:]
        if chunk:
            enc = Cipher(_aes_key(key), modes.CTR(int_bytes(block_counter, 16))).encryptor()
            out += enc.update(chunk) + enc.finalize()
    return out


def op_crypt(h: dict[str, Any], parts: list[bytes]) -> bytes:
    """encrypt / decrypt with AES-GCM, AES-CBC, AES-CTR (secret keys) or RSA-OAEP (key pairs)."""
    alg, encrypt = h.get("alg"), h.get("op") == "encrypt"
    material, data, iv, extra = (parts + [b"", b""])[:4]
    try:
        if alg == "AES-GCM":
            tag_bits = h.get("tagLength", 128)
            if tag_bits not in (32, 64, 96, 104, 112, 120, 128):
                raise fail("OperationError", f"tagLength {tag_bits} is not one of 32, 64, 96, 104-128")
            if not iv:
                raise fail("OperationError", "AES-GCM needs a non-empty iv")
            tag_len = tag_bits // 8
            if encrypt:
                enc = Cipher(_aes_key(material), modes.GCM(iv)).encryptor()
                enc.authenticate_additional_data(extra)
                out = enc.update(data) + enc.finalize()
                return _pack({}, out + enc.tag[:tag_len])
            if len(data) < tag_len:
                raise fail("OperationError", "the data is shorter than the tag")
            dec = Cipher(_aes_key(material), modes.GCM(iv, data[-tag_len:], min_tag_length=tag_len)).decryptor()
            dec.authenticate_additional_data(extra)
            return _pack({}, dec.update(data[:-tag_len]) + dec.finalize())
        if alg == "AES-CBC":
            if len(iv) != 16:
                raise fail("OperationError", "AES-CBC needs a 16-byte iv")
            if encrypt:
                padder = padding.PKCS7(128).padder()
                enc = Cipher(_aes_key(material), modes.CBC(iv)).encryptor()
                return _pack({}, enc.update(padder.update(data) + padder.finalize()) + enc.finalize())
            dec = Cipher(_aes_key(material), modes.CBC(iv)).decryptor()
            unpadder = padding.PKCS7(128).unpadder()
            plain = dec.update(data) + dec.finalize()
            return _pack({}, unpadder.update(plain) + unpadder.finalize())
        if alg == "AES-CTR":
            return _pack({}, _ctr_blocks(material, iv, int(h.get("length", 0)), data))
        if alg == "RSA-OAEP":
            key = load_key(material, "public" if encrypt else "private")
            check_family(alg, key, None)
            hash_ = hash_algorithm(h.get("hash"))
            pad = rsa_padding.OAEP(rsa_padding.MGF1(hash_), hash_, extra or None)
            return _pack({}, key.encrypt(data, pad) if encrypt else key.decrypt(data, pad))
    except ServiceError:
        raise
    except (InvalidTag, ValueError) as exc:
        what = "the data could not be decrypted (wrong key, iv, tag or data)" if not encrypt else str(exc)
        raise fail("OperationError", f"{alg}: {what or 'failed'}") from None
    raise fail("NotSupportedError", f"{alg} does not encrypt")


def op_derive(h: dict[str, Any], parts: list[bytes]) -> bytes:
    """deriveBits: PBKDF2 and HKDF (secret key, salt[, info]) or ECDH/X25519 (private, peer public)."""
    alg, bits = h.get("alg"), h.get("length")
    if alg in ("ECDH", "X25519"):
        private, peer = private_key(parts[0]), public_key(parts[1])
        check_family(alg, private, h.get("namedCurve"))
        check_family(alg, peer, h.get("namedCurve"))
        secret = private.exchange(ec.ECDH(), peer) if alg == "ECDH" else private.exchange(peer)
        if bits is None:
            return _pack({}, secret)
        if not isinstance(bits, int) or bits < 0 or bits > len(secret) * 8:
            raise fail("OperationError", f"length {bits} is more than the {len(secret) * 8} bits of the shared secret")
        out = bytearray(secret[:(bits + 7) // 8])
        if bits % 8:
            out[-1] &= 0xff << (8 - bits % 8) & 0xff
        return _pack({}, bytes(out))
    if not isinstance(bits, int) or bits <= 0 or bits % 8 or bits > MAX_DERIVED_BITS:
        raise fail("OperationError", f"length must be a positive multiple of 8 up to {MAX_DERIVED_BITS}")
    material, salt, info = (parts + [b"", b""])[:3]
    if alg == "PBKDF2":
        iterations = h.get("iterations")
        if not isinstance(iterations, int) or iterations < 1:
            raise fail("OperationError", "PBKDF2 needs iterations >= 1")
        if iterations > MAX_PBKDF2_ITERATIONS:
            raise fail("OperationError", f"PBKDF2 iterations are at most {MAX_PBKDF2_ITERATIONS:,} here")
        # hashlib's, not cryptography's: it lets go of the GIL while it computes (cryptography's
        # held it for the whole call: 0.3 s of 1.5M iterations stalled the event loop as long)
        algorithm = hash_algorithm(h.get("hash"))
        return _pack({}, hashlib.pbkdf2_hmac(algorithm.name, material, salt, iterations, bits // 8))
    if alg == "HKDF":
        kdf = HKDF(hash_algorithm(h.get("hash")), bits // 8, salt, info)
    else:
        raise fail("NotSupportedError", f"{alg} does not derive bits")
    try:
        return _pack({}, kdf.derive(material))
    except ValueError as exc:
        raise fail("OperationError", f"{alg}: {exc}") from None


# operation -> (its function, how many byte strings it takes)
OPERATIONS: dict[str, tuple[Callable[[dict[str, Any], list[bytes]], bytes], tuple[int, ...]]] = {
    "import": (op_import, (1,)), "export": (op_export, (1,)), "generate": (op_generate, (0,)),
    "sign": (op_sign, (2,)), "verify": (op_verify, (3,)), "encrypt": (op_crypt, (2, 3, 4)),
    "decrypt": (op_crypt, (2, 3, 4)), "derive": (op_derive, (2, 3)),
}


@service("subtle", inline=True)
def subtle(st: GuestState, payload: bytes) -> bytes:
    """One WebCrypto operation (see the module docstring for the layout)."""
    header, parts = _unpack(payload)
    op = header.get("op")
    entry = OPERATIONS.get(op) if isinstance(op, str) else None
    if entry is None:
        raise fail("TypeError", f"subtle: unknown operation {op!r}")
    run, counts = entry
    if len(parts) not in counts:
        raise fail("TypeError", f"subtle: {op} takes {' or '.join(map(str, counts))} parts, got {len(parts)}")
    return run(header, parts)
