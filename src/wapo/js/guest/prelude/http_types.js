// @provides Headers Blob File FormData AbortController AbortSignal Request Response @http
// WHATWG Fetch types (Headers, Request, Response, FormData), File API (Blob,
// File) and DOM AbortController/AbortSignal. `fetch` itself lives elsewhere
// and reaches the internals through `host.internal("http")`. Headers have no guards.

const noop = () => {};
const B = Symbol("wapo.http");
const TOKEN = Symbol("wapo.http.token");
const EMPTY = new Uint8Array(0);

const { concat, copyBytes, isObject, records, tag, fieldGetters, domException, NULL_BODY_STATUS } = host.internal("shared");
const { get: slot, find: slotOrUndefined } = records(B);
function attach(pub, rec) { Object.defineProperty(pub, B, { value: rec }); return rec; }

function utf8(s) { return host.utf8Encode(s); }
function decodeUtf8(bytes) {
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
  try { return host.utf8Decode(bytes, true); } catch (e) { /* invalid: the WHATWG decoder replaces errors */ }
  if (typeof TextDecoder === "function") return new TextDecoder().decode(bytes);
  return host.utf8Decode(bytes, false);
}
const toUSV = typeof String.prototype.toWellFormed === "function"
  ? (v) => String(v).toWellFormed()
  : (v) => String(v).replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
function toByteString(v, what) {
  const s = String(v);
  for (let i = 0; i < s.length; i++)
    if (s.charCodeAt(i) > 255) throw new TypeError(`${what}: '${s}' is not a valid ByteString`);
  return s;
}
function isBufferSource(v) {
  return v instanceof ArrayBuffer || ArrayBuffer.isView(v) ||
    (typeof SharedArrayBuffer === "function" && v instanceof SharedArrayBuffer);
}
function streams() { return host.internal("streams"); }
function isReadableStream(v) { return isObject(v) && streams().isReadableStream(v); }

// ---- Headers ------------------------------------------------------------

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
function normalizeHeaderName(name) {
  const n = toByteString(name, "Headers");
  if (!TOKEN_RE.test(n)) throw new TypeError(`Headers: '${n}' is not a valid HTTP header field name`);
  return n.toLowerCase();
}
function normalizeHeaderValue(value) {
  const v = toByteString(value, "Headers").replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
  if (/[\0\r\n]/.test(v)) throw new TypeError(`Headers: '${v}' is not a valid HTTP header field value`);
  return v;
}

class Headers {
  constructor(init = undefined) {
    const h = attach(this, { kind: "Headers", list: [], sorted: null });
    if (init !== undefined && init !== null) fillHeaders(h, init);
    else if (init === null) throw new TypeError("Headers: the init argument must be an object");
  }
  append(name, value) {
    const h = slot(this, "Headers", "append");
    headersAppend(h, name, value);
  }
  delete(name) {
    const h = slot(this, "Headers", "delete");
    const n = normalizeHeaderName(name);
    h.list = h.list.filter((e) => e[0] !== n);
    h.sorted = null;
  }
  get(name) {
    const h = slot(this, "Headers", "get");
    return headersGet(h, normalizeHeaderName(name));
  }
  getSetCookie() {
    const h = slot(this, "Headers", "getSetCookie");
    return h.list.filter((e) => e[0] === "set-cookie").map((e) => e[1]);
  }
  has(name) {
    const h = slot(this, "Headers", "has");
    const n = normalizeHeaderName(name);
    return h.list.some((e) => e[0] === n);
  }
  set(name, value) {
    const h = slot(this, "Headers", "set");
    const n = normalizeHeaderName(name);
    const v = normalizeHeaderValue(value);
    const i = h.list.findIndex((e) => e[0] === n);
    if (i < 0) h.list.push([n, v]);
    else {
      h.list[i] = [n, v];
      h.list = h.list.filter((e, j) => j <= i || e[0] !== n);
    }
    h.sorted = null;
  }
  forEach(callback, thisArg = undefined) {
    const h = slot(this, "Headers", "forEach");
    if (typeof callback !== "function") throw new TypeError("Headers.forEach: the callback is not a function");
    for (let i = 0; ; i++) {
      const pairs = sortedHeaders(h);
      if (i >= pairs.length) break;
      callback.call(thisArg, pairs[i][1], pairs[i][0], this);
    }
  }
  entries() { return headersIterator(slot(this, "Headers", "entries"), "entries"); }
  keys() { return headersIterator(slot(this, "Headers", "keys"), "keys"); }
  values() { return headersIterator(slot(this, "Headers", "values"), "values"); }
}
Object.defineProperty(Headers.prototype, Symbol.iterator, { value: Headers.prototype.entries, writable: true, configurable: true });
tag(Headers, "Headers");

