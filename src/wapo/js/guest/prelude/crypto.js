// @provides crypto Crypto CryptoKey SubtleCrypto
// Web Crypto: getRandomValues, randomUUID, and crypto.subtle with digest (SHA-1/256/384/512),
// HMAC, AES-GCM/CBC/CTR, ECDSA and ECDH (P-256/384/521), Ed25519, X25519, RSASSA-PKCS1-v1_5,
// RSA-PSS, RSA-OAEP, PBKDF2 and HKDF; key formats raw, spki, pkcs8 and jwk; wrapKey/unwrapKey
// through the encryption algorithms. AES-KW and every other algorithm reject with a
// NotSupportedError DOMException. HMAC runs on the "hmac" host service; the rest on "subtle"
// (the cryptography library on the host), which gets the key's bytes with each call.
// Randomness comes from the host OS (host service "random"), never Math.random.

const ILLEGAL = Symbol("illegal constructor guard");
const MAX_RANDOM = 65536;

const { u32, readU32, concat, copyBytes, HEX, hex, fromHex, domException } = host.internal("shared");

function randomBytes(n) {
  return host.call("random", u32(n));
}

// ---- getRandomValues / randomUUID ---------------------------------------------

const typedArrayTag = Object.getOwnPropertyDescriptor(
  Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag).get;
const INTEGER_ARRAYS = new Set(["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
  "Int32Array", "Uint32Array", "BigInt64Array", "BigUint64Array"]);

function getRandomValues(array) {
  if (arguments.length < 1)
    throw new TypeError("Failed to execute 'getRandomValues' on 'Crypto': 1 argument required, but only 0 present.");
  if (!ArrayBuffer.isView(array))
    throw new TypeError("Failed to execute 'getRandomValues' on 'Crypto': parameter 1 is not of type 'ArrayBufferView'.");
  const tag = typedArrayTag.call(array);
  if (!INTEGER_ARRAYS.has(tag))
    throw domException(`Failed to execute 'getRandomValues' on 'Crypto': The provided ArrayBufferView is of type '${tag || "DataView"}', which is not an integer array type.`, "TypeMismatchError");
  if (array.byteLength > MAX_RANDOM)
    throw domException(`Failed to execute 'getRandomValues' on 'Crypto': The ArrayBufferView's byte length (${array.byteLength}) exceeds the number of bytes of entropy available via this API (${MAX_RANDOM}).`, "QuotaExceededError");
  if (array.byteLength)
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(randomBytes(array.byteLength));
  return array;
}

function randomUUID() {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // variant 10
  let s = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) s += "-";
    s += HEX[b[i]];
  }
  return s;
}

// ---- algorithm and data normalization --------------------------------------------

const DIGESTS = { "SHA-1": 160, "SHA-256": 256, "SHA-384": 384, "SHA-512": 512 };
const BLOCK_BITS = { "SHA-1": 512, "SHA-256": 512, "SHA-384": 1024, "SHA-512": 1024 };
const KNOWN = ["RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP", "ECDSA", "ECDH", "Ed25519", "X25519", "AES-CTR",
  "AES-CBC", "AES-GCM", "AES-KW", "HMAC", "SHA-1", "SHA-256", "SHA-384", "SHA-512", "HKDF", "PBKDF2"];

function algorithmName(alg, op) {
  let name;
  if (typeof alg === "string") name = alg;
  else if (alg !== null && typeof alg === "object") {
    if (alg.name === undefined) throw new TypeError(`${op}: the algorithm has no name`);
    name = String(alg.name);
  } else throw new TypeError(`${op}: the algorithm must be a string or an object with a name`);
  const upper = name.toUpperCase();
  for (const k of KNOWN) if (k.toUpperCase() === upper) return k;
  return name;
}

function notSupported(op, name) {
  return domException(`${op}: algorithm ${JSON.stringify(name)} is not supported by WapoJS`, "NotSupportedError");
}

