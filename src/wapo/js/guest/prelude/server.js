// @provides WapoServer
// The server side of a long-running JS app (`wapo deploy app.js`; docs/apps.md):
//
//   WapoServer.serve(handler, { port, hostname }?) answers HTTP: the gateway's
//     `ANY /app/<id>/<path>`, and, with `port`, the app's own port too (the host
//     listens there, only inside the run's allowed listen ports, and sends each
//     request the same way). Host side: services app.http.* over input channel 4
//     (src/wapo/host/services/app_http.py, src/wapo/host/app_server.py).
//   WapoServer.upgradeWebSocket(request, { protocol }?) -> { socket, response }:
//     the handler returns `response` (101); `socket` is a WebSocket (the client
//     class of websocket.js) that opens once the host did the handshake.
//   WapoServer.serveQueries(handler) answers queries (`POST /app/<id>/query/<path>`,
//     input channel 3; services app.query.*): `handler({path, payload, origin})`
//     returns the reply (Uint8Array, ArrayBuffer or string); a throw answers the
//     error (the gateway: 500 {"appError": message}).
//
// HTTP details:
//   - each request becomes a web `Request` (url = "http://localhost" + the path;
//     the body a ReadableStream pulled from the host one chunk at a time) passed
//     to `await handler(request)`; requests are handled concurrently;
//     `request.signal` aborts if the client goes away before the answer is sent;
//   - the `Response` goes back head first, then the body chunk by chunk with
//     back-pressure (the host holds at most 256 KiB);
//   - a handler that throws (or returns something other than a Response) gives
//     500 for that request only (logged); a response body that fails midway cuts
//     the connection (never a truncated answer that looks complete);
//   - `serve` returns {close(), finished, closed, served, addr}: `close()` stops
//     taking requests and frees the port (queued requests are answered 502; open
//     WebSockets stay); `finished` resolves once the server stopped (closed, or
//     the host ended the channel because the app is stopping, which also closes
//     the open WebSockets with 1001). One `serve` (and one `serveQueries`) per run.
// `handler` may also be an object with a `fetch(request)` method (a Hono app,
// or the `export default { fetch }` style).

const ORIGIN = "http://localhost";
const NO_BODY_METHODS = new Set(["GET", "HEAD"]);
const { u32, readU32, concat, asBytes, hostRead, NULL_BODY_STATUS } = host.internal("shared");

function toBytes(chunk, what) {
  const bytes = asBytes(chunk, true);
  if (bytes !== null) return bytes;
  throw new TypeError(`WapoServer: ${what} must be a Uint8Array, ArrayBuffer or string, not ${chunk === null ? "null" : typeof chunk}`);
}
function describe(e) {
  if (e && typeof e === "object" && typeof e.stack === "string" && e.stack)
    return `${e.name || "Error"}: ${e.message}\n${e.stack}`.trimEnd();
  return String(e);
}
function asHandler(handler, what) {
  if (handler !== null && typeof handler === "object" && typeof handler.fetch === "function") {
    const app = handler;
    return (request) => app.fetch(request);
  }
  if (typeof handler !== "function") throw new TypeError(`WapoServer.${what}: handler must be a function`);
  return handler;
}

// ---- input channels ---------------------------------------------------------------

// Takes the messages of one input channel (services `<prefix>.open|next|close`)
// and hands each to onMessage; ends on close() or when the host ends the channel.
class ChannelLoop {
  constructor(prefix, onMessage, onEnd) {
    this.prefix = prefix;
    this.onMessage = onMessage;
    this.onEnd = onEnd;
    this.closed = false;
    this.served = 0;
    this.finished = new Promise((resolve) => { this.resolve = resolve; });
    this.id = readU32(host.call(`${prefix}.open`));
    this.idBytes = u32(this.id);
    this.pump();
  }

  pump() {
    while (!this.closed) {
      let r;
      try {
        r = host.call(`${this.prefix}.next`, this.idBytes);
      } catch (e) {
        console.error(`WapoServer: ${describe(e)}`);
        if (e instanceof RangeError) {
          // out of resources for one message: try again once something was freed
          setTimeout(() => this.pump(), 10);
          return;
        }
        this.close(false);
        return;
      }
      if (r[0] === 0) {
        this.served++;
        this.onMessage(r.subarray(1));
      } else if (r[0] === 1) {  // the host ended the channel: the app is stopping
        this.close(true);
        return;
      } else {
        host.watch(this.id, () => this.pump());
        return;
      }
    }
  }

  close(byHost) {
    if (this.closed) return;
    this.closed = true;
    try { host.call(`${this.prefix}.close`, this.idBytes); } catch (_) { /* already gone */ }
    host.close(this.id);
    this.onEnd(byHost);
    this.resolve();
  }
}

// ---- HTTP ---------------------------------------------------------------------------