function headersAppend(h, name, value) {
  h.list.push([normalizeHeaderName(name), normalizeHeaderValue(value)]);
  h.sorted = null;
}
function headersGet(h, n) {
  let out = null;
  for (const e of h.list) if (e[0] === n) out = out === null ? e[1] : out + ", " + e[1];
  return out;
}
function fillHeaders(h, init) {
  if (!isObject(init)) throw new TypeError("Headers: the init argument must be an object");
  const other = slotOrUndefined(init, "Headers");
  if (other) { h.list = other.list.map((e) => [e[0], e[1]]); return; }
  const iter = init[Symbol.iterator];
  if (iter !== undefined && iter !== null) {
    if (typeof iter !== "function") throw new TypeError("Headers: init[Symbol.iterator] is not a function");
    for (const pair of init) {
      if (!isObject(pair) || typeof pair === "function") throw new TypeError("Headers: each header must be a [name, value] pair");
      const arr = Array.from(pair);
      if (arr.length !== 2) throw new TypeError("Headers: each header must be a [name, value] pair");
      headersAppend(h, arr[0], arr[1]);
    }
    return;
  }
  for (const key of Reflect.ownKeys(init)) {
    const desc = Reflect.getOwnPropertyDescriptor(init, key);
    if (desc === undefined || !desc.enumerable) continue;
    if (typeof key === "symbol") throw new TypeError("Headers: a header name cannot be a symbol");
    headersAppend(h, key, init[key]);
  }
}
function sortedHeaders(h) {
  if (h.sorted) return h.sorted;
  const names = [...new Set(h.list.map((e) => e[0]))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out = [];
  for (const n of names) {
    if (n === "set-cookie") { for (const e of h.list) if (e[0] === n) out.push([n, e[1]]); }
    else out.push([n, headersGet(h, n)]);
  }
  h.sorted = out;
  return out;
}
// The iterators of Headers and FormData (`name`): iterator(record, what) goes over the
// [name, value] pairs pairsOf(record) gives, yielding keys, values or entries (`what`).
const IteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));
function pairIterator(name, pairsOf) {
  const kind = `${name}Iterator`;
  const prototype = Object.create(IteratorPrototype, {
    next: {
      writable: true, configurable: true,
      value: function next() {
        const it = slotOrUndefined(this, kind);
        if (!it) throw new TypeError(`next: not a ${name} iterator`);
        const pairs = pairsOf(it.source);
        if (it.index >= pairs.length) return { value: undefined, done: true };
        const [n, v] = pairs[it.index++];
        return { value: it.what === "keys" ? n : it.what === "values" ? v : [n, v], done: false };
      },
    },
    [Symbol.toStringTag]: { value: `${name} Iterator`, configurable: true },
  });
  return (source, what) => {
    const it = Object.create(prototype);
    attach(it, { kind, source, what, index: 0 });
    return it;
  };
}
const headersIterator = pairIterator("Headers", sortedHeaders);
function newHeaders(init) {
  const headers = new Headers();
  if (init !== undefined && init !== null) fillHeaders(headers[B], init);
  return headers;
}

// ---- Blob and File ------------------------------------------------------

function normalizeType(t) {
  const s = String(t);
  return /^[\x20-\x7e]*$/.test(s) ? s.toLowerCase() : "";
}

class Blob {
  constructor(blobParts = undefined, options = undefined) {
    const opts = options === undefined || options === null ? {} : options;
    if (!isObject(opts)) throw new TypeError("Blob: options must be an object");
    const endings = opts.endings === undefined ? "transparent" : String(opts.endings);
    if (endings !== "transparent" && endings !== "native") throw new TypeError(`Blob: '${endings}' is not a valid endings value`);
    const type = opts.type === undefined ? "" : normalizeType(opts.type);
    let bytes = EMPTY;
    if (blobParts !== undefined) {
      if (!isObject(blobParts) || typeof blobParts[Symbol.iterator] !== "function")
        throw new TypeError("Blob: blobParts must be a sequence");
      const chunks = [];
      for (const part of blobParts) {
        const other = slotOrUndefined(part, "Blob");
        if (other) chunks.push(other.bytes);
        else if (isBufferSource(part)) chunks.push(copyBytes(part));
        else {
          let s = toUSV(part);
          if (endings === "native") s = s.replace(/\r\n|\r/g, "\n");
          chunks.push(utf8(s));
        }
      }
      // every chunk is fresh or an (immutable) Blob's bytes, so one chunk is kept as is
      bytes = chunks.length === 0 ? EMPTY : concat(chunks);
    }
    attach(this, { kind: "Blob", bytes, type });
  }
  get size() { return slot(this, "Blob", "size").bytes.length; }
  get type() { return slot(this, "Blob", "type").type; }
  slice(start = undefined, end = undefined, contentType = undefined) {
    const b = slot(this, "Blob", "slice");
    const size = b.bytes.length;
    const rel = (v, dflt) => {
      if (v === undefined) return dflt;
      let n = Math.trunc(Number(v)) || 0;
      if (n < 0) n = Math.max(size + n, 0); else n = Math.min(n, size);
      return n;
    };
    const from = rel(start, 0);
    const to = rel(end, size);
    const blob = Object.create(Blob.prototype);
    attach(blob, { kind: "Blob", bytes: b.bytes.subarray(from, Math.max(from, to)), type: contentType === undefined ? "" : normalizeType(contentType) });
    return blob;
  }
  stream() { return bytesStream(slot(this, "Blob", "stream").bytes); }
  text() {
    try { return Promise.resolve(decodeUtf8(slot(this, "Blob", "text").bytes)); } catch (e) { return Promise.reject(e); }
  }
  arrayBuffer() {
    try { return Promise.resolve(copyOf(slot(this, "Blob", "arrayBuffer").bytes).buffer); } catch (e) { return Promise.reject(e); }
  }
  bytes() {
    try { return Promise.resolve(copyOf(slot(this, "Blob", "bytes").bytes)); } catch (e) { return Promise.reject(e); }
  }
}
tag(Blob, "Blob");
function copyOf(bytes) { const c = new Uint8Array(bytes.length); c.set(bytes); return c; }
function makeBlob(bytes, type) {
  const blob = Object.create(Blob.prototype);
  attach(blob, { kind: "Blob", bytes, type: normalizeType(type) });
  return blob;
}
// A ReadableStream of the bytes, in chunks of at most 64 KiB.
function bytesStream(bytes) {
  let offset = 0;
  return streams().create({
    highWaterMark: 0,
    bytes: true,
    pull(c) {
      if (offset >= bytes.length) { c.close(); return; }
      const end = Math.min(offset + 65536, bytes.length);
      c.enqueue(bytes.subarray(offset, end));
      offset = end;
      if (offset >= bytes.length) c.close();
    },
  });
}

