// @provides WapoSockets
// TCP (and TLS) sockets for scripts, in the style of Cloudflare Workers'
// `cloudflare:sockets`:
//
//   const socket = WapoSockets.connect({hostname, port} | "host:port",
//                                      {secureTransport: "off" | "on", allowHalfOpen: false});
//   await socket.opened;           // {remoteAddress, localAddress}
//   socket.readable                // ReadableStream of Uint8Array (a byte stream)
//   socket.writable                // WritableStream of Uint8Array / ArrayBuffer / views / strings (UTF-8)
//   await socket.close();          // both directions, at once; `closed` resolves
//
// The host does the work (services tcp.*, src/wapo/host/services/sockets.py):
// the run's address policy is checked after DNS (a denied literal address
// throws a TypeError from connect() itself; a name resolving only to denied
// addresses rejects `opened` and `closed` with a TypeError naming the
// reason), TLS verifies against the system roots plus the policy's extra CA,
// and the run's caps bound the sockets open and the bytes buffered both ways.
// Reading pulls one host chunk at a time (nothing read ahead here); writing
// waits while the host holds too many unsent bytes.
//
// `closed` resolves once the readable side ended (or was cancelled) and the
// writable side was closed (or aborted), or on close(); it rejects when the
// connection fails. With allowHalfOpen false (the default) the end of the
// readable side also closes the writable side. Not provided: startTls().

const WRITE_MAX = 256 * 1024;  // bytes per tcp.write (the host's cap)

const { u32, concat, asBytes, stateOf } = host.internal("shared");

function deferred() {
  let resolve, reject;
  const promise = new Promise((a, b) => { resolve = a; reject = b; });
  promise.catch(() => {});  // a rejection nobody awaits is not an unhandled one
  return { promise, resolve, reject, settled: false };
}
function settle(d, ok, value) {
  if (d.settled) return;
  d.settled = true;
  (ok ? d.resolve : d.reject)(value);
}

