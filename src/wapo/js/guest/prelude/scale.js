// @provides SCALE ScaleCodec
// The SCALE codec of Substrate chains (spec section 4, `Wapo.SCALE`), in JS inside the guest:
// no host crossing per encode (docs/scale.md has the measurement behind that choice).
//
// A registry holds parsed type definitions (statements `[Name[<T,..>]=]Type`, by index and by
// name); a type is compiled on first use into a codec {enc, dec} of closures that write to / read
// from a module-level buffer, so an encode is a chain of direct calls with no per-call lookups.

// ---------------------------------------------------------------------------------------------
// Errors

function encodeError(msg, Cls) {
  const e = new (Cls || TypeError)(msg);
  e.path = '';
  return e;
}
// Called on the way up from a failed nested encode: prefix the path, once, in the message.
function withPath(e, seg) {
  if (e && typeof e.path === 'string') {
    e.path = seg + e.path;
  }
  return e;
}
function finishEncodeError(e, typeName) {
  if (e && typeof e.path === 'string' && !e.scaleDone) {
    e.scaleDone = true;
    e.message = 'SCALE encode ' + typeName + (e.path ? ' at value' + e.path : '') + ': ' + e.message;
  }
  return e;
}
function decodeError(msg) {
  const e = new RangeError('SCALE decode: ' + msg);
  e.offset = RP;
  return e;
}
function describe(v) {
  if (v === null) return 'null';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'bigint') return v + 'n';
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : (v instanceof Uint8Array ? 'a Uint8Array' : 'an object');
  return typeof v === 'number' ? String(v) : typeof v;
}

// ---------------------------------------------------------------------------------------------
// Output buffer (module level: one encode at a time; encode() saves and restores it)

let B = new Uint8Array(1024);
let P = 0;

function grow(n) {
  let size = B.length * 2;
  while (size < P + n) size *= 2;
  const nb = new Uint8Array(size);
  nb.set(B.subarray(0, P));
  B = nb;
}

function writeBytes(bytes) {
  const n = bytes.length;
  if (P + n > B.length) grow(n);
  B.set(bytes, P);
  P += n;
}

// Compact length/number below 2^30 (the common case: lengths, small numbers).
function writeCompactSmall(v) {
  if (P + 4 > B.length) grow(4);
  if (v < 64) {
    B[P++] = v << 2;
  } else if (v < 16384) {
    const x = v * 4 + 1;
    B[P] = x; B[P + 1] = x >>> 8; P += 2;
  } else {
    const x = v * 4 + 2;
    B[P] = x; B[P + 1] = x >>> 8; B[P + 2] = x >>> 16; B[P + 3] = x >>> 24; P += 4;
  }
}

// ---------------------------------------------------------------------------------------------
// Input buffer

let RB = new Uint8Array(0);
let RP = 0;
let RN = 0;

function truncated(n, c) {
  throw decodeError('unexpected end of input decoding ' + c.name + ' at offset ' + RP +
    ': need ' + n + ' byte' + (n === 1 ? '' : 's') + ', ' + (RN - RP) + ' left');
}

function readCompact(c, maxBits) {
  // Returns a number below 2^53 or a BigInt (maxBits > 32 and the value needs it).
  if (RP >= RN) truncated(1, c);
  const b0 = RB[RP];
  const mode = b0 & 3;
  if (mode === 0) { RP += 1; return b0 >>> 2; }
  if (mode === 1) {
    if (RP + 2 > RN) truncated(2, c);
    const v = (b0 | (RB[RP + 1] << 8)) >>> 2;
    if (v < 64) throw decodeError('non-canonical compact encoding of ' + v + ' in ' + c.name + ' at offset ' + RP);
    RP += 2;
    return v;
  }
  if (mode === 2) {
    if (RP + 4 > RN) truncated(4, c);
    const v = ((b0 | (RB[RP + 1] << 8) | (RB[RP + 2] << 16) | (RB[RP + 3] << 24)) >>> 0) / 4;
    const vi = Math.floor(v);
    if (vi < 16384) throw decodeError('non-canonical compact encoding of ' + vi + ' in ' + c.name + ' at offset ' + RP);
    RP += 4;
    return vi;
  }
  const len = (b0 >>> 2) + 4;
  if (RP + 1 + len > RN) truncated(1 + len, c);
  if (RB[RP + len] === 0) throw decodeError('non-canonical compact encoding in ' + c.name + ' at offset ' + RP);
  if (len * 8 > Math.max(maxBits, 32)) {
    throw decodeError('compact value of ' + len + ' bytes out of range for ' + c.name + ' at offset ' + RP);
  }
  let v;
  if (len === 4) {
    v = (RB[RP + 1] | (RB[RP + 2] << 8) | (RB[RP + 3] << 16) | (RB[RP + 4] << 24)) >>> 0;
    if (v < 1073741824) throw decodeError('non-canonical compact encoding of ' + v + ' in ' + c.name + ' at offset ' + RP);
    RP += 5;
    return maxBits > 32 ? BigInt(v) : v;
  }
  v = 0n;
  for (let i = len; i >= 1; i--) v = (v << 8n) | BigInt(RB[RP + i]);
  RP += 1 + len;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Hex and bytes

const { hex } = host.internal('shared');

function toHex(bytes) {
  return '0x' + hex(bytes);
}

const NIBBLE = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) NIBBLE[48 + i] = i;
for (let i = 0; i < 6; i++) { NIBBLE[97 + i] = 10 + i; NIBBLE[65 + i] = 10 + i; }

function fromHex(s, what) {
  if (!(s.length >= 2 && s[0] === '0' && (s[1] === 'x' || s[1] === 'X')) || (s.length & 1)) {
    throw encodeError(what + ': expected a Uint8Array or a 0x hex string with an even number of digits, got ' + describe(s));
  }
  const out = new Uint8Array((s.length - 2) / 2);
  for (let i = 0, j = 2; i < out.length; i++, j += 2) {
    const hi = NIBBLE[s.charCodeAt(j) & 255], lo = NIBBLE[s.charCodeAt(j + 1) & 255];
    if (hi < 0 || lo < 0 || s.charCodeAt(j) > 255 || s.charCodeAt(j + 1) > 255) throw encodeError(what + ': invalid hex digit in ' + describe(s));
    out[i] = hi * 16 + lo;
  }
  return out;
}