class File extends Blob {
  constructor(fileBits, fileName, options = undefined) {
    if (arguments.length < 2) throw new TypeError(`File: 2 arguments required, but only ${arguments.length} present`);
    super(fileBits, options);
    const opts = options === undefined || options === null ? {} : options;
    const r = this[B];
    r.name = toUSV(fileName);
    r.lastModified = opts.lastModified === undefined ? Date.now() : Math.trunc(Number(opts.lastModified)) || 0;
    r.isFile = true;
  }
  get name() { return fileSlot(this, "name").name; }
  get lastModified() { return fileSlot(this, "lastModified").lastModified; }
  get webkitRelativePath() { fileSlot(this, "webkitRelativePath"); return ""; }
}
tag(File, "File");
function fileSlot(obj, what) {
  const r = slot(obj, "Blob", what);
  if (!r.isFile) throw new TypeError(`${what}: 'this' is not a File`);
  return r;
}
function makeFile(bytes, name, type, lastModified = Date.now()) {
  const file = Object.create(File.prototype);
  attach(file, { kind: "Blob", bytes, type: normalizeType(type), name, lastModified, isFile: true });
  return file;
}

// ---- FormData -----------------------------------------------------------

function formEntryValue(value, filename, argc) {
  const b = slotOrUndefined(value, "Blob");
  if (!b) {
    if (argc > 2) throw new TypeError("FormData: the value must be a Blob when a filename is given");
    return toUSV(value);
  }
  if (b.isFile && filename === undefined) return value;
  const name = filename !== undefined ? toUSV(filename) : b.isFile ? b.name : "blob";
  return makeFile(b.bytes, name, b.type, b.isFile ? b.lastModified : Date.now());
}

class FormData {
  constructor(form = undefined, submitter = undefined) {
    if (form !== undefined) throw new TypeError("FormData: HTML forms are not supported (pass no argument)");
    attach(this, { kind: "FormData", list: [] });
  }
  append(name, value, filename = undefined) {
    const f = slot(this, "FormData", "append");
    if (arguments.length < 2) throw new TypeError("FormData.append: 2 arguments required");
    f.list.push([toUSV(name), formEntryValue(value, filename, arguments.length)]);
  }
  delete(name) {
    const f = slot(this, "FormData", "delete");
    const n = toUSV(name);
    f.list = f.list.filter((e) => e[0] !== n);
  }
  get(name) {
    const f = slot(this, "FormData", "get");
    const n = toUSV(name);
    const e = f.list.find((e) => e[0] === n);
    return e === undefined ? null : e[1];
  }
  getAll(name) {
    const f = slot(this, "FormData", "getAll");
    const n = toUSV(name);
    return f.list.filter((e) => e[0] === n).map((e) => e[1]);
  }
  has(name) {
    const f = slot(this, "FormData", "has");
    const n = toUSV(name);
    return f.list.some((e) => e[0] === n);
  }
  set(name, value, filename = undefined) {
    const f = slot(this, "FormData", "set");
    if (arguments.length < 2) throw new TypeError("FormData.set: 2 arguments required");
    const n = toUSV(name);
    const entry = [n, formEntryValue(value, filename, arguments.length)];
    const i = f.list.findIndex((e) => e[0] === n);
    if (i < 0) f.list.push(entry);
    else {
      f.list = f.list.filter((e, j) => j <= i || e[0] !== n);
      f.list[i] = entry;
    }
  }
  forEach(callback, thisArg = undefined) {
    const f = slot(this, "FormData", "forEach");
    if (typeof callback !== "function") throw new TypeError("FormData.forEach: the callback is not a function");
    for (let i = 0; i < f.list.length; i++) callback.call(thisArg, f.list[i][1], f.list[i][0], this);
  }
  entries() { return formDataIterator(slot(this, "FormData", "entries"), "entries"); }
  keys() { return formDataIterator(slot(this, "FormData", "keys"), "keys"); }
  values() { return formDataIterator(slot(this, "FormData", "values"), "values"); }
}
Object.defineProperty(FormData.prototype, Symbol.iterator, { value: FormData.prototype.entries, writable: true, configurable: true });
tag(FormData, "FormData");
const formDataIterator = pairIterator("FormData", (f) => f.list);