function parseAddress(address) {
  let hostname, port;
  if (typeof address === "string") {
    const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(address) || /^([^:\[\]\s]+):(\d{1,5})$/.exec(address);
    if (!m) throw new TypeError(`connect: the address must be "host:port" or {hostname, port}, got ${JSON.stringify(address)}`);
    hostname = m[1];
    port = Number(m[2]);
  } else if (address !== null && typeof address === "object") {
    hostname = address.hostname === undefined ? undefined : String(address.hostname);
    port = Number(address.port);
    if (!hostname) throw new TypeError("connect: the address has no hostname");
    if (hostname.startsWith("[") && hostname.endsWith("]")) hostname = hostname.slice(1, -1);
  } else {
    throw new TypeError("connect: the address must be \"host:port\" or {hostname, port}");
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new TypeError(`connect: port ${String(address && address.port !== undefined ? address.port : port)} is not 1..65535`);
  return { hostname, port };
}

const TOKEN = Symbol("Socket");
const STATE = Symbol("socket state");

class Socket {
  constructor(token, st) {
    if (token !== TOKEN) throw new TypeError("Illegal constructor: use WapoSockets.connect()");
    this[STATE] = st;
  }
  get readable() { return state(this).readable; }
  get writable() { return state(this).writable; }
  get opened() { return state(this).opened.promise; }
  get closed() { return state(this).closed.promise; }
  get upgraded() { state(this); return false; }
  get secureTransport() { return state(this).secureTransport; }
  close() {
    const st = state(this);
    shutdownAll(st, null);
    return st.closed.promise;
  }
  startTls() {
    state(this);
    throw new TypeError("socket.startTls() is not supported: connect with {secureTransport: 'on'}");
  }
  get [Symbol.toStringTag]() { return "Socket"; }
}

function state(sock) { return stateOf(sock, STATE); }

// Free the host resources once; wake every loop waiting on a host watch.
function release(st) {
  if (st.released) return;
  st.released = true;
  host.close(st.wid);
  host.close(st.sid);
  const waiters = st.waiters;
  st.waiters = [];
  for (const w of waiters) w();
}

// Close everything: error === null for close(), else the failure.
function shutdownAll(st, error) {
  if (st.finished) return;
  st.finished = true;
  release(st);
  if (error === null) {
    settle(st.opened, false, new TypeError("the socket was closed before it opened"));
    if (!st.readDone) { st.readDone = true; try { st.rctl.close(); } catch (_) { /* closed already */ } }
    if (!st.writeDone) { st.writeDone = true; try { st.wctl.error(new TypeError("the socket is closed")); } catch (_) { /* done */ } }
    settle(st.closed, true, undefined);
  } else {
    settle(st.opened, false, error);
    if (!st.readDone) { st.readDone = true; try { st.rctl.error(error); } catch (_) { /* done */ } }
    if (!st.writeDone) { st.writeDone = true; try { st.wctl.error(error); } catch (_) { /* done */ } }
    settle(st.closed, false, error);
  }
}

function maybeFinish(st) {
  if (st.readDone && st.writeDone && !st.finished) {
    st.finished = true;
    release(st);
    settle(st.closed, true, undefined);
  }
}

// Wait until the host resource `id` is ready (or the socket is released).
function waitFor(st, id) {
  return new Promise((resolve) => {
    if (st.released) return resolve();
    st.waiters.push(resolve);
    host.watch(id, () => {
      const i = st.waiters.indexOf(resolve);
      if (i >= 0) st.waiters.splice(i, 1);
      resolve();
    });
  });
}

function connect(address, options = undefined) {
  const { hostname, port } = parseAddress(address);
  const opts = options === undefined || options === null ? {} : options;
  if (typeof opts !== "object") throw new TypeError("connect: options must be an object");
  const secureTransport = opts.secureTransport === undefined ? "off" : String(opts.secureTransport);
  if (secureTransport === "starttls")
    throw new TypeError("connect: secureTransport 'starttls' is not supported (use 'on' or 'off')");
  if (secureTransport !== "off" && secureTransport !== "on")
    throw new TypeError(`connect: secureTransport must be 'off' or 'on', got ${JSON.stringify(secureTransport)}`);
  const allowHalfOpen = !!opts.allowHalfOpen;
  const ids = host.call("tcp.connect", JSON.stringify({ hostname, port, tls: secureTransport === "on" }));
  const view = new DataView(ids.buffer, ids.byteOffset, 8);
  const st = {
    sid: view.getUint32(0, true), wid: view.getUint32(4, true), idBytes: null,
    secureTransport, allowHalfOpen,
    opened: deferred(), closed: deferred(),
    isOpen: false, released: false, finished: false, readDone: false, writeDone: false,
    waiters: [], rctl: null, wctl: null, readable: null, writable: null,
  };
  st.idBytes = u32(st.sid);

  waitFor(st, st.sid).then(() => {
    if (st.released) return;
    let info;
    try {
      info = JSON.parse(host.utf8Decode(host.call("tcp.opened", st.idBytes)));
    } catch (e) {
      shutdownAll(st, e);
      return;
    }
    st.isOpen = true;
    settle(st.opened, true, info);
  });

  st.readable = host.internal("streams").create({
    bytes: true,
    highWaterMark: 0,
    start(c) { st.rctl = c; },
    async pull(controller) {
      await st.opened.promise.catch(() => {});
      for (;;) {
        if (st.readDone || st.released) return;
        let r;
        try {
          r = host.call("tcp.read", st.idBytes);
        } catch (e) {
          shutdownAll(st, e);
          return;
        }
        if (r[0] === 0) {
          controller.enqueue(r.subarray(1));
          return;
        }
        if (r[0] === 1) {
          st.readDone = true;
          controller.close();
          if (!st.allowHalfOpen && !st.writeDone) {
            st.writeDone = true;
            try { host.call("tcp.shutdown", st.idBytes); } catch (_) { /* already gone */ }
            try { st.wctl.error(new TypeError("the socket's readable side ended (allowHalfOpen is false)")); } catch (_) { /* done */ }
          }
          maybeFinish(st);
          return;
        }
        await waitFor(st, st.sid);
      }
    },
    cancel() {
      st.readDone = true;
      maybeFinish(st);
    },
  });

  st.writable = new WritableStream({
    start(c) { st.wctl = c; },
    async write(chunk) {
      const bytes = asBytes(chunk, true);
      if (bytes === null)
        throw new TypeError("socket.writable: chunks must be Uint8Array, ArrayBuffer, a typed array view or a string");
      await st.opened.promise;
      for (let off = 0; off < bytes.length; ) {
        if (st.released || st.writeDone) throw new TypeError("the socket is closed");
        const n = Math.min(WRITE_MAX, bytes.length - off);
        let r;
        try {
          r = host.call("tcp.write", concat([st.idBytes, n === bytes.length ? bytes : bytes.subarray(off, off + n)]));
        } catch (e) {
          shutdownAll(st, e);
          throw e;
        }
        off += n;
        if (r[0] === 1) await waitFor(st, st.wid);
      }
    },
    async close() {
      await st.opened.promise;
      if (!st.released) host.call("tcp.shutdown", st.idBytes);
      st.writeDone = true;
      maybeFinish(st);
    },
    abort() {
      if (st.isOpen && !st.released) {
        try { host.call("tcp.shutdown", st.idBytes); } catch (_) { /* gone */ }
      }
      st.writeDone = true;
      maybeFinish(st);
    },
  }, { highWaterMark: 1 });

  return new Socket(TOKEN, st);
}

const WapoSockets = { connect, Socket };
Object.defineProperty(WapoSockets, Symbol.toStringTag, { value: "WapoSockets" });

return { WapoSockets };