function digestName(alg, op) {
  const name = algorithmName(alg, op);
  if (!(name in DIGESTS)) throw notSupported(op, name);
  return name;
}

// A copy of a BufferSource (the caller may change it while the operation runs).
function bufferSource(data, op, what = "data") {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return copyBytes(data);
  throw new TypeError(`${op}: ${what} is not of type '(ArrayBuffer or ArrayBufferView)'`);
}

function toArrayBuffer(bytes) {
  return bytes.buffer.byteLength === bytes.byteLength ? bytes.buffer : bytes.slice().buffer;
}

// ---- CryptoKey ---------------------------------------------------------------------

const keyData = new WeakMap(); // CryptoKey -> its bytes: raw (secret), PKCS#8 (private), SPKI (public)

class CryptoKey {
  #type; #extractable; #algorithm; #usages;

  constructor(guard, type, extractable, algorithm, usages, raw) {
    if (guard !== ILLEGAL) throw new TypeError("Illegal constructor");
    this.#type = type;
    this.#extractable = extractable;
    this.#algorithm = Object.freeze(algorithm);
    this.#usages = Object.freeze(usages);
    keyData.set(this, raw);
  }

  get type() { return this.#type; }
  get extractable() { return this.#extractable; }
  get algorithm() { return this.#algorithm; }
  get usages() { return this.#usages; }
  get [Symbol.toStringTag]() { return "CryptoKey"; }
}

function requireKey(key, op, what = "key") {
  if (!keyData.has(key)) throw new TypeError(`${op}: parameter '${what}' is not of type 'CryptoKey'`);
  return key;
}

// Per algorithm: the usages of each kind of key it makes, and how its keys are made.
const USAGES = {
  "HMAC": { secret: ["sign", "verify"] },
  "AES-GCM": { secret: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  "AES-CBC": { secret: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  "AES-CTR": { secret: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  "PBKDF2": { secret: ["deriveBits", "deriveKey"] },
  "HKDF": { secret: ["deriveBits", "deriveKey"] },
  "ECDSA": { private: ["sign"], public: ["verify"] },
  "Ed25519": { private: ["sign"], public: ["verify"] },
  "RSASSA-PKCS1-v1_5": { private: ["sign"], public: ["verify"] },
  "RSA-PSS": { private: ["sign"], public: ["verify"] },
  "RSA-OAEP": { private: ["decrypt", "unwrapKey"], public: ["encrypt", "wrapKey"] },
  "ECDH": { private: ["deriveBits", "deriveKey"], public: [] },
  "X25519": { private: ["deriveBits", "deriveKey"], public: [] },
};
const AES = ["AES-GCM", "AES-CBC", "AES-CTR"];
const RSA = ["RSASSA-PKCS1-v1_5", "RSA-PSS", "RSA-OAEP"];
const CURVES = ["P-256", "P-384", "P-521"];

function checkUsages(usages, allowed, op, mustHaveOne = true) {
  if (usages === null || typeof usages !== "object" || typeof usages[Symbol.iterator] !== "function")
    throw new TypeError(`${op}: keyUsages must be a sequence of strings`);
  const out = [];
  for (const u of usages) {
    const s = String(u);
    if (!allowed.includes(s))
      throw domException(`${op}: usage ${JSON.stringify(s)} is not valid for this key (allowed: ${allowed.join(", ") || "none"})`, "SyntaxError");
    if (!out.includes(s)) out.push(s);
  }
  if (mustHaveOne && out.length === 0) throw domException(`${op}: a secret or private key needs at least one usage`, "SyntaxError");
  return out;
}

function supported(alg, op) {
  const name = algorithmName(alg, op);
  if (!(name in USAGES)) throw notSupported(op, name);
  return name;
}

function hashOf(alg, op, algName) {
  if (alg === null || typeof alg !== "object" || alg.hash === undefined)
    throw new TypeError(`${op}: ${algName} needs a hash (SHA-1, SHA-256, SHA-384 or SHA-512)`);
  return digestName(alg.hash, op);
}

function hmacParams(alg, op) {
  if (alg === null || typeof alg !== "object") throw new TypeError(`${op}: HMAC needs an algorithm object with a hash`);
  const hash = hashOf(alg, op, "HMAC");
  let length;
  if (alg.length !== undefined) {
    length = Number(alg.length);
    if (!Number.isInteger(length) || length <= 0 || length > 0xffffffff)
      throw new TypeError(`${op}: HMAC length must be a positive integer number of bits`);
  }
  return { hash, length };
}

function namedCurve(alg, op) {
  if (alg === null || typeof alg !== "object" || alg.namedCurve === undefined)
    throw new TypeError(`${op}: ${alg && alg.name} needs a namedCurve (${CURVES.join(", ")})`);
  const curve = String(alg.namedCurve);
  if (!CURVES.includes(curve)) throw domException(`${op}: namedCurve ${JSON.stringify(curve)} is not one of ${CURVES.join(", ")}`, "NotSupportedError");
  return curve;
}

function aesLength(alg, op) {
  const length = Number(alg && alg.length);
  if (![128, 192, 256].includes(length)) throw domException(`${op}: AES length must be 128, 192 or 256`, "OperationError");
  return length;
}

// The CryptoKey.algorithm of a key: the family's parameters (from the host's description).
function keyAlgorithm(name, params, info) {
  if (name === "HMAC") return { name, hash: Object.freeze({ name: params.hash }), length: params.length };
  if (AES.includes(name)) return { name, length: params.length };
  if (name === "ECDSA" || name === "ECDH") return { name, namedCurve: info.namedCurve };
  if (RSA.includes(name))
    return { name, modulusLength: info.modulusLength, publicExponent: fromHex(info.publicExponent),
             hash: Object.freeze({ name: params.hash }) };
  return { name };
}

// ---- the host services --------------------------------------------------------------

const DOM_ERRORS = ["DataError", "OperationError", "NotSupportedError", "InvalidAccessError", "SyntaxError",
  "QuotaExceededError"];

// One "subtle" host call: a JSON header and byte strings out, the same back.
function subtleCall(header, parts = []) {
  const head = host.utf8Encode(JSON.stringify({ ...header, parts: parts.map((p) => p.length) }));
  let out;
  try {
    out = host.call("subtle", concat([u32(head.length), head, ...parts]));
  } catch (e) {
    if (DOM_ERRORS.includes(e.name)) throw domException(e.message, e.name);
    throw e;
  }
  const n = readU32(out, 0);
  const reply = JSON.parse(host.utf8Decode(out.subarray(4, 4 + n)));
  let at = 4 + n;
  reply.parts = reply.parts.map((len) => out.slice(at, (at += len)));
  return reply;
}

function hmac(hash, raw, data) {
  return host.call("hmac", concat([host.utf8Encode(hash + "\0"), u32(raw.length), raw, data]));
}

// ---- making keys ----------------------------------------------------------------------

function makeKey(type, name, params, info, extractable, usages, material) {
  return new CryptoKey(ILLEGAL, type, Boolean(extractable), keyAlgorithm(name, params, info), usages, material);
}

// The parameters an algorithm's keys keep (HMAC's hash and length, RSA's hash, AES's length).
function keyParams(name, alg, op) {
  if (name === "HMAC") return hmacParams(alg, op);
  if (RSA.includes(name)) return { hash: hashOf(alg, op, name) };
  if (name === "ECDSA" || name === "ECDH") return { namedCurve: namedCurve(alg, op) };
  return {};
}

function importSecret(name, params, raw, extractable, usages, op) {
  if (name === "HMAC") {
    if (raw.length === 0) throw domException(`${op}: an HMAC key cannot be empty`, "DataError");
    const { length } = params;
    if (length !== undefined && (length > raw.length * 8 || length <= raw.length * 8 - 8))
      throw domException(`${op}: length ${length} does not match a ${raw.length}-byte key`, "DataError");
    return makeKey("secret", name, { hash: params.hash, length: raw.length * 8 }, {}, extractable, usages, raw);
  }
  if (AES.includes(name)) {
    if (![16, 24, 32].includes(raw.length))
      throw domException(`${op}: an AES key is 128, 192 or 256 bits, not ${raw.length * 8}`, "DataError");
    return makeKey("secret", name, { length: raw.length * 8 }, {}, extractable, usages, raw);
  }
  // PBKDF2, HKDF: key material that is never exported
  if (extractable) throw domException(`${op}: ${name} keys cannot be extractable`, "SyntaxError");
  return makeKey("secret", name, {}, {}, false, usages, raw);
}

const FORMATS = ["raw", "spki", "pkcs8", "jwk"];

function checkFormat(format, op) {
  if (!FORMATS.includes(format))
    throw domException(`${op}: key format ${JSON.stringify(format)} is not one of ${FORMATS.join(", ")}`, "NotSupportedError");
}

function importKey(format, keyData_, algorithm, extractable, keyUsages) {
  const op = "SubtleCrypto.importKey";
  const name = supported(algorithm, op);
  const params = keyParams(name, algorithm, op);
  format = String(format);
  const kinds = USAGES[name];
  checkFormat(format, op);
  let data;
  if (format === "jwk") {
    if (keyData_ === null || typeof keyData_ !== "object" || ArrayBuffer.isView(keyData_) || keyData_ instanceof ArrayBuffer)
      throw new TypeError(`${op}: a jwk key must be a JSON Web Key object`);
    if (keyData_.ext === false && extractable)
      throw domException(`${op}: the JWK is not extractable (ext: false)`, "DataError");
    data = host.utf8Encode(JSON.stringify(keyData_));
  } else data = bufferSource(keyData_, op, "keyData");
  if (kinds.secret) {
    const usages = checkUsages(keyUsages, kinds.secret, op);
    if (format === "raw") return importSecret(name, params, data, extractable, usages, op);
    if (format !== "jwk" || name === "PBKDF2" || name === "HKDF")
      throw domException(`${op}: ${name} keys import as ${name === "PBKDF2" || name === "HKDF" ? "raw" : "raw or jwk"}, not ${format}`, "NotSupportedError");
    const reply = subtleCall({ op: "import", alg: name, format }, [data]);
    if (reply.type !== "secret") throw domException(`${op}: the JWK is not a secret (oct) key`, "DataError");
    return importSecret(name, params, reply.parts[0], extractable, usages, op);
  }
  if (format === "raw" && !["ECDSA", "ECDH", "Ed25519", "X25519"].includes(name))
    throw domException(`${op}: ${name} keys do not import as raw (use spki, pkcs8 or jwk)`, "NotSupportedError");
  const reply = subtleCall({ op: "import", alg: name, format, namedCurve: params.namedCurve }, [data]);
  if (reply.type === "secret") throw domException(`${op}: the JWK is a secret key, not a ${name} key`, "DataError");
  const usages = checkUsages(keyUsages, kinds[reply.type], op, reply.type === "private");
  const pub = reply.type === "public";
  return makeKey(reply.type, name, params, reply, pub ? true : extractable, usages, reply.parts[0]);
}

function generateKey(algorithm, extractable, keyUsages) {
  const op = "SubtleCrypto.generateKey";
  const name = supported(algorithm, op);
  const kinds = USAGES[name];
  if (name === "PBKDF2" || name === "HKDF") throw domException(`${op}: ${name} keys are imported, not generated`, "NotSupportedError");
  const params = keyParams(name, algorithm, op);
  if (name === "HMAC") {
    const usages = checkUsages(keyUsages, kinds.secret, op);
    const bits = params.length === undefined ? BLOCK_BITS[params.hash] : params.length;
    if (bits % 8 !== 0) throw domException(`${op}: WapoJS generates HMAC keys of whole bytes only`, "OperationError");
    if (bits / 8 > MAX_RANDOM) throw domException(`${op}: an HMAC key is at most ${MAX_RANDOM} bytes`, "OperationError");
    return makeKey("secret", name, { hash: params.hash, length: bits }, {}, extractable, usages, randomBytes(bits / 8));
  }
  if (AES.includes(name)) {
    const usages = checkUsages(keyUsages, kinds.secret, op);
    const bits = aesLength(algorithm, op);
    return makeKey("secret", name, { length: bits }, {}, extractable, usages, randomBytes(bits / 8));
  }
  const all = checkUsages(keyUsages, kinds.private.concat(kinds.public), op, false);
  const privateUsages = all.filter((u) => kinds.private.includes(u));
  if (privateUsages.length === 0) throw domException(`${op}: the private key would have no usage`, "SyntaxError");
  const header = { op: "generate", alg: name, namedCurve: params.namedCurve };
  if (RSA.includes(name)) {
    header.modulusLength = Number(algorithm.modulusLength);
    const e = algorithm.publicExponent;
    if (!(e instanceof Uint8Array)) throw new TypeError(`${op}: publicExponent must be a Uint8Array (e.g. [1, 0, 1])`);
    header.publicExponent = hex(e) || "00";
  }
  const reply = subtleCall(header);
  const privateKey = makeKey("private", name, params, reply, extractable, privateUsages, reply.parts[0]);
  const publicKey = makeKey("public", name, params, reply, true, all.filter((u) => kinds.public.includes(u)), reply.parts[1]);
  return { publicKey, privateKey };
}

function exportKey(format, key) {
  const op = "SubtleCrypto.exportKey";
  format = String(format);
  requireKey(key, op);
  if (!key.extractable) throw domException(`${op}: the key is not extractable`, "InvalidAccessError");
  checkFormat(format, op);
  const material = keyData.get(key);
  if (key.type === "secret" && format === "raw") return material.slice().buffer;
  const reply = subtleCall({ op: "export", format, type: key.type, alg: key.algorithm.name,
                             hash: key.algorithm.hash && key.algorithm.hash.name, usages: key.usages }, [material]);
  const out = reply.parts[0];
  if (format === "jwk") {
    const jwk = JSON.parse(host.utf8Decode(out));
    jwk.ext = key.extractable;
    return jwk;
  }
  return toArrayBuffer(out);
}

// ---- operations -------------------------------------------------------------------------

// The key fits the operation: a CryptoKey of the algorithm asked for, with the usage.
function keyFor(algorithm, key, usage, op, what = "key") {
  const name = supported(algorithm, op);
  requireKey(key, op, what);
  if (key.algorithm.name !== name)
    throw domException(`${op}: the key is a ${key.algorithm.name} key, not an ${name} key`, "InvalidAccessError");
  if (!key.usages.includes(usage))
    throw domException(`${op}: the key's usages (${key.usages.join(", ") || "none"}) do not include '${usage}'`, "InvalidAccessError");
  return name;
}

function signParams(name, algorithm, key, op) {
  const header = { alg: name, namedCurve: key.algorithm.namedCurve };
  if (name === "ECDSA") header.hash = hashOf(algorithm, op, "ECDSA");
  if (name === "RSASSA-PKCS1-v1_5" || name === "RSA-PSS") header.hash = key.algorithm.hash.name;
  if (name === "RSA-PSS") {
    const salt = Number(algorithm.saltLength);
    if (!Number.isInteger(salt) || salt < 0) throw new TypeError(`${op}: RSA-PSS needs a saltLength (bytes)`);
    header.saltLength = salt;
  }
  return header;
}

function sign(algorithm, key, data) {
  const op = "SubtleCrypto.sign";
  const bytes = bufferSource(data, op);
  const name = keyFor(algorithm, key, "sign", op);
  if (name === "HMAC") return toArrayBuffer(hmac(key.algorithm.hash.name, keyData.get(key), bytes));
  const reply = subtleCall({ op: "sign", ...signParams(name, algorithm, key, op) }, [keyData.get(key), bytes]);
  return toArrayBuffer(reply.parts[0]);
}

function verify(algorithm, key, signature, data) {
  const op = "SubtleCrypto.verify";
  const sig = bufferSource(signature, op, "signature");
  const bytes = bufferSource(data, op);
  const name = keyFor(algorithm, key, "verify", op);
  if (name === "HMAC") {
    const mac = hmac(key.algorithm.hash.name, keyData.get(key), bytes);
    if (mac.length !== sig.length) return false;
    let diff = 0;
    for (let i = 0; i < mac.length; i++) diff |= mac[i] ^ sig[i];
    return diff === 0;
  }
  return subtleCall({ op: "verify", ...signParams(name, algorithm, key, op) }, [keyData.get(key), sig, bytes]).ok;
}

function crypt(direction, algorithm, key, data, usage = direction) {
  const op = `SubtleCrypto.${direction}`;
  const bytes = bufferSource(data, op);
  const name = keyFor(algorithm, key, usage, op);
  const header = { op: direction, alg: name };
  const parts = [keyData.get(key), bytes];
  if (name === "AES-GCM") {
    parts.push(bufferSource(algorithm.iv, op, "iv"));
    parts.push(algorithm.additionalData === undefined ? new Uint8Array(0) : bufferSource(algorithm.additionalData, op, "additionalData"));
    if (algorithm.tagLength !== undefined) header.tagLength = Number(algorithm.tagLength);
  } else if (name === "AES-CBC") {
    parts.push(bufferSource(algorithm.iv, op, "iv"));
  } else if (name === "AES-CTR") {
    parts.push(bufferSource(algorithm.counter, op, "counter"));
    header.length = Number(algorithm.length);
  } else if (name === "RSA-OAEP") {
    header.hash = key.algorithm.hash.name;
    parts.push(new Uint8Array(0));
    parts.push(algorithm.label === undefined ? new Uint8Array(0) : bufferSource(algorithm.label, op, "label"));
  } else throw notSupported(op, name);
  return subtleCall(header, parts).parts[0];
}

function deriveBitsOf(algorithm, baseKey, length, op, usage) {
  const name = keyFor(algorithm, baseKey, usage, op, "baseKey");
  const header = { op: "derive", alg: name };
  const parts = [keyData.get(baseKey)];
  if (length !== null && length !== undefined) header.length = Number(length);
  if (name === "PBKDF2" || name === "HKDF") {
    header.hash = hashOf(algorithm, op, name);
    parts.push(bufferSource(algorithm.salt, op, "salt"));
    if (name === "PBKDF2") header.iterations = Number(algorithm.iterations);
    else parts.push(bufferSource(algorithm.info, op, "info"));
  } else if (name === "ECDH" || name === "X25519") {
    const peer = algorithm.public;
    requireKey(peer, op, "public");
    if (peer.type !== "public" || peer.algorithm.name !== name)
      throw domException(`${op}: 'public' must be a ${name} public key`, "InvalidAccessError");
    if (name === "ECDH" && peer.algorithm.namedCurve !== baseKey.algorithm.namedCurve)
      throw domException(`${op}: the public key is on ${peer.algorithm.namedCurve}, the base key on ${baseKey.algorithm.namedCurve}`, "InvalidAccessError");
    header.namedCurve = baseKey.algorithm.namedCurve;
    parts.push(keyData.get(peer));
  } else throw notSupported(op, name);
  return subtleCall(header, parts).parts[0];
}

// How many bits a deriveKey target needs (AES: its length; HMAC: its length or the hash's block).
function derivedLength(derivedKeyType, op) {
  const name = supported(derivedKeyType, op);
  if (AES.includes(name)) return aesLength(derivedKeyType, op);
  if (name === "HMAC") {
    const { hash, length } = hmacParams(derivedKeyType, op);
    return length === undefined ? BLOCK_BITS[hash] : length;
  }
  if (name === "PBKDF2" || name === "HKDF") return null;
  throw domException(`${op}: a ${name} key cannot be derived`, "NotSupportedError");
}

function deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages) {
  const op = "SubtleCrypto.deriveKey";
  const length = derivedLength(derivedKeyType, op);
  const bits = deriveBitsOf(algorithm, baseKey, length, op, "deriveKey");
  return importKey("raw", bits, derivedKeyType, extractable, keyUsages);
}

function wrapKey(format, key, wrappingKey, wrapAlgorithm) {
  const op = "SubtleCrypto.wrapKey";
  requireKey(key, op);
  let data = exportKey(format, key);
  data = format === "jwk" ? host.utf8Encode(JSON.stringify(data)) : new Uint8Array(data);
  return toArrayBuffer(crypt("encrypt", wrapAlgorithm, wrappingKey, data, "wrapKey"));
}

function unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages) {
  let data = crypt("decrypt", unwrapAlgorithm, unwrappingKey, wrappedKey, "unwrapKey");
  if (String(format) === "jwk") {
    try {
      data = JSON.parse(host.utf8Decode(data));
    } catch (e) {
      throw domException("SubtleCrypto.unwrapKey: the unwrapped JWK is not JSON", "DataError");
    }
  }
  return importKey(format, data, unwrappedKeyAlgorithm, extractable, keyUsages);
}

// ---- SubtleCrypto ------------------------------------------------------------------

// Every method returns a promise; argument errors reject it, never throw.
function promised(fn) {
  return function (...args) {
    try {
      return Promise.resolve(fn.apply(this, args));
    } catch (e) {
      return Promise.reject(e);
    }
  };
}

class SubtleCrypto {
  constructor(guard) {
    if (guard !== ILLEGAL) throw new TypeError("Illegal constructor");
  }
  get [Symbol.toStringTag]() { return "SubtleCrypto"; }
}

const subtleMethods = {
  digest(algorithm, data) {
    const op = "SubtleCrypto.digest";
    const name = digestName(algorithm, op);
    const bytes = bufferSource(data, op);
    return toArrayBuffer(host.call("digest", concat([host.utf8Encode(name + "\0"), bytes])));
  },
  importKey, exportKey, generateKey, sign, verify,
  encrypt(algorithm, key, data) { return toArrayBuffer(crypt("encrypt", algorithm, key, data)); },
  decrypt(algorithm, key, data) { return toArrayBuffer(crypt("decrypt", algorithm, key, data)); },
  deriveBits(algorithm, baseKey, length) {
    return toArrayBuffer(deriveBitsOf(algorithm, baseKey, length, "SubtleCrypto.deriveBits", "deriveBits"));
  },
  deriveKey, wrapKey, unwrapKey,
};

for (const [name, fn] of Object.entries(subtleMethods)) {
  Object.defineProperty(SubtleCrypto.prototype, name,
    { value: promised(fn), writable: true, configurable: true, enumerable: true });
}

// ---- Crypto --------------------------------------------------------------------------

const subtle = new SubtleCrypto(ILLEGAL);

class Crypto {
  constructor(guard) {
    if (guard !== ILLEGAL) throw new TypeError("Illegal constructor");
  }
  get subtle() { return subtle; }
  getRandomValues(array) { return getRandomValues.apply(undefined, arguments); }
  randomUUID() { return randomUUID(); }
  get [Symbol.toStringTag]() { return "Crypto"; }
}

const crypto = new Crypto(ILLEGAL);

return { crypto, Crypto, CryptoKey, SubtleCrypto };