function randomHex(n) {
  let s = "";
  for (let i = 0; i < n; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}
const escapeName = (s) => s.replace(/\n/g, "%0A").replace(/\r/g, "%0D").replace(/"/g, "%22");
const crlf = (s) => s.replace(/\r\n|\r|\n/g, "\r\n");
function serializeMultipart(f) {
  const boundary = "----WapoFormBoundary" + randomHex(24);
  const chunks = [];
  for (const [name, value] of f.list) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(crlf(name))}"`;
    const b = slotOrUndefined(value, "Blob");
    if (b) {
      head += `; filename="${escapeName(b.name)}"\r\nContent-Type: ${b.type || "application/octet-stream"}\r\n\r\n`;
      chunks.push(utf8(head), b.bytes, utf8("\r\n"));
    } else chunks.push(utf8(head + "\r\n\r\n" + crlf(value) + "\r\n"));
  }
  chunks.push(utf8(`--${boundary}--\r\n`));
  return { bytes: concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

// Parse a Content-Type into {essence, params}.
function parseMime(value) {
  if (value === null) return null;
  const parts = value.split(";");
  const essence = parts[0].trim().toLowerCase();
  if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+\/[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(essence)) return null;
  const params = new Map();
  const re = /;\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  let m;
  const rest = value.slice(parts[0].length);
  while ((m = re.exec(rest))) {
    const k = m[1].toLowerCase();
    let v = m[2].trim();
    if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, "$1");
    if (!params.has(k)) params.set(k, v);
  }
  return { essence, params };
}
function indexOfBytes(hay, needle, from) {
  const first = needle[0];
  const last = hay.length - needle.length;
  outer: for (let i = from; i <= last; i++) {
    i = hay.indexOf(first, i);
    if (i < 0 || i > last) return -1;
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
function latin1(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return s;
}
function parseMultipart(bytes, boundary) {
  const fail = (why) => { throw new TypeError(`Failed to parse the body as multipart/form-data: ${why}`); };
  if (!boundary) fail("no boundary");
  const delim = utf8("--" + boundary);
  const form = new FormData();
  const f = form[B];
  let pos = indexOfBytes(bytes, delim, 0);
  if (pos < 0) fail("the boundary was not found");
  pos += delim.length;
  for (;;) {
    if (bytes[pos] === 0x2d && bytes[pos + 1] === 0x2d) return form; // closing delimiter
    // skip transport padding and the CRLF after the delimiter
    while (bytes[pos] === 0x20 || bytes[pos] === 0x09) pos++;
    if (bytes[pos] === 0x0d && bytes[pos + 1] === 0x0a) pos += 2;
    else if (bytes[pos] === 0x0a) pos += 1;
    else fail("malformed delimiter line");
    const headEnd = indexOfBytes(bytes, utf8("\r\n\r\n"), pos);
    if (headEnd < 0) fail("unterminated part headers");
    const headText = decodeUtf8(bytes.subarray(pos, headEnd));
    pos = headEnd + 4;
    let name = null, filename, type = "";
    for (const line of headText.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const hname = line.slice(0, colon).trim().toLowerCase();
      const hvalue = line.slice(colon + 1).trim();
      if (hname === "content-disposition") {
        const disp = parseMime("x/" + hvalue);
        if (disp === null || !/^form-data\b/i.test(hvalue)) fail("bad Content-Disposition");
        name = disp.params.get("name") ?? null;
        filename = disp.params.get("filename");
        if (disp.params.has("filename*")) {
          const m = /^utf-8''(.*)$/i.exec(disp.params.get("filename*"));
          if (m) try { filename = decodeURIComponent(m[1]); } catch (e) { /* keep the plain one */ }
        }
      } else if (hname === "content-type") type = hvalue;
    }
    if (name === null) fail("a part has no name");
    const endDelim = utf8("\r\n--" + boundary);
    const end = indexOfBytes(bytes, endDelim, pos);
    if (end < 0) fail("unterminated part");
    const content = bytes.subarray(pos, end);
    const unescape = (s) => s.replace(/%0A/g, "\n").replace(/%0D/g, "\r").replace(/%22/g, '"');
    name = unescape(name);
    if (filename !== undefined) f.list.push([name, makeFile(copyOf(content), unescape(filename), type)]);
    else f.list.push([name, decodeUtf8(content)]);
    pos = end + endDelim.length;
  }
}
function percentDecode(s) {
  const bytes = utf8(s.replace(/\+/g, " "));
  if (bytes.indexOf(0x25) < 0) return decodeUtf8(bytes);
  const out = new Uint8Array(bytes.length);
  let n = 0;
  const hex = (c) => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    if (c === 0x25 && i + 2 < bytes.length && hex(bytes[i + 1]) >= 0 && hex(bytes[i + 2]) >= 0) {
      out[n++] = hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]);
      i += 2;
    } else out[n++] = c;
  }
  return decodeUtf8(out.subarray(0, n));
}
function parseUrlencoded(text) {
  const form = new FormData();
  const f = form[B];
  for (const seq of text.split("&")) {
    if (seq === "") continue;
    const eq = seq.indexOf("=");
    const name = eq < 0 ? seq : seq.slice(0, eq);
    const value = eq < 0 ? "" : seq.slice(eq + 1);
    f.list.push([percentDecode(name), percentDecode(value)]);
  }
  return form;
}

// ---- AbortController and AbortSignal ------------------------------------

// AbortSignal is an EventTarget when events.js provides one; otherwise it
// keeps a minimal listener list of its own.
class MiniEventTarget {
  constructor() { Object.defineProperty(this, "__listeners", { value: [], writable: true }); }
  addEventListener(type, listener, options = undefined) {
    if (listener === null || listener === undefined) return;
    const once = isObject(options) && !!options.once;
    const signal = isObject(options) ? options.signal : undefined;
    if (signal && signal.aborted) return;
    const t = String(type);
    if (this.__listeners.some((l) => l.type === t && l.listener === listener)) return;
    const entry = { type: t, listener, once, removed: false };
    this.__listeners.push(entry);
    if (signal) signal.addEventListener("abort", () => this.removeEventListener(t, listener));
  }
  removeEventListener(type, listener) {
    const t = String(type);
    for (const l of this.__listeners) if (l.type === t && l.listener === listener) l.removed = true;
    this.__listeners = this.__listeners.filter((l) => !l.removed);
  }
  dispatchEvent(event) {
    const list = this.__listeners.filter((l) => l.type === event.type);
    try { Object.defineProperty(event, "target", { value: this, configurable: true }); } catch (e) { /* frozen */ }
    try { Object.defineProperty(event, "currentTarget", { value: this, configurable: true }); } catch (e) { /* frozen */ }
    for (const l of list) {
      if (l.removed) continue;
      if (l.once) this.removeEventListener(l.type, l.listener);
      try {
        if (typeof l.listener === "function") l.listener.call(this, event);
        else if (isObject(l.listener) && typeof l.listener.handleEvent === "function") l.listener.handleEvent(event);
      } catch (e) {
        queueMicrotask(() => { throw e; });
      }
    }
    return !event.defaultPrevented;
  }
}
const EventTargetBase = (() => {
  try { if (typeof EventTarget === "function") return EventTarget; } catch (e) { /* not available */ }
  return MiniEventTarget;
})();
function makeEvent(type) {
  try { if (typeof Event === "function") return new Event(type); } catch (e) { /* not available */ }
  return { type, bubbles: false, cancelable: false, defaultPrevented: false, timeStamp: Date.now() };
}

