"""WebCrypto keys for the ``subtle`` service: the algorithms' families and parameters, and keys
read from and written to raw, SPKI, PKCS#8 and JWK with the ``cryptography`` library.

A private key travels as PKCS#8 DER, a public one as SPKI DER: what ``subtle`` gets with each
operation and gives back from import and generate."""

from __future__ import annotations

import base64
from typing import Any, Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from .registry import ServiceError

RSA_MODULUS_BITS = range(1024, 8192 + 1)

HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA-1": hashes.SHA1, "SHA-256": hashes.SHA256, "SHA-384": hashes.SHA384, "SHA-512": hashes.SHA512,
}

CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1,
                                                      "P-521": ec.SECP521R1}

CURVE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}

RSA_ALGORITHMS = ("RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP")

EC_ALGORITHMS = ("ECDSA", "ECDH")

OKP_KEYS = {"Ed25519": (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey),
            "X25519": (x25519.X25519PrivateKey, x25519.X25519PublicKey)}  # (private, public) classes

AES_ALGORITHMS = ("AES-GCM", "AES-CBC", "AES-CTR", "AES-KW")
# JWK "alg" names per (algorithm, hash)

JWK_RSA_ALG = {"RSASSA-PKCS1-v1_5": "RS", "RSA-PSS": "PS"}


def fail(name: str, message: str) -> ServiceError:
    """A refusal under one of WebCrypto's exception names (the guest makes it a DOMException)."""
    return ServiceError(name, message)


def hash_algorithm(name: Any, what: str = "hash") -> hashes.HashAlgorithm:
    make = HASHES.get(name) if isinstance(name, str) else None
    if make is None:
        raise fail("NotSupportedError", f"{what} {name!r} is not one of {', '.join(HASHES)}")
    return make()


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: Any, field: str) -> bytes:
    if not isinstance(text, str):
        raise fail("DataError", f"the JWK has no string {field!r}")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise fail("DataError", f"the JWK's {field!r} is not base64url") from None


def int_of(data: bytes) -> int:
    return int.from_bytes(data, "big")


