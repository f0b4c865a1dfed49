// @provides WebSocket MessageEvent CloseEvent @websocket
// The WebSocket client of the web platform (WHATWG WebSockets), done by the
// host's aiohttp client (services ws.*, src/wapo/host/services/websocket.py):
// the host connects (the run's address policy checked after DNS, as fetch),
// does the opening handshake, pings/pongs and the close handshake, and queues
// events that this module turns into open / message / error / close events,
// in order, each dispatched as a task of its own (setImmediate), as browsers do.
//
// Limits (the host's): a received message over the size limit (16 MiB by
// default) fails the connection: error event, then close with code 1009;
// sending more than the send-queue cap ahead of the network fails it too.
// Differences from a browser: the error event carries a `message` (why the
// connection failed); close() without a code sends 1000 (browsers send no
// code, and the close event then usually says 1005); no extensions are
// negotiated (permessage-deflate is off).
// The same class is the app's end of a socket WapoServer.upgradeWebSocket
// accepted (`adopt` of host.internal("websocket"): the host did the handshake; binaryType
// defaults to "arraybuffer" there, as in Deno).

const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
const EV_OPEN = 1, EV_TEXT = 2, EV_BINARY = 3, EV_ERROR = 4, EV_CLOSE = 5;
// RFC 7230 token characters (a subprotocol name)
const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const later = globalThis.setImmediate;  // a macrotask (a guest timer with no delay)

const { u32, readU32, concat, copyBytes, stateOf, fieldGetters } = host.internal("shared");

// The init dictionary of event constructor `what` (MessageEvent, CloseEvent), after its checks.
function eventInit(what, argc, eventInitDict) {
  if (argc < 1)
    throw new TypeError(`Failed to construct '${what}': 1 argument required, but only 0 present.`);
  const init = eventInitDict === undefined || eventInitDict === null ? {} : eventInitDict;
  if (typeof init !== "object") throw new TypeError(`Failed to construct '${what}': The provided value is not of type '${what}Init'.`);
  return init;
}

// ---- events ----------------------------------------------------------------------

const ME = Symbol("MessageEvent");
class MessageEvent extends Event {
  constructor(type, eventInitDict = undefined) {
    const init = eventInit("MessageEvent", arguments.length, eventInitDict);
    super(type, init);
    const ports = init.ports === undefined ? [] : Array.from(init.ports);
    this[ME] = {
      data: init.data === undefined ? null : init.data,
      origin: init.origin === undefined ? "" : String(init.origin),
      lastEventId: init.lastEventId === undefined ? "" : String(init.lastEventId),
      source: init.source === undefined ? null : init.source,
      ports: Object.freeze(ports),
    };
  }
  get [Symbol.toStringTag]() { return "MessageEvent"; }
}
fieldGetters(MessageEvent, (ev) => stateOf(ev, ME), ["data", "origin", "lastEventId", "source", "ports"]);

const CE = Symbol("CloseEvent");
class CloseEvent extends Event {
  constructor(type, eventInitDict = undefined) {
    const init = eventInit("CloseEvent", arguments.length, eventInitDict);
    super(type, init);
    const code = init.code === undefined ? 0 : Number(init.code) & 0xFFFF;
    this[CE] = {
      wasClean: !!init.wasClean,
      code,
      reason: init.reason === undefined ? "" : String(init.reason),
    };
  }
  get [Symbol.toStringTag]() { return "CloseEvent"; }
}
fieldGetters(CloseEvent, (ev) => stateOf(ev, CE), ["wasClean", "code", "reason"]);

// ---- the WebSocket -------------------------------------------------------------------

const WS = Symbol("WebSocket");
function ws(obj, what) {
  if (obj === null || typeof obj !== "object" || !(WS in obj))
    throw new TypeError(`Failed to ${what ? `execute '${what}' on` : "read"} 'WebSocket': Illegal invocation`);
  return obj[WS];
}

function syntaxError(message) {
  return new DOMException(message, "SyntaxError");
}

function parseURL(url) {
  let u;
  try {
    u = new URL(String(url));
  } catch (_) {
    throw syntaxError(`Failed to construct 'WebSocket': The URL '${String(url)}' is invalid.`);
  }
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.protocol !== "ws:" && u.protocol !== "wss:")
    throw syntaxError(`Failed to construct 'WebSocket': The URL's scheme must be either 'http', 'https', 'ws', or 'wss'. '${u.protocol}' is not allowed.`);
  if (u.hash !== "" || u.href.endsWith("#"))
    throw syntaxError(`Failed to construct 'WebSocket': The URL contains a fragment identifier ('${u.hash}'). Fragment identifiers are not allowed in WebSocket URLs.`);
  return u.href;
}