// Decode input: Uint8Array, other byte views, ArrayBuffer, or 0x hex.
function inputBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === 'string') {
    try {
      return fromHex(data, 'SCALE decode');
    } catch (e) {
      throw new TypeError(e.message);
    }
  }
  throw new TypeError('SCALE decode: expected a Uint8Array, an ArrayBuffer or a 0x hex string, got ' + describe(data));
}

// ---------------------------------------------------------------------------------------------
// Integers

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO32 = 4294967296;

function badInt(v, name, extra) {
  const range = (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'bigint';
  return encodeError('expected ' + (extra || 'an integer') + ' for ' + name + ', got ' + describe(v) +
    (range ? ' (out of range)' : ''), range ? RangeError : TypeError);
}

// <= 32-bit integers: a number (integer) or a BigInt in range.
function smallInt(v, lo, hi, name) {
  if (typeof v === 'number') {
    if (v >= lo && v <= hi && Math.floor(v) === v) return v;
  } else if (typeof v === 'bigint') {
    // BigInt-to-BigInt comparisons: QuickJS-ng gets `-5n >= -2147483648` wrong (false).
    if (v >= BigInt(lo) && v <= BigInt(hi)) return Number(v);
  }
  throw badInt(v, name);
}

// 64/128-bit: a BigInt, a safe-integer number, or a decimal/0x string; returns a BigInt in range.
function bigInt(v, bits, signed, name) {
  let b;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) {
      throw encodeError('expected a BigInt or a safe integer for ' + name + ', got ' + describe(v) +
        ' (not a safe integer: pass a BigInt)', Number.isInteger(v) ? RangeError : TypeError);
    }
    b = BigInt(v);
  } else if (typeof v === 'string' && /^(-?[0-9]+|0x[0-9a-fA-F]+)$/.test(v)) {
    b = BigInt(v);
  } else throw badInt(v, name, 'a BigInt or a safe integer');
  const lo = signed ? -(1n << BigInt(bits - 1)) : 0n;
  const hi = signed ? (1n << BigInt(bits - 1)) - 1n : (1n << BigInt(bits)) - 1n;
  if (b < lo || b > hi) throw badInt(v, name, 'a BigInt or a safe integer');
  return b;
}

function writeU32(x) {
  B[P] = x; B[P + 1] = x >>> 8; B[P + 2] = x >>> 16; B[P + 3] = x >>> 24; P += 4;
}

function encodeWide(v, words, signed, name) {
  // Writes a 64-bit (words = 2) or 128-bit (words = 4) integer, little-endian.
  if (P + 16 > B.length) grow(16);
  if (typeof v === 'number' && v >= 0 && v <= MAX_SAFE && Math.floor(v) === v) {
    const lo = v % TWO32;
    writeU32(lo);
    writeU32((v - lo) / TWO32);
    for (let i = 2; i < words; i++) writeU32(0);
    return;
  }
  let b = bigInt(v, words * 32, signed, name);
  if (b < 0n) b = BigInt.asUintN(words * 32, b);
  for (let i = 0; i < words; i++) {
    writeU32(Number(b & 0xffffffffn));
    b >>= 32n;
  }
}

function readWide(words, signed, c) {
  const n = words * 4;
  if (RP + n > RN) truncated(n, c);
  let b = 0n;
  for (let i = words - 1; i >= 0; i--) {
    const p = RP + i * 4;
    b = (b << 32n) | BigInt((RB[p] | (RB[p + 1] << 8) | (RB[p + 2] << 16) | (RB[p + 3] << 24)) >>> 0);
  }
  RP += n;
  return signed ? BigInt.asIntN(words * 32, b) : b;
}

// ---------------------------------------------------------------------------------------------
// Codecs. A codec: {id, name, kind, enc(value), dec() -> value, min (bytes, lower bound), ready}.

let nextId = 1;
function codec(name, kind, enc, dec, min, extra) {
  const c = { id: nextId++, name, kind, enc, dec, min, ready: true, u8: false, bits: 0, unsigned: false };
  if (extra) Object.assign(c, extra);
  return c;
}

function encOf(c) {
  return c.ready ? c.enc : (v) => c.enc(v);
}
function decOf(c) {
  return c.ready ? c.dec : () => c.dec();
}

const PRIMS = Object.create(null);

function prim(p, size, enc, dec, extra) {
  const c = codec('#' + p, 'prim', enc, dec, size, extra);
  PRIMS[p] = c;
  return c;
}

const U8 = prim('u8', 1, (v) => {
  if (!(typeof v === 'number' && v >= 0 && v <= 255 && Math.floor(v) === v)) v = smallInt(v, 0, 255, '#u8');
  if (P >= B.length) grow(1);
  B[P++] = v;
}, () => {
  if (RP >= RN) truncated(1, U8);
  return RB[RP++];
}, { u8: true, bits: 8, unsigned: true });

prim('u16', 2, (v) => {
  if (!(typeof v === 'number' && v >= 0 && v <= 65535 && Math.floor(v) === v)) v = smallInt(v, 0, 65535, '#u16');
  if (P + 2 > B.length) grow(2);
  B[P] = v; B[P + 1] = v >>> 8; P += 2;
}, () => {
  if (RP + 2 > RN) truncated(2, PRIMS.u16);
  const v = RB[RP] | (RB[RP + 1] << 8);
  RP += 2;
  return v;
}, { bits: 16, unsigned: true });

prim('u32', 4, (v) => {
  if (!(typeof v === 'number' && v >= 0 && v <= 4294967295 && Math.floor(v) === v)) v = smallInt(v, 0, 4294967295, '#u32');
  if (P + 4 > B.length) grow(4);
  B[P] = v; B[P + 1] = v >>> 8; B[P + 2] = v >>> 16; B[P + 3] = v >>> 24; P += 4;
}, () => {
  if (RP + 4 > RN) truncated(4, PRIMS.u32);
  const v = (RB[RP] | (RB[RP + 1] << 8) | (RB[RP + 2] << 16) | (RB[RP + 3] << 24)) >>> 0;
  RP += 4;
  return v;
}, { bits: 32, unsigned: true });