class AbortSignal extends EventTargetBase {
  constructor(token) {
    if (token !== TOKEN) throw new TypeError("Illegal constructor");
    super();
    attach(this, { kind: "AbortSignal", aborted: false, reason: undefined, onabort: null, onabortListener: null,
      algorithms: [], dependent: false, sources: [], dependents: [] });
  }
  get aborted() { return slot(this, "AbortSignal", "aborted").aborted; }
  get reason() { return slot(this, "AbortSignal", "reason").reason; }
  throwIfAborted() {
    const s = slot(this, "AbortSignal", "throwIfAborted");
    if (s.aborted) throw s.reason;
  }
  get onabort() { return slot(this, "AbortSignal", "onabort").onabort; }
  set onabort(handler) {
    const s = slot(this, "AbortSignal", "onabort");
    s.onabort = typeof handler === "function" || isObject(handler) ? handler : null;
    if (s.onabort !== null && s.onabortListener === null) {
      s.onabortListener = (event) => {
        const h = s.onabort;
        if (typeof h === "function") h.call(this, event);
      };
      this.addEventListener("abort", s.onabortListener);
    }
  }
  static abort(reason = undefined) {
    const signal = new AbortSignal(TOKEN);
    const s = signal[B];
    s.aborted = true;
    s.reason = reason !== undefined ? reason : domException("signal is aborted without reason", "AbortError");
    return signal;
  }
  static timeout(milliseconds) {
    const ms = Number(milliseconds);
    if (!Number.isFinite(ms) || ms < 0 || ms > Number.MAX_SAFE_INTEGER)
      throw new TypeError("AbortSignal.timeout: the delay must be a non-negative finite number");
    const signal = new AbortSignal(TOKEN);
    setTimeout(() => signalAbort(signal, domException("signal timed out", "TimeoutError")), Math.trunc(ms));
    return signal;
  }
  static any(signals) {
    if (!isObject(signals) || typeof signals[Symbol.iterator] !== "function")
      throw new TypeError("AbortSignal.any: the argument must be a sequence of AbortSignals");
    const list = Array.from(signals);
    for (const x of list) if (!slotOrUndefined(x, "AbortSignal")) throw new TypeError("AbortSignal.any: every item must be an AbortSignal");
    const result = new AbortSignal(TOKEN);
    const r = result[B];
    for (const x of list) {
      if (x[B].aborted) { r.aborted = true; r.reason = x[B].reason; return result; }
    }
    r.dependent = true;
    for (const x of list) {
      const s = x[B];
      if (!s.dependent) { link(r, s, result); }
      else for (const src of s.sources) link(r, src, result);
    }
    return result;
  }
}
tag(AbortSignal, "AbortSignal");
function link(r, source, result) {
  if (r.sources.includes(source)) return;
  r.sources.push(source);
  source.dependents.push(result);
}
function signalAbort(signal, reason) {
  const s = signal[B];
  if (s.aborted) return;
  s.aborted = true;
  s.reason = reason !== undefined ? reason : domException("signal is aborted without reason", "AbortError");
  const toRun = [];
  for (const dep of s.dependents) {
    if (!dep[B].aborted) {
      dep[B].aborted = true;
      dep[B].reason = s.reason;
      toRun.push(dep);
    }
  }
  s.dependents = [];
  runAbortSteps(signal);
  for (const dep of toRun) runAbortSteps(dep);
}
function runAbortSteps(signal) {
  const s = signal[B];
  const algorithms = s.algorithms;
  s.algorithms = [];
  for (const a of algorithms) a(s.reason);
  signal.dispatchEvent(makeEvent("abort"));
}

class AbortController {
  constructor() { attach(this, { kind: "AbortController", signal: new AbortSignal(TOKEN) }); }
  get signal() { return slot(this, "AbortController", "signal").signal; }
  abort(reason = undefined) { signalAbort(slot(this, "AbortController", "abort").signal, reason); }
}
tag(AbortController, "AbortController");

// ---- bodies -------------------------------------------------------------

