// @provides TextEncoder TextDecoder
// WHATWG Encoding: UTF-8 only. Valid input is decoded natively
// (host.utf8Decode); anything invalid goes through the spec's decoder in JS,
// which replaces each maximal subpart of an invalid sequence with U+FFFD.

const UTF8_LABELS = ["unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"];

function toBytes(input, what) {
  if (input === undefined) return new Uint8Array(0);
  if (input instanceof ArrayBuffer || (typeof SharedArrayBuffer === "function" && input instanceof SharedArrayBuffer))
    return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError(`${what}: The provided value is not of type '(ArrayBuffer or ArrayBufferView)'`);
}

// The WHATWG UTF-8 decoder over bytes[start, end), flushing at the end.
function decodeSlow(bytes, start, end, fatal) {
  const units = [];
  let parts = "";
  let needed = 0, seen = 0, cp = 0, lower = 0x80, upper = 0xbf;
  const error = () => {
    if (fatal) throw new TypeError("The encoded data was not valid utf-8");
    units.push(0xfffd);
  };
  for (let i = start; i < end; i++) {
    const b = bytes[i];
    if (needed === 0) {
      if (b <= 0x7f) units.push(b);
      else if (b >= 0xc2 && b <= 0xdf) { needed = 1; cp = b & 0x1f; }
      else if (b >= 0xe0 && b <= 0xef) {
        if (b === 0xe0) lower = 0xa0;
        else if (b === 0xed) upper = 0x9f;
        needed = 2; cp = b & 0xf;
      } else if (b >= 0xf0 && b <= 0xf4) {
        if (b === 0xf0) lower = 0x90;
        else if (b === 0xf4) upper = 0x8f;
        needed = 3; cp = b & 0x7;
      } else error();
    } else if (b < lower || b > upper) {
      needed = seen = cp = 0; lower = 0x80; upper = 0xbf;
      error();
      i--; // reprocess this byte
    } else {
      lower = 0x80; upper = 0xbf;
      cp = (cp << 6) | (b & 0x3f);
      if (++seen === needed) {
        if (cp > 0xffff) {
          cp -= 0x10000;
          units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        } else units.push(cp);
        needed = seen = cp = 0;
      }
    }
    if (units.length >= 8192) {
      parts += String.fromCharCode.apply(null, units);
      units.length = 0;
    }
  }
  if (needed !== 0) error();
  return parts + String.fromCharCode.apply(null, units);
}

function decodeBytes(bytes, start, end, fatal) {
  if (start >= end) return "";
  const view = start === 0 && end === bytes.length ? bytes : bytes.subarray(start, end);
  try {
    return host.utf8Decode(view, true);
  } catch (e) {
    return decodeSlow(bytes, start, end, fatal);
  }
}

// Where an incomplete (but so far valid) sequence at the end of `bytes` starts; bytes.length if none.
function incompleteTail(bytes) {
  const n = bytes.length;
  for (let back = 1; back <= 3 && back <= n; back++) {
    const b = bytes[n - back];
    if (b >= 0x80 && b <= 0xbf) continue; // a continuation byte: look further back
    let need, lower = 0x80, upper = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) { need = 2; if (b === 0xe0) lower = 0xa0; else if (b === 0xed) upper = 0x9f; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; if (b === 0xf0) lower = 0x90; else if (b === 0xf4) upper = 0x8f; }
    else return n;
    if (back - 1 >= need) return n; // complete (or over-long: decoded as errors)
    if (back >= 2) {
      const c = bytes[n - back + 1];
      if (c < lower || c > upper) return n;
    }
    return n - back;
  }
  return n;
}


class TextEncoder {
  get encoding() { return "utf-8"; }
  encode(input = "") {
    return host.utf8Encode(String(input).toWellFormed());
  }
  encodeInto(source, destination) {
    if (!(destination instanceof Uint8Array)) throw new TypeError("encodeInto: destination must be a Uint8Array");
    const s = String(source);
    const cap = destination.length;
    let read = 0, written = 0;
    const len = s.length;
    // ASCII fast path, then per code point.
    while (read < len && written < cap) {
      let c = s.charCodeAt(read);
      if (c < 0x80) { destination[written++] = c; read++; continue; }
      let units = 1;
      if (c >= 0xd800 && c <= 0xdbff && read + 1 < len) {
        const d = s.charCodeAt(read + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); units = 2; }
        else c = 0xfffd;
      } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      const size = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
      if (written + size > cap) break;
      if (size === 2) {
        destination[written++] = 0xc0 | (c >> 6);
      } else if (size === 3) {
        destination[written++] = 0xe0 | (c >> 12);
        destination[written++] = 0x80 | ((c >> 6) & 0x3f);
      } else {
        destination[written++] = 0xf0 | (c >> 18);
        destination[written++] = 0x80 | ((c >> 12) & 0x3f);
        destination[written++] = 0x80 | ((c >> 6) & 0x3f);
      }
      destination[written++] = 0x80 | (c & 0x3f);
      read += units;
    }
    return { read, written };
  }
  get [Symbol.toStringTag]() { return "TextEncoder"; }
}

const FATAL = Symbol("fatal"), IGNORE_BOM = Symbol("ignoreBOM"), PENDING = Symbol("pending"), BOM_SEEN = Symbol("bomSeen");

class TextDecoder {
  constructor(label = "utf-8", options = undefined) {
    const name = String(label).replace(/^[\t\n\f\r ]+|[\t\n\f\r ]+$/g, "").toLowerCase();
    if (!UTF8_LABELS.includes(name)) {
      throw new RangeError(`Failed to construct 'TextDecoder': The encoding label provided ('${label}') is invalid or not supported.`);
    }
    if (options !== undefined && options !== null && typeof options !== "object" && typeof options !== "function")
      throw new TypeError("Failed to construct 'TextDecoder': The provided value is not of type 'TextDecoderOptions'.");
    this[FATAL] = !!(options && options.fatal);
    this[IGNORE_BOM] = !!(options && options.ignoreBOM);
    this[PENDING] = null;
    this[BOM_SEEN] = false;
  }
  get encoding() { return "utf-8"; }
  get fatal() { return this[FATAL]; }
  get ignoreBOM() { return this[IGNORE_BOM]; }
  decode(input = undefined, options = undefined) {
    if (!(FATAL in this)) throw new TypeError("Illegal invocation");
    let bytes = toBytes(input, "Failed to execute 'decode' on 'TextDecoder'");
    const stream = !!(options && options.stream);
    const pending = this[PENDING];
    if (pending) {
      const joined = new Uint8Array(pending.length + bytes.length);
      joined.set(pending);
      joined.set(bytes, pending.length);
      bytes = joined;
      this[PENDING] = null;
    }
    let end = bytes.length;
    if (stream) {
      end = incompleteTail(bytes);
      if (end < bytes.length) this[PENDING] = bytes.slice(end);
    }
    let out;
    try {
      out = decodeBytes(bytes, 0, end, this[FATAL]);
    } catch (e) {
      this[PENDING] = null;
      this[BOM_SEEN] = false;
      throw e;
    }
    if (!this[BOM_SEEN] && out.length) {
      if (!this[IGNORE_BOM] && out.charCodeAt(0) === 0xfeff) out = out.slice(1);
      this[BOM_SEEN] = true;
    }
    if (!stream) {
      this[PENDING] = null;
      this[BOM_SEEN] = false;
    }
    return out;
  }
  get [Symbol.toStringTag]() { return "TextDecoder"; }
}

return { TextEncoder, TextDecoder };