prim('i8', 1, (v) => {
  if (!(typeof v === 'number' && v >= -128 && v <= 127 && Math.floor(v) === v)) v = smallInt(v, -128, 127, '#i8');
  if (P >= B.length) grow(1);
  B[P++] = v;
}, () => {
  if (RP >= RN) truncated(1, PRIMS.i8);
  return (RB[RP++] << 24) >> 24;
}, { bits: 8 });

prim('i16', 2, (v) => {
  if (!(typeof v === 'number' && v >= -32768 && v <= 32767 && Math.floor(v) === v)) v = smallInt(v, -32768, 32767, '#i16');
  if (P + 2 > B.length) grow(2);
  B[P] = v; B[P + 1] = v >> 8; P += 2;
}, () => {
  if (RP + 2 > RN) truncated(2, PRIMS.i16);
  const v = ((RB[RP] | (RB[RP + 1] << 8)) << 16) >> 16;
  RP += 2;
  return v;
}, { bits: 16 });

prim('i32', 4, (v) => {
  if (!(typeof v === 'number' && v >= -2147483648 && v <= 2147483647 && Math.floor(v) === v)) v = smallInt(v, -2147483648, 2147483647, '#i32');
  if (P + 4 > B.length) grow(4);
  B[P] = v; B[P + 1] = v >> 8; B[P + 2] = v >> 16; B[P + 3] = v >> 24; P += 4;
}, () => {
  if (RP + 4 > RN) truncated(4, PRIMS.i32);
  const v = RB[RP] | (RB[RP + 1] << 8) | (RB[RP + 2] << 16) | (RB[RP + 3] << 24);
  RP += 4;
  return v;
}, { bits: 32 });

prim('u64', 8, (v) => encodeWide(v, 2, false, '#u64'), () => readWide(2, false, PRIMS.u64), { bits: 64, unsigned: true });
prim('u128', 16, (v) => encodeWide(v, 4, false, '#u128'), () => readWide(4, false, PRIMS.u128), { bits: 128, unsigned: true });
prim('i64', 8, (v) => encodeWide(v, 2, true, '#i64'), () => readWide(2, true, PRIMS.i64), { bits: 64 });
prim('i128', 16, (v) => encodeWide(v, 4, true, '#i128'), () => readWide(4, true, PRIMS.i128), { bits: 128 });

prim('bool', 1, (v) => {
  if (typeof v !== 'boolean') throw encodeError('expected a boolean for #bool, got ' + describe(v));
  if (P >= B.length) grow(1);
  B[P++] = v ? 1 : 0;
}, () => {
  if (RP >= RN) truncated(1, PRIMS.bool);
  const b = RB[RP];
  if (b > 1) throw decodeError('invalid #bool byte ' + b + ' at offset ' + RP);
  RP++;
  return b === 1;
});

const STR = prim('str', 1, (v) => {
  if (typeof v !== 'string') throw encodeError('expected a string for #str, got ' + describe(v));
  const n = v.length;
  if (n < 128) {
    // ASCII fast path: no host call.
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (v.charCodeAt(i) > 127) { ascii = false; break; }
    }
    if (ascii) {
      writeCompactSmall(n);
      if (P + n > B.length) grow(n);
      for (let i = 0; i < n; i++) B[P + i] = v.charCodeAt(i);
      P += n;
      return;
    }
  }
  const bytes = host.utf8Encode(v);
  writeCompactSmall(bytes.length);
  writeBytes(bytes);
}, () => {
  const start = RP;
  const n = readCompact(STR, 32);
  if (RP + n > RN) truncated(n, STR);
  const sub = RB.subarray(RP, RP + n);
  let s;
  try {
    s = host.utf8Decode(sub, true);
  } catch (e) {
    RP = start;
    throw decodeError('invalid UTF-8 in #str at offset ' + start);
  }
  RP += n;
  return s;
});

// ---------------------------------------------------------------------------------------------
// Composite codecs

function compactCodec(inner, name) {
  if (inner.kind === 'tuple' && inner.size === 0) {
    return codec(name, 'compact', (v) => {}, () => [], 0);
  }
  if (!(inner.kind === 'prim' && inner.unsigned)) {
    throw new TypeError('SCALE: compact @T needs an unsigned integer type (#u8..#u128) or (), got ' + inner.name);
  }
  const bits = inner.bits;
  const max = bits <= 32 ? 2 ** bits - 1 : (1n << BigInt(bits)) - 1n;
  let self;
  const enc = (v) => {
    if (typeof v === 'number' && v >= 0 && v < 1073741824 && Math.floor(v) === v && v <= max) {
      writeCompactSmall(v);
      return;
    }
    let b;
    if (bits <= 32) b = BigInt(smallInt(v, 0, max, name));
    else b = bigInt(v, bits, false, name);
    if (b < 1073741824n) {
      writeCompactSmall(Number(b));
      return;
    }
    const bytes = [];
    while (b > 0n) {
      bytes.push(Number(b & 0xffn));
      b >>= 8n;
    }
    while (bytes.length < 4) bytes.push(0);
    if (P + 1 + bytes.length > B.length) grow(1 + bytes.length);
    B[P++] = ((bytes.length - 4) << 2) | 3;
    for (let i = 0; i < bytes.length; i++) B[P++] = bytes[i];
  };
  const dec = () => {
    const start = RP;
    const v = readCompact(self, bits);
    if (typeof v === 'bigint') {
      if (v > max) {
        RP = start;
        throw decodeError('compact value ' + v + ' out of range for ' + name + ' at offset ' + start);
      }
      return v;
    }
    if (v > max) {
      RP = start;
      throw decodeError('compact value ' + v + ' out of range for ' + name + ' at offset ' + start);
    }
    return bits > 32 ? BigInt(v) : v;
  };
  self = codec(name, 'compact', enc, dec, 1);
  return self;
}