// A body record: {stream: ReadableStream|null, bytes: Uint8Array|null, used}.
// A body of known bytes makes its stream only when `body` is read.
function extractBody(object) {
  if (typeof object === "string") return { body: { bytes: utf8(object), stream: null, used: false }, type: "text/plain;charset=UTF-8" };
  const blob = slotOrUndefined(object, "Blob");
  if (blob) return { body: { bytes: blob.bytes, stream: null, used: false }, type: blob.type || null };
  if (isBufferSource(object)) return { body: { bytes: copyBytes(object), stream: null, used: false }, type: null };
  const form = slotOrUndefined(object, "FormData");
  if (form) {
    const m = serializeMultipart(form);
    return { body: { bytes: m.bytes, stream: null, used: false }, type: m.type };
  }
  let isParams = false;
  try { isParams = typeof URLSearchParams === "function" && object instanceof URLSearchParams; } catch (e) { /* no URL module */ }
  if (isParams) return { body: { bytes: utf8(String(object)), stream: null, used: false }, type: "application/x-www-form-urlencoded;charset=UTF-8" };
  if (isReadableStream(object)) {
    const st = streams();
    if (st.isDisturbed(object) || st.isLocked(object)) throw new TypeError("The body stream is disturbed or locked");
    return { body: { bytes: null, stream: object, used: false }, type: null };
  }
  return { body: { bytes: utf8(toUSV(object)), stream: null, used: false }, type: "text/plain;charset=UTF-8" };
}
function bodyStream(body) {
  if (body.stream === null) {
    // a body already consumed as bytes reads as an empty, disturbed stream
    body.stream = bytesStream(body.used ? EMPTY : body.bytes);
    if (body.used) streams().markDisturbed(body.stream);
  }
  return body.stream;
}
function bodyUsed(body) {
  if (body === null) return false;
  if (body.used) return true;
  return body.stream !== null && streams().isDisturbed(body.stream);
}
function bodyUnusable(body) {
  return body !== null && (bodyUsed(body) || (body.stream !== null && streams().isLocked(body.stream)));
}
function toChunkBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new TypeError("Body stream chunks must be Uint8Arrays");
}
// Read the whole body: a promise of a Uint8Array.
function consumeBody(record) {
  const body = record.body;
  if (bodyUnusable(body)) return Promise.reject(new TypeError("Body is unusable: the body has already been read"));
  if (body === null) return Promise.resolve(EMPTY);
  if (body.stream === null) {
    body.used = true;
    return Promise.resolve(body.bytes);
  }
  const reader = body.stream.getReader();
  const chunks = [];
  let total = 0;
  const step = () => reader.read().then(({ value, done }) => {
    if (done) return concat(chunks, total);
    let bytes;
    try { bytes = toChunkBytes(value); } catch (e) { reader.cancel(e).then(undefined, noop); throw e; }
    chunks.push(bytes);
    total += bytes.length;
    return step();
  });
  return step();
}
function cloneBody(body) {
  if (body === null) return null;
  if (body.stream === null) return { bytes: body.bytes, stream: null, used: false };
  const [a, b] = streams().tee(body.stream, true);
  body.stream = a;
  return { bytes: null, stream: b, used: false };
}
function mimeOf(record) {
  return record.headers[B] ? headersGet(record.headers[B], "content-type") : null;
}

const bodyMethods = {
  // consumeBody's bytes may be shared (a Blob's, a stream chunk): copy what is handed out
  arrayBuffer() { return consumeBody(this[B]).then((bytes) => copyOf(bytes).buffer); },
  bytes() { return consumeBody(this[B]).then(copyOf); },
  blob() {
    const r = this[B];
    return consumeBody(r).then((bytes) => makeBlob(copyOf(bytes), mimeOf(r) ?? ""));
  },
  text() { return consumeBody(this[B]).then(decodeUtf8); },
  json() { return consumeBody(this[B]).then((bytes) => JSON.parse(decodeUtf8(bytes))); },
  formData() {
    const r = this[B];
    return consumeBody(r).then((bytes) => {
      const mime = parseMime(mimeOf(r));
      if (mime && mime.essence === "multipart/form-data") return parseMultipart(bytes, mime.params.get("boundary"));
      if (mime && mime.essence === "application/x-www-form-urlencoded") return parseUrlencoded(decodeUtf8(bytes));
      throw new TypeError("Could not parse content as FormData: the Content-Type is not multipart/form-data or application/x-www-form-urlencoded");
    });
  },
};
function addBodyMixin(cls, kind) {
  for (const [name, fn] of Object.entries(bodyMethods)) {
    Object.defineProperty(cls.prototype, name, {
      writable: true, configurable: true,
      value: { [name]() {
        if (!slotOrUndefined(this, kind)) return Promise.reject(new TypeError(`${name}: 'this' is not a ${kind}`));
        return fn.call(this);
      } }[name],
    });
  }
  Object.defineProperty(cls.prototype, "body", {
    configurable: true,
    get() { const r = slot(this, kind, "body"); return r.body === null ? null : bodyStream(r.body); },
  });
  Object.defineProperty(cls.prototype, "bodyUsed", {
    configurable: true,
    get() { return bodyUsed(slot(this, kind, "bodyUsed").body); },
  });
}

// ---- Request ------------------------------------------------------------

function parseURL(input, what) {
  const s = toUSV(input);
  let hasURL = false;
  try { hasURL = typeof URL === "function"; } catch (e) { /* no URL module */ }
  if (!hasURL) {
    if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(s)) throw new TypeError(`${what}: Invalid URL '${s}'`);
    return s;
  }
  let url;
  try { url = new URL(s); } catch (e) { throw new TypeError(`${what}: Invalid URL '${s}'`); }
  return url;
}
const METHOD_NORMAL = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
function normalizeMethod(m) {
  const s = toByteString(m, "Request");
  if (!TOKEN_RE.test(s)) throw new TypeError(`Request: '${s}' is not a valid HTTP method`);
  const upper = s.toUpperCase();
  if (upper === "CONNECT" || upper === "TRACE" || upper === "TRACK") throw new TypeError(`Request: '${s}' HTTP method is unsupported`);
  return METHOD_NORMAL.includes(upper) ? upper : s;
}
function enumOption(value, allowed, what) {
  const s = String(value);
  if (!allowed.includes(s)) throw new TypeError(`Request: '${s}' is not a valid value for ${what}`);
  return s;
}

