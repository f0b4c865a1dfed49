// @provides fetch
// fetch(), done by the host's HTTP client (host services http.*, see
// src/wapo/host/services/http.py): the host connects (checking every address
// against the network policy), follows redirects, enforces the fetch limits
// and streams both bodies. This module turns that into Request/Response:
//   - the request head goes to `http.start` with the body inline (strings,
//     buffers, Blob, FormData, URLSearchParams) or, for a ReadableStream body,
//     streamed chunk by chunk through an upload resource (`http.write`, with
//     back-pressure: "wait" -> watch the upload, then write again);
//   - the promise settles when the watched fetch is ready: `http.head` gives
//     the head, or throws the TypeError "fetch failed: <reason>";
//   - `response.body` pulls `http.read` one chunk at a time (nothing buffered
//     here beyond the chunk being handed out);
//   - `signal` aborts reject with `signal.reason` (an AbortError DOMException
//     unless given) before the head, and error the body stream after it;
//     every abort, cancel, error or end closes the host resources.
// Differences from a browser: no CORS/credentials/cache modes (a server-side
// fetch, like Deno's or Node's); redirect: 'manual' gives the 3xx response
// itself (status and Location readable) instead of an opaque one.

const { u32, concat, asBytes, hostRead, NULL_BODY_STATUS } = host.internal("shared");
const registry = typeof FinalizationRegistry === "function"
  ? new FinalizationRegistry((op) => op.close()) : null;

// One fetch's host resources, closed exactly once.
class Operation {
  constructor(fid, uid) {
    this.fid = fid;
    this.uid = uid;
    this.idBytes = u32(fid);
    this.closed = false;
  }
  close() {
    if (this.closed) return;
    this.closed = true;
    if (this.uid >= 0) host.close(this.uid);
    host.close(this.fid);
  }
  closeUpload() {
    if (this.uid >= 0) { const uid = this.uid; this.uid = -1; host.close(uid); }
  }
}

// Write a ReadableStream request body to the upload resource.
async function upload(op, stream, fail) {
  const reader = stream.getReader();
  const uidBytes = u32(op.uid);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (op.closed || op.uid < 0) { reader.cancel().catch(() => {}); return; }
      if (done) {
        host.call("http.end", uidBytes);
        op.closeUpload();
        return;
      }
      const bytes = asBytes(value, false);
      if (bytes === null) throw new TypeError("fetch: a request body stream must give Uint8Array chunks");
      const state = host.call("http.write", concat([uidBytes, bytes]))[0];
      if (state === 2) {  // the fetch no longer needs the body (it failed or was redirected to GET)
        host.call("http.end", uidBytes);
        op.closeUpload();
        reader.cancel().catch(() => {});
        return;
      }
      if (state === 1) {
        await new Promise((resolve) => host.watch(op.uid, resolve));
        if (op.closed || op.uid < 0) { reader.cancel().catch(() => {}); return; }
      }
    }
  } catch (e) {
    if (!op.closed) fail(e);
  }
}

// The response body: pulls one chunk from the host per read (highWaterMark 0:
// nothing is read ahead). Returns the stream and a function that errors it.
function bodyStream(op) {
  let ctl = null;
  const stream = host.internal("streams").create({
    highWaterMark: 0,
    start(c) { ctl = c; },
    pull(controller) {
      return hostRead({
        read: () => host.call("http.read", op.idBytes),
        watch: op.fid,
        gone: () => op.closed,
        got(r) {
          if (r[0] === 0) return controller.enqueue(r.subarray(1));
          op.close();
          controller.close();
        },
        failed(e) {
          op.close();
          controller.error(e);
        },
      });
    },
    cancel() {
      op.close();
    },
  });
  const error = (reason) => { try { ctl.error(reason); } catch (_) { /* already closed */ } };
  return { stream, error };
}

async function fetch(input, init = undefined) {
  const H = host.internal("http");
  const request = new Request(input, init);
  const signal = request.signal;
  if (signal.aborted) throw signal.reason;
  // the body: inline bytes, or a stream written to the host as it is read
  const taken = H.takeRequestBody(request);
  const mode = taken === null ? 0 : taken.stream ? 2 : 1;
  const head = host.utf8Encode(JSON.stringify({
    method: request.method, url: request.url, headers: H.headerList(request.headers),
    redirect: request.redirect, body: mode,
  }));
  let payload = concat(mode === 1 ? [u32(head.length), head, taken.bytes] : [u32(head.length), head]);
  const ids = host.call("http.start", payload);
  payload = null;
  const view = new DataView(ids.buffer, ids.byteOffset, 8);
  const op = new Operation(view.getUint32(0, true), view.getInt32(4, true));

  return new Promise((resolve, reject) => {
    let settled = false;
    let controllerError = null;  // errors the body stream once the response exists
    const fail = (e) => {  // the request body stream failed
      op.close();
      if (!settled) { settled = true; reject(e); }
    };
    H.onAbort(signal, (reason) => {
      if (op.closed) return;
      op.close();
      if (!settled) { settled = true; reject(reason); }
      else if (controllerError) controllerError(reason);
    });
    if (mode === 2) upload(op, taken.stream, fail);
    host.watch(op.fid, () => {
      if (op.closed || settled) return;
      let h;
      try {
        h = JSON.parse(host.utf8Decode(host.call("http.head", op.idBytes)));
      } catch (e) {
        settled = true;
        op.close();
        reject(e);
        return;
      }
      settled = true;
      let body = null;
      if (request.method === "HEAD" || NULL_BODY_STATUS.has(h.status)) {
        op.close();
      } else {
        const b = bodyStream(op);
        body = b.stream;
        controllerError = b.error;
        if (registry) registry.register(body, op);
      }
      try {
        resolve(H.makeResponse({ status: h.status, statusText: h.statusText, headers: h.headers, body,
                                 url: h.url, redirected: h.redirected, type: "basic" }));
      } catch (e) {
        op.close();
        reject(new TypeError(`fetch failed: unusable response (${e && e.message})`));
      }
    });
  });
}

return { fetch };