function isList(v) {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

function seqCodec(elem, name) {
  let self;
  if (elem.ready && elem.u8) {
    const enc = (v) => {
      if (v instanceof Uint8Array) {
        writeCompactSmall(v.length);
        writeBytes(v);
        return;
      }
      if (typeof v === 'string') {
        const b = fromHex(v, name);
        writeCompactSmall(b.length);
        writeBytes(b);
        return;
      }
      if (!Array.isArray(v)) throw encodeError('expected a Uint8Array, a 0x hex string or an array for ' + name + ', got ' + describe(v));
      writeCompactSmall(v.length);
      let i = 0;
      try {
        for (; i < v.length; i++) U8.enc(v[i]);
      } catch (e) { throw withPath(e, '[' + i + ']'); }
    };
    const dec = () => {
      const n = readCompact(self, 32);
      if (RP + n > RN) truncated(n, self);
      const out = RB.slice(RP, RP + n);
      RP += n;
      return out;
    };
    self = codec(name, 'seq', enc, dec, 1);
    return self;
  }
  const e = encOf(elem), d = decOf(elem);
  const enc = (v) => {
    if (!isList(v)) throw encodeError('expected an array for ' + name + ', got ' + describe(v));
    const n = v.length;
    writeCompactSmall(n);
    let i = 0;
    try {
      for (; i < n; i++) e(v[i]);
    } catch (err) { throw withPath(err, '[' + i + ']'); }
  };
  const dec = () => {
    const n = readCompact(self, 32);
    const left = RN - RP;
    if (elem.min > 0 ? n * elem.min > left : n > 1048576) truncated(elem.min > 0 ? n * elem.min : n, self);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = d();
    return out;
  };
  self = codec(name, 'seq', enc, dec, 1);
  return self;
}

function arrayCodec(elem, len, name) {
  let self;
  if (elem.ready && elem.u8) {
    const enc = (v) => {
      let b = v;
      if (typeof v === 'string') b = fromHex(v, name);
      else if (Array.isArray(v)) {
        if (v.length !== len) throw encodeError('expected ' + len + ' elements for ' + name + ', got ' + v.length);
        let i = 0;
        try {
          for (; i < len; i++) U8.enc(v[i]);
        } catch (e) { throw withPath(e, '[' + i + ']'); }
        return;
      } else if (!(v instanceof Uint8Array)) {
        throw encodeError('expected a Uint8Array, a 0x hex string or an array for ' + name + ', got ' + describe(v));
      }
      if (b.length !== len) throw encodeError('expected ' + len + ' bytes for ' + name + ', got ' + b.length);
      writeBytes(b);
    };
    const dec = () => {
      if (RP + len > RN) truncated(len, self);
      const out = RB.slice(RP, RP + len);
      RP += len;
      return out;
    };
    self = codec(name, 'array', enc, dec, len);
    return self;
  }
  const e = encOf(elem), d = decOf(elem);
  const enc = (v) => {
    if (!isList(v)) throw encodeError('expected an array for ' + name + ', got ' + describe(v));
    if (v.length !== len) throw encodeError('expected ' + len + ' elements for ' + name + ', got ' + v.length);
    let i = 0;
    try {
      for (; i < len; i++) e(v[i]);
    } catch (err) { throw withPath(err, '[' + i + ']'); }
  };
  const dec = () => {
    const out = new Array(len);
    for (let i = 0; i < len; i++) out[i] = d();
    return out;
  };
  self = codec(name, 'array', enc, dec, len * (elem.ready ? elem.min : 0));
  return self;
}

function tupleCodec(elems, name) {
  const n = elems.length;
  if (n === 0) {
    return codec(name, 'tuple', (v) => {
      if (!(v === null || v === undefined || (isList(v) && v.length === 0))) {
        throw encodeError('expected [] (or null) for (), got ' + describe(v));
      }
    }, () => [], 0, { size: 0 });
  }
  const es = elems.map(encOf), ds = elems.map(decOf);
  const enc = (v) => {
    if (!isList(v)) throw encodeError('expected an array of ' + n + ' for ' + name + ', got ' + describe(v));
    if (v.length !== n) throw encodeError('expected ' + n + ' elements for ' + name + ', got ' + v.length);
    let i = 0;
    try {
      for (; i < n; i++) es[i](v[i]);
    } catch (err) { throw withPath(err, '[' + i + ']'); }
  };
  const dec = () => {
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = ds[i]();
    return out;
  };
  let min = 0;
  for (const c of elems) min += c.ready ? c.min : 0;
  return codec(name, 'tuple', enc, dec, min, { size: n });
}

function setKey(o, k, v) {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  else o[k] = v;
}

function structCodec(fields, name) {
  const n = fields.length;
  const keys = fields.map((f) => f.name);
  const es = fields.map((f) => encOf(f.codec)), ds = fields.map((f) => decOf(f.codec));
  const plain = !keys.includes('__proto__');
  const enc = (v) => {
    if (v === null || typeof v !== 'object') throw encodeError('expected an object for ' + name + ', got ' + describe(v));
    let i = 0;
    try {
      for (; i < n; i++) es[i](v[keys[i]]);
    } catch (err) { throw withPath(err, '.' + keys[i]); }
  };
  const dec = plain ? () => {
    const o = {};
    for (let i = 0; i < n; i++) o[keys[i]] = ds[i]();
    return o;
  } : () => {
    const o = {};
    for (let i = 0; i < n; i++) setKey(o, keys[i], ds[i]());
    return o;
  };
  let min = 0;
  for (const f of fields) min += f.codec.ready ? f.codec.min : 0;
  return codec(name, 'struct', enc, dec, min);
}

function enumCodec(variants, name) {
  // variants: [{name, codec|null, index}]
  const vs = variants;
  if (vs.length === 2 && vs[0].name === '_None' && !vs[0].codec && vs[0].index === 0 &&
      vs[1].name === '_Some' && vs[1].codec && vs[1].index === 1) {
    // Option<T>: the value or null/undefined.
    const inner = vs[1].codec;
    const e = encOf(inner), d = decOf(inner);
    let self;
    const enc = (v) => {
      if (P >= B.length) grow(1);
      if (v === null || v === undefined) { B[P++] = 0; return; }
      B[P++] = 1;
      e(v);
    };
    const dec = () => {
      if (RP >= RN) truncated(1, self);
      const tag = RB[RP];
      if (tag === 0) { RP++; return null; }
      if (tag !== 1) throw decodeError('invalid Option tag ' + tag + ' for ' + name + ' at offset ' + RP);
      RP++;
      return d();
    };
    self = codec(name, 'option', enc, dec, 1);
    return self;
  }
  const byName = new Map();
  const byIndex = new Array(256).fill(null);
  for (const v of vs) {
    const entry = { name: v.name, index: v.index, enc: v.codec ? encOf(v.codec) : null, dec: v.codec ? decOf(v.codec) : null };
    byName.set(v.name, entry);
    byIndex[v.index] = entry;
  }
  const names = vs.map((v) => v.name).join(', ');
  let self;
  const enc = (v) => {
    let entry, value = null;
    if (typeof v === 'string') {
      entry = byName.get(v);
      if (entry && entry.enc) throw encodeError('variant ' + v + ' of ' + name + ' carries a value: pass {' + v + ': value}');
    } else if (v !== null && typeof v === 'object' && !isList(v)) {
      let count = 0, key;
      for (const k in v) {
        if (Object.prototype.hasOwnProperty.call(v, k)) { count++; key = k; }
      }
      if (count === 1) {
        entry = byName.get(key);
        value = v[key];
        if (!entry) throw encodeError('unknown variant ' + JSON.stringify(key) + ' for ' + name + ' (one of ' + names + ')');
      }
    }
    if (!entry) {
      throw encodeError('expected an object with one key, one of ' + names + ', for ' + name + ', got ' + describe(v));
    }
    if (P >= B.length) grow(1);
    B[P++] = entry.index;
    if (entry.enc) {
      try {
        entry.enc(value);
      } catch (err) { throw withPath(err, '.' + entry.name); }
    }
  };
  const dec = () => {
    if (RP >= RN) truncated(1, self);
    const tag = RB[RP];
    const entry = byIndex[tag];
    if (!entry) throw decodeError('unknown variant index ' + tag + ' for ' + name + ' at offset ' + RP);
    RP++;
    const o = {};
    setKey(o, entry.name, entry.dec ? entry.dec() : null);
    return o;
  };
  self = codec(name, 'enum', enc, dec, 1);
  return self;
}

// ---------------------------------------------------------------------------------------------
// The type language parser

const PRIM_NAMES = ['u8', 'u16', 'u32', 'u64', 'u128', 'i8', 'i16', 'i32', 'i64', 'i128', 'bool', 'str'];

function lineCol(text, pos) {
  let line = 1, col = 1;
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) { line++; col = 1; } else col++;
  }
  return 'line ' + line + ', column ' + col;
}