function parseProtocols(protocols) {
  if (protocols === undefined) return [];
  const list = typeof protocols === "string" ? [protocols]
    : protocols !== null && typeof protocols === "object" && typeof protocols[Symbol.iterator] === "function"
      ? Array.from(protocols, String) : [String(protocols)];
  const seen = new Set();
  for (const p of list) {
    if (!TOKEN_RE.test(p))
      throw syntaxError(`Failed to construct 'WebSocket': The subprotocol '${p}' is invalid.`);
    if (seen.has(p))
      throw syntaxError(`Failed to construct 'WebSocket': The subprotocol '${p}' is duplicated.`);
    seen.add(p);
  }
  return list;
}

function byteSize(data) {
  if (typeof data === "string") return host.utf8Encode(data).length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

// Free the host side (once).
function free(s) {
  if (s.freed) return;
  s.freed = true;
  host.close(s.id);
}

function fire(target, event) {
  target.dispatchEvent(event);
}

// Fetch and dispatch the host's events, one per microtask turn.
function pump(target) {
  const s = target[WS];
  if (s.freed) return;
  let ev;
  try {
    ev = host.call("ws.next", s.idBytes);
  } catch (e) {
    free(s);
    s.readyState = CLOSED;
    fire(target, Object.assign(new Event("error"), { message: String(e && e.message) }));
    fire(target, new CloseEvent("close", { wasClean: false, code: 1006, reason: "" }));
    return;
  }
  if (ev.length === 0) {
    host.watch(s.id, () => pump(target));
    return;
  }
  const kind = ev[0];
  if (kind === EV_OPEN) {
    const info = JSON.parse(host.utf8Decode(ev.subarray(1)));
    s.protocol = info.protocol;
    s.extensions = info.extensions;
    if (s.readyState === CONNECTING) s.readyState = OPEN;
    fire(target, new Event("open"));
  } else if (kind === EV_TEXT || kind === EV_BINARY) {
    let data;
    if (kind === EV_TEXT) data = host.utf8Decode(ev.subarray(1), false);
    else if (s.binaryType === "arraybuffer") data = ev.slice(1).buffer;
    else data = new Blob([ev.subarray(1)]);
    fire(target, new MessageEvent("message", { data, origin: s.origin }));
  } else if (kind === EV_ERROR) {
    const info = JSON.parse(host.utf8Decode(ev.subarray(1)));
    fire(target, Object.assign(new Event("error"), { message: info.message }));
  } else if (kind === EV_CLOSE) {
    const info = JSON.parse(host.utf8Decode(ev.subarray(1)));
    free(s);
    s.readyState = CLOSED;
    fire(target, new CloseEvent("close", { wasClean: info.wasClean, code: info.code, reason: info.reason }));
    return;
  }
  later(pump, target);  // the next event is a task of its own: this one's microtasks run first
}

// Send queued items in order (a Blob is read first, asynchronously).
function flush(s) {
  while (s.queue.length && !s.reading) {
    const item = s.queue[0];
    if (item instanceof Blob) {
      s.reading = true;
      item.arrayBuffer().then((buf) => {
        s.reading = false;
        s.queue[0] = { kind: 1, bytes: new Uint8Array(buf) };
        s.queuedBlobBytes -= item.size;
        flush(s);
      }, () => {
        s.reading = false;
        s.queue.shift();
        s.queuedBlobBytes -= item.size;
        flush(s);
      });
      return;
    }
    s.queue.shift();
    if (s.freed || s.readyState !== OPEN) { s.afterClose += item.bytes.length; continue; }
    host.call("ws.send", concat([s.idBytes, Uint8Array.of(item.kind), item.bytes]));
  }
}

const HANDLERS = ["open", "message", "error", "close"];
const ADOPT = Symbol("adopt");  // private: only `adopt` below makes sockets around a host id

class WebSocket extends EventTarget {
  constructor(url, protocols = undefined) {
    if (arguments.length < 1)
      throw new TypeError("Failed to construct 'WebSocket': 1 argument required, but only 0 present.");
    super();
    const adopted = url === ADOPT;  // an app's end of an accepted socket: the host id exists
    let id, href;
    if (adopted) {
      ({ id, url: href } = protocols);
    } else {
      href = parseURL(url);
      const list = parseProtocols(protocols);
      const ids = host.call("ws.open", JSON.stringify({ url: href, protocols: list }));
      id = readU32(ids);
    }
    const u = new URL(href);
    this[WS] = {
      id, idBytes: u32(id), url: href, origin: adopted ? "" : `${u.protocol}//${u.host}`,
      readyState: CONNECTING, protocol: "", extensions: "", binaryType: adopted ? "arraybuffer" : "blob",
      freed: false, queue: [], reading: false, queuedBlobBytes: 0, afterClose: 0,
      handlers: { open: null, message: null, error: null, close: null }, wrapped: {},
    };
    // events are tasks, never dispatched inside the constructor: the host may already have one (a
    // connection refused at once) before the caller could add its listeners
    later(pump, this);
  }

  get url() { return ws(this).url; }
  get readyState() { return ws(this).readyState; }
  get protocol() { return ws(this).protocol; }
  get extensions() { return ws(this).extensions; }
  get binaryType() { return ws(this).binaryType; }
  set binaryType(value) {
    const s = ws(this);
    const v = String(value);
    if (v === "blob" || v === "arraybuffer") s.binaryType = v;  // other values are ignored (WebIDL enum)
  }
  get bufferedAmount() {
    const s = ws(this);
    let n = s.afterClose + s.queuedBlobBytes;
    for (const item of s.queue) if (!(item instanceof Blob)) n += item.bytes.length;
    if (!s.freed) {
      const r = host.call("ws.buffered", s.idBytes);
      n += readU32(r);
    }
    return n;
  }

  send(data) {
    const s = ws(this, "send");
    if (arguments.length < 1)
      throw new TypeError("Failed to execute 'send' on 'WebSocket': 1 argument required, but only 0 present.");
    if (s.readyState === CONNECTING)
      throw new DOMException("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.", "InvalidStateError");
    let item;
    if (data instanceof Blob) {
      item = data;
    } else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      item = { kind: 1, bytes: copyBytes(data) };
    } else {
      item = { kind: 0, bytes: host.utf8Encode(String(data)) };
    }
    if (s.readyState !== OPEN || s.freed) {
      s.afterClose += byteSize(data);  // the spec: the amount grows, nothing is sent
      return;
    }
    if (item instanceof Blob) {
      // a Blob becomes a binary message once read; later sends wait behind it
      s.queuedBlobBytes += item.size;
      s.queue.push(item);
    } else {
      s.queue.push(item);
    }
    flush(s);
  }

  close(code = undefined, reason = undefined) {
    const s = ws(this, "close");
    if (code !== undefined) {
      const n = Number(code);
      const c = Number.isFinite(n) ? Math.trunc(n) & 0xFFFF : 0;  // WebIDL [Clamp]-less unsigned short
      if (c !== 1000 && !(c >= 3000 && c <= 4999))
        throw new DOMException(`Failed to execute 'close' on 'WebSocket': The close code must be either 1000, or between 3000 and 4999. ${c} is neither.`, "InvalidAccessError");
      code = c;
    }
    let reasonBytes = new Uint8Array(0);
    if (reason !== undefined) {
      reasonBytes = host.utf8Encode(String(reason));
      if (reasonBytes.length > 123)
        throw syntaxError("Failed to execute 'close' on 'WebSocket': The close reason must not be greater than 123 UTF-8 bytes.");
    }
    closeSocket(this, code, reasonBytes);
  }

  get [Symbol.toStringTag]() { return "WebSocket"; }
}