// One request's host resources: the reply one-shot, the body stream and its
// two watch resources; closed exactly once.
class Exchange {
  constructor(info) {
    this.method = info.method;
    this.url = info.url;
    this.tx = info.tx;
    this.io = info.io;
    this.ioBytes = u32(info.io);
    this.readWatch = info.readWatch;
    this.writeWatch = info.writeWatch;
    this.goneWatch = info.goneWatch;
    this.closed = false;
    this.upgrade = null;  // {id, socket, response} once upgradeWebSocket was called
  }
  close() {
    if (this.closed) return;
    this.closed = true;
    host.close(this.readWatch);
    host.close(this.writeWatch);
    host.close(this.goneWatch);
    host.close(this.tx);
    host.close(this.io);
  }
}

const EXCHANGES = new WeakMap();  // Request -> Exchange, for upgradeWebSocket

// The request body: pulls one chunk from the host per read.
function requestBody(ex) {
  return host.internal("streams").create({
    highWaterMark: 0,
    pull(controller) {
      return hostRead({
        read: () => host.call("app.http.read_body", ex.ioBytes),
        watch: ex.readWatch,
        gone() {
          if (ex.closed) { try { controller.close(); } catch (_) { /* already done */ } }
          return ex.closed;
        },
        got: (r) => (r[0] === 0 ? controller.enqueue(r.slice(1)) : controller.close()),
        failed: (e) => controller.error(e),
      });
    },
  });
}

function makeRequest(ex, headers) {
  // request.signal aborts when the host gives up on the request (its client went away)
  const controller = new AbortController();
  host.watch(ex.goneWatch, () => {
    if (!ex.closed) controller.abort(new DOMException("the client disconnected", "AbortError"));
  });
  const init = { method: ex.method, headers, signal: controller.signal };
  if (!NO_BODY_METHODS.has(ex.method.toUpperCase())) {
    init.body = requestBody(ex);
    init.duplex = "half";
  }
  const path = ex.url.startsWith("/") ? ex.url : "/" + ex.url;
  const request = new Request(ORIGIN + path, init);
  EXCHANGES.set(request, ex);
  return request;
}

async function writeAll(ex, chunk) {
  while (chunk.length > 0) {
    const n = readU32(host.call("app.http.write", concat([ex.ioBytes, chunk])));
    chunk = chunk.subarray(n);
    if (chunk.length > 0) {
      await new Promise((resolve) => host.watch(ex.writeWatch, resolve));
      if (ex.closed) throw new TypeError("WapoServer: the request was closed");
    }
  }
}

async function sendResponse(ex, response) {
  const H = host.internal("http");
  const status = response.status;
  const head = { status, headers: H.headerList(response.headers) };
  host.call("app.http.respond", concat([u32(ex.tx), host.utf8Encode(JSON.stringify(head))]));
  const body = response.body;
  if (body === null || ex.method.toUpperCase() === "HEAD" || NULL_BODY_STATUS.has(status)) {
    if (body !== null) body.cancel().catch(() => {});
    host.call("app.http.end", ex.ioBytes);
    return;
  }
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      await writeAll(ex, toBytes(value, "a response body chunk"));
    }
    host.call("app.http.end", ex.ioBytes);
  } catch (e) {
    reader.cancel(e).catch(() => {});
    if (!ex.closed) {
      try { host.call("app.http.abort", concat([ex.ioBytes, host.utf8Encode(String(e && e.message || e))])); }
      catch (_) { /* the stream is gone */ }
    }
    // a client that went away is not the app's fault: no log for that
    if (!(e instanceof TypeError && /cannot be sent/.test(String(e.message))))
      console.error(`WapoServer: the response body of ${ex.method} ${ex.url} failed: ${describe(e)}`);
  }
}

// The handler returned upgradeWebSocket's response: answer 101; the host does the handshake.
function acceptUpgrade(ex, live) {
  const { id, socket } = ex.upgrade;
  try {
    host.call("app.http.upgrade", concat([u32(ex.tx), u32(id)]));
  } catch (e) {
    console.error(`WapoServer: cannot accept the WebSocket of ${ex.url}: ${describe(e)}`);
    socket.close();
    return;
  }
  live.add(socket);
  socket.addEventListener("close", () => live.delete(socket));
}

async function handle(ex, info, handler, live) {
  try {
    let response;
    try {
      const request = makeRequest(ex, info.headers);
      response = await handler(request);
      if (!(response instanceof Response)) {
        throw new TypeError(`the handler returned ${response === null ? "null" : typeof response}, not a Response`);
      }
    } catch (e) {
      console.error(`WapoServer: the handler failed for ${ex.method} ${ex.url}: ${describe(e)}`);
      response = new Response("Internal Server Error", { status: 500, headers: { "content-type": "text/plain" } });
    }
    if (ex.upgrade !== null) {
      if (response === ex.upgrade.response) return acceptUpgrade(ex, live);
      ex.upgrade.socket.close();  // answered otherwise: that socket never opens
    }
    await sendResponse(ex, response);
  } catch (e) {
    console.error(`WapoServer: cannot answer ${ex.method} ${ex.url}: ${describe(e)}`);
  } finally {
    ex.close();
  }
}

function hasToken(value, token) {
  return value !== null && value.split(",").some((t) => t.trim().toLowerCase() === token);
}