function syntaxError(text, a, b, msg) {
  const found = a < text.length ? JSON.stringify(text.slice(a, Math.max(b, a + 1)).slice(0, 30)) : 'end of input';
  const e = new SyntaxError('SCALE: invalid syntax at ' + a + '..' + b + ' (' + lineCol(text, a) + '): ' + msg + ', found ' + found);
  e.start = a;
  e.end = b;
  return e;
}

function semanticError(text, a, b, msg) {
  const e = new SyntaxError('SCALE: ' + msg + ' at ' + a + '..' + b + ' (' + lineCol(text, a) + '): ' + JSON.stringify(text.slice(a, b)));
  e.start = a;
  e.end = b;
  return e;
}

function parseText(text, mode) {
  // mode 'defs': statements; mode 'type': a single type expression.
  let pos = 0;
  let depth = 0;
  const n = text.length;

  function ws() {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 32 || c === 9 || c === 13 || (c === 10 && depth > 0)) pos++;
      else if (c === 47 && text.charCodeAt(pos + 1) === 47) {
        while (pos < n && text.charCodeAt(pos) !== 10) pos++;
      } else return;
    }
  }
  function fail(msg, a, b) {
    if (a === undefined) {
      a = pos;
      b = pos;
      while (b < n && !/[\s;,|:<>()\[\]{}=@#]/.test(text[b])) b++;
      if (b === a && a < n) b = a + 1;
    }
    throw syntaxError(text, a, b, msg);
  }
  function ident() {
    ws();
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(pos, pos + 256));
    if (!m) return null;
    pos += m[0].length;
    return m[0];
  }
  function number() {
    ws();
    const m = /^[0-9]+/.exec(text.slice(pos, pos + 32));
    if (!m) return null;
    pos += m[0].length;
    return Number(m[0]);
  }
  function eat(ch) {
    ws();
    if (text[pos] === ch) { pos++; return true; }
    return false;
  }
  function expect(ch, what) {
    if (!eat(ch)) fail('expected "' + ch + '"' + (what ? ' ' + what : ''));
  }
  // A bracketed list, its opening character at pos, up to `close` (it may be empty or end
  // with a separator): item() for each entry, sep() between them.
  function list(close, item, sep) {
    pos++; depth++;
    if (!eat(close)) {
      for (;;) {
        item();
        if (eat(close)) break;
        sep();
        if (eat(close)) break;
      }
    }
    depth--;
  }
  // The entries of an enum or struct (`what`: 'variant', 'field') as list() takes them, each
  // starting with a name: item(name, a (where it starts), unique) parses the rest, calling
  // unique() where the name must be checked to be new in the list.
  function namedList(close, what, item, sep) {
    const seen = new Map();
    list(close, () => {
      ws();
      const a = pos;
      const name = ident();
      if (name === null) fail('expected a ' + what + ' name');
      item(name, a, () => {
        if (seen.has(name)) fail('duplicate ' + what + ' name ' + name, a, a + name.length);
        seen.set(name, true);
      });
    }, sep);
  }

  function type() {
    ws();
    const a = pos;
    const c = text[pos];
    let node;
    if (c === '#') {
      pos++;
      const name = ident();
      if (name === null || !PRIM_NAMES.includes(name)) {
        pos = a;
        fail('expected a primitive type (' + PRIM_NAMES.map((p) => '#' + p).join(' ') + ')', a, Math.max(a + 1, a + 1 + (name ? name.length : 0)));
      }
      node = { k: 'prim', p: name };
    } else if (c === '@') {
      pos++;
      node = { k: 'compact', t: type() };
    } else if (c === '[') {
      pos++; depth++;
      const t = type();
      if (eat(';')) {
        const len = number();
        if (len === null) fail('expected an array length');
        if (len > 0xffffffff) fail('array length too large', pos - String(len).length, pos);
        node = { k: 'array', t, n: len };
      } else node = { k: 'seq', t };
      expect(']', 'to close "["');
      depth--;
    } else if (c === '(') {
      const ts = [];
      list(')', () => ts.push(type()), () => expect(',', 'or ")" in a tuple'));
      node = { k: 'tuple', ts };
    } else if (c === '<') {
      const vs = [];
      namedList('>', 'variant', (name, va, unique) => {
        let t = null, index = vs.length, explicit = false;
        if (eat(':')) {
          ws();
          if (text[pos] !== ':' && text[pos] !== ',' && text[pos] !== '|' && text[pos] !== '>') t = type();
          if (eat(':')) {
            const ia = pos;
            const ix = number();
            if (ix === null) fail('expected a variant index');
            if (ix > 255) fail('variant index above 255', ia, pos);
            index = ix;
            explicit = true;
          }
        }
        unique();
        vs.push({ name, t, index, explicit, a: va });
      }, () => {
        ws();
        if (text[pos] === ',' || text[pos] === '|') pos++;
        else fail('expected "," or "|" or ">" in an enum');
      });
      const used = new Map();
      for (const v of vs) {
        if (v.index > 255) throw semanticError(text, v.a, v.a + v.name.length, 'more than 256 variants');
        if (used.has(v.index)) throw semanticError(text, v.a, v.a + v.name.length, 'duplicate variant index ' + v.index);
        used.set(v.index, true);
      }
      node = { k: 'enum', vs };
    } else if (c === '{') {
      const fs = [];
      namedList('}', 'field', (name, _, unique) => {
        unique();
        expect(':', 'after a field name');
        fs.push({ name, t: type() });
      }, () => expect(',', 'or "}" in a struct'));
      node = { k: 'struct', fs };
    } else if (c >= '0' && c <= '9') {
      node = { k: 'ref', i: number() };
    } else {
      const name = ident();
      if (name === null) fail('expected a type');
      const args = [];
      if (eat('<')) {
        depth++;
        for (;;) {
          args.push(type());
          if (eat('>')) break;
          expect(',', 'or ">" in type arguments');
        }
        depth--;
      }
      node = { k: 'name', name, args };
    }
    node.a = a;
    node.b = pos;
    return node;
  }

  // Optional `Name[<T,...>]=` before a statement's type.
  function head() {
    const save = pos;
    ws();
    const a = pos;
    const name = ident();
    if (name === null) { pos = save; return null; }
    const b = pos;
    const params = [];
    if (eat('<')) {
      for (;;) {
        const p = ident();
        if (p === null) { pos = save; return null; }
        params.push(p);
        if (eat('>')) break;
        if (!eat(',')) { pos = save; return null; }
      }
    }
    if (!eat('=')) { pos = save; return null; }
    return { name, params, a, b };
  }

  if (mode === 'type') {
    const t = type();
    ws();
    if (pos < n) fail('unexpected text after the type');
    return t;
  }

  const stmts = [];
  for (;;) {
    ws();
    while (pos < n && (text[pos] === ';' || text[pos] === '\n')) { pos++; ws(); }
    if (pos >= n) break;
    const h = head();
    const t = type();
    stmts.push({ name: h ? h.name : null, params: h ? h.params : [], a: h ? h.a : t.a, nb: h ? h.b : t.a, t, text });
    ws();
    if (pos < n && text[pos] !== ';' && text[pos] !== '\n') fail('expected ";" or a new line after a definition');
  }
  return stmts;
}