// The closing steps of close(), after its checks (the server side also closes with 1001).
function closeSocket(target, code, reasonBytes) {
  const s = target[WS];
  if (s.readyState === CLOSING || s.readyState === CLOSED) return;
  if (s.readyState === CONNECTING) {
    // fail the connection: error, then close 1006 (as a task, not synchronously)
    s.readyState = CLOSING;
    free(s);
    later(() => {
      s.readyState = CLOSED;
      fire(target, Object.assign(new Event("error"), { message: "closed before the connection was established" }));
      fire(target, new CloseEvent("close", { wasClean: false, code: 1006, reason: "" }));
    });
    return;
  }
  s.readyState = CLOSING;
  flush(s);
  const c = code === undefined ? 0 : code;
  if (!s.freed) host.call("ws.close", concat([s.idBytes, Uint8Array.of(c & 255, c >> 8), reasonBytes]));
}

// onopen / onmessage / onerror / onclose: an event handler attribute is one listener,
// added where the handler is first set, calling whatever handler is set now.
for (const type of HANDLERS) {
  Object.defineProperty(WebSocket.prototype, `on${type}`, {
    get() { return ws(this).handlers[type]; },
    set(fn) {
      const s = ws(this);
      s.handlers[type] = typeof fn === "function" || (fn !== null && typeof fn === "object") ? fn : null;
      if (s.handlers[type] !== null && !s.wrapped[type]) {
        s.wrapped[type] = true;
        const self = this;
        this.addEventListener(type, function (event) {
          const h = s.handlers[type];
          if (typeof h === "function") {
            const r = h.call(self, event);
            if (r === false && type === "error") event.preventDefault();
          }
        });
      }
    },
    enumerable: true,
    configurable: true,
  });
}