function upgradeWebSocket(request, options = undefined) {
  const ex = request !== null && typeof request === "object" ? EXCHANGES.get(request) : undefined;
  if (ex === undefined)
    throw new TypeError("WapoServer.upgradeWebSocket: the request must be one WapoServer.serve gave the handler");
  const h = request.headers;
  const missing = request.method !== "GET" ? `it is ${request.method}, not GET`
    : !hasToken(h.get("upgrade"), "websocket") ? "no 'Upgrade: websocket' header"
      : !hasToken(h.get("connection"), "upgrade") ? "no 'Connection: Upgrade' header"
        : !h.get("sec-websocket-key") ? "no 'Sec-WebSocket-Key' header" : null;
  if (missing !== null)
    throw new TypeError(`WapoServer.upgradeWebSocket: not a WebSocket upgrade request (${missing})`);
  if (ex.upgrade !== null) throw new TypeError("WapoServer.upgradeWebSocket: this request is already upgraded");
  if (options !== undefined && (options === null || typeof options !== "object"))
    throw new TypeError("WapoServer.upgradeWebSocket: options must be an object {protocol}");
  const protocol = options === undefined || options.protocol === undefined ? "" : String(options.protocol);
  const id = readU32(host.call("app.http.websocket", JSON.stringify({ protocol })));
  const socket = host.internal("websocket").adopt(id, "ws" + request.url.slice("http".length));
  const response = host.internal("http").makeResponse({ status: 101 });
  ex.upgrade = { id, socket, response };
  return { socket, response };
}

function listenOptions(options) {
  if (options === undefined || options === null) return null;
  if (typeof options !== "object") throw new TypeError("WapoServer.serve: options must be an object {port, hostname}");
  const { port, hostname = "127.0.0.1" } = options;
  if (port === undefined) return null;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new TypeError(`WapoServer.serve: port must be an integer 1..65535, not ${String(port)}`);
  if (typeof hostname !== "string") throw new TypeError("WapoServer.serve: hostname must be a string");
  return { port, hostname };
}

class Server {
  #loop;
  #listener = null;
  #addr = null;
  #live = new Set();  // accepted WebSockets not yet closed

  constructor(handler, options) {
    const listen = listenOptions(options);
    if (listen !== null) {  // bind first: a refused port leaves the app free to serve() again
      this.#listener = readU32(host.call("app.http.listen", JSON.stringify(listen)));
      this.#addr = Object.freeze({ ...listen });
    }
    try {
      this.#loop = new ChannelLoop("app.http", (bytes) => {
        const info = JSON.parse(host.utf8Decode(bytes, false));
        handle(new Exchange(info), info, handler, this.#live);
      }, (byHost) => this.#end(byHost));
    } catch (e) {
      this.#end(false);
      throw e;
    }
  }

  #end(byHost) {
    if (this.#listener !== null) {
      host.close(this.#listener);  // the port is free again
      this.#listener = null;
    }
    if (byHost) for (const socket of this.#live) host.internal("websocket").closeWith(socket, 1001, "the app is stopping");
  }

  get closed() { return this.#loop.closed; }
  get finished() { return this.#loop.finished; }
  get served() { return this.#loop.served; }
  get addr() { return this.#addr; }
  close() { this.#loop.close(false); }
}

function serve(handler, options = undefined) {
  return new Server(asHandler(handler, "serve(handler, options)"), options);
}

// ---- queries ------------------------------------------------------------------------

// app.query.next: u32 reply id, u8 has-origin (+ 32 bytes), u32 path length, path, payload
function parseQuery(b) {
  let at = 5;
  let origin = null;
  if (b[4] === 1) {
    origin = b.slice(5, 37);
    at = 37;
  }
  const n = readU32(b, at);
  at += 4;
  return { tx: readU32(b), path: host.utf8Decode(b.subarray(at, at + n), false), payload: b.slice(at + n), origin };
}

async function answerQuery(q, handler) {
  const tx = u32(q.tx);
  try {
    const reply = await handler({ path: q.path, payload: q.payload, origin: q.origin });
    host.call("app.query.reply", concat([tx, toBytes(reply, "a query reply")]));
  } catch (e) {
    console.error(`WapoServer: the query handler failed for ${JSON.stringify(q.path)}: ${describe(e)}`);
    const message = e instanceof Error ? e.message : String(e);
    try { host.call("app.query.error", concat([tx, host.utf8Encode(message)])); } catch (_) { /* gone */ }
  } finally {
    host.close(q.tx);
  }
}

class QueryServer {
  #loop;
  constructor(handler) {
    this.#loop = new ChannelLoop("app.query", (bytes) => answerQuery(parseQuery(bytes), handler), () => {});
  }
  get closed() { return this.#loop.closed; }
  get finished() { return this.#loop.finished; }
  get served() { return this.#loop.served; }
  close() { this.#loop.close(false); }
}

function serveQueries(handler) {
  if (typeof handler !== "function") throw new TypeError("WapoServer.serveQueries: handler must be a function (query) => reply");
  return new QueryServer(handler);
}

const WapoServer = Object.freeze({ serve, upgradeWebSocket, serveQueries });

return { WapoServer };
