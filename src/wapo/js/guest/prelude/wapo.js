// @provides Wapo
// The `Wapo` namespace with the reference's names. Encoding helpers are plain
// JS; hashing, derived secrets and nested runs are host services; URL parsing,
// HTTP and SCALE delegate to the web globals (looked up when called).

const { readU32, concat, asBytes, hex, fromHex } = host.internal("shared");

function bytesOf(value, what) {
  const bytes = asBytes(value, true);
  if (bytes !== null) return bytes;
  if (Array.isArray(value)) return Uint8Array.from(value);
  throw new TypeError(`${what}: expected a string, Uint8Array, ArrayBuffer or array of bytes`);
}

// ---- print ---------------------------------------------------------------------

const LEVELS = { 1: "error", 2: "warn", 3: "info", 4: "debug", 5: "trace",
  error: "error", warn: "warn", warning: "warn", info: "info", log: "log", debug: "debug", trace: "trace" };

function print(level, ...args) {
  const method = LEVELS[typeof level === "string" ? level.toLowerCase() : level];
  if (method === undefined)
    throw new TypeError(`Wapo.print: unknown level ${JSON.stringify(String(level))} (use error, warn, info, debug, trace or 1-5)`);
  console[method](...args);
}

// ---- hex, UTF-8, base64 ------------------------------------------------------------

function hexEncode(data) {
  return hex(bytesOf(data, "Wapo.hexEncode"));
}

