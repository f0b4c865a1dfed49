// node:crypto for bundled agents: the synchronous subset packages use, on the host's hashes
// (Wapo.hash: sha1, sha224, sha256, sha384, sha512, md5) and the sandbox's WebCrypto.
import { Buffer } from "buffer";

const BLOCK = { md5: 64, sha1: 64, sha224: 64, sha256: 64, sha384: 128, sha512: 128 };

function algo(name) {
  const a = String(name).toLowerCase().replace(/-/g, "");
  if (!(a in BLOCK)) throw new Error(`Digest method not supported: ${name} (wapo: ${Object.keys(BLOCK).join(", ")})`);
  return a;
}

function toBytes(data, encoding) {
  if (typeof data === "string") return Buffer.from(data, encoding || "utf8");
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data && data.export) return toBytes(data.export());
  throw new TypeError("The data argument must be a string, Buffer, TypedArray or DataView");
}

function concat(chunks) {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) { out.set(c, o); o += c.length; }
  return out;
}

function digestOf(a, bytes) {
  return new Uint8Array(Wapo.hash(a, bytes));
}

function output(bytes, encoding) {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return encoding ? buf.toString(encoding) : buf;
}

// Hash and Hmac gather chunks in update() and hash them at digest(), the way _result() says.
class Digest {
  constructor(name) { this._a = algo(name); this._chunks = []; this._done = false; }
  update(data, encoding) {
    if (this._done) throw new Error("Digest already called");
    this._chunks.push(toBytes(data, encoding));
    return this;
  }
  digest(encoding) {
    if (this._done) throw new Error("Digest already called");
    this._done = true;
    return output(this._result(digestOf(this._a, concat(this._chunks))), encoding);
  }
}

class Hash extends Digest {
  _result(bytes) { return bytes; }
  copy() { const h = new Hash(this._a); h._chunks = this._chunks.slice(); return h; }
}

class Hmac extends Digest {
  constructor(name, key) {
    super(name);
    let k = toBytes(key);
    const block = BLOCK[this._a];
    if (k.length > block) k = digestOf(this._a, k);
    const padded = new Uint8Array(block);
    padded.set(k);
    this._okey = padded.map((b) => b ^ 0x5c);
    this._chunks = [padded.map((b) => b ^ 0x36)];
  }
  _result(inner) { return digestOf(this._a, concat([this._okey, inner])); }
}

export function createHash(name) { return new Hash(name); }
export function createHmac(name, key) { return new Hmac(name, key); }
export function hash(name, data, encoding = "hex") { return createHash(name).update(data).digest(encoding); }

export function randomBytes(size, callback) {
  const out = Buffer.alloc(size);
  for (let o = 0; o < size; o += 65536) crypto.getRandomValues(out.subarray(o, Math.min(size, o + 65536)));
  if (callback) { queueMicrotask(() => callback(null, out)); return undefined; }
  return out;
}
export const pseudoRandomBytes = randomBytes;

export function randomFillSync(buf, offset = 0, size) {
  const view = toBytes(buf);
  const end = size === undefined ? view.length : offset + size;
  for (let o = offset; o < end; o += 65536) crypto.getRandomValues(view.subarray(o, Math.min(end, o + 65536)));
  return buf;
}

export function randomInt(min, max, callback) {
  if (max === undefined || typeof max === "function") { callback = max; max = min; min = 0; }
  const range = max - min;
  if (!(range > 0) || range > 2 ** 48) throw new RangeError("randomInt: max - min must be in (0, 2^48]");
  const limit = Math.floor(2 ** 48 / range) * range;
  let x;
  do {
    const b = randomBytes(6);
    x = b.readUIntBE(0, 6);
  } while (x >= limit);
  const value = min + (x % range);
  if (callback) { queueMicrotask(() => callback(null, value)); return undefined; }
  return value;
}

export function randomUUID() { return crypto.randomUUID(); }
export function getRandomValues(array) { return crypto.getRandomValues(array); }

export function timingSafeEqual(a, b) {
  const x = toBytes(a), y = toBytes(b);
  if (x.length !== y.length) throw new RangeError("Input buffers must have the same byte length");
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

export function getHashes() { return Object.keys(BLOCK); }

export const webcrypto = globalThis.crypto;
export const subtle = globalThis.crypto && globalThis.crypto.subtle;

export default {
  createHash, createHmac, hash, randomBytes, pseudoRandomBytes, randomFillSync, randomInt, randomUUID,
  getRandomValues, timingSafeEqual, getHashes, webcrypto, subtle,
};
