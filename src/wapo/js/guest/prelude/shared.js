// @provides @shared
// Helpers that several prelude modules use. Never a global: a module gets them
// with `const { u32, concat } = host.internal("shared");` (docs/prelude.md).
// This module uses no other module, so any module may take it at load time.

// ---- bytes --------------------------------------------------------------------

// n as 4 bytes, little-endian (the host services' resource ids and lengths).
function u32(n) {
  return new Uint8Array([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255]);
}
function readU32(bytes, at = 0) {
  return new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0, true);
}

// The Uint8Arrays of `chunks` one after the other: a new array, or the chunk itself if
// there is only one. `total`: their length, if known.
function concat(chunks, total = undefined) {
  if (total === undefined) { total = 0; for (const c of chunks) total += c.length; }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { out.set(c, off); off += c.length; }
  return out;
}

// A Uint8Array over the memory of `v` (a Uint8Array, another ArrayBuffer view or an
// ArrayBuffer; with `text`, a string as UTF-8), or null for anything else.
function asBytes(v, text) {
  if (v instanceof Uint8Array) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (text && typeof v === "string") return host.utf8Encode(v);
  return null;
}

// A copy of the bytes of an ArrayBuffer or ArrayBuffer view.
function copyBytes(source) {
  if (source instanceof ArrayBuffer) return new Uint8Array(source.slice(0));
  return new Uint8Array(source.buffer.slice(source.byteOffset, source.byteOffset + source.byteLength));
}

const HEX = [];  // byte -> two lowercase hex digits
for (let i = 0; i < 256; i++) HEX.push((i < 16 ? "0" : "") + i.toString(16));

function hex(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
  return s;
}

// Bytes of a string of hex digit pairs the prelude itself made (no checks: see Wapo.hexDecode).
function fromHex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

// ---- web objects ----------------------------------------------------------------

function isObject(v) { return (typeof v === "object" && v !== null) || typeof v === "function"; }

// Web objects that keep their state in a record {kind, ...} under the private symbol `key`:
// find(obj, kind) is obj's record if obj is a `kind`, else undefined; get(obj, kind, what)
// the same for method `what` called on obj, which throws a TypeError if obj is not one.
function records(key) {
  const find = (obj, kind) => {
    const r = isObject(obj) ? obj[key] : undefined;
    return r !== undefined && r.kind === kind ? r : undefined;
  };
  const get = (obj, kind, what) => {
    const r = find(obj, kind);
    if (r === undefined) throw new TypeError(`${what}: 'this' is not a ${kind}`);
    return r;
  };
  return { find, get };
}

// obj[sym], the state an object of a prelude class keeps under the private symbol `sym`;
// "Illegal invocation" if obj is not one of them.
function stateOf(obj, sym) {
  if (!isObject(obj) || !(sym in obj)) throw new TypeError("Illegal invocation");
  return obj[sym];
}

function tag(cls, name) {
  Object.defineProperty(cls.prototype, Symbol.toStringTag, { value: name, configurable: true });
}

// Read-only attributes of cls, as `get name() { return state(this, "name").name; }` in its
// class body would define them: `state(obj, what)` gives obj's record (and checks obj).
function fieldGetters(cls, state, names) {
  for (const name of names) {
    const { get } = Object.getOwnPropertyDescriptor({ get [name]() { return state(this, name)[name]; } }, name);
    Object.defineProperty(cls.prototype, name, { get, configurable: true });
  }
}

// A DOMException (an Error of that name if the global was replaced by something unusable).
function domException(message, name) {
  try {
    if (typeof DOMException === "function") return new DOMException(message, name);
  } catch (e) { /* fall through */ }
  const e = new Error(message);
  e.name = name;
  return e;
}

// ---- host streams and HTTP -------------------------------------------------------

// Takes the next message of a host stream for a pull: read() returns [0, ...data] (a message),
// [1] (the end) or anything else (nothing yet: host resource `watch` is watched, then read()
// is tried again unless gone() by then). got(r) takes [0, ...] or [1], failed(e) what read()
// threw; the promise resolves after either (or once gone).
function hostRead({ read, watch, gone, got, failed }) {
  return new Promise((resolve) => {
    const step = () => {
      if (gone()) return resolve();
      let r;
      try {
        r = read();
      } catch (e) {
        failed(e);
        return resolve();
      }
      if (r[0] === 0 || r[0] === 1) {
        got(r);
        resolve();
      } else {
        host.watch(watch, step);
      }
    };
    step();
  });
}

// Responses with these statuses have no body.
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

return {
  shared: Object.freeze({
    u32, readU32, concat, asBytes, copyBytes, HEX, hex, fromHex,
    isObject, records, stateOf, tag, fieldGetters, domException,
    hostRead, NULL_BODY_STATUS,
  }),
};
