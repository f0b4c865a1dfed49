// @provides crypto Crypto CryptoKey SubtleCrypto
// Web Crypto, the part WapoJS supports: getRandomValues, randomUUID, and
// crypto.subtle with digest (SHA-1/256/384/512) and HMAC keys (importKey /
// exportKey "raw", generateKey, sign, verify). Every other algorithm, format
// or operation rejects with a NotSupportedError DOMException.
// Randomness comes from the host OS (host service "random"), never Math.random.

const ILLEGAL = Symbol("illegal constructor guard");
const MAX_RANDOM = 65536;

const { u32, concat, copyBytes, HEX, domException } = host.internal("shared");

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

const keyData = new WeakMap(); // CryptoKey -> raw secret bytes (never visible to user code)

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

function requireKey(key, op) {
  if (!keyData.has(key)) throw new TypeError(`${op}: parameter 'key' is not of type 'CryptoKey'`);
  return key;
}

const HMAC_USAGES = ["sign", "verify"];

function checkUsages(usages, allowed, op) {
  if (usages === null || typeof usages !== "object" || typeof usages[Symbol.iterator] !== "function")
    throw new TypeError(`${op}: keyUsages must be a sequence of strings`);
  const out = [];
  for (const u of usages) {
    const s = String(u);
    if (!allowed.includes(s))
      throw domException(`${op}: usage ${JSON.stringify(s)} is not valid for this key (allowed: ${allowed.join(", ")})`, "SyntaxError");
    if (!out.includes(s)) out.push(s);
  }
  if (out.length === 0) throw domException(`${op}: a secret key needs at least one usage`, "SyntaxError");
  return out;
}

function hmacParams(alg, op) {
  if (alg === null || typeof alg !== "object") throw new TypeError(`${op}: HMAC needs an algorithm object with a hash`);
  if (alg.hash === undefined) throw new TypeError(`${op}: HMAC needs a hash (SHA-1, SHA-256, SHA-384 or SHA-512)`);
  const hash = digestName(alg.hash, op);
  let length;
  if (alg.length !== undefined) {
    length = Number(alg.length);
    if (!Number.isInteger(length) || length <= 0 || length > 0xffffffff)
      throw new TypeError(`${op}: HMAC length must be a positive integer number of bits`);
  }
  return { hash, length };
}

function makeHmacKey(raw, hash, extractable, usages) {
  const algorithm = { name: "HMAC", hash: Object.freeze({ name: hash }), length: raw.length * 8 };
  return new CryptoKey(ILLEGAL, "secret", Boolean(extractable), algorithm, usages, raw);
}

function hmac(hash, raw, data) {
  return host.call("hmac", concat([host.utf8Encode(hash + "\0"), u32(raw.length), raw, data]));
}

function keyHmacCheck(algorithm, key, usage, op) {
  const name = algorithmName(algorithm, op);
  if (name !== "HMAC") throw notSupported(op, name);
  requireKey(key, op);
  if (key.algorithm.name !== name)
    throw domException(`${op}: the key is a ${key.algorithm.name} key, not an HMAC key`, "InvalidAccessError");
  if (!key.usages.includes(usage))
    throw domException(`${op}: the key's usages (${key.usages.join(", ") || "none"}) do not include '${usage}'`, "InvalidAccessError");
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

function unsupportedOperation(op) {
  return promised(function () {
    throw domException(`SubtleCrypto.${op} is not supported by WapoJS (supported: digest and HMAC sign/verify/importKey/exportKey/generateKey)`, "NotSupportedError");
  });
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

  importKey(format, keyData, algorithm, extractable, keyUsages) {
    const op = "SubtleCrypto.importKey";
    const name = algorithmName(algorithm, op);
    if (name !== "HMAC") throw notSupported(op, name);
    const { hash, length } = hmacParams(algorithm, op);
    format = String(format);
    if (format !== "raw")
      throw domException(`${op}: key format ${JSON.stringify(format)} is not supported for HMAC (use "raw")`, "NotSupportedError");
    const usages = checkUsages(keyUsages, HMAC_USAGES, op);
    const raw = bufferSource(keyData, op, "keyData");
    if (raw.length === 0) throw domException(`${op}: an HMAC key cannot be empty`, "DataError");
    if (length !== undefined && (length > raw.length * 8 || length <= raw.length * 8 - 8))
      throw domException(`${op}: length ${length} does not match a ${raw.length}-byte key`, "DataError");
    return makeHmacKey(raw, hash, extractable, usages);
  },

  exportKey(format, key) {
    const op = "SubtleCrypto.exportKey";
    format = String(format);
    requireKey(key, op);
    if (format !== "raw")
      throw domException(`${op}: key format ${JSON.stringify(format)} is not supported (use "raw")`, "NotSupportedError");
    if (!key.extractable) throw domException(`${op}: the key is not extractable`, "InvalidAccessError");
    return keyData.get(key).slice().buffer;
  },

  generateKey(algorithm, extractable, keyUsages) {
    const op = "SubtleCrypto.generateKey";
    const name = algorithmName(algorithm, op);
    if (name !== "HMAC") throw notSupported(op, name);
    const { hash, length } = hmacParams(algorithm, op);
    const usages = checkUsages(keyUsages, HMAC_USAGES, op);
    const bits = length === undefined ? BLOCK_BITS[hash] : length;
    if (bits % 8 !== 0) throw domException(`${op}: WapoJS generates HMAC keys of whole bytes only`, "OperationError");
    if (bits / 8 > MAX_RANDOM) throw domException(`${op}: an HMAC key is at most ${MAX_RANDOM} bytes`, "OperationError");
    return makeHmacKey(randomBytes(bits / 8), hash, extractable, usages);
  },

  sign(algorithm, key, data) {
    const op = "SubtleCrypto.sign";
    const bytes = bufferSource(data, op);
    keyHmacCheck(algorithm, key, "sign", op);
    return toArrayBuffer(hmac(key.algorithm.hash.name, keyData.get(key), bytes));
  },

  verify(algorithm, key, signature, data) {
    const op = "SubtleCrypto.verify";
    const sig = bufferSource(signature, op, "signature");
    const bytes = bufferSource(data, op);
    keyHmacCheck(algorithm, key, "verify", op);
    const mac = hmac(key.algorithm.hash.name, keyData.get(key), bytes);
    if (mac.length !== sig.length) return false;
    let diff = 0;
    for (let i = 0; i < mac.length; i++) diff |= mac[i] ^ sig[i];
    return diff === 0;
  },
};

for (const [name, fn] of Object.entries(subtleMethods)) {
  Object.defineProperty(SubtleCrypto.prototype, name,
    { value: promised(fn), writable: true, configurable: true, enumerable: true });
}
for (const name of ["encrypt", "decrypt", "deriveBits", "deriveKey", "wrapKey", "unwrapKey"]) {
  Object.defineProperty(SubtleCrypto.prototype, name,
    { value: unsupportedOperation(name), writable: true, configurable: true, enumerable: true });
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