// ---------------------------------------------------------------------------------------------
// Registries

const REGISTRY = Symbol('SCALE registry');

class TypeRegistry {
  constructor(base) {
    this[REGISTRY] = true;
    this.base = base || null; // the built-ins (names only)
    this.types = []; // statements by index
    this.names = new Map(); // name -> statement
    this.cache = new Map(); // compiled: 'index:argIds' -> codec
    this.exprs = new Map(); // type expression text -> codec
  }
  get length() {
    return this.types.length;
  }
  typeNames() {
    return [...this.names.keys()];
  }
}

function lookupDef(reg, name) {
  for (let r = reg; r; r = r.base) {
    const d = r.names.get(name);
    if (d) return [r, d];
  }
  return null;
}

// Checks every name and index used in the new statements (forward references allowed).
function validate(reg, from) {
  const check = (node, st, params) => {
    switch (node.k) {
      case 'ref':
        if (node.i >= reg.types.length) throw semanticError(st.text, node.a, node.b, 'type index ' + node.i + ' out of range (' + reg.types.length + ' definitions)');
        if (reg.types[node.i].params.length) throw semanticError(st.text, node.a, node.b, 'generic type ' + reg.types[node.i].name + ' needs type arguments');
        return;
      case 'name': {
        if (!node.args.length && params.includes(node.name)) return;
        const found = lookupDef(reg, node.name);
        if (!found) throw semanticError(st.text, node.a, node.b, 'unknown type name ' + node.name);
        const want = found[1].params.length;
        if (want !== node.args.length) {
          throw semanticError(st.text, node.a, node.b, node.name + ' takes ' + want + ' type argument' + (want === 1 ? '' : 's') + ', got ' + node.args.length);
        }
        for (const x of node.args) check(x, st, params);
        return;
      }
      case 'compact': case 'seq': case 'array': return check(node.t, st, params);
      case 'tuple': for (const x of node.ts) check(x, st, params); return;
      case 'enum': for (const v of node.vs) if (v.t) check(v.t, st, params); return;
      case 'struct': for (const f of node.fs) check(f.t, st, params); return;
    }
  };
  for (let i = from; i < reg.types.length; i++) {
    const st = reg.types[i];
    check(st.t, st, st.params);
  }
  // Definitions that are only aliases of each other in a cycle (A=B; B=A) have no encoding.
  for (let i = from; i < reg.types.length; i++) {
    const seen = new Set();
    let st = reg.types[i], r = reg;
    while (st && !st.params.length) {
      if (seen.has(st)) throw semanticError(reg.types[i].text, reg.types[i].a, reg.types[i].t.b, 'type defined as an alias of itself');
      seen.add(st);
      const t = st.t;
      if (t.k === 'ref') st = r.types[t.i];
      else if (t.k === 'name' && !t.args.length) {
        const f = lookupDef(r, t.name);
        if (!f) break;
        [r, st] = f;
      } else break;
    }
  }
}

