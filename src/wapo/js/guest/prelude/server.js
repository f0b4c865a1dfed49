// @provides WapoServer
// WapoServer.serve(handler): answer the HTTP requests the gateway sends to a
// long-running app (`wapo deploy app.js`, then `ANY /app/<id>/<path>`).
// Host side: src/wapo/host/services/app_http.py (services app.http.*) over
// input channel 4 (docs/apps.md).
//   - `serve` opens the channel and watches it (which keeps the run alive);
//     each request becomes a web `Request` (url = "http://localhost" + the
//     path the gateway gives; the body a ReadableStream pulled from the host
//     one chunk at a time) passed to `await handler(request)`;
//   - the `Response` is sent back: the head first, then the body chunk by
//     chunk with back-pressure (the host holds at most 256 KiB);
//   - a handler that throws (or returns something other than a Response)
//     gives 500 for that request only (logged with console.error); a response
//     body that fails midway cuts the connection (never a truncated answer
//     that looks complete);
//   - requests are handled concurrently;
//   - `serve` returns {close(), finished, ...}: `close()` stops taking
//     requests (queued ones are answered 502 by the gateway; the run may then
//     end); `finished` resolves once the server stopped (closed, or the host
//     ended the channel because the app is stopping).
// `handler` may also be an object with a `fetch(request)` method (a Hono app,
// or the `export default { fetch }` style).

const ORIGIN = "http://localhost";
const NO_BODY_METHODS = new Set(["GET", "HEAD"]);
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);

function u32(n) {
  return new Uint8Array([n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255]);
}
function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
function readU32(bytes) {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
}
function streams() {
  if (!host.streams) void globalThis.ReadableStream;
  return host.streams;
}
function http() {
  if (!host.http) void globalThis.Response;
  return host.http;
}
function toBytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (typeof chunk === "string") return host.utf8Encode(chunk);
  throw new TypeError("WapoServer: a response body stream must give Uint8Array chunks");
}
function describe(e) {
  if (e && typeof e === "object" && typeof e.stack === "string" && e.stack)
    return `${e.name || "Error"}: ${e.message}\n${e.stack}`.trimEnd();
  return String(e);
}

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
    this.closed = false;
  }
  close() {
    if (this.closed) return;
    this.closed = true;
    host.close(this.readWatch);
    host.close(this.writeWatch);
    host.close(this.tx);
    host.close(this.io);
  }
}

// The request body: pulls one chunk from the host per read.
function requestBody(ex) {
  return streams().create({
    highWaterMark: 0,
    pull(controller) {
      return new Promise((resolve) => {
        const step = () => {
          if (ex.closed) { try { controller.close(); } catch (_) { /* already done */ } return resolve(); }
          let r;
          try {
            r = host.call("app.http.read_body", ex.ioBytes);
          } catch (e) {
            controller.error(e);
            return resolve();
          }
          if (r[0] === 0) {
            controller.enqueue(r.slice(1));
            resolve();
          } else if (r[0] === 1) {
            controller.close();
            resolve();
          } else {
            host.watch(ex.readWatch, step);
          }
        };
        step();
      });
    },
  });
}

function makeRequest(ex, headers) {
  const init = { method: ex.method, headers };
  if (!NO_BODY_METHODS.has(ex.method.toUpperCase())) {
    init.body = requestBody(ex);
    init.duplex = "half";
  }
  const path = ex.url.startsWith("/") ? ex.url : "/" + ex.url;
  return new Request(ORIGIN + path, init);
}

async function writeAll(ex, chunk) {
  while (chunk.length > 0) {
    const n = readU32(host.call("app.http.write", concat(ex.ioBytes, chunk)));
    chunk = chunk.subarray(n);
    if (chunk.length > 0) {
      await new Promise((resolve) => host.watch(ex.writeWatch, resolve));
      if (ex.closed) throw new TypeError("WapoServer: the request was closed");
    }
  }
}

async function sendResponse(ex, response) {
  const H = http();
  const status = response.status;
  const head = { status, headers: H.headerList(response.headers) };
  host.call("app.http.respond", concat(u32(ex.tx), host.utf8Encode(JSON.stringify(head))));
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
      await writeAll(ex, toBytes(value));
    }
    host.call("app.http.end", ex.ioBytes);
  } catch (e) {
    reader.cancel(e).catch(() => {});
    if (!ex.closed) {
      try { host.call("app.http.abort", concat(ex.ioBytes, host.utf8Encode(String(e && e.message || e)))); }
      catch (_) { /* the stream is gone */ }
    }
    // a client that went away is not the app's fault: no log for that
    if (!(e instanceof TypeError && /cannot be sent/.test(String(e.message))))
      console.error(`WapoServer: the response body of ${ex.method} ${ex.url} failed: ${describe(e)}`);
  }
}

async function handle(ex, info, handler) {
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
    await sendResponse(ex, response);
  } catch (e) {
    console.error(`WapoServer: cannot answer ${ex.method} ${ex.url}: ${describe(e)}`);
  } finally {
    ex.close();
  }
}

class Server {
  #channel;
  #channelBytes;
  #handler;
  #closed = false;
  #resolve;
  #finished;
  #served = 0;

  constructor(handler) {
    this.#handler = handler;
    this.#finished = new Promise((resolve) => { this.#resolve = resolve; });
    this.#channel = readU32(host.call("app.http.open"));
    this.#channelBytes = u32(this.#channel);
    this.#loop();
  }

  #loop() {
    while (!this.#closed) {
      let r;
      try {
        r = host.call("app.http.next", this.#channelBytes);
      } catch (e) {
        console.error(`WapoServer: ${describe(e)}`);
        if (e instanceof RangeError) {
          // out of resources for one request: try again once something was freed
          setTimeout(() => this.#loop(), 10);
          return;
        }
        this.close();
        return;
      }
      if (r[0] === 0) {
        const info = JSON.parse(host.utf8Decode(r.subarray(1), false));
        this.#served++;
        handle(new Exchange(info), info, this.#handler);
      } else if (r[0] === 1) {  // the host ended the channel: the app is stopping
        this.close();
        return;
      } else {
        host.watch(this.#channel, () => this.#loop());
        return;
      }
    }
  }

  get closed() { return this.#closed; }
  get finished() { return this.#finished; }
  get served() { return this.#served; }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    try { host.call("app.http.close", this.#channelBytes); } catch (_) { /* already gone */ }
    host.close(this.#channel);
    this.#resolve();
  }
}

function serve(handler) {
  if (handler !== null && typeof handler === "object" && typeof handler.fetch === "function") {
    const app = handler;
    handler = (request) => app.fetch(request);
  }
  if (typeof handler !== "function")
    throw new TypeError("WapoServer.serve(handler): handler must be a function (request) => Response");
  return new Server(handler);
}

const WapoServer = Object.freeze({ serve });

return { WapoServer };
