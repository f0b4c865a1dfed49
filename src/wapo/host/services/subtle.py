"""WebCrypto beyond HMAC, done by the host with ``cryptography``: ECDSA (P-256/384/521), Ed25519,
RSASSA-PKCS1-v1_5, RSA-PSS, RSA-OAEP, AES-GCM/CBC/CTR/KW, PBKDF2, HKDF, ECDH and X25519.

The guest (prelude/crypto.js) keeps a key as bytes in one normal form (``raw`` for secret keys,
PKCS#8 DER for private keys, SPKI DER for public keys) and sends it with every operation, so
the host holds no per-guest key state. One service, ``subtle``; its payload and answer are a
JSON head, NUL, then the binary blobs the head lists by length (``"blobs": [n, ...]``).
"""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, padding as sympadding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from .registry import ServiceError, service

if TYPE_CHECKING:
    from ..state import GuestState

HASHES = {"SHA-1": hashes.SHA1, "SHA-256": hashes.SHA256, "SHA-384": hashes.SHA384, "SHA-512": hashes.SHA512}
CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
CURVE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}
RSA_ALGS = ("RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP")
EC_ALGS = ("ECDSA", "ECDH")
AES_ALGS = ("AES-GCM", "AES-CBC", "AES-CTR", "AES-KW")
KDF_ALGS = ("PBKDF2", "HKDF")
MAX_RSA_BITS = 8192
MAX_PBKDF2_ITERATIONS = 10_000_000  # a guest's burst limit bounds it anyway: this only refuses absurd ones