function hexValue(c) {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function hexDecode(text) {
  if (typeof text !== "string") throw new TypeError("Wapo.hexDecode: expected a string");
  const start = text.startsWith("0x") || text.startsWith("0X") ? 2 : 0;
  const n = text.length - start;
  if (n % 2) throw new TypeError("Wapo.hexDecode: odd number of hex digits");
  const out = new Uint8Array(n / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(text.charCodeAt(start + 2 * i)), lo = hexValue(text.charCodeAt(start + 2 * i + 1));
    if (hi < 0 || lo < 0)
      throw new TypeError(`Wapo.hexDecode: invalid hex digit at position ${start + 2 * i + (hi < 0 ? 0 : 1)}`);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function utf8Encode(text) {
  return host.utf8Encode(String(text));
}

function utf8Decode(data) {
  const bytes = bytesOf(data, "Wapo.utf8Decode");
  try {
    return host.utf8Decode(bytes, true);
  } catch (e) {
    return new TextDecoder().decode(bytes); // invalid UTF-8: U+FFFD replacement as the web does
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_VALUE = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64_VALUE[B64.charCodeAt(i)] = i;
B64_VALUE[45] = 62; // '-' (URL-safe alphabet)
B64_VALUE[95] = 63; // '_'

function base64Encode(data, padding = true) {
  const b = bytesOf(data, "Wapo.base64Encode");
  let s = "";
  let i = 0;
  for (; i + 2 < b.length; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < b.length) {
    const n = (b[i] << 16) | ((i + 1 < b.length ? b[i + 1] : 0) << 8);
    s += B64[n >> 18] + B64[(n >> 12) & 63];
    s += i + 1 < b.length ? B64[(n >> 6) & 63] : (padding ? "=" : "");
    s += padding ? "=" : "";
  }
  return s;
}

function base64Decode(text) {
  if (typeof text !== "string") throw new TypeError("Wapo.base64Decode: expected a string");
  const clean = text.replace(/[\t\n\f\r ]+/g, "").replace(/={1,2}$/, "");
  if (clean.length % 4 === 1) throw new TypeError("Wapo.base64Decode: invalid base64 length");
  const out = new Uint8Array(Math.floor(clean.length * 3 / 4));
  let bits = 0, acc = 0, o = 0;
  for (let i = 0; i < clean.length; i++) {
    const c = clean.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c] : -1;
    if (v < 0) throw new TypeError(`Wapo.base64Decode: invalid character at position ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 255;
    }
  }
  return out;
}

// ---- URLs (thin wrappers over the URL globals) ------------------------------------

function parseURLParams(query) {
  let text = String(query ?? "");
  if (text.startsWith("?")) text = text.slice(1);
  const out = {};
  for (const [k, v] of new URLSearchParams(text)) {
    if (!Object.prototype.hasOwnProperty.call(out, k))
      Object.defineProperty(out, k, { value: [], enumerable: true, writable: true, configurable: true });
    out[k].push(v);
  }
  return out;
}

function parseURL(input, base) {
  const u = base === undefined ? new URL(input) : new URL(input, base);
  return {
    href: u.href, origin: u.origin, protocol: u.protocol, scheme: u.protocol.replace(/:$/, ""),
    username: u.username, password: u.password, host: u.host, hostname: u.hostname, port: u.port,
    pathname: u.pathname, path: u.pathname, search: u.search, query: u.search.replace(/^\?/, ""),
    hash: u.hash, fragment: u.hash.replace(/^#/, ""), params: parseURLParams(u.search),
  };
}

// ---- host services -------------------------------------------------------------------

function hash(algorithm, message) {
  if (typeof algorithm !== "string") throw new TypeError("Wapo.hash: the algorithm must be a string");
  return host.call("hash", concat([host.utf8Encode(algorithm + "\0"), bytesOf(message, "Wapo.hash")]));
}

function deriveSecret(salt) {
  return host.call("deriveSecret", bytesOf(salt, "Wapo.deriveSecret"));
}

function memoryStats() {
  return host.memoryUsage();
}

// ---- HTTP, over fetch ------------------------------------------------------------------

// httpRequest({url, method, headers, body | bodyText, timeout}, callback): the callback is
// called as ("head", {status, statusText, headers}), ("data", Uint8Array), ("end"), or
// ("error", message) if the request fails.
function httpRequest(request, callback) {
  if (typeof globalThis.fetch !== "function")
    throw new Error("Wapo.httpRequest needs the fetch API, which this runtime does not provide");
  if (request === null || typeof request !== "object") throw new TypeError("Wapo.httpRequest: request must be an object");
  if (typeof callback !== "function") throw new TypeError("Wapo.httpRequest: callback must be a function");
  const init = { method: request.method === undefined ? "GET" : String(request.method) };
  if (request.headers !== undefined) init.headers = request.headers;
  const body = request.body !== undefined ? request.body : request.bodyText;
  if (body !== undefined && body !== null) init.body = typeof body === "string" ? body : bytesOf(body, "Wapo.httpRequest");
  if (request.timeout !== undefined && typeof AbortSignal === "function" && typeof AbortSignal.timeout === "function")
    init.signal = AbortSignal.timeout(Number(request.timeout));
  // a throwing callback is the script's own uncaught error, not a failed request
  const deliver = (...args) => {
    try {
      callback(...args);
    } catch (e) {
      queueMicrotask(() => { throw e; });
    }
  };
  let stage = "request";
  globalThis.fetch(String(request.url), init).then((res) => {
    const headers = {};
    res.headers.forEach((value, name) => { headers[name] = value; });
    deliver("head", { status: res.status, statusText: res.statusText, headers });
    stage = "body";
    return res.arrayBuffer();
  }).then((buf) => {
    deliver("data", new Uint8Array(buf));
    deliver("end");
  }, (e) => {
    deliver("error", `${stage === "body" ? "reading the body failed: " : ""}${e && e.message !== undefined ? e.message : String(e)}`);
  });
}


// ---- nested sandboxes ------------------------------------------------------------------

// run(code, {args, env, timeLimit (ms), gasLimit, memoryLimit (bytes)}) -> Promise of
// {isOk, isError, error, value, logs: [{message, level, time}]} from a separate sandbox.
// The inner run's limits are capped by this run's own (see wapo/js/services.py).
function run(code, options) {
  return new Promise((resolve, reject) => {
    if (typeof code !== "string") throw new TypeError("Wapo.run: code must be a string");
    const opts = options === undefined || options === null ? {} : options;
    if (typeof opts !== "object") throw new TypeError("Wapo.run: options must be an object");
    const request = { code };
    if (opts.args !== undefined && opts.args !== null) {
      if (typeof opts.args[Symbol.iterator] !== "function") throw new TypeError("Wapo.run: args must be an array");
      request.args = Array.from(opts.args, String);
    }
    if (opts.env !== undefined && opts.env !== null) {
      request.env = {};
      for (const [k, v] of Object.entries(opts.env)) request.env[k] = String(v);
    }
    for (const key of ["timeLimit", "gasLimit", "memoryLimit"]) {
      if (opts[key] !== undefined && opts[key] !== null) {
        const n = Number(opts[key]);
        if (!(n > 0) || !Number.isFinite(n)) throw new TypeError(`Wapo.run: ${key} must be a positive number`);
        request[key] = n;
      }
    }
    const id = host.call("wapojs.run", JSON.stringify(request));
    const rid = readU32(id);
    host.watch(rid, () => {
      let r;
      try {
        r = JSON.parse(host.utf8Decode(host.call("wapojs.runResult", id), false));
      } catch (e) {
        host.close(rid);
        reject(e);
        return;
      }
      host.close(rid);
      resolve({
        isOk: r.isOk, isError: r.isError, error: r.error, errorKind: r.errorKind, errorStack: r.errorStack,
        value: r.value, output: fromHex(r.output), logs: r.logs, duration: r.duration,
      });
    });
  });
}

// ---- the namespace ------------------------------------------------------------------------

let version;

const Wapo = {
  get version() {
    if (version === undefined) version = host.utf8Decode(host.call("wapojs.version"), false);
    return version;
  },
  print,
  hexEncode, hexDecode, utf8Encode, utf8Decode, base64Encode, base64Decode,
  parseURL, parseURLParams,
  hash, deriveSecret, memoryStats,
  get SCALE() { return globalThis.SCALE; },
  httpRequest,
  // The reference's callback-style WebSocket API, over the WebSocket global (websocket.js).
  wsOpen: (...a) => host.internal("websocket").wsOpen(...a),
  wsSend: (...a) => host.internal("websocket").wsSend(...a),
  wsClose: (...a) => host.internal("websocket").wsClose(...a),
  connect: (address, options) => globalThis.WapoSockets.connect(address, options),
  run,
};
Object.defineProperty(Wapo, Symbol.toStringTag, { value: "Wapo" });

return { Wapo };