for (const [name, value] of [["CONNECTING", CONNECTING], ["OPEN", OPEN], ["CLOSING", CLOSING], ["CLOSED", CLOSED]]) {
  Object.defineProperty(WebSocket, name, { value, enumerable: true });
  Object.defineProperty(WebSocket.prototype, name, { value, enumerable: true });
}

// ---- the reference's callback API (Wapo.wsOpen / wsSend / wsClose), over WebSocket ----------
// wsOpen({url, headers?, protocols?} | url, callback(cmd, msg)) -> handle; the callback gets
// ("open", handle), ("message", {kind: "text" | "binary", data: string | Uint8Array}),
// ("message", {kind: "close", code, reason}) (last) and ("error", message) before an unclean close.
// wsSend(handle, {kind: "text" | "binary", data} | string | bytes); wsClose(handle, code?, reason?).
// Pings are answered by the host: a {kind: "pong"} send is accepted and ignored.
const WS_HANDLE = Symbol("Wapo WebSocket handle");
function handleOf(h, what) {
  if (h === null || typeof h !== "object" || !(WS_HANDLE in h)) throw new TypeError(`Wapo.${what}: not a WebSocket handle from Wapo.wsOpen`);
  return h[WS_HANDLE];
}
const websocket = {
  // For WapoServer: a WebSocket around a host socket that is not connected yet (an
  // AcceptedWebSocket, services app.http.websocket / app.http.upgrade); binaryType "arraybuffer".
  adopt(id, url) { return new WebSocket(ADOPT, { id, url }); },
  // Close with any code (close() accepts only 1000 and 3000-4999): 1001 when the app stops.
  closeWith(socket, code, reason) { closeSocket(socket, code, host.utf8Encode(reason)); },
  wsOpen(options, callback) {
    if (typeof callback !== "function") throw new TypeError("Wapo.wsOpen: callback must be a function");
    const opts = typeof options === "string" ? { url: options } : options;
    if (opts === null || typeof opts !== "object") throw new TypeError("Wapo.wsOpen: options must be {url} or a URL string");
    let protocols = opts.protocols;
    if (protocols === undefined && opts.headers) {
      const h = new Headers(opts.headers).get("sec-websocket-protocol");
      if (h) protocols = h.split(",").map((p) => p.trim()).filter(Boolean);
    }
    const ws = new WebSocket(String(opts.url), protocols);
    ws.binaryType = "arraybuffer";
    const handle = Object.freeze({ [WS_HANDLE]: ws });
    const deliver = (...args) => {
      try { callback(...args); } catch (e) { queueMicrotask(() => { throw e; }); }
    };
    ws.addEventListener("open", () => deliver("open", handle));
    ws.addEventListener("message", (e) => deliver("message", typeof e.data === "string"
      ? { kind: "text", data: e.data } : { kind: "binary", data: new Uint8Array(e.data) }));
    ws.addEventListener("error", (e) => deliver("error", e.message === undefined ? "WebSocket error" : String(e.message)));
    ws.addEventListener("close", (e) => deliver("message", { kind: "close", code: e.code, reason: e.reason }));
    return handle;
  },
  wsSend(handle, message) {
    const ws = handleOf(handle, "wsSend");
    if (typeof message === "string" || message instanceof ArrayBuffer || ArrayBuffer.isView(message)) return ws.send(message);
    if (message === null || typeof message !== "object") throw new TypeError("Wapo.wsSend: message must be {kind, data}, a string or bytes");
    const kind = String(message.kind);
    if (kind === "pong" || kind === "ping") return undefined;
    if (kind === "text") return ws.send(String(message.data));
    if (kind === "binary") {
      const d = message.data;
      if (typeof d === "string") return ws.send(host.utf8Encode(d));
      if (Array.isArray(d)) return ws.send(Uint8Array.from(d));
      return ws.send(d);
    }
    throw new TypeError(`Wapo.wsSend: unknown message kind ${JSON.stringify(kind)}`);
  },
  wsClose(handle, code = undefined, reason = undefined) {
    handleOf(handle, "wsClose").close(code, reason);
  },
};

return { WebSocket, MessageEvent, CloseEvent, websocket };