class Request {
  constructor(input, init = undefined) {
    if (arguments.length < 1) throw new TypeError("Request: 1 argument required, but only 0 present");
    if (init !== undefined && init !== null && !isObject(init)) throw new TypeError("Request: init must be an object");
    const opts = init ?? {};
    const inputReq = slotOrUndefined(input, "Request");
    let r;
    if (inputReq) {
      r = Object.assign({}, inputReq, { kind: "Request" });
    } else {
      const url = parseURL(input, "Request");
      if (typeof url === "object" && (url.username || url.password))
        throw new TypeError(`Request cannot be constructed from a URL that includes credentials: ${input}`);
      r = {
        kind: "Request", method: "GET", url: typeof url === "object" ? url.href : url, mode: "cors",
        credentials: "same-origin", cache: "default", redirect: "follow", referrer: "about:client",
        referrerPolicy: "", integrity: "", keepalive: false, destination: "", duplex: "half", signal: null,
        body: null,
      };
    }
    r.body = null;
    if (opts.method !== undefined) r.method = normalizeMethod(opts.method);
    if (opts.mode !== undefined) {
      r.mode = enumOption(opts.mode, ["navigate", "same-origin", "no-cors", "cors"], "mode");
      if (r.mode === "navigate") throw new TypeError("Request: the mode 'navigate' cannot be used");
    }
    if (opts.credentials !== undefined) r.credentials = enumOption(opts.credentials, ["omit", "same-origin", "include"], "credentials");
    if (opts.cache !== undefined) r.cache = enumOption(opts.cache, ["default", "no-store", "reload", "no-cache", "force-cache", "only-if-cached"], "cache");
    if (opts.redirect !== undefined) r.redirect = enumOption(opts.redirect, ["follow", "error", "manual"], "redirect");
    if (opts.referrer !== undefined) r.referrer = String(opts.referrer) === "" ? "" : toUSV(opts.referrer);
    if (opts.referrerPolicy !== undefined) r.referrerPolicy = enumOption(opts.referrerPolicy, ["", "no-referrer", "no-referrer-when-downgrade", "same-origin", "origin", "strict-origin", "origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url"], "referrerPolicy");
    if (opts.integrity !== undefined) r.integrity = String(opts.integrity);
    if (opts.keepalive !== undefined) r.keepalive = !!opts.keepalive;
    if (opts.duplex !== undefined) r.duplex = enumOption(opts.duplex, ["half"], "duplex");
    let parentSignal = inputReq ? inputReq.signal : null;
    if (opts.signal !== undefined) {
      if (opts.signal !== null && !slotOrUndefined(opts.signal, "AbortSignal"))
        throw new TypeError("Request: init.signal is not an AbortSignal");
      parentSignal = opts.signal;
    }
    r.signal = parentSignal ? AbortSignal.any([parentSignal]) : new AbortSignal(TOKEN);
    r.headers = newHeaders(opts.headers !== undefined ? opts.headers : inputReq ? inputReq.headers : undefined);

    const initBody = opts.body;
    const inputBody = inputReq ? inputReq.body : null;
    if (((initBody !== undefined && initBody !== null) || inputBody !== null) && (r.method === "GET" || r.method === "HEAD"))
      throw new TypeError("Request with GET/HEAD method cannot have body");
    let body = inputBody;
    if (initBody !== undefined && initBody !== null) {
      const ex = extractBody(initBody);
      body = ex.body;
      if (ex.type !== null && !r.headers.has("content-type")) r.headers.append("content-type", ex.type);
      if (ex.body.stream !== null && opts.duplex === undefined)
        throw new TypeError("RequestInit: duplex option is required when sending a body as a ReadableStream");
      if (ex.body.stream !== null && r.keepalive) throw new TypeError("Request: keepalive cannot be used with a stream body");
    } else if (inputBody !== null && initBody === undefined) {
      if (bodyUnusable(inputBody)) throw new TypeError("Request: the input request's body has already been used");
      // The new request takes the input's body over; the input's becomes used.
      body = { bytes: inputBody.bytes, stream: inputBody.stream, used: false };
      inputBody.used = true;
    }
    r.body = body;
    attach(this, r);
  }
  get referrer() {
    const r = slot(this, "Request", "referrer");
    return r.referrer === "" ? "" : r.referrer === "no-referrer" ? "" : r.referrer;
  }
  get isReloadNavigation() { slot(this, "Request", "isReloadNavigation"); return false; }
  get isHistoryNavigation() { slot(this, "Request", "isHistoryNavigation"); return false; }
  clone() {
    const r = slot(this, "Request", "clone");
    if (bodyUnusable(r.body)) throw new TypeError("Request.clone: the body has already been used");
    const c = Object.assign({}, r);
    c.headers = newHeaders(r.headers);
    c.body = cloneBody(r.body);
    c.signal = AbortSignal.any([r.signal]);
    const req = Object.create(Request.prototype);
    attach(req, c);
    return req;
  }
}
fieldGetters(Request, (o, what) => slot(o, "Request", what), ["method", "url", "headers", "destination",
  "referrerPolicy", "mode", "credentials", "cache", "redirect", "integrity", "keepalive", "signal", "duplex"]);
addBodyMixin(Request, "Request");
tag(Request, "Request");

// ---- Response -----------------------------------------------------------

const REDIRECT_STATUS = [301, 302, 303, 307, 308];

