// @provides crypto Crypto CryptoKey SubtleCrypto
// Web Crypto: getRandomValues, randomUUID, and crypto.subtle with digest
// (SHA-1/256/384/512), HMAC (here, over the host's "hmac" service), and, done by
// the host with `cryptography` (service "subtle", wapo/host/services/subtle.py):
// ECDSA (P-256/384/521), Ed25519, RSASSA-PKCS1-v1_5, RSA-PSS, RSA-OAEP,
// AES-GCM/CBC/CTR/KW, PBKDF2, HKDF, ECDH and X25519; formats raw, spki, pkcs8, jwk;
// deriveKey, wrapKey and unwrapKey are built on those. Anything else rejects
// with a NotSupportedError DOMException.
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

function checkUsages(usages, allowed, op, allowEmpty = false) {
  if (usages === null || typeof usages !== "object" || typeof usages[Symbol.iterator] !== "function")
    throw new TypeError(`${op}: keyUsages must be a sequence of strings`);
  const out = [];
  for (const u of usages) {
    const s = String(u);
    if (!allowed.includes(s))
      throw domException(`${op}: usage ${JSON.stringify(s)} is not valid for this key (allowed: ${allowed.join(", ")})`, "SyntaxError");
    if (!out.includes(s)) out.push(s);
  }
  if (out.length === 0 && !allowEmpty) throw domException(`${op}: a secret or private key needs at least one usage`, "SyntaxError");
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

class SubtleCrypto {
  constructor(guard) {
    if (guard !== ILLEGAL) throw new TypeError("Illegal constructor");
  }
  get [Symbol.toStringTag]() { return "SubtleCrypto"; }
}

// ---- the algorithms done by the host ("subtle" service) -------------------------------

const SIGNERS = ["ECDSA", "Ed25519", "RSASSA-PKCS1-v1_5", "RSA-PSS"];
const USAGES = {
  "RSA-OAEP": { private: ["decrypt", "unwrapKey"], public: ["encrypt", "wrapKey"] },
  ECDH: { private: ["deriveKey", "deriveBits"], public: [] },
  X25519: { private: ["deriveKey", "deriveBits"], public: [] },
  "AES-GCM": { secret: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  "AES-CBC": { secret: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  "AES-CTR": { secret: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  "AES-KW": { secret: ["wrapKey", "unwrapKey"] },
  PBKDF2: { secret: ["deriveKey", "deriveBits"] },
  HKDF: { secret: ["deriveKey", "deriveBits"] },
};
for (const name of SIGNERS) USAGES[name] = { private: ["sign"], public: ["verify"] };

function allUsages(name) {
  const u = USAGES[name];
  return [...(u.private || []), ...(u.public || []), ...(u.secret || [])];
}

function subtleCall(head, blobs = []) {
  head.blobs = blobs.map((b) => b.length);
  const answer = host.call("subtle", concat([host.utf8Encode(JSON.stringify(head) + "\0"), ...blobs]));
  let nul = 0;
  while (answer[nul] !== 0) nul++;
  const out = JSON.parse(host.utf8Decode(answer.subarray(0, nul)));
  const parts = [];
  let offset = nul + 1;
  for (const n of out.blobs || []) { parts.push(answer.slice(offset, offset + n)); offset += n; }
  return [out, parts];
}

// The key's algorithm as the host needs it (JSON: no Uint8Array).
function hostAlg(key) {
  const a = key.algorithm;
  const out = { name: a.name };
  if (a.namedCurve) out.namedCurve = a.namedCurve;
  if (a.hash) out.hash = { name: a.hash.name };
  return out;
}

function publicAlgorithm(alg) {
  const out = { ...alg };
  if (out.publicExponent) out.publicExponent = new Uint8Array(out.publicExponent);
  if (out.hash) out.hash = Object.freeze({ name: out.hash.name });
  return out;
}

function hostKey(type, extractable, alg, usages, bytes) {
  return new CryptoKey(ILLEGAL, type, Boolean(extractable), publicAlgorithm(alg), usages, bytes);
}

function importParams(algorithm, name, op) {
  const alg = { name };
  if (name === "ECDSA" || name === "ECDH") {
    if (algorithm.namedCurve === undefined) throw new TypeError(`${op}: ${name} needs a namedCurve`);
    alg.namedCurve = String(algorithm.namedCurve);
  }
  if (name === "RSASSA-PKCS1-v1_5" || name === "RSA-PSS" || name === "RSA-OAEP") {
    if (algorithm.hash === undefined) throw new TypeError(`${op}: ${name} needs a hash`);
    alg.hash = digestName(algorithm.hash, op);
  }
  return alg;
}

function requireUsage(key, name, usage, op) {
  requireKey(key, op);
  if (key.algorithm.name !== name)
    throw domException(`${op}: the key is a ${key.algorithm.name} key, not ${name}`, "InvalidAccessError");
  if (!key.usages.includes(usage))
    throw domException(`${op}: the key's usages (${key.usages.join(", ") || "none"}) do not include '${usage}'`, "InvalidAccessError");
}

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unb64url(text, op) {
  if (typeof text !== "string") throw domException(`${op}: JWK member k must be a base64url string`, "DataError");
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const HMAC_JWK = { "SHA-1": "HS1", "SHA-256": "HS256", "SHA-384": "HS384", "SHA-512": "HS512" };

function cryptParams(algorithm, name, op) {
  const params = {};
  const blobs = [];
  if (name === "AES-GCM") {
    blobs.push(bufferSource(algorithm.iv, op, "iv"));
    if (algorithm.additionalData !== undefined) {
      params.hasAdditionalData = true;
      blobs.push(bufferSource(algorithm.additionalData, op, "additionalData"));
    }
    if (algorithm.tagLength !== undefined) params.tagLength = Number(algorithm.tagLength);
  } else if (name === "AES-CBC") {
    blobs.push(bufferSource(algorithm.iv, op, "iv"));
  } else if (name === "AES-CTR") {
    blobs.push(bufferSource(algorithm.counter, op, "counter"));
    params.length = Number(algorithm.length);
  } else if (name === "AES-KW") {
    // no parameters
  } else if (name === "RSA-OAEP") {
    if (algorithm.label !== undefined) {
      params.hasLabel = true;
      blobs.push(bufferSource(algorithm.label, op, "label"));
    }
  } else throw notSupported(op, name);
  return [params, blobs];
}

function crypt(direction, algorithm, key, data) {
  const op = `SubtleCrypto.${direction}`;
  const name = algorithmName(algorithm, op);
  const bytes = bufferSource(data, op);
  const [params, blobs] = cryptParams(algorithm, name, op);
  requireUsage(key, name, direction, op);
  const [, [out]] = subtleCall({ op: direction, alg: hostAlg(key), params }, [keyData.get(key), bytes, ...blobs]);
  return toArrayBuffer(out);
}

function deriveBitsOf(algorithm, baseKey, length, usage, op) {
  const name = algorithmName(algorithm, op);
  if (!(name in USAGES) || !USAGES[name].private && !USAGES[name].secret) throw notSupported(op, name);
  requireUsage(baseKey, name, usage, op);
  const params = {};
  const blobs = [keyData.get(baseKey)];
  if (name === "ECDH" || name === "X25519") {
    const pub = algorithm.public;
    requireKey(pub, op);
    if (pub.type !== "public" || pub.algorithm.name !== name)
      throw domException(`${op}: 'public' must be a ${name} public key`, "InvalidAccessError");
    if (name === "ECDH" && pub.algorithm.namedCurve !== baseKey.algorithm.namedCurve)
      throw domException(`${op}: the keys are on different curves`, "InvalidAccessError");
    blobs.push(keyData.get(pub));
  } else if (name === "PBKDF2") {
    params.hash = digestName(algorithm.hash, op);
    params.iterations = Number(algorithm.iterations);
    blobs.push(bufferSource(algorithm.salt, op, "salt"));
  } else if (name === "HKDF") {
    params.hash = digestName(algorithm.hash, op);
    blobs.push(bufferSource(algorithm.salt, op, "salt"), bufferSource(algorithm.info, op, "info"));
  } else throw notSupported(op, name);
  const head = { op: "deriveBits", alg: hostAlg(baseKey), params };
  if (length !== null && length !== undefined) head.length = Number(length);
  else if (name === "PBKDF2" || name === "HKDF") throw domException(`${op}: ${name} needs a length`, "OperationError");
  const [, [out]] = subtleCall(head, blobs);
  return out;
}

function derivedKeyLength(algorithm, op) {
  const name = algorithmName(algorithm, op);
  if (name === "AES-GCM" || name === "AES-CBC" || name === "AES-CTR" || name === "AES-KW") {
    const length = Number(algorithm.length);
    if (![128, 192, 256].includes(length)) throw domException(`${op}: AES length must be 128, 192 or 256`, "OperationError");
    return length;
  }
  if (name === "HMAC") {
    const { hash, length } = hmacParams(algorithm, op);
    return length === undefined ? BLOCK_BITS[hash] : length;
  }
  if (name === "HKDF" || name === "PBKDF2") return null;
  throw notSupported(op, name);
}

function exportedKey(format, key, op) {
  format = String(format);
  requireKey(key, op);
  if (!key.extractable) throw domException(`${op}: the key is not extractable`, "InvalidAccessError");
  const raw = keyData.get(key);
  if (key.algorithm.name === "HMAC") {
    if (format === "raw") return raw.slice().buffer;
    if (format === "jwk") {
      return { kty: "oct", k: b64url(raw), alg: HMAC_JWK[key.algorithm.hash.name], key_ops: [...key.usages], ext: true };
    }
    throw domException(`${op}: key format ${JSON.stringify(format)} is not supported for HMAC (raw, jwk)`, "NotSupportedError");
  }
  if (!["raw", "spki", "pkcs8", "jwk"].includes(format))
    throw domException(`${op}: unknown key format ${JSON.stringify(format)}`, "NotSupportedError");
  const [answer, parts] = subtleCall({ op: "export", format, type: key.type, alg: hostAlg(key) }, [raw]);
  if (format === "jwk") {
    const jwk = answer.jwk;
    jwk.key_ops = [...key.usages];
    jwk.ext = key.extractable;
    return jwk;
  }
  return toArrayBuffer(parts[0]);
}

function importedKey(format, data, algorithm, extractable, keyUsages, op) {
  const name = algorithmName(algorithm, op);
  format = String(format);
  if (name === "HMAC") {
    const { hash, length } = hmacParams(algorithm, op);
    let raw;
    if (format === "raw") raw = bufferSource(data, op, "keyData");
    else if (format === "jwk") {
      if (data === null || typeof data !== "object" || data.kty !== "oct")
        throw domException(`${op}: an HMAC JWK has kty "oct"`, "DataError");
      raw = unb64url(data.k, op);
    } else throw domException(`${op}: key format ${JSON.stringify(format)} is not supported for HMAC (raw, jwk)`, "NotSupportedError");
    const usages = checkUsages(keyUsages, HMAC_USAGES, op);
    if (raw.length === 0) throw domException(`${op}: an HMAC key cannot be empty`, "DataError");
    if (length !== undefined && (length > raw.length * 8 || length <= raw.length * 8 - 8))
      throw domException(`${op}: length ${length} does not match a ${raw.length}-byte key`, "DataError");
    return makeHmacKey(raw, hash, extractable, usages);
  }
  if (!(name in USAGES)) throw notSupported(op, name);
  if ((name === "PBKDF2" || name === "HKDF") && extractable)
    throw domException(`${op}: ${name} keys cannot be extractable`, "SyntaxError");
  const head = { op: "import", format, alg: importParams(algorithm, name, op) };
  const blobs = [];
  if (format === "jwk") {
    if (data === null || typeof data !== "object") throw new TypeError(`${op}: a JWK must be an object`);
    head.jwk = data;
  } else blobs.push(bufferSource(data, op, "keyData"));
  checkUsages(keyUsages, allUsages(name), op, true);
  const [answer, [bytes]] = subtleCall(head, blobs);
  const allowed = USAGES[name][answer.type] || [];
  const usages = checkUsages(keyUsages, allowed, op, answer.type === "public");
  return hostKey(answer.type, answer.type === "public" ? true : extractable, answer.alg, usages, bytes);
}

const subtleMethods = {
  digest(algorithm, data) {
    const op = "SubtleCrypto.digest";
    const name = digestName(algorithm, op);
    const bytes = bufferSource(data, op);
    return toArrayBuffer(host.call("digest", concat([host.utf8Encode(name + "\0"), bytes])));
  },

  importKey(format, keyData, algorithm, extractable, keyUsages) {
    return importedKey(format, keyData, algorithm, extractable, keyUsages, "SubtleCrypto.importKey");
  },

  exportKey(format, key) {
    return exportedKey(format, key, "SubtleCrypto.exportKey");
  },

  generateKey(algorithm, extractable, keyUsages) {
    const op = "SubtleCrypto.generateKey";
    const name = algorithmName(algorithm, op);
    if (name === "HMAC") {
      const { hash, length } = hmacParams(algorithm, op);
      const usages = checkUsages(keyUsages, HMAC_USAGES, op);
      const bits = length === undefined ? BLOCK_BITS[hash] : length;
      if (bits % 8 !== 0) throw domException(`${op}: WapoJS generates HMAC keys of whole bytes only`, "OperationError");
      if (bits / 8 > MAX_RANDOM) throw domException(`${op}: an HMAC key is at most ${MAX_RANDOM} bytes`, "OperationError");
      return makeHmacKey(randomBytes(bits / 8), hash, extractable, usages);
    }
    if (!(name in USAGES) || name === "PBKDF2" || name === "HKDF") throw notSupported(op, name);
    const usages = checkUsages(keyUsages, allUsages(name), op);
    const alg = importParams(algorithm, name, op);
    if (name.startsWith("AES-")) alg.length = Number(algorithm.length);
    if (name.startsWith("RSA")) {
      alg.modulusLength = Number(algorithm.modulusLength);
      alg.publicExponent = Array.from(bufferSource(algorithm.publicExponent, op, "publicExponent"));
    }
    const [answer, parts] = subtleCall({ op: "generate", alg });
    if (answer.keys.length === 1) {
      return hostKey("secret", extractable, answer.keys[0].alg, usages, parts[0]);
    }
    const privateUsages = usages.filter((u) => USAGES[name].private.includes(u));
    if (privateUsages.length === 0) throw domException(`${op}: the private key needs a usage`, "SyntaxError");
    return {
      privateKey: hostKey("private", extractable, answer.keys[0].alg, privateUsages, parts[0]),
      publicKey: hostKey("public", true, answer.keys[1].alg, usages.filter((u) => USAGES[name].public.includes(u)), parts[1]),
    };
  },

  sign(algorithm, key, data) {
    const op = "SubtleCrypto.sign";
    const bytes = bufferSource(data, op);
    const name = algorithmName(algorithm, op);
    if (name === "HMAC") {
      keyHmacCheck(algorithm, key, "sign", op);
      return toArrayBuffer(hmac(key.algorithm.hash.name, keyData.get(key), bytes));
    }
    if (!SIGNERS.includes(name)) throw notSupported(op, name);
    requireUsage(key, name, "sign", op);
    const params = {};
    if (name === "ECDSA") params.hash = digestName(algorithm.hash, op);
    if (name === "RSA-PSS") params.saltLength = Number(algorithm.saltLength);
    const [, [sig]] = subtleCall({ op: "sign", alg: hostAlg(key), params }, [keyData.get(key), bytes]);
    return toArrayBuffer(sig);
  },

  verify(algorithm, key, signature, data) {
    const op = "SubtleCrypto.verify";
    const sig = bufferSource(signature, op, "signature");
    const bytes = bufferSource(data, op);
    const name = algorithmName(algorithm, op);
    if (name === "HMAC") {
      keyHmacCheck(algorithm, key, "verify", op);
      const mac = hmac(key.algorithm.hash.name, keyData.get(key), bytes);
      if (mac.length !== sig.length) return false;
      let diff = 0;
      for (let i = 0; i < mac.length; i++) diff |= mac[i] ^ sig[i];
      return diff === 0;
    }
    if (!SIGNERS.includes(name)) throw notSupported(op, name);
    requireUsage(key, name, "verify", op);
    const params = {};
    if (name === "ECDSA") params.hash = digestName(algorithm.hash, op);
    if (name === "RSA-PSS") params.saltLength = Number(algorithm.saltLength);
    const [answer] = subtleCall({ op: "verify", alg: hostAlg(key), params }, [keyData.get(key), sig, bytes]);
    return answer.ok;
  },

  encrypt(algorithm, key, data) { return crypt("encrypt", algorithm, key, data); },
  decrypt(algorithm, key, data) { return crypt("decrypt", algorithm, key, data); },

  deriveBits(algorithm, baseKey, length) {
    return toArrayBuffer(deriveBitsOf(algorithm, baseKey, length, "deriveBits", "SubtleCrypto.deriveBits"));
  },

  deriveKey(algorithm, baseKey, derivedKeyAlgorithm, extractable, keyUsages) {
    const op = "SubtleCrypto.deriveKey";
    const length = derivedKeyLength(derivedKeyAlgorithm, op);
    const bits = deriveBitsOf(algorithm, baseKey, length, "deriveKey", op);
    return importedKey("raw", bits, derivedKeyAlgorithm, extractable, keyUsages, op);
  },

  wrapKey(format, key, wrappingKey, wrapAlgorithm) {
    const op = "SubtleCrypto.wrapKey";
    const name = algorithmName(wrapAlgorithm, op);
    requireUsage(wrappingKey, name, "wrapKey", op);
    const exported = exportedKey(format, key, op);
    const bytes = String(format) === "jwk" ? host.utf8Encode(JSON.stringify(exported)) : new Uint8Array(exported);
    const [params, blobs] = cryptParams(wrapAlgorithm, name, op);
    const [, [out]] = subtleCall({ op: "encrypt", alg: hostAlg(wrappingKey), params },
      [keyData.get(wrappingKey), bytes, ...blobs]);
    return toArrayBuffer(out);
  },

  unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages) {
    const op = "SubtleCrypto.unwrapKey";
    const name = algorithmName(unwrapAlgorithm, op);
    requireUsage(unwrappingKey, name, "unwrapKey", op);
    const [params, blobs] = cryptParams(unwrapAlgorithm, name, op);
    const [, [bytes]] = subtleCall({ op: "decrypt", alg: hostAlg(unwrappingKey), params },
      [keyData.get(unwrappingKey), bufferSource(wrappedKey, op, "wrappedKey"), ...blobs]);
    const data = String(format) === "jwk" ? JSON.parse(host.utf8Decode(bytes)) : bytes;
    return importedKey(format, data, unwrappedKeyAlgorithm, extractable, keyUsages, op);
  },
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