def _err(name: str, message: str) -> ServiceError:
    return ServiceError(name, message)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise _err("DataError", f"JWK member {what} must be a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise _err("DataError", f"JWK member {what} is not base64url") from None


def _int_bytes(n: int, length: int | None = None) -> bytes:
    return n.to_bytes(length or max(1, (n.bit_length() + 7) // 8), "big")


def _hash(name: Any) -> hashes.HashAlgorithm:
    cls = HASHES.get(name)
    if cls is None:
        raise _err("NotSupportedError", f"unsupported hash {name!r} (SHA-1, SHA-256, SHA-384, SHA-512)")
    return cls()


# ---- keys ---------------------------------------------------------------------------

def _load_private(der: bytes):
    try:
        return serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise _err("DataError", f"not a valid PKCS#8 private key: {exc}") from None


def _load_public(der: bytes):
    try:
        return serialization.load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise _err("DataError", f"not a valid SPKI public key: {exc}") from None


def _pkcs8(key) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _describe(name: str, key, alg: dict) -> dict:
    """The CryptoKey.algorithm of an asymmetric key, checked against what the algorithm needs."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if name in EC_ALGS:
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise _err("DataError", f"the key is not an EC key, as {name} needs")
        curve = CURVE_NAMES.get(public.curve.name)
        if curve is None or (alg.get("namedCurve") and alg["namedCurve"] != curve):
            raise _err("DataError", f"the key's curve {public.curve.name} is not {alg.get('namedCurve')}")
        return {"name": name, "namedCurve": curve}
    if name in RSA_ALGS:
        if not isinstance(public, rsa.RSAPublicKey):
            raise _err("DataError", f"the key is not an RSA key, as {name} needs")
        _hash(alg.get("hash"))
        numbers = public.public_numbers()
        return {"name": name, "modulusLength": public.key_size, "publicExponent": list(_int_bytes(numbers.e)),
                "hash": {"name": alg["hash"]}}
    want = {"Ed25519": (ed25519.Ed25519PublicKey,), "X25519": (x25519.X25519PublicKey,)}.get(name)
    if want is None:
        raise _err("NotSupportedError", f"algorithm {name!r} is not supported")
    if not isinstance(public, want):
        raise _err("DataError", f"the key is not an {name} key")
    return {"name": name}


def _generate(alg: dict) -> tuple[dict, list[bytes]]:
    name = alg.get("name")
    if name in AES_ALGS:
        length = alg.get("length")
        if length not in (128, 192, 256):
            raise _err("OperationError", f"{name} key length must be 128, 192 or 256, not {length!r}")
        return {"keys": [{"type": "secret", "alg": {"name": name, "length": length}}]}, [os.urandom(length // 8)]
    if name in EC_ALGS:
        curve = CURVES.get(alg.get("namedCurve"))
        if curve is None:
            raise _err("NotSupportedError", f"unsupported namedCurve {alg.get('namedCurve')!r} (P-256, P-384, P-521)")
        key = ec.generate_private_key(curve())
    elif name in RSA_ALGS:
        bits = alg.get("modulusLength")
        exponent = int.from_bytes(bytes(alg.get("publicExponent") or [1, 0, 1]), "big")
        if not isinstance(bits, int) or not 1024 <= bits <= MAX_RSA_BITS or bits % 8:
            raise _err("OperationError", f"modulusLength must be a multiple of 8 in 1024..{MAX_RSA_BITS}")
        if exponent not in (3, 65537):
            raise _err("OperationError", "publicExponent must be 3 or 65537")
        key = rsa.generate_private_key(exponent, bits)
    elif name == "Ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif name == "X25519":
        key = x25519.X25519PrivateKey.generate()
    else:
        raise _err("NotSupportedError", f"generateKey: algorithm {name!r} is not supported")
    described = _describe(name, key, alg)
    return ({"keys": [{"type": "private", "alg": described}, {"type": "public", "alg": described}]},
            [_pkcs8(key), _spki(key.public_key())])


def _jwk_import(name: str, alg: dict, jwk: dict) -> tuple[str, Any, bytes | None]:
    """(type, key object or None, raw bytes for secret keys) of a JWK."""
    kty = jwk.get("kty")
    if kty == "oct":
        return "secret", None, _unb64url(jwk.get("k"), "k")
    if kty == "EC":
        curve = CURVES.get(jwk.get("crv"))
        if curve is None:
            raise _err("DataError", f"unsupported JWK crv {jwk.get('crv')!r}")
        size = CURVE_BYTES[jwk["crv"]]
        x = int.from_bytes(_unb64url(jwk.get("x"), "x"), "big")
        y = int.from_bytes(_unb64url(jwk.get("y"), "y"), "big")
        public = ec.EllipticCurvePublicNumbers(x, y, curve())
        if "d" in jwk:
            d = _unb64url(jwk["d"], "d")
            if len(d) != size:
                raise _err("DataError", "JWK member d has the wrong length for its curve")
            return "private", ec.EllipticCurvePrivateNumbers(int.from_bytes(d, "big"), public).private_key(), None
        return "public", public.public_key(), None
    if kty == "OKP":
        crv = jwk.get("crv")
        classes = {"Ed25519": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey),
                   "X25519": (x25519.X25519PrivateKey, x25519.X25519PublicKey)}.get(crv)
        if classes is None or crv != name:
            raise _err("DataError", f"JWK crv {crv!r} does not fit {name}")
        if "d" in jwk:
            return "private", classes[0].from_private_bytes(_unb64url(jwk["d"], "d")), None
        return "public", classes[1].from_public_bytes(_unb64url(jwk.get("x"), "x")), None
    if kty == "RSA":
        n = int.from_bytes(_unb64url(jwk.get("n"), "n"), "big")
        e = int.from_bytes(_unb64url(jwk.get("e"), "e"), "big")
        public = rsa.RSAPublicNumbers(e, n)
        if "d" not in jwk:
            return "public", public.public_key(), None
        ints = {k: int.from_bytes(_unb64url(jwk.get(k), k), "big") for k in ("d", "p", "q", "dp", "dq", "qi")}
        numbers = rsa.RSAPrivateNumbers(ints["p"], ints["q"], ints["d"], ints["dp"], ints["dq"], ints["qi"], public)
        return "private", numbers.private_key(), None
    raise _err("DataError", f"unsupported JWK kty {kty!r}")


def _import(head: dict, blobs: list[bytes]) -> tuple[dict, list[bytes]]:
    alg, fmt = head.get("alg") or {}, head.get("format")
    name = alg.get("name")
    data = blobs[0] if blobs else b""
    try:
        if fmt == "jwk":
            kind, key, raw = _jwk_import(name, alg, head.get("jwk") or {})
        elif fmt == "raw" and (name in AES_ALGS or name in KDF_ALGS):
            kind, key, raw = "secret", None, data
        elif fmt == "raw" and name in EC_ALGS:
            curve = CURVES.get(alg.get("namedCurve"))
            if curve is None:
                raise _err("NotSupportedError", f"unsupported namedCurve {alg.get('namedCurve')!r}")
            kind, key, raw = "public", ec.EllipticCurvePublicKey.from_encoded_point(curve(), data), None
        elif fmt == "raw" and name in ("Ed25519", "X25519"):
            cls = ed25519.Ed25519PublicKey if name == "Ed25519" else x25519.X25519PublicKey
            kind, key, raw = "public", cls.from_public_bytes(data), None
        elif fmt == "spki":
            kind, key, raw = "public", _load_public(data), None
        elif fmt == "pkcs8":
            kind, key, raw = "private", _load_private(data), None
        else:
            raise _err("NotSupportedError", f"importKey: format {fmt!r} is not supported for {name}")
    except ValueError as exc:
        raise _err("DataError", f"importKey: invalid {name} key: {exc}") from None
    if kind == "secret":
        if name in AES_ALGS:
            if len(raw) not in (16, 24, 32):
                raise _err("DataError", f"an {name} key is 16, 24 or 32 bytes, not {len(raw)}")
            return {"type": "secret", "alg": {"name": name, "length": len(raw) * 8}}, [raw]
        if name in KDF_ALGS:
            return {"type": "secret", "alg": {"name": name}}, [raw]
        raise _err("DataError", f"a secret (oct) key does not fit {name}")
    described = _describe(name, key, alg)
    return {"type": kind, "alg": described}, [_pkcs8(key) if kind == "private" else _spki(key)]


def _export(head: dict, blobs: list[bytes]) -> tuple[dict, list[bytes]]:
    fmt, kind, alg = head.get("format"), head.get("type"), head.get("alg") or {}
    name, data = alg.get("name"), blobs[0]
    if kind == "secret":
        if fmt == "raw":
            return {}, [data]
        if fmt == "jwk":
            jwk = {"kty": "oct", "k": _b64url(data), "ext": True}
            if name in AES_ALGS:
                jwk["alg"] = f"A{len(data) * 8}{name.split('-')[1]}"
            return {"jwk": jwk}, []
        raise _err("NotSupportedError", f"exportKey: format {fmt!r} is not supported for a secret key")
    key = _load_private(data) if kind == "private" else _load_public(data)
    if fmt == "pkcs8" and kind == "private" or fmt == "spki" and kind == "public":
        return {}, [data]
    if fmt == "raw" and kind == "public":
        if isinstance(key, ec.EllipticCurvePublicKey):
            return {}, [key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)]
        return {}, [key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)]
    if fmt != "jwk":
        raise _err("InvalidAccessError", f"exportKey: a {kind} key cannot be exported as {fmt!r}")
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        crv = CURVE_NAMES[key.curve.name]
        size = CURVE_BYTES[crv]
        public = key.public_key() if kind == "private" else key
        nums = public.public_numbers()
        jwk = {"kty": "EC", "crv": crv, "x": _b64url(_int_bytes(nums.x, size)), "y": _b64url(_int_bytes(nums.y, size))}
        if kind == "private":
            jwk["d"] = _b64url(_int_bytes(key.private_numbers().private_value, size))
    elif isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        public = key.public_key() if kind == "private" else key
        pn = public.public_numbers()
        jwk = {"kty": "RSA", "n": _b64url(_int_bytes(pn.n)), "e": _b64url(_int_bytes(pn.e))}
        if kind == "private":
            p = key.private_numbers()
            jwk.update({k: _b64url(_int_bytes(v)) for k, v in
                        (("d", p.d), ("p", p.p), ("q", p.q), ("dp", p.dmp1), ("dq", p.dmq1), ("qi", p.iqmp))})
    else:
        public = key.public_key() if kind == "private" else key
        jwk = {"kty": "OKP", "crv": name,
               "x": _b64url(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))}
        if kind == "private":
            jwk["d"] = _b64url(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                 serialization.NoEncryption()))
    jwk["ext"] = True
    return {"jwk": jwk}, []


# ---- operations -----------------------------------------------------------------------

def _pss(params: dict, hash_: hashes.HashAlgorithm) -> padding.PSS:
    salt = params.get("saltLength")
    if not isinstance(salt, int) or salt < 0:
        raise _err("TypeError", "RSA-PSS needs a saltLength (bytes)")
    return padding.PSS(mgf=padding.MGF1(hash_), salt_length=salt)


def _sign(head: dict, blobs: list[bytes]) -> tuple[dict, list[bytes]]:
    params, alg = head.get("params") or {}, head.get("alg") or {}
    name = alg.get("name")
    key, data = _load_private(blobs[0]), blobs[1]
    if name == "ECDSA":
        der = key.sign(data, ec.ECDSA(_hash(params.get("hash"))))
        r, s = decode_dss_signature(der)
        size = CURVE_BYTES[alg["namedCurve"]]
        return {}, [_int_bytes(r, size) + _int_bytes(s, size)]
    if name == "Ed25519":
        return {}, [key.sign(data)]
    if name == "RSASSA-PKCS1-v1_5":
        return {}, [key.sign(data, padding.PKCS1v15(), _hash(alg["hash"]["name"]))]
    if name == "RSA-PSS":
        h = _hash(alg["hash"]["name"])
        return {}, [key.sign(data, _pss(params, h), h)]
    raise _err("InvalidAccessError", f"sign: {name} keys do not sign")


def _verify(head: dict, blobs: list[bytes]) -> tuple[dict, list[bytes]]:
    params, alg = head.get("params") or {}, head.get("alg") or {}
    name = alg.get("name")
    key, signature, data = _load_public(blobs[0]), blobs[1], blobs[2]
    try:
        if name == "ECDSA":
            size = CURVE_BYTES[alg["namedCurve"]]
            if len(signature) != 2 * size:
                return {"ok": False}, []
            der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
            key.verify(der, data, ec.ECDSA(_hash(params.get("hash"))))
        elif name == "Ed25519":
            key.verify(signature, data)
        elif name == "RSASSA-PKCS1-v1_5":
            key.verify(signature, data, padding.PKCS1v15(), _hash(alg["hash"]["name"]))
        elif name == "RSA-PSS":
            h = _hash(alg["hash"]["name"])
            key.verify(signature, data, _pss(params, h), h)
        else:
            raise _err("InvalidAccessError", f"verify: {name} keys do not verify")
    except InvalidSignature:
        return {"ok": False}, []
    return {"ok": True}, []


def _aes(head: dict, blobs: list[bytes], encrypt: bool) -> bytes:
    params, alg = head.get("params") or {}, head.get("alg") or {}
    name, key, data = alg.get("name"), blobs[0], blobs[1]
    extra = blobs[2:]
    if name == "AES-GCM":
        iv = extra[0] if extra else b""
        aad = extra[1] if len(extra) > 1 and params.get("hasAdditionalData") else None
        tag_bits = params.get("tagLength", 128)
        if tag_bits not in (32, 64, 96, 104, 112, 120, 128):
            raise _err("OperationError", f"AES-GCM tagLength {tag_bits} is not valid")
        if not iv:
            raise _err("OperationError", "AES-GCM needs an iv")
        tag = tag_bits // 8
        if encrypt:
            if tag == 16:
                return AESGCM(key).encrypt(iv, data, aad)
            enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
            if aad:
                enc.authenticate_additional_data(aad)
            out = enc.update(data) + enc.finalize()
            return out + enc.tag[:tag]
        if len(data) < tag:
            raise _err("OperationError", "the data is shorter than the AES-GCM tag")
        try:
            if tag == 16:
                return AESGCM(key).decrypt(iv, data, aad)
            dec = Cipher(algorithms.AES(key), modes.GCM(iv, data[-tag:], min_tag_length=tag)).decryptor()
            if aad:
                dec.authenticate_additional_data(aad)
            return dec.update(data[:-tag]) + dec.finalize()
        except InvalidTag:
            raise _err("OperationError", "AES-GCM decryption failed (wrong key, iv, data or tag)") from None
    if name == "AES-CBC":
        iv = extra[0] if extra else b""
        if len(iv) != 16:
            raise _err("OperationError", "AES-CBC needs a 16-byte iv")
        cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
        if encrypt:
            padder = sympadding.PKCS7(128).padder()
            enc = cipher.encryptor()
            return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
        dec = cipher.decryptor()
        try:
            padded = dec.update(data) + dec.finalize()
            unpadder = sympadding.PKCS7(128).unpadder()
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise _err("OperationError", "AES-CBC decryption failed (bad padding)") from None
    if name == "AES-CTR":
        counter = extra[0] if extra else b""
        length = params.get("length")
        if len(counter) != 16 or not isinstance(length, int) or not 1 <= length <= 128:
            raise _err("OperationError", "AES-CTR needs a 16-byte counter and a length of 1..128 bits")
        if length < 128 and len(data) > 16 * (1 << length):
            raise _err("OperationError", "AES-CTR: the data would wrap the counter")
        # the counter's low `length` bits wrap on their own; with length 128 it is plain CTR
        if length < 128:
            out = bytearray()
            block = int.from_bytes(counter, "big")
            mask = (1 << length) - 1
            fixed = block & ~mask
            low = block & mask
            for i in range(0, len(data), 16):
                ctr = (fixed | ((low + i // 16) & mask)).to_bytes(16, "big")
                enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
                stream = enc.update(ctr) + enc.finalize()
                chunk = data[i:i + 16]
                out += bytes(a ^ b for a, b in zip(chunk, stream))
            return bytes(out)
        c = Cipher(algorithms.AES(key), modes.CTR(counter))
        op = c.encryptor() if encrypt else c.decryptor()
        return op.update(data) + op.finalize()
    if name == "AES-KW":  # only reached through wrapKey/unwrapKey (the guest checks the usages)
        if len(data) % 8 or len(data) < (16 if encrypt else 24):
            raise _err("OperationError", "AES-KW wraps whole 8-byte blocks, at least 16 bytes")
        try:
            return aes_key_wrap(key, data) if encrypt else aes_key_unwrap(key, data)
        except InvalidUnwrap:
            raise _err("OperationError", "AES-KW unwrapping failed (wrong key or data)") from None
    raise _err("InvalidAccessError", f"{'encrypt' if encrypt else 'decrypt'}: {name} keys do not do that")


def _crypt(head: dict, blobs: list[bytes], encrypt: bool) -> tuple[dict, list[bytes]]:
    alg = head.get("alg") or {}
    if alg.get("name") == "RSA-OAEP":
        params = head.get("params") or {}
        h = _hash(alg["hash"]["name"])
        label = blobs[2] if len(blobs) > 2 and params.get("hasLabel") else None
        pad = padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=label or None)
        try:
            if encrypt:
                return {}, [_load_public(blobs[0]).encrypt(blobs[1], pad)]
            return {}, [_load_private(blobs[0]).decrypt(blobs[1], pad)]
        except ValueError as exc:
            raise _err("OperationError", f"RSA-OAEP failed: {exc}") from None
    return {}, [_aes(head, blobs, encrypt)]


def _derive(head: dict, blobs: list[bytes]) -> tuple[dict, list[bytes]]:
    params, alg = head.get("params") or {}, head.get("alg") or {}
    name, length = alg.get("name"), head.get("length")
    if name in ("ECDH", "X25519"):
        private, public = _load_private(blobs[0]), _load_public(blobs[1])
        try:
            secret = private.exchange(ec.ECDH(), public) if name == "ECDH" else private.exchange(public)
        except ValueError as exc:
            raise _err("InvalidAccessError", f"{name}: {exc}") from None
        if length is None:
            return {}, [secret]
        if length > len(secret) * 8:
            raise _err("OperationError", f"{name} derives at most {len(secret) * 8} bits")
        out = bytearray(secret[:(length + 7) // 8])
        if length % 8:
            out[-1] &= (0xFF << (8 - length % 8)) & 0xFF
        return {}, [bytes(out)]
    if not isinstance(length, int) or length <= 0 or length % 8:
        raise _err("OperationError", f"{name}: length must be a positive multiple of 8 bits")
    key = blobs[0]
    if name == "PBKDF2":
        iterations = params.get("iterations")
        if not isinstance(iterations, int) or not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
            raise _err("OperationError", f"PBKDF2 iterations must be 1..{MAX_PBKDF2_ITERATIONS}")
        kdf = PBKDF2HMAC(_hash(params.get("hash")), length // 8, blobs[1], iterations)
        return {}, [kdf.derive(key)]
    if name == "HKDF":
        kdf = HKDF(_hash(params.get("hash")), length // 8, blobs[1], blobs[2])
        try:
            return {}, [kdf.derive(key)]
        except ValueError as exc:
            raise _err("OperationError", f"HKDF: {exc}") from None
    raise _err("InvalidAccessError", f"deriveBits: {name} keys do not derive")


OPS = {
    "generate": lambda head, blobs: _generate(head.get("alg") or {}),
    "import": _import,
    "export": _export,
    "sign": _sign,
    "verify": _verify,
    "encrypt": lambda head, blobs: _crypt(head, blobs, True),
    "decrypt": lambda head, blobs: _crypt(head, blobs, False),
    "deriveBits": _derive,
}


def _unpack(payload: bytes) -> tuple[dict, list[bytes]]:
    head_bytes, sep, rest = payload.partition(b"\0")
    if not sep:
        raise _err("TypeError", "subtle: expected a JSON head, NUL, then the blobs")
    try:
        head = json.loads(head_bytes)
    except ValueError as exc:
        raise _err("TypeError", f"subtle: bad head: {exc}") from None
    blobs, offset = [], 0
    for n in head.get("blobs", []):
        if not isinstance(n, int) or n < 0 or offset + n > len(rest):
            raise _err("TypeError", "subtle: the blobs do not match their lengths")
        blobs.append(rest[offset:offset + n])
        offset += n
    return head, blobs


def pack(head: dict, blobs: list[bytes]) -> bytes:
    head = dict(head, blobs=[len(b) for b in blobs])
    return json.dumps(head, separators=(",", ":")).encode() + b"\0" + b"".join(blobs)


@service("subtle", inline=True)
def subtle(st: GuestState, payload: bytes) -> bytes:
    """payload: JSON head {op, alg, params, format, ...; blobs: [lengths]}, NUL, blobs -> the same form."""
    head, blobs = _unpack(payload)
    op = OPS.get(head.get("op"))
    if op is None:
        raise _err("NotSupportedError", f"subtle: unknown operation {head.get('op')!r}")
    try:
        answer, out = op(head, blobs)
    except ServiceError:
        raise
    except (IndexError, KeyError) as exc:
        raise _err("OperationError", f"subtle.{head.get('op')}: missing {exc}") from None
    except (ValueError, TypeError) as exc:
        raise _err("OperationError", f"subtle.{head.get('op')}: {exc}") from None
    except Exception as exc:
        # cryptography's UnsupportedAlgorithm and friends
        raise _err("OperationError", f"subtle.{head.get('op')}: {type(exc).__name__}: {exc}") from None
    return pack(answer, out)