function appendTypes(reg, text) {
  if (!reg || !reg[REGISTRY]) throw new TypeError('SCALE.appendTypes: expected a registry from SCALE.parseTypes');
  if (typeof text !== 'string') throw new TypeError('SCALE: type definitions must be a string');
  const stmts = parseText(text, 'defs');
  const from = reg.types.length;
  const added = [];
  try {
    for (const st of stmts) {
      st.index = reg.types.length;
      reg.types.push(st);
      if (st.name !== null) {
        if (reg.names.has(st.name)) throw semanticError(text, st.a, st.nb, 'duplicate definition of ' + st.name);
        reg.names.set(st.name, st);
        added.push(st.name);
      }
    }
    validate(reg, from);
  } catch (e) {
    reg.types.length = from;
    for (const name of added) reg.names.delete(name);
    throw e;
  }
  return reg;
}

// ---------------------------------------------------------------------------------------------
// Compilation of parsed types into codecs

function show(c) {
  return c.name;
}

function shortName(s) {
  return s.length > 80 ? s.slice(0, 77) + '...' : s;
}

function compile(node, reg, env) {
  switch (node.k) {
    case 'prim': return PRIMS[node.p];
    case 'ref': return compileDef(reg, reg.types[node.i], []);
    case 'name': {
      if (!node.args.length && env && env.has(node.name)) return env.get(node.name);
      const found = lookupDef(reg, node.name);
      if (!found) throw new TypeError('SCALE: unknown type name ' + node.name);
      const args = node.args.map((x) => compile(x, reg, env));
      return compileDef(found[0], found[1], args);
    }
    case 'compact': {
      const inner = compile(node.t, reg, env);
      if (!inner.ready) throw new TypeError('SCALE: compact of a recursive type');
      return compactCodec(inner, '@' + show(inner));
    }
    case 'seq': {
      const e = compile(node.t, reg, env);
      return seqCodec(e, '[' + show(e) + ']');
    }
    case 'array': {
      const e = compile(node.t, reg, env);
      return arrayCodec(e, node.n, '[' + show(e) + ';' + node.n + ']');
    }
    case 'tuple': {
      const es = node.ts.map((x) => compile(x, reg, env));
      return tupleCodec(es, shortName('(' + es.map(show).join(',') + ')'));
    }
    case 'enum': {
      const vs = node.vs.map((v) => ({ name: v.name, index: v.index, codec: v.t ? compile(v.t, reg, env) : null }));
      return enumCodec(vs, shortName('<' + vs.map((v) => v.name + (v.codec ? ':' + show(v.codec) : '')).join('|') + '>'));
    }
    case 'struct': {
      const fs = node.fs.map((f) => ({ name: f.name, codec: compile(f.t, reg, env) }));
      return structCodec(fs, shortName('{' + fs.map((f) => f.name + ':' + show(f.codec)).join(',') + '}'));
    }
  }
  throw new TypeError('SCALE: bad type node');
}

function compileDef(reg, st, args) {
  const key = st.index + (args.length ? ':' + args.map((c) => c.id).join(',') : '');
  let c = reg.cache.get(key);
  if (c) return c;
  const name = st.name === null ? '#' + st.index + '' : st.name + (args.length ? '<' + args.map(show).join(',') + '>' : '');
  // A placeholder first, so that recursive types (Tree={kids:Vec<Tree>}) refer to it.
  c = { id: nextId++, name: shortName(name), kind: 'pending', enc: null, dec: null, min: 0, ready: false, u8: false, bits: 0, unsigned: false };
  reg.cache.set(key, c);
  let env = null;
  if (st.params.length) env = new Map(st.params.map((p, i) => [p, args[i]]));
  let body;
  try {
    body = compile(st.t, reg, env);
  } catch (e) {
    reg.cache.delete(key);
    throw e;
  }
  if (body.ready) {
    c.enc = body.enc;
    c.dec = body.dec;
  } else {
    // An alias of a type still being compiled: forward to it.
    c.enc = (v) => body.enc(v);
    c.dec = () => body.dec();
  }
  c.kind = body.kind;
  c.min = body.min;
  c.u8 = body.u8;
  c.bits = body.bits;
  c.unsigned = body.unsigned;
  c.size = body.size;
  c.ready = true;
  return c;
}

// ---------------------------------------------------------------------------------------------
// Built-in definitions (names only: they take no index in a registry)

const BUILTIN_TEXT = [
  'u8=#u8; u16=#u16; u32=#u32; u64=#u64; u128=#u128',
  'i8=#i8; i16=#i16; i32=#i32; i64=#i64; i128=#i128',
  'bool=#bool; str=#str; String=#str; Text=#str',
  'Vec<T>=[T]',
  'Option<T>=<_None|_Some:T>',
  'Result<T,E>=<Ok:T|Err:E>',
  'Compact<T>=@T',
  'Box<T>=T',
  'BTreeMap<K,V>=[(K,V)]',
  'Bytes=[#u8]',
  'AccountId32=[#u8;32]',
  'AccountId=[#u8;32]',
  'Hash=[#u8;32]',
  'H256=[#u8;32]',
  'H160=[#u8;20]',
  'H512=[#u8;64]',
  'Balance=#u128',
  'BlockNumber=#u32',
].join('\n');