function initResponse(r, init, bodyAndType) {
  const status = init.status === undefined ? 200 : Number(init.status);
  const st = Math.trunc(status);
  if (!Number.isFinite(status) || st < 200 || st > 599)
    throw new RangeError(`Response: the status provided (${init.status}) is outside the range [200, 599]`);
  const statusText = init.statusText === undefined ? "" : toByteString(init.statusText, "Response");
  if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(statusText)) throw new TypeError("Response: invalid statusText");
  r.status = st;
  r.statusText = statusText;
  if (init.headers !== undefined) fillHeaders(r.headers[B], init.headers);
  if (bodyAndType !== null) {
    if (NULL_BODY_STATUS.has(st)) throw new TypeError(`Response with null body status (${st}) cannot have body`);
    r.body = bodyAndType.body;
    if (bodyAndType.type !== null && !r.headers.has("content-type")) r.headers.append("content-type", bodyAndType.type);
  }
}
function newResponseRecord() {
  return { kind: "Response", type: "default", status: 200, statusText: "", headers: new Headers(), body: null,
    urlList: [], redirected: false };
}

class Response {
  constructor(body = null, init = undefined) {
    if (init !== undefined && init !== null && !isObject(init)) throw new TypeError("Response: init must be an object");
    const r = newResponseRecord();
    initResponse(r, init ?? {}, body === null || body === undefined ? null : extractBody(body));
    attach(this, r);
  }
  static error() {
    const res = Object.create(Response.prototype);
    const r = attach(res, newResponseRecord());
    r.type = "error";
    r.status = 0;
    return res;
  }
  static redirect(url, status = 302) {
    const parsed = parseURL(url, "Response.redirect");
    const st = Number(status);
    if (!REDIRECT_STATUS.includes(st)) throw new RangeError(`Response.redirect: invalid redirect status ${status}`);
    const res = Object.create(Response.prototype);
    const r = attach(res, newResponseRecord());
    r.status = st;
    r.headers.set("location", typeof parsed === "object" ? parsed.href : parsed);
    return res;
  }
  static json(data, init = undefined) {
    if (init !== undefined && init !== null && !isObject(init)) throw new TypeError("Response.json: init must be an object");
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError("Response.json: the data is not JSON serializable");
    const res = Object.create(Response.prototype);
    const r = attach(res, newResponseRecord());
    initResponse(r, init ?? {}, { body: { bytes: utf8(text), stream: null, used: false }, type: "application/json" });
    return res;
  }
  get url() {
    const r = slot(this, "Response", "url");
    if (r.urlList.length === 0) return "";
    return String(r.urlList[r.urlList.length - 1]).replace(/#.*$/, "");
  }
  get ok() { const s = slot(this, "Response", "ok").status; return s >= 200 && s <= 299; }
  clone() {
    const r = slot(this, "Response", "clone");
    if (bodyUnusable(r.body)) throw new TypeError("Response.clone: the body has already been used");
    const c = Object.assign({}, r);
    c.headers = newHeaders(r.headers);
    c.urlList = r.urlList.slice();
    c.body = cloneBody(r.body);
    const res = Object.create(Response.prototype);
    attach(res, c);
    return res;
  }
}
fieldGetters(Response, (o, what) => slot(o, "Response", what), ["type", "redirected", "status", "statusText", "headers"]);
addBodyMixin(Response, "Response");
tag(Response, "Response");

// ---- internal hooks for fetch and WapoServer -------------------------------

const http = {
  // A Response as fetch returns it, without the constructor's checks:
  // {status, statusText, headers (an array of [name, value] pairs, taken
  // unvalidated, or any HeadersInit), body (null, bytes or a
  // ReadableStream of Uint8Array), url or urlList, redirected, type}.
  makeResponse({ status = 200, statusText = "", headers, body = null, url, urlList, redirected = false, type = "basic" } = {}) {
    const res = Object.create(Response.prototype);
    const r = attach(res, newResponseRecord());
    r.status = status;
    r.statusText = statusText;
    if (Array.isArray(headers)) {
      // pairs from the network are taken as they are (names lowercased), without validation
      const h = r.headers[B];
      for (const [n, v] of headers) h.list.push([String(n).toLowerCase(), String(v)]);
    } else if (headers !== undefined) fillHeaders(r.headers[B], headers);
    r.urlList = urlList ? urlList.slice() : url !== undefined ? [url] : [];
    r.redirected = redirected;
    r.type = type;
    if (body !== null && body !== undefined) {
      r.body = isReadableStream(body)
        ? { bytes: null, stream: body, used: false }
        : { bytes: body instanceof Uint8Array ? body : copyBytes(body), stream: null, used: false };
    }
    return res;
  },
  // The request's body for sending: null, {bytes: Uint8Array} or {stream:
  // ReadableStream}. Throws a TypeError if it was already used; marks it used.
  takeRequestBody(request) {
    const r = slot(request, "Request", "takeRequestBody");
    const body = r.body;
    if (body === null) return null;
    if (bodyUnusable(body)) throw new TypeError("Request body is unusable: it has already been read");
    if (body.stream === null) { body.used = true; return { bytes: body.bytes }; }
    return { stream: body.stream };
  },
  // Header pairs in order, with names lowercased (duplicates kept).
  headerList(headers) { return slot(headers, "Headers", "headerList").list.map((e) => [e[0], e[1]]); },
  // Abort a signal from outside (e.g. host-side cancel).
  abortSignal: signalAbort,
  // Called with the reason when the signal aborts (or now if already aborted),
  // before the abort event; returns a function that unregisters it.
  onAbort(signal, fn) {
    const s = slot(signal, "AbortSignal", "onAbort");
    if (s.aborted) { fn(s.reason); return noop; }
    s.algorithms.push(fn);
    return () => { s.algorithms = s.algorithms.filter((a) => a !== fn); };
  },
  domException,
};

return { Headers, Blob, File, FormData, AbortController, AbortSignal, Request, Response, http };