def int_bytes(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")


# ---- keys: parse, describe, serialize -----------------------------------------------------

PrivateKey = Any  # one of cryptography's private key types
PublicKey = Any


def private_key(der: bytes) -> PrivateKey:
    try:
        return serialization.load_der_private_key(der, password=None)
    except Exception as exc:  # cryptography raises several kinds (ValueError, TypeError, its own)
        raise fail("DataError", f"the private key cannot be read ({exc})") from None


def public_key(der: bytes) -> PublicKey:
    try:
        return serialization.load_der_public_key(der)
    except Exception as exc:
        raise fail("DataError", f"the public key cannot be read ({exc})") from None


def load_key(der: bytes, kind: str) -> Any:
    return private_key(der) if kind == "private" else public_key(der)


def pkcs8(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def spki(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def curve_name(key: Any) -> str:
    for name, make in CURVES.items():
        if key.curve.name == make().name:
            return name
    raise fail("NotSupportedError", f"the curve {key.curve.name} is not one of {', '.join(CURVES)}")


def check_family(alg: str, key: Any, named_curve: Any) -> dict[str, Any]:
    """The key fits the algorithm asked for; returns what the CryptoKey's ``algorithm`` adds."""
    if alg in RSA_ALGORITHMS:
        if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            raise fail("DataError", f"the key is not an RSA key, as {alg} needs")
        numbers = key.public_key().public_numbers() if isinstance(key, rsa.RSAPrivateKey) else key.public_numbers()
        if numbers.n.bit_length() not in RSA_MODULUS_BITS:
            raise fail("DataError", f"RSA keys of {numbers.n.bit_length()} bits are not supported (1024 to 8192)")
        return {"modulusLength": numbers.n.bit_length(), "publicExponent": int_bytes(numbers.e).hex()}
    if alg in EC_ALGORITHMS:
        if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
            raise fail("DataError", f"the key is not an elliptic-curve key, as {alg} needs")
        curve = curve_name(key)
        if curve != named_curve:
            raise fail("DataError", f"the key is on {curve}, not on the namedCurve {named_curve}")
        return {"namedCurve": curve}
    want = OKP_KEYS.get(alg)
    if want is None:
        raise fail("NotSupportedError", f"{alg} keys are not asymmetric keys")
    if not isinstance(key, want):
        raise fail("DataError", f"the key is not an {alg} key")
    return {}


def from_jwk(alg: str, jwk: dict[str, Any]) -> tuple[str, Any]:
    """(kind, key) of a JWK: "private"/"public" with a cryptography key, or "secret" with bytes."""
    kty = jwk.get("kty")
    private = "d" in jwk
    try:
        if kty == "oct":
            return "secret", unb64u(jwk.get("k"), "k")
        if kty == "EC":
            curve = CURVES.get(jwk.get("crv", ""))
            if curve is None:
                raise fail("DataError", f"the JWK's crv {jwk.get('crv')!r} is not one of {', '.join(CURVES)}")
            pub = ec.EllipticCurvePublicNumbers(int_of(unb64u(jwk.get("x"), "x")), int_of(unb64u(jwk.get("y"), "y")),
                                                curve())
            if private:
                return "private", ec.EllipticCurvePrivateNumbers(int_of(unb64u(jwk["d"], "d")), pub).private_key()
            return "public", pub.public_key()
        if kty == "OKP":
            crv = jwk.get("crv")
            if crv not in OKP_KEYS:
                raise fail("DataError", f"the JWK's crv {crv!r} is not Ed25519 or X25519")
            priv, pub_cls = OKP_KEYS[crv]
            if private:
                key = priv.from_private_bytes(unb64u(jwk["d"], "d"))
                if "x" in jwk and key.public_key().public_bytes_raw() != unb64u(jwk["x"], "x"):
                    raise fail("DataError", "the JWK's x is not the public half of its d")
                return "private", key
            return "public", pub_cls.from_public_bytes(unb64u(jwk.get("x"), "x"))
        if kty == "RSA":
            pub = rsa.RSAPublicNumbers(int_of(unb64u(jwk.get("e"), "e")), int_of(unb64u(jwk.get("n"), "n")))
            if not private:
                return "public", pub.public_key()
            d = int_of(unb64u(jwk["d"], "d"))
            if all(f in jwk for f in ("p", "q", "dp", "dq", "qi")):
                p, q = int_of(unb64u(jwk["p"], "p")), int_of(unb64u(jwk["q"], "q"))
                numbers = rsa.RSAPrivateNumbers(p, q, d, int_of(unb64u(jwk["dp"], "dp")),
                                                int_of(unb64u(jwk["dq"], "dq")), int_of(unb64u(jwk["qi"], "qi")), pub)
            else:
                p, q = rsa.rsa_recover_prime_factors(pub.n, pub.e, d)
                numbers = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                                rsa.rsa_crt_iqmp(p, q), pub)
            return "private", numbers.private_key()
    except ServiceError:
        raise
    except (ValueError, TypeError) as exc:
        raise fail("DataError", f"the JWK is not a valid {kty} key ({exc})") from None
    raise fail("DataError", f"the JWK's kty {kty!r} is not one of oct, EC, OKP, RSA")


def to_jwk(header: dict[str, Any], kind: str, material: bytes) -> dict[str, Any]:
    alg = header.get("alg")
    out: dict[str, Any] = {"key_ops": header.get("usages", []), "ext": True}
    if kind == "secret":
        out.update(kty="oct", k=b64u(material))
        if alg == "HMAC":
            out["alg"] = "HS" + str(header.get("hash", "SHA-256"))[4:]
        elif alg in AES_ALGORITHMS:
            out["alg"] = f"A{len(material) * 8}{alg[4:]}"
        return out
    key = load_key(material, kind)
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        curve = curve_name(key)
        pub = (key.public_key() if kind == "private" else key).public_numbers()
        size = CURVE_BYTES[curve]
        out.update(kty="EC", crv=curve, x=b64u(int_bytes(pub.x, size)), y=b64u(int_bytes(pub.y, size)))
        if kind == "private":
            out["d"] = b64u(int_bytes(key.private_numbers().private_value, size))
    elif isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        pub = (key.public_key() if kind == "private" else key).public_numbers()
        out.update(kty="RSA", n=b64u(int_bytes(pub.n)), e=b64u(int_bytes(pub.e)))
        if kind == "private":
            p = key.private_numbers()
            out.update(d=b64u(int_bytes(p.d)), p=b64u(int_bytes(p.p)), q=b64u(int_bytes(p.q)),
                       dp=b64u(int_bytes(p.dmp1)), dq=b64u(int_bytes(p.dmq1)), qi=b64u(int_bytes(p.iqmp)))
        bits = str(header.get("hash", "SHA-256"))[4:]
        if alg == "RSA-OAEP":
            out["alg"] = "RSA-OAEP" if bits == "1" else f"RSA-OAEP-{bits}"
        elif alg in JWK_RSA_ALG:
            out["alg"] = JWK_RSA_ALG[alg] + bits
    else:
        pub_key = key.public_key() if kind == "private" else key
        out.update(kty="OKP", crv=alg, x=b64u(pub_key.public_bytes_raw()))
        if kind == "private":
            out["d"] = b64u(key.private_bytes_raw())
    return out


def raw_public(alg: str, named_curve: Any, data: bytes) -> PublicKey:
    try:
        if alg in EC_ALGORITHMS:
            curve = CURVES.get(named_curve)
            if curve is None:
                raise fail("NotSupportedError", f"namedCurve {named_curve!r} is not one of {', '.join(CURVES)}")
            return ec.EllipticCurvePublicKey.from_encoded_point(curve(), data)
        if alg == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(data)
        if alg == "X25519":
            return x25519.X25519PublicKey.from_public_bytes(data)
    except ValueError as exc:
        raise fail("DataError", f"the raw {alg} public key is not valid ({exc})") from None
    raise fail("NotSupportedError", f"the raw format is not supported for {alg} keys (use spki, pkcs8 or jwk)")