const BUILTINS = new TypeRegistry(null);
appendTypes(BUILTINS, BUILTIN_TEXT);
// Built-ins are reached by name only.
BUILTINS.indexed = false;

function builtinTypes() {
  return new TypeRegistry(BUILTINS);
}

function parseTypes(text) {
  return appendTypes(new TypeRegistry(BUILTINS), text === undefined ? '' : text);
}

function registryArg(reg, fn) {
  if (reg === undefined || reg === null) return BUILTINS;
  if (!reg[REGISTRY]) throw new TypeError('SCALE.' + fn + ': expected a registry from SCALE.parseTypes, got ' + describe(reg));
  return reg;
}

function resolve(id, reg) {
  if (typeof id === 'number') {
    if (reg === BUILTINS || !(Number.isInteger(id) && id >= 0 && id < reg.types.length)) {
      throw new TypeError('SCALE: unknown type id ' + id + ' (the registry has ' + (reg === BUILTINS ? 0 : reg.types.length) + ' definitions)');
    }
    const st = reg.types[id];
    if (st.params.length) throw new TypeError('SCALE: type ' + st.name + ' needs type arguments');
    return compileDef(reg, st, []);
  }
  if (typeof id === 'string') {
    let c = reg.exprs.get(id);
    if (c) return c;
    const found = /^[A-Za-z_][A-Za-z0-9_]*$/.test(id) ? lookupDef(reg, id) : null;
    if (found && !found[1].params.length) {
      c = compileDef(found[0], found[1], []);
    } else {
      // A type expression: `Vec<#u32>`, `[u8;32]`, `(Foo,#bool)`...
      const node = parseText(id, 'type');
      const st = { name: null, params: [], t: node, text: id, index: -1 };
      // Validate the expression against the registry (as if it were one more statement).
      const saveTypes = reg.types.length;
      reg.types.push(st);
      try {
        validate(reg, saveTypes);
      } finally {
        reg.types.length = saveTypes;
      }
      c = compile(node, reg, null);
    }
    reg.exprs.set(id, c);
    return c;
  }
  throw new TypeError('SCALE: a type id is a name, a type expression or an index, got ' + describe(id));
}

// ---------------------------------------------------------------------------------------------
// Public API

function runEncode(fn) {
  const saveB = B, saveP = P;
  if (P !== 0) B = new Uint8Array(256); // re-entered from a getter: use a fresh buffer
  P = 0;
  try {
    fn();
    return B.slice(0, P);
  } finally {
    B = saveB;
    P = saveP;
  }
}

function encode(value, typeId, registry) {
  const c = resolve(typeId, registryArg(registry, 'encode'));
  return runEncode(() => {
    try {
      c.enc(value);
    } catch (e) {
      throw finishEncodeError(e, c.name);
    }
  });
}

function encodeAll(values, typeIds, registry) {
  const reg = registryArg(registry, 'encodeAll');
  if (!Array.isArray(typeIds)) throw new TypeError('SCALE.encodeAll: expected an array of type ids');
  if (!isList(values) || values.length !== typeIds.length) {
    throw new TypeError('SCALE.encodeAll: expected an array of ' + typeIds.length + ' values, got ' + describe(values));
  }
  const cs = typeIds.map((id) => resolve(id, reg));
  return runEncode(() => {
    for (let i = 0; i < cs.length; i++) {
      try {
        cs[i].enc(values[i]);
      } catch (e) {
        throw finishEncodeError(withPath(e, '[' + i + ']'), cs[i].name);
      }
    }
  });
}

function runDecode(data, fn) {
  const bytes = inputBytes(data);
  const sB = RB, sP = RP, sN = RN;
  RB = bytes; RP = 0; RN = bytes.length;
  try {
    return fn();
  } finally {
    RB = sB; RP = sP; RN = sN;
  }
}

function trailing(c) {
  if (RP !== RN) {
    throw decodeError((RN - RP) + ' trailing byte' + (RN - RP === 1 ? '' : 's') + ' after ' + c.name + ' at offset ' + RP);
  }
}

function decode(data, typeId, registry) {
  const c = resolve(typeId, registryArg(registry, 'decode'));
  return runDecode(data, () => {
    const v = c.dec();
    trailing(c);
    return v;
  });
}

function decodeAll(data, typeIds, registry) {
  const reg = registryArg(registry, 'decodeAll');
  if (!Array.isArray(typeIds)) throw new TypeError('SCALE.decodeAll: expected an array of type ids');
  const cs = typeIds.map((id) => resolve(id, reg));
  return runDecode(data, () => {
    const out = new Array(cs.length);
    for (let i = 0; i < cs.length; i++) out[i] = cs[i].dec();
    if (cs.length) trailing(cs[cs.length - 1]);
    else if (RP !== RN) throw decodeError((RN - RP) + ' trailing bytes at offset 0');
    return out;
  });
}

function makeCodec(ids, registry) {
  const reg = registryArg(registry, 'codec');
  if (Array.isArray(ids)) {
    ids.forEach((id) => resolve(id, reg));
    return Object.freeze({
      encode: (values) => encodeAll(values, ids, reg),
      decode: (data) => decodeAll(data, ids, reg),
    });
  }
  resolve(ids, reg);
  return Object.freeze({
    encode: (value) => encode(value, ids, reg),
    decode: (data) => decode(data, ids, reg),
  });
}

const SCALE = {
  parseTypes,
  appendTypes,
  builtinTypes,
  encode,
  encodeAll,
  decode,
  decodeAll,
  codec: makeCodec,
  builtinTypesText: BUILTIN_TEXT,
  TypeRegistry,
};
Object.defineProperty(SCALE, Symbol.toStringTag, { value: 'SCALE' });
Object.freeze(SCALE);

return { SCALE, ScaleCodec: SCALE };
