// @provides ReadableStream ReadableStreamDefaultReader ReadableStreamBYOBReader ReadableStreamDefaultController ReadableByteStreamController WritableStream WritableStreamDefaultWriter WritableStreamDefaultController TransformStream TransformStreamDefaultController ByteLengthQueuingStrategy CountQueuingStrategy @streams
// WHATWG Streams, following the reference implementation's algorithms.
// Public objects keep their state in an internal record under the private
// symbol K; the algorithms below work on those records.
// BYOB readers read a byte stream's queue into the caller's (transferred) view,
// min option included; a source's controller.byobRequest is always null (sources
// enqueue, and the bytes are copied). Not provided: CompressionStream
// (TextEncoderStream/TextDecoderStream are in textstreams.js).
// Other prelude modules reach the internals through `host.internal("streams")`.

const { isObject, records, tag } = host.internal("shared");
const K = Symbol("wapo.streams");
const TOKEN = Symbol("wapo.streams.token");
const noop = () => {};
const resolvedUndefined = () => Promise.resolve(undefined);

function illegal(token) {
  if (token !== TOKEN) throw new TypeError("Illegal constructor");
}
function deferred() {
  const d = { state: "pending" };
  d.promise = new Promise((resolve, reject) => {
    d.resolve = (v) => { if (d.state === "pending") { d.state = "fulfilled"; resolve(v); } };
    d.reject = (e) => { if (d.state === "pending") { d.state = "rejected"; reject(e); } };
  });
  return d;
}
function handled(p) { p.then(undefined, noop); return p; }
function resolvedDeferred(v) { const d = deferred(); d.resolve(v); return d; }
function rejectedDeferred(e) { const d = deferred(); handled(d.promise); d.reject(e); return d; }
function promiseCall(fn, thisArg, args) {
  try { return Promise.resolve(fn.apply(thisArg, args)); } catch (e) { return Promise.reject(e); }
}
function toDict(v, what) {
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw new TypeError(`${what} must be an object`);
  return v;
}
function getCallback(dict, name, what) {
  const f = dict[name];
  if (f === undefined) return undefined;
  if (typeof f !== "function") throw new TypeError(`${what}.${name} must be a function`);
  return f;
}
const { get: internal, find: internalOrUndefined } = records(K);
// A method `what` that returns a promise: steps(record) for `obj`, a `kind`; instead a promise
// rejected with a TypeError if obj is not one, or with the message refuse(record, what) gives.
function promiseMethod(obj, kind, what, steps, refuse = undefined) {
  const r = internalOrUndefined(obj, kind);
  if (!r) return Promise.reject(new TypeError(`${what}: 'this' is not a ${kind}`));
  const message = refuse === undefined ? null : refuse(r, what);
  if (message !== null) return Promise.reject(new TypeError(message));
  return steps(r);
}
// The refusal of a reader or writer that has released its stream.
function released(r, what) {
  return r.stream === undefined ? `${what}: the ${r.kind.endsWith("Writer") ? "writer" : "reader"} has been released` : null;
}
function attach(pub, rec) {
  Object.defineProperty(pub, K, { value: rec });
  rec.pub = pub;
  return rec;
}

// ---- queuing strategies and queues -------------------------------------

function extractHighWaterMark(strategy, defaultHWM) {
  const hwm = strategy.highWaterMark;
  if (hwm === undefined) return defaultHWM;
  const n = Number(hwm);
  if (Number.isNaN(n) || n < 0) throw new RangeError("Invalid highWaterMark");
  return n;
}
function extractSizeAlgorithm(strategy) {
  const size = strategy.size;
  if (size === undefined) return () => 1;
  if (typeof size !== "function") throw new TypeError("strategy.size must be a function");
  return (chunk) => size(chunk);
}
function resetQueue(c) { c.queue = []; c.queueHead = 0; c.queueTotalSize = 0; }
function queueLength(c) { return c.queue.length - c.queueHead; }
function enqueueValueWithSize(c, value, size) {
  size = Number(size);
  if (!(size >= 0) || size === Infinity) throw new RangeError("The chunk size must be a finite, non-negative number");
  c.queue.push({ value, size });
  c.queueTotalSize += size;
}
function dequeueValue(c) {
  const pair = c.queue[c.queueHead];
  c.queue[c.queueHead++] = undefined;
  if (c.queueHead > 64 && c.queueHead * 2 > c.queue.length) { c.queue = c.queue.slice(c.queueHead); c.queueHead = 0; }
  c.queueTotalSize -= pair.size;
  if (c.queueTotalSize < 0) c.queueTotalSize = 0;
  return pair.value;
}
function peekQueueValue(c) { return c.queue[c.queueHead].value; }

// The class of a built-in queuing strategy: its highWaterMark comes from the init object,
// its size is always the function `size`.
function queuingStrategy(name, size) {
  const cls = class {
    constructor(init) {
      if (!isObject(init) || init.highWaterMark === undefined)
        throw new TypeError(`${name} requires an object with a highWaterMark`);
      Object.defineProperty(this, K, { value: { kind: name, hwm: Number(init.highWaterMark) } });
    }
    get highWaterMark() { return internal(this, name, "highWaterMark").hwm; }
    get size() { internal(this, name, "size"); return size; }
  };
  Object.defineProperty(cls, "name", { value: name });
  tag(cls, name);
  return cls;
}
const ByteLengthQueuingStrategy = queuingStrategy("ByteLengthQueuingStrategy", { size(chunk) { return chunk.byteLength; } }.size);
const CountQueuingStrategy = queuingStrategy("CountQueuingStrategy", { size() { return 1; } }.size);

// ---- ReadableStream -----------------------------------------------------

function newReadableRecord(pub) {
  return attach(pub, {
    kind: "ReadableStream", state: "readable", reader: undefined, storedError: undefined,
    disturbed: false, controller: undefined, bytes: false,
  });
}

class ReadableStream {
  constructor(underlyingSource = undefined, strategy = undefined) {
    if (underlyingSource === null) throw new TypeError("ReadableStream: underlyingSource must be an object");
    const source = toDict(underlyingSource, "underlyingSource");
    const st = toDict(strategy, "strategy");
    const rs = newReadableRecord(this);
    const cancel = getCallback(source, "cancel", "underlyingSource");
    const pull = getCallback(source, "pull", "underlyingSource");
    const start = getCallback(source, "start", "underlyingSource");
    const type = source.type;
    if (type !== undefined && String(type) !== "bytes")
      throw new TypeError(`'${String(type)}' is not a valid ReadableStreamType`);
    if (type !== undefined) {
      if (st.size !== undefined) throw new RangeError("The strategy for a byte stream cannot have a size function");
      const hwm = extractHighWaterMark(st, 0);
      rs.bytes = true;
      setUpDefaultController(rs, new ReadableByteStreamController(TOKEN), source, start, pull, cancel, hwm,
        (chunk) => chunk.byteLength);
    } else {
      const size = extractSizeAlgorithm(st);
      const hwm = extractHighWaterMark(st, 1);
      setUpDefaultController(rs, new ReadableStreamDefaultController(TOKEN), source, start, pull, cancel, hwm, size);
    }
  }
  get locked() { return internal(this, "ReadableStream", "locked").reader !== undefined; }
  cancel(reason = undefined) {
    return promiseMethod(this, "ReadableStream", "cancel", (rs) => readableStreamCancel(rs, reason),
      (rs) => (rs.reader !== undefined ? "Cannot cancel a locked ReadableStream" : null));
  }
  getReader(options = undefined) {
    const rs = internal(this, "ReadableStream", "getReader");
    const mode = toDict(options, "options").mode;
    if (mode === undefined) return new ReadableStreamDefaultReader(this);
    if (String(mode) !== "byob") throw new TypeError(`'${String(mode)}' is not a valid ReadableStreamReaderMode`);
    if (!rs.bytes) throw new TypeError("Cannot get a BYOB reader for a stream that is not a byte stream");
    return new ReadableStreamBYOBReader(this);
  }
  pipeThrough(transform, options = undefined) {
    const rs = internal(this, "ReadableStream", "pipeThrough");
    if (!isObject(transform)) throw new TypeError("pipeThrough: transform must be an object {writable, readable}");
    const readable = transform.readable;
    const rd = internalOrUndefined(readable, "ReadableStream");
    if (!rd) throw new TypeError("pipeThrough: transform.readable is not a ReadableStream");
    const writable = transform.writable;
    const ws = internalOrUndefined(writable, "WritableStream");
    if (!ws) throw new TypeError("pipeThrough: transform.writable is not a WritableStream");
    const o = pipeOptions(options);
    if (rs.reader !== undefined) throw new TypeError("pipeThrough: the ReadableStream is locked");
    if (ws.writer !== undefined) throw new TypeError("pipeThrough: the WritableStream is locked");
    handled(readableStreamPipeTo(rs, ws, o.preventClose, o.preventAbort, o.preventCancel, o.signal));
    return readable;
  }
  pipeTo(destination, options = undefined) {
    const rs = internalOrUndefined(this, "ReadableStream");
    if (!rs) return Promise.reject(new TypeError("pipeTo: 'this' is not a ReadableStream"));
    const ws = internalOrUndefined(destination, "WritableStream");
    if (!ws) return Promise.reject(new TypeError("pipeTo: the destination is not a WritableStream"));
    let o;
    try { o = pipeOptions(options); } catch (e) { return Promise.reject(e); }
    if (rs.reader !== undefined) return Promise.reject(new TypeError("pipeTo: the ReadableStream is locked"));
    if (ws.writer !== undefined) return Promise.reject(new TypeError("pipeTo: the WritableStream is locked"));
    return readableStreamPipeTo(rs, ws, o.preventClose, o.preventAbort, o.preventCancel, o.signal);
  }
  tee() {
    const rs = internal(this, "ReadableStream", "tee");
    return readableStreamTee(rs, rs.bytes).map((r) => r.pub);
  }
  values(options = undefined) {
    const rs = internal(this, "ReadableStream", "values");
    const preventCancel = !!toDict(options, "options").preventCancel;
    const reader = acquireDefaultReader(rs);
    const it = Object.create(ReadableStreamAsyncIteratorPrototype);
    Object.defineProperty(it, K, { value: { kind: "iterator", reader, preventCancel, ongoing: undefined, finished: false } });
    return it;
  }
  static from(asyncIterable) {
    return readableStreamFromIterable(asyncIterable).pub;
  }
}
Object.defineProperty(ReadableStream.prototype, Symbol.asyncIterator, {
  value: ReadableStream.prototype.values, writable: true, configurable: true,
});
tag(ReadableStream, "ReadableStream");

function pipeOptions(options) {
  const o = toDict(options, "options");
  const signal = o.signal;
  if (signal !== undefined && !(isObject(signal) && "aborted" in signal && typeof signal.addEventListener === "function"))
    throw new TypeError("pipeTo: options.signal is not an AbortSignal");
  return { preventAbort: !!o.preventAbort, preventCancel: !!o.preventCancel, preventClose: !!o.preventClose, signal };
}

const AsyncIteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);
const ReadableStreamAsyncIteratorPrototype = Object.create(AsyncIteratorPrototype, {
  next: {
    writable: true, configurable: true,
    value: function next() {
      const it = isObject(this) ? this[K] : undefined;
      if (!it || it.kind !== "iterator") return Promise.reject(new TypeError("next: not a ReadableStream iterator"));
      const steps = () => {
        if (it.finished) return Promise.resolve({ value: undefined, done: true });
        const reader = it.reader;
        const d = deferred();
        readableStreamDefaultReaderRead(reader, {
          chunkSteps: (chunk) => d.resolve({ value: chunk, done: false }),
          closeSteps: () => { readerRelease(reader); d.resolve({ value: undefined, done: true }); },
          errorSteps: (e) => { readerRelease(reader); d.reject(e); },
        });
        return d.promise.then((r) => { it.ongoing = undefined; if (r.done) it.finished = true; return r; },
          (e) => { it.ongoing = undefined; it.finished = true; throw e; });
      };
      it.ongoing = it.ongoing ? it.ongoing.then(steps, steps) : steps();
      return it.ongoing;
    },
  },
  return: {
    writable: true, configurable: true,
    value: function (value) {
      const it = isObject(this) ? this[K] : undefined;
      if (!it || it.kind !== "iterator") return Promise.reject(new TypeError("return: not a ReadableStream iterator"));
      const steps = () => {
        if (it.finished) return Promise.resolve({ value, done: true });
        it.finished = true;
        const reader = it.reader;
        if (reader.stream === undefined) return Promise.resolve({ value, done: true });
        if (!it.preventCancel) {
          const result = readableStreamCancel(reader.stream, value);
          readerRelease(reader);
          return result.then(() => ({ value, done: true }));
        }
        readerRelease(reader);
        return Promise.resolve({ value, done: true });
      };
      it.ongoing = it.ongoing ? it.ongoing.then(steps, steps) : steps();
      return it.ongoing;
    },
  },
  [Symbol.toStringTag]: { value: "ReadableStream AsyncIterator", configurable: true },
});

function readableStreamFromIterable(asyncIterable) {
  if (!isObject(asyncIterable) && typeof asyncIterable !== "string")
    throw new TypeError("ReadableStream.from: the argument is not iterable");
  let iterator;
  const asyncMethod = asyncIterable[Symbol.asyncIterator];
  if (asyncMethod !== undefined && asyncMethod !== null) {
    if (typeof asyncMethod !== "function") throw new TypeError("ReadableStream.from: Symbol.asyncIterator is not a function");
    iterator = asyncMethod.call(asyncIterable);
  } else {
    const syncMethod = asyncIterable[Symbol.iterator];
    if (typeof syncMethod !== "function") throw new TypeError("ReadableStream.from: the argument is not iterable");
    const sync = syncMethod.call(asyncIterable);
    if (!isObject(sync)) throw new TypeError("ReadableStream.from: the iterator is not an object");
    const wrap = (r) => {
      if (!isObject(r)) throw new TypeError("iterator result is not an object");
      const done = !!r.done;
      return Promise.resolve(r.value).then((value) => ({ value, done }));
    };
    iterator = {
      next() { return wrap(sync.next()); },
      get return() {
        const m = sync.return;
        if (m === undefined || m === null) return undefined;
        return (v) => wrap(m.call(sync, v));
      },
    };
  }
  if (!isObject(iterator)) throw new TypeError("ReadableStream.from: the iterator is not an object");
  const nextMethod = iterator.next;
  let rs;
  const pull = () => {
    let r;
    try { r = nextMethod.call(iterator); } catch (e) { return Promise.reject(e); }
    return Promise.resolve(r).then((result) => {
      if (!isObject(result)) throw new TypeError("ReadableStream.from: iterator result is not an object");
      if (result.done) controllerClose(rs.controller);
      else controllerEnqueue(rs.controller, result.value);
    });
  };
  const cancel = (reason) => {
    let m;
    try { m = iterator.return; } catch (e) { return Promise.reject(e); }
    if (m === undefined || m === null) return Promise.resolve();
    let r;
    try { r = m.call(iterator, reason); } catch (e) { return Promise.reject(e); }
    return Promise.resolve(r).then((result) => {
      if (!isObject(result)) throw new TypeError("ReadableStream.from: iterator return() result is not an object");
    });
  };
  rs = createReadableStream(noop, pull, cancel, 0);
  return rs;
}

// Create a ReadableStream from algorithms (the spec's CreateReadableStream).
function createReadableStream(startAlgorithm, pullAlgorithm, cancelAlgorithm, hwm = 1, size = () => 1, bytes = false) {
  const pub = Object.create(ReadableStream.prototype);
  const rs = newReadableRecord(pub);
  rs.bytes = bytes;
  const c = bytes ? new ReadableByteStreamController(TOKEN) : new ReadableStreamDefaultController(TOKEN);
  setUpControllerWithAlgorithms(rs, c, startAlgorithm, pullAlgorithm, cancelAlgorithm, hwm, size);
  return rs;
}

function isReadableLocked(rs) { return rs.reader !== undefined; }

function readableStreamCancel(rs, reason) {
  rs.disturbed = true;
  if (rs.state === "closed") return Promise.resolve(undefined);
  if (rs.state === "errored") return Promise.reject(rs.storedError);
  readableStreamClose(rs);
  const c = rs.controller;
  resetQueue(c);
  const cancelAlgorithm = c.cancelAlgorithm;
  clearControllerAlgorithms(c);
  return cancelAlgorithm(reason).then(() => undefined);
}
function readableStreamClose(rs) {
  rs.state = "closed";
  const reader = rs.reader;
  if (reader === undefined) return;
  reader.closed.resolve(undefined);
  const requests = reader.readRequests;
  reader.readRequests = [];
  for (const r of requests) r.closeSteps();
}
function readableStreamError(rs, e) {
  rs.state = "errored";
  rs.storedError = e;
  const reader = rs.reader;
  if (reader === undefined) return;
  handled(reader.closed.promise);
  reader.closed.reject(e);
  const requests = reader.readRequests;
  reader.readRequests = [];
  for (const r of requests) r.errorSteps(e);
}
function fulfillReadRequest(rs, chunk, done) {
  const r = rs.reader.readRequests.shift();
  if (done) r.closeSteps(); else r.chunkSteps(chunk);
}
function numReadRequests(rs) { return rs.reader === undefined ? 0 : rs.reader.readRequests.length; }

// ---- readers ------------------------------------------------------------

class ReadableStreamDefaultReader {
  constructor(stream) {
    const rs = internalOrUndefined(stream, "ReadableStream");
    if (!rs) throw new TypeError("ReadableStreamDefaultReader: the argument is not a ReadableStream");
    if (isReadableLocked(rs)) throw new TypeError("ReadableStreamDefaultReader: the stream is locked to another reader");
    const reader = attach(this, { kind: "ReadableStreamDefaultReader", stream: undefined, readRequests: [], closed: undefined });
    readerGenericInitialize(reader, rs);
  }
  get closed() { return promiseMethod(this, "ReadableStreamDefaultReader", "closed", (r) => r.closed.promise); }
  cancel(reason = undefined) {
    return promiseMethod(this, "ReadableStreamDefaultReader", "cancel", (r) => readableStreamCancel(r.stream, reason), released);
  }
  read() {
    return promiseMethod(this, "ReadableStreamDefaultReader", "read", (r) => {
      const d = deferred();
      readableStreamDefaultReaderRead(r, {
        chunkSteps: (chunk) => d.resolve({ value: chunk, done: false }),
        closeSteps: () => d.resolve({ value: undefined, done: true }),
        errorSteps: (e) => d.reject(e),
      });
      return d.promise;
    }, released);
  }
  releaseLock() {
    const r = internal(this, "ReadableStreamDefaultReader", "releaseLock");
    if (r.stream === undefined) return;
    readerRelease(r);
  }
}
tag(ReadableStreamDefaultReader, "ReadableStreamDefaultReader");

// A BYOB read: the view's buffer is transferred (the caller's view is detached, as the standard
// says), filled from the queue and from chunks as they are enqueued, and handed back as a view of
// the same type once it holds at least `min` elements.
class ReadableStreamBYOBReader {
  constructor(stream) {
    const rs = internalOrUndefined(stream, "ReadableStream");
    if (!rs) throw new TypeError("ReadableStreamBYOBReader: the argument is not a ReadableStream");
    if (!rs.bytes) throw new TypeError("ReadableStreamBYOBReader: the stream is not a byte stream");
    if (isReadableLocked(rs)) throw new TypeError("ReadableStreamBYOBReader: the stream is locked to another reader");
    const reader = attach(this, { kind: "ReadableStreamBYOBReader", stream: undefined, readRequests: [], closed: undefined });
    readerGenericInitialize(reader, rs);
  }
  get closed() { return promiseMethod(this, "ReadableStreamBYOBReader", "closed", (r) => r.closed.promise); }
  cancel(reason = undefined) {
    return promiseMethod(this, "ReadableStreamBYOBReader", "cancel", (r) => readableStreamCancel(r.stream, reason), released);
  }
  read(view, options = undefined) {
    return promiseMethod(this, "ReadableStreamBYOBReader", "read", (r) => {
      if (!ArrayBuffer.isView(view)) throw new TypeError("read: view must be an ArrayBufferView");
      if (view.byteLength === 0) throw new TypeError("read: view must have a non-zero byteLength");
      if (view.buffer.byteLength === 0) throw new TypeError("read: view's buffer must have a non-zero byteLength");
      if (view.buffer.detached) throw new TypeError("read: view's buffer is detached");
      const elem = view instanceof DataView ? 1 : view.BYTES_PER_ELEMENT;
      const length = view instanceof DataView ? view.byteLength : view.length;
      const min = options === undefined || options === null || options.min === undefined ? 1 : Number(options.min);
      if (!Number.isInteger(min) || min <= 0) throw new TypeError("read: options.min must be a positive integer");
      if (min > length) throw new RangeError("read: options.min is larger than the view");
      const d = deferred();
      byobRead(r, view, elem, min * elem, d);
      return d.promise;
    }, released);
  }
  releaseLock() {
    const r = internal(this, "ReadableStreamBYOBReader", "releaseLock");
    if (r.stream === undefined) return;
    readerRelease(r);
  }
}
tag(ReadableStreamBYOBReader, "ReadableStreamBYOBReader");

function byobRead(reader, view, elem, minBytes, d) {
  const rs = reader.stream;
  rs.disturbed = true;
  if (rs.state === "errored") { d.reject(rs.storedError); return; }
  const Ctor = view.constructor, offset = view.byteOffset, capacity = view.byteLength;
  const buffer = view.buffer.transfer();
  const target = new Uint8Array(buffer, offset, capacity);
  let filled = 0;
  const result = (done) => ({ value: Ctor === DataView ? new DataView(buffer, offset, filled)
    : new Ctor(buffer, offset, filled / elem), done });
  if (rs.state === "closed") { d.resolve(result(true)); return; }
  const c = rs.controller;
  // copy from a chunk; what does not fit (or would split an element) goes back to the queue's front
  const take = (chunk) => {
    const n = Math.min(chunk.byteLength, capacity - filled);
    target.set(chunk.subarray(0, n), filled);
    filled += n;
    return n < chunk.byteLength ? chunk.subarray(n) : null;
  };
  const settle = () => {
    const extra = filled % elem;
    if (extra) { filled -= extra; requeueFront(c, target.slice(filled, filled + extra)); }
  };
  while (queueLength(c) > 0 && filled < capacity) { // as much as the queue holds, as the standard fills
    const rest = take(dequeueValue(c));
    if (rest) requeueFront(c, rest);
  }
  if (filled >= minBytes) {
    settle();
    if (c.closeRequested && queueLength(c) === 0) { clearControllerAlgorithms(c); readableStreamClose(rs); }
    else controllerCallPullIfNeeded(c);
    d.resolve(result(false));
    return;
  }
  const request = {
    chunkSteps: (chunk) => {
      const rest = take(chunk);
      if (rest) requeueFront(c, rest);
      if (filled >= minBytes) { settle(); d.resolve(result(false)); }
      else rs.reader.readRequests.unshift(request); // still waiting: first in line again
    },
    closeSteps: () => {
      if (filled % elem) { d.reject(new TypeError("the stream closed in the middle of an element")); return; }
      d.resolve(result(true));
    },
    errorSteps: (e) => d.reject(e),
  };
  rs.reader.readRequests.push(request);
  controllerCallPullIfNeeded(c);
}

function requeueFront(c, bytes) {
  const pair = { value: bytes, size: bytes.byteLength };
  if (c.queueHead > 0) c.queue[--c.queueHead] = pair;
  else c.queue.unshift(pair);
  c.queueTotalSize += bytes.byteLength;
}

function acquireDefaultReader(rs) {
  return new ReadableStreamDefaultReader(rs.pub)[K];
}
function readerGenericInitialize(reader, rs) {
  reader.stream = rs;
  rs.reader = reader;
  if (rs.state === "readable") reader.closed = deferred();
  else if (rs.state === "closed") reader.closed = resolvedDeferred(undefined);
  else reader.closed = rejectedDeferred(rs.storedError);
}
function readableStreamDefaultReaderRead(reader, request) {
  const rs = reader.stream;
  rs.disturbed = true;
  if (rs.state === "closed") request.closeSteps();
  else if (rs.state === "errored") request.errorSteps(rs.storedError);
  else controllerPullSteps(rs.controller, request);
}
function readerRelease(reader) {
  const rs = reader.stream;
  const e = new TypeError("The reader was released");
  if (rs.state === "readable") { handled(reader.closed.promise); reader.closed.reject(e); }
  else reader.closed = rejectedDeferred(e);
  rs.reader = undefined;
  reader.stream = undefined;
  const requests = reader.readRequests;
  reader.readRequests = [];
  for (const r of requests) r.errorSteps(e);
}

// ---- the default controller ---------------------------------------------

class ReadableStreamDefaultController {
  constructor(token) { illegal(token); }
  get desiredSize() { return controllerGetDesiredSize(ctrl(this, "desiredSize")); }
  close() {
    const c = ctrl(this, "close");
    if (!controllerCanCloseOrEnqueue(c)) throw new TypeError("The stream is not in a state that permits close");
    controllerClose(c);
  }
  enqueue(chunk = undefined) {
    const c = ctrl(this, "enqueue");
    if (!controllerCanCloseOrEnqueue(c)) throw new TypeError("Cannot enqueue a chunk into a stream that is closed or has been requested to be closed");
    controllerEnqueue(c, chunk);
  }
  error(e = undefined) { controllerError(ctrl(this, "error"), e); }
}
tag(ReadableStreamDefaultController, "ReadableStreamDefaultController");

// A byte stream controller without BYOB support: chunks are copied into Uint8Arrays.
class ReadableByteStreamController {
  constructor(token) { illegal(token); }
  get byobRequest() { ctrl(this, "byobRequest"); return null; }
  get desiredSize() { return controllerGetDesiredSize(ctrl(this, "desiredSize")); }
  close() {
    const c = ctrl(this, "close");
    if (!controllerCanCloseOrEnqueue(c)) throw new TypeError("The stream is not in a state that permits close");
    controllerClose(c);
  }
  enqueue(chunk) {
    const c = ctrl(this, "enqueue");
    if (!ArrayBuffer.isView(chunk)) throw new TypeError("enqueue: the chunk must be an ArrayBufferView");
    if (chunk.byteLength === 0) throw new TypeError("enqueue: the chunk must have a non-zero byteLength");
    if (chunk.buffer.byteLength === 0) throw new TypeError("enqueue: the chunk's buffer must have a non-zero byteLength");
    if (!controllerCanCloseOrEnqueue(c)) throw new TypeError("Cannot enqueue a chunk into a stream that is closed or has been requested to be closed");
    controllerEnqueue(c, new Uint8Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength)));
  }
  error(e = undefined) { controllerError(ctrl(this, "error"), e); }
}
tag(ReadableByteStreamController, "ReadableByteStreamController");

function ctrl(obj, what) {
  const r = isObject(obj) ? obj[K] : undefined;
  if (!r || r.kind !== "ReadableController") throw new TypeError(`${what}: 'this' is not a ReadableStream controller`);
  return r;
}

function setUpDefaultController(rs, pub, source, start, pull, cancel, hwm, size) {
  setUpControllerWithAlgorithms(rs, pub,
    start ? (c) => start.call(source, c) : noop,
    pull ? (c) => promiseCall(pull, source, [c]) : resolvedUndefined,
    cancel ? (reason) => promiseCall(cancel, source, [reason]) : resolvedUndefined,
    hwm, size);
}
function setUpControllerWithAlgorithms(rs, pub, startAlgorithm, pullAlgorithm, cancelAlgorithm, hwm, size) {
  const c = attach(pub, {
    kind: "ReadableController", stream: rs, started: false, closeRequested: false, pullAgain: false, pulling: false,
    strategySizeAlgorithm: size, strategyHWM: hwm, pullAlgorithm, cancelAlgorithm,
  });
  resetQueue(c);
  rs.controller = c;
  const startResult = startAlgorithm(pub);
  Promise.resolve(startResult).then(() => {
    c.started = true;
    controllerCallPullIfNeeded(c);
  }, (r) => controllerError(c, r));
}
function controllerPullSteps(c, request) {
  const rs = c.stream;
  if (queueLength(c) > 0) {
    const chunk = dequeueValue(c);
    if (c.closeRequested && queueLength(c) === 0) {
      clearControllerAlgorithms(c);
      readableStreamClose(rs);
    } else controllerCallPullIfNeeded(c);
    request.chunkSteps(chunk);
  } else {
    rs.reader.readRequests.push(request);
    controllerCallPullIfNeeded(c);
  }
}
function controllerCallPullIfNeeded(c) {
  if (!controllerShouldCallPull(c)) return;
  if (c.pulling) { c.pullAgain = true; return; }
  c.pulling = true;
  c.pullAlgorithm(c.pub).then(() => {
    c.pulling = false;
    if (c.pullAgain) { c.pullAgain = false; controllerCallPullIfNeeded(c); }
  }, (e) => controllerError(c, e));
}
function controllerShouldCallPull(c) {
  const rs = c.stream;
  if (!controllerCanCloseOrEnqueue(c) || !c.started) return false;
  if (isReadableLocked(rs) && numReadRequests(rs) > 0) return true;
  return controllerGetDesiredSize(c) > 0;
}
function clearControllerAlgorithms(c) {
  c.pullAlgorithm = undefined;
  c.cancelAlgorithm = undefined;
  c.strategySizeAlgorithm = undefined;
}
function controllerClose(c) {
  if (!controllerCanCloseOrEnqueue(c)) return;
  c.closeRequested = true;
  if (queueLength(c) === 0) {
    clearControllerAlgorithms(c);
    readableStreamClose(c.stream);
  }
}
function controllerEnqueue(c, chunk) {
  if (!controllerCanCloseOrEnqueue(c)) return;
  const rs = c.stream;
  if (isReadableLocked(rs) && numReadRequests(rs) > 0) fulfillReadRequest(rs, chunk, false);
  else {
    let size;
    try { size = c.strategySizeAlgorithm(chunk); enqueueValueWithSize(c, chunk, size); }
    catch (e) { controllerError(c, e); throw e; }
  }
  controllerCallPullIfNeeded(c);
}
function controllerError(c, e) {
  const rs = c.stream;
  if (rs.state !== "readable") return;
  resetQueue(c);
  clearControllerAlgorithms(c);
  readableStreamError(rs, e);
}
function controllerGetDesiredSize(c) {
  const state = c.stream.state;
  if (state === "errored") return null;
  if (state === "closed") return 0;
  return c.strategyHWM - c.queueTotalSize;
}
function controllerHasBackpressure(c) { return !controllerShouldCallPull(c); }
function controllerCanCloseOrEnqueue(c) { return !c.closeRequested && c.stream.state === "readable"; }

// ---- tee ----------------------------------------------------------------

function cloneChunk(chunk) {
  if (ArrayBuffer.isView(chunk)) {
    const copy = new Uint8Array(chunk.byteLength);
    copy.set(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    return chunk instanceof Uint8Array ? copy : new chunk.constructor(copy.buffer, 0, chunk.byteLength / (chunk.BYTES_PER_ELEMENT || 1));
  }
  return chunk;
}
function readableStreamTee(rs, cloneForBranch2) {
  const reader = acquireDefaultReader(rs);
  let reading = false, readAgain = false, canceled1 = false, canceled2 = false;
  let reason1, reason2, branch1, branch2;
  const cancelPromise = deferred();
  const pullAlgorithm = () => {
    if (reading) { readAgain = true; return Promise.resolve(); }
    reading = true;
    readableStreamDefaultReaderRead(reader, {
      chunkSteps: (chunk) => {
        queueMicrotask(() => {
          readAgain = false;
          const chunk1 = chunk;
          let chunk2 = chunk;
          if (!canceled2 && cloneForBranch2) {
            try { chunk2 = cloneChunk(chunk); } catch (e) {
              controllerError(branch1.controller, e);
              controllerError(branch2.controller, e);
              cancelPromise.resolve(readableStreamCancel(rs, e));
              return;
            }
          }
          if (!canceled1) controllerEnqueue(branch1.controller, chunk1);
          if (!canceled2) controllerEnqueue(branch2.controller, chunk2);
          reading = false;
          if (readAgain) pullAlgorithm();
        });
      },
      closeSteps: () => {
        reading = false;
        if (!canceled1) controllerClose(branch1.controller);
        if (!canceled2) controllerClose(branch2.controller);
        if (!canceled1 || !canceled2) cancelPromise.resolve(undefined);
      },
      errorSteps: () => { reading = false; },
    });
    return Promise.resolve();
  };
  const cancel1 = (reason) => {
    canceled1 = true;
    reason1 = reason;
    if (canceled2) cancelPromise.resolve(readableStreamCancel(rs, [reason1, reason2]));
    return cancelPromise.promise;
  };
  const cancel2 = (reason) => {
    canceled2 = true;
    reason2 = reason;
    if (canceled1) cancelPromise.resolve(readableStreamCancel(rs, [reason1, reason2]));
    return cancelPromise.promise;
  };
  const size = rs.bytes ? (chunk) => chunk.byteLength : () => 1;
  const hwm = rs.bytes ? 0 : 1;
  branch1 = createReadableStream(noop, pullAlgorithm, cancel1, hwm, size, rs.bytes);
  branch2 = createReadableStream(noop, pullAlgorithm, cancel2, hwm, size, rs.bytes);
  reader.closed.promise.then(undefined, (r) => {
    controllerError(branch1.controller, r);
    controllerError(branch2.controller, r);
    if (!canceled1 || !canceled2) cancelPromise.resolve(undefined);
  });
  return [branch1, branch2];
}

// ---- pipeTo -------------------------------------------------------------

function readableStreamPipeTo(source, dest, preventClose, preventAbort, preventCancel, signal) {
  const reader = acquireDefaultReader(source);
  const writer = acquireWriter(dest);
  source.disturbed = true;
  let shuttingDown = false;
  let currentWrite = Promise.resolve(undefined);
  const result = deferred();
  let abortAlgorithm;

  const waitForWritesToFinish = () => {
    const old = currentWrite;
    return currentWrite.then(() => (old !== currentWrite ? waitForWritesToFinish() : undefined));
  };
  const finalize = (isError, error) => {
    writerRelease(writer);
    readerRelease(reader);
    if (signal !== undefined) signal.removeEventListener("abort", abortAlgorithm);
    if (isError) result.reject(error); else result.resolve(undefined);
  };
  const shutdownWithAnAction = (action, originalIsError, originalError) => {
    if (shuttingDown) return;
    shuttingDown = true;
    const doTheRest = () => {
      let p;
      try { p = Promise.resolve(action()); } catch (e) { p = Promise.reject(e); }
      p.then(() => finalize(originalIsError, originalError), (newError) => finalize(true, newError));
    };
    if (dest.state === "writable" && !writableCloseQueuedOrInFlight(dest)) waitForWritesToFinish().then(doTheRest);
    else doTheRest();
  };
  const shutdown = (isError, error) => {
    if (shuttingDown) return;
    shuttingDown = true;
    if (dest.state === "writable" && !writableCloseQueuedOrInFlight(dest))
      waitForWritesToFinish().then(() => finalize(isError, error));
    else finalize(isError, error);
  };

  if (signal !== undefined) {
    abortAlgorithm = () => {
      const error = signal.reason;
      const actions = [];
      if (!preventAbort) actions.push(() => (dest.state === "writable" ? writableStreamAbort(dest, error) : Promise.resolve()));
      if (!preventCancel) actions.push(() => (source.state === "readable" ? readableStreamCancel(source, error) : Promise.resolve()));
      shutdownWithAnAction(() => Promise.all(actions.map((a) => a())), true, error);
    };
    if (signal.aborted) { abortAlgorithm(); return result.promise; }
    signal.addEventListener("abort", abortAlgorithm);
  }

  const pipeStep = () => {
    if (shuttingDown) return Promise.resolve(true);
    return writer.ready.promise.then(() => {
      const d = deferred();
      readableStreamDefaultReaderRead(reader, {
        chunkSteps: (chunk) => {
          currentWrite = writerWrite(writer, chunk).then(undefined, noop);
          d.resolve(false);
        },
        closeSteps: () => d.resolve(true),
        errorSteps: d.reject,
      });
      return d.promise;
    });
  };
  const pipeLoop = () => new Promise((resolveLoop, rejectLoop) => {
    const next = (done) => {
      if (done) resolveLoop();
      else pipeStep().then(next, rejectLoop);
    };
    next(false);
  });

  // errors must propagate forward
  if (source.state === "errored") {
    const e = source.storedError;
    if (!preventAbort) shutdownWithAnAction(() => writableStreamAbort(dest, e), true, e); else shutdown(true, e);
  } else reader.closed.promise.then(undefined, (e) => {
    if (!preventAbort) shutdownWithAnAction(() => writableStreamAbort(dest, e), true, e); else shutdown(true, e);
  });
  // errors must propagate backward
  if (dest.state === "errored") {
    const e = dest.storedError;
    if (!preventCancel) shutdownWithAnAction(() => readableStreamCancel(source, e), true, e); else shutdown(true, e);
  } else writer.closed.promise.then(undefined, (e) => {
    if (!preventCancel) shutdownWithAnAction(() => readableStreamCancel(source, e), true, e); else shutdown(true, e);
  });
  // closing must propagate forward
  if (source.state === "closed") {
    if (!preventClose) shutdownWithAnAction(() => writerCloseWithErrorPropagation(writer)); else shutdown();
  } else reader.closed.promise.then(() => {
    if (!preventClose) shutdownWithAnAction(() => writerCloseWithErrorPropagation(writer)); else shutdown();
  }, noop);
  // closing must propagate backward
  if (writableCloseQueuedOrInFlight(dest) || dest.state === "closed") {
    const destClosed = new TypeError("the destination writable stream closed before all data could be piped to it");
    if (!preventCancel) shutdownWithAnAction(() => readableStreamCancel(source, destClosed), true, destClosed);
    else shutdown(true, destClosed);
  }
  handled(pipeLoop());
  return result.promise;
}

// ---- WritableStream -----------------------------------------------------

function newWritableRecord(pub) {
  return attach(pub, {
    kind: "WritableStream", state: "writable", storedError: undefined, writer: undefined, controller: undefined,
    writeRequests: [], inFlightWriteRequest: undefined, closeRequest: undefined, inFlightCloseRequest: undefined,
    pendingAbortRequest: undefined, backpressure: false,
  });
}

class WritableStream {
  constructor(underlyingSink = undefined, strategy = undefined) {
    if (underlyingSink === null) throw new TypeError("WritableStream: underlyingSink must be an object");
    const sink = toDict(underlyingSink, "underlyingSink");
    const st = toDict(strategy, "strategy");
    const abort = getCallback(sink, "abort", "underlyingSink");
    const close = getCallback(sink, "close", "underlyingSink");
    const start = getCallback(sink, "start", "underlyingSink");
    if (sink.type !== undefined) throw new RangeError("Invalid type is specified");
    const write = getCallback(sink, "write", "underlyingSink");
    const size = extractSizeAlgorithm(st);
    const hwm = extractHighWaterMark(st, 1);
    const ws = newWritableRecord(this);
    setUpWritableController(ws, new WritableStreamDefaultController(TOKEN),
      start ? (c) => start.call(sink, c) : noop,
      write ? (chunk, c) => promiseCall(write, sink, [chunk, c]) : resolvedUndefined,
      close ? () => promiseCall(close, sink, []) : resolvedUndefined,
      abort ? (reason) => promiseCall(abort, sink, [reason]) : resolvedUndefined,
      hwm, size);
  }
  get locked() { return internal(this, "WritableStream", "locked").writer !== undefined; }
  abort(reason = undefined) {
    return promiseMethod(this, "WritableStream", "abort", (ws) => writableStreamAbort(ws, reason),
      (ws) => (ws.writer !== undefined ? "Cannot abort a locked WritableStream" : null));
  }
  close() {
    return promiseMethod(this, "WritableStream", "close", writableStreamClose,
      (ws) => (ws.writer !== undefined ? "Cannot close a locked WritableStream" : closingRefusal(ws)));
  }
  getWriter() {
    internal(this, "WritableStream", "getWriter");
    return new WritableStreamDefaultWriter(this);
  }
}
tag(WritableStream, "WritableStream");

function createWritableStream(startAlgorithm, writeAlgorithm, closeAlgorithm, abortAlgorithm, hwm, size) {
  const ws = newWritableRecord(Object.create(WritableStream.prototype));
  setUpWritableController(ws, new WritableStreamDefaultController(TOKEN), startAlgorithm, writeAlgorithm,
    closeAlgorithm, abortAlgorithm, hwm, size);
  return ws;
}
function writableStreamAbort(ws, reason) {
  if (ws.state === "closed" || ws.state === "errored") return Promise.resolve(undefined);
  ws.controller.signalAbort(reason);
  const state = ws.state;
  if (state === "closed" || state === "errored") return Promise.resolve(undefined);
  if (ws.pendingAbortRequest !== undefined) return ws.pendingAbortRequest.promise;
  let wasAlreadyErroring = false;
  if (state === "erroring") { wasAlreadyErroring = true; reason = undefined; }
  const d = deferred();
  d.reason = reason;
  d.wasAlreadyErroring = wasAlreadyErroring;
  ws.pendingAbortRequest = d;
  if (!wasAlreadyErroring) writableStreamStartErroring(ws, reason);
  return d.promise;
}
function writableStreamClose(ws) {
  const state = ws.state;
  if (state === "closed" || state === "errored")
    return Promise.reject(new TypeError("The stream is not in the writable state and cannot be closed"));
  const d = deferred();
  ws.closeRequest = d;
  const writer = ws.writer;
  if (writer !== undefined && ws.backpressure && state === "writable") writer.ready.resolve(undefined);
  enqueueValueWithSize(ws.controller, CLOSE_SENTINEL, 0);
  writableControllerAdvanceQueueIfNeeded(ws.controller);
  return d.promise;
}
const CLOSE_SENTINEL = Symbol("close");
function writableStreamDealWithRejection(ws, error) {
  if (ws.state === "writable") { writableStreamStartErroring(ws, error); return; }
  writableStreamFinishErroring(ws);
}
function writableStreamStartErroring(ws, reason) {
  const c = ws.controller;
  ws.state = "erroring";
  ws.storedError = reason;
  const writer = ws.writer;
  if (writer !== undefined) writerEnsureReadyPromiseRejected(writer, reason);
  if (!writableHasOperationMarkedInFlight(ws) && c.started) writableStreamFinishErroring(ws);
}
function writableStreamFinishErroring(ws) {
  ws.state = "errored";
  resetQueue(ws.controller);
  const storedError = ws.storedError;
  for (const r of ws.writeRequests) r.reject(storedError);
  ws.writeRequests = [];
  if (ws.pendingAbortRequest === undefined) { writableRejectCloseAndClosedPromiseIfNeeded(ws); return; }
  const abortRequest = ws.pendingAbortRequest;
  ws.pendingAbortRequest = undefined;
  if (abortRequest.wasAlreadyErroring) {
    abortRequest.reject(storedError);
    writableRejectCloseAndClosedPromiseIfNeeded(ws);
    return;
  }
  const c = ws.controller;
  const abortAlgorithm = c.abortAlgorithm;
  writableClearAlgorithms(c);
  abortAlgorithm(abortRequest.reason).then(() => {
    abortRequest.resolve(undefined);
    writableRejectCloseAndClosedPromiseIfNeeded(ws);
  }, (reason) => {
    abortRequest.reject(reason);
    writableRejectCloseAndClosedPromiseIfNeeded(ws);
  });
}
function writableStreamFinishInFlightWrite(ws) {
  ws.inFlightWriteRequest.resolve(undefined);
  ws.inFlightWriteRequest = undefined;
}
function writableStreamFinishInFlightWriteWithError(ws, error) {
  ws.inFlightWriteRequest.reject(error);
  ws.inFlightWriteRequest = undefined;
  writableStreamDealWithRejection(ws, error);
}
function writableStreamFinishInFlightClose(ws) {
  ws.inFlightCloseRequest.resolve(undefined);
  ws.inFlightCloseRequest = undefined;
  if (ws.state === "erroring") {
    ws.storedError = undefined;
    if (ws.pendingAbortRequest !== undefined) {
      ws.pendingAbortRequest.resolve(undefined);
      ws.pendingAbortRequest = undefined;
    }
  }
  ws.state = "closed";
  const writer = ws.writer;
  if (writer !== undefined) writer.closed.resolve(undefined);
}
function writableStreamFinishInFlightCloseWithError(ws, error) {
  ws.inFlightCloseRequest.reject(error);
  ws.inFlightCloseRequest = undefined;
  if (ws.pendingAbortRequest !== undefined) {
    ws.pendingAbortRequest.reject(error);
    ws.pendingAbortRequest = undefined;
  }
  writableStreamDealWithRejection(ws, error);
}
function closingRefusal(ws) {
  return writableCloseQueuedOrInFlight(ws) ? "Cannot close a stream that is already closing or closed" : null;
}
function writableCloseQueuedOrInFlight(ws) { return ws.closeRequest !== undefined || ws.inFlightCloseRequest !== undefined; }
function writableHasOperationMarkedInFlight(ws) { return ws.inFlightWriteRequest !== undefined || ws.inFlightCloseRequest !== undefined; }
function writableRejectCloseAndClosedPromiseIfNeeded(ws) {
  if (ws.closeRequest !== undefined) {
    ws.closeRequest.reject(ws.storedError);
    ws.closeRequest = undefined;
  }
  const writer = ws.writer;
  if (writer !== undefined) {
    handled(writer.closed.promise);
    writer.closed.reject(ws.storedError);
  }
}
function writableStreamUpdateBackpressure(ws, backpressure) {
  const writer = ws.writer;
  if (writer !== undefined && backpressure !== ws.backpressure) {
    if (backpressure) writer.ready = deferred();
    else writer.ready.resolve(undefined);
  }
  ws.backpressure = backpressure;
}

// ---- the writer ---------------------------------------------------------

class WritableStreamDefaultWriter {
  constructor(stream) {
    const ws = internalOrUndefined(stream, "WritableStream");
    if (!ws) throw new TypeError("WritableStreamDefaultWriter: the argument is not a WritableStream");
    if (ws.writer !== undefined) throw new TypeError("WritableStreamDefaultWriter: the stream is locked to another writer");
    const w = attach(this, { kind: "WritableStreamDefaultWriter", stream: ws, ready: undefined, closed: undefined });
    ws.writer = w;
    const state = ws.state;
    if (state === "writable") {
      w.ready = !writableCloseQueuedOrInFlight(ws) && ws.backpressure ? deferred() : resolvedDeferred(undefined);
      w.closed = deferred();
    } else if (state === "erroring") {
      w.ready = rejectedDeferred(ws.storedError);
      w.closed = deferred();
    } else if (state === "closed") {
      w.ready = resolvedDeferred(undefined);
      w.closed = resolvedDeferred(undefined);
    } else {
      w.ready = rejectedDeferred(ws.storedError);
      w.closed = rejectedDeferred(ws.storedError);
    }
  }
  get closed() { return promiseMethod(this, "WritableStreamDefaultWriter", "closed", (w) => w.closed.promise); }
  get desiredSize() {
    const w = internal(this, "WritableStreamDefaultWriter", "desiredSize");
    const refusal = released(w, "desiredSize");
    if (refusal !== null) throw new TypeError(refusal);
    return writerGetDesiredSize(w);
  }
  get ready() { return promiseMethod(this, "WritableStreamDefaultWriter", "ready", (w) => w.ready.promise); }
  abort(reason = undefined) {
    return promiseMethod(this, "WritableStreamDefaultWriter", "abort", (w) => writableStreamAbort(w.stream, reason), released);
  }
  close() {
    return promiseMethod(this, "WritableStreamDefaultWriter", "close", (w) => writableStreamClose(w.stream),
      (w, what) => released(w, what) ?? closingRefusal(w.stream));
  }
  releaseLock() {
    const w = internal(this, "WritableStreamDefaultWriter", "releaseLock");
    if (w.stream === undefined) return;
    writerRelease(w);
  }
  write(chunk = undefined) {
    return promiseMethod(this, "WritableStreamDefaultWriter", "write", (w) => writerWrite(w, chunk), released);
  }
}
tag(WritableStreamDefaultWriter, "WritableStreamDefaultWriter");

function acquireWriter(ws) { return new WritableStreamDefaultWriter(ws.pub)[K]; }
function writerCloseWithErrorPropagation(w) {
  const ws = w.stream;
  const state = ws.state;
  if (writableCloseQueuedOrInFlight(ws) || state === "closed") return Promise.resolve(undefined);
  if (state === "errored") return Promise.reject(ws.storedError);
  return writableStreamClose(ws);
}
function writerEnsureClosedPromiseRejected(w, error) {
  if (w.closed.state === "pending") { handled(w.closed.promise); w.closed.reject(error); }
  else w.closed = rejectedDeferred(error);
}
function writerEnsureReadyPromiseRejected(w, error) {
  if (w.ready.state === "pending") { handled(w.ready.promise); w.ready.reject(error); }
  else w.ready = rejectedDeferred(error);
}
function writerGetDesiredSize(w) {
  const ws = w.stream;
  if (ws.state === "errored" || ws.state === "erroring") return null;
  if (ws.state === "closed") return 0;
  return ws.controller.strategyHWM - ws.controller.queueTotalSize;
}
function writerRelease(w) {
  const ws = w.stream;
  const releasedError = new TypeError("The writer was released and can no longer be used to monitor the stream's closedness");
  writerEnsureReadyPromiseRejected(w, releasedError);
  writerEnsureClosedPromiseRejected(w, releasedError);
  ws.writer = undefined;
  w.stream = undefined;
}
function writerWrite(w, chunk) {
  const ws = w.stream;
  const c = ws.controller;
  const chunkSize = writableControllerGetChunkSize(c, chunk);
  if (ws !== w.stream) return Promise.reject(new TypeError("write: the writer has been released"));
  const state = ws.state;
  if (state === "errored") return Promise.reject(ws.storedError);
  if (writableCloseQueuedOrInFlight(ws) || state === "closed")
    return Promise.reject(new TypeError("The stream is closing or closed and cannot be written to"));
  if (state === "erroring") return Promise.reject(ws.storedError);
  const d = deferred();
  ws.writeRequests.push(d);
  try {
    enqueueValueWithSize(c, chunk, chunkSize);
  } catch (e) {
    writableControllerErrorIfNeeded(c, e);
    return d.promise;
  }
  if (!writableCloseQueuedOrInFlight(ws) && ws.state === "writable")
    writableStreamUpdateBackpressure(ws, writableControllerGetBackpressure(c));
  writableControllerAdvanceQueueIfNeeded(c);
  return d.promise;
}

// ---- the writable controller --------------------------------------------

class WritableStreamDefaultController {
  constructor(token) { illegal(token); }
  get signal() {
    const c = wctrl(this, "signal");
    if (c.abortController === undefined) {
      c.abortController = new AbortController();
      if (c.pendingAbortReason) c.abortController.abort(c.pendingAbortReason.reason);
    }
    return c.abortController.signal;
  }
  error(e = undefined) {
    const c = wctrl(this, "error");
    if (c.stream.state !== "writable") return;
    writableControllerError(c, e);
  }
}
tag(WritableStreamDefaultController, "WritableStreamDefaultController");

function wctrl(obj, what) {
  const r = isObject(obj) ? obj[K] : undefined;
  if (!r || r.kind !== "WritableController") throw new TypeError(`${what}: 'this' is not a WritableStreamDefaultController`);
  return r;
}
function setUpWritableController(ws, pub, startAlgorithm, writeAlgorithm, closeAlgorithm, abortAlgorithm, hwm, size) {
  const c = attach(pub, {
    kind: "WritableController", stream: ws, started: false, abortController: undefined,
    strategySizeAlgorithm: size, strategyHWM: hwm, writeAlgorithm, closeAlgorithm, abortAlgorithm,
    // The AbortController is created on first use of `signal` (already aborted if the stream was).
    signalAbort(reason) {
      if (c.abortController === undefined) c.pendingAbortReason = { reason };
      else c.abortController.abort(reason);
    },
  });
  resetQueue(c);
  ws.controller = c;
  writableStreamUpdateBackpressure(ws, writableControllerGetBackpressure(c));
  const startResult = startAlgorithm(pub);
  Promise.resolve(startResult).then(() => {
    c.started = true;
    writableControllerAdvanceQueueIfNeeded(c);
  }, (r) => {
    c.started = true;
    writableStreamDealWithRejection(ws, r);
  });
}
function writableClearAlgorithms(c) {
  c.writeAlgorithm = undefined;
  c.closeAlgorithm = undefined;
  c.abortAlgorithm = undefined;
  c.strategySizeAlgorithm = undefined;
}
function writableControllerGetChunkSize(c, chunk) {
  if (c.strategySizeAlgorithm === undefined) return 1;
  try { return c.strategySizeAlgorithm(chunk); } catch (e) { writableControllerErrorIfNeeded(c, e); return 1; }
}
function writableControllerAdvanceQueueIfNeeded(c) {
  const ws = c.stream;
  if (!c.started || ws.inFlightWriteRequest !== undefined) return;
  const state = ws.state;
  if (state === "closed" || state === "errored") return;
  if (state === "erroring") { writableStreamFinishErroring(ws); return; }
  if (queueLength(c) === 0) return;
  const value = peekQueueValue(c);
  if (value === CLOSE_SENTINEL) {
    ws.inFlightCloseRequest = ws.closeRequest;
    ws.closeRequest = undefined;
    dequeueValue(c);
    const closeAlgorithm = c.closeAlgorithm;
    writableClearAlgorithms(c);
    closeAlgorithm().then(() => writableStreamFinishInFlightClose(ws),
      (r) => writableStreamFinishInFlightCloseWithError(ws, r));
  } else {
    ws.inFlightWriteRequest = ws.writeRequests.shift();
    c.writeAlgorithm(value, c.pub).then(() => {
      writableStreamFinishInFlightWrite(ws);
      const state = ws.state;
      dequeueValue(c);
      if (!writableCloseQueuedOrInFlight(ws) && state === "writable")
        writableStreamUpdateBackpressure(ws, writableControllerGetBackpressure(c));
      writableControllerAdvanceQueueIfNeeded(c);
    }, (reason) => {
      if (ws.state === "writable") writableClearAlgorithms(c);
      writableStreamFinishInFlightWriteWithError(ws, reason);
    });
  }
}
function writableControllerErrorIfNeeded(c, error) {
  if (c.stream.state === "writable") writableControllerError(c, error);
}
function writableControllerGetBackpressure(c) { return c.strategyHWM - c.queueTotalSize <= 0; }
function writableControllerError(c, error) {
  writableClearAlgorithms(c);
  writableStreamStartErroring(c.stream, error);
}

// ---- TransformStream ----------------------------------------------------

class TransformStream {
  constructor(transformer = undefined, writableStrategy = undefined, readableStrategy = undefined) {
    if (transformer === null) throw new TypeError("TransformStream: transformer must be an object");
    const t = toDict(transformer, "transformer");
    const wst = toDict(writableStrategy, "writableStrategy");
    const rst = toDict(readableStrategy, "readableStrategy");
    const cancel = getCallback(t, "cancel", "transformer");
    const flush = getCallback(t, "flush", "transformer");
    if (t.readableType !== undefined) throw new RangeError("Invalid readableType specified");
    const start = getCallback(t, "start", "transformer");
    const transform = getCallback(t, "transform", "transformer");
    if (t.writableType !== undefined) throw new RangeError("Invalid writableType specified");
    const readableHWM = extractHighWaterMark(rst, 0);
    const readableSize = extractSizeAlgorithm(rst);
    const writableHWM = extractHighWaterMark(wst, 1);
    const writableSize = extractSizeAlgorithm(wst);
    const startPromise = deferred();
    const ts = attach(this, { kind: "TransformStream" });
    initializeTransformStream(ts, startPromise.promise, writableHWM, writableSize, readableHWM, readableSize);
    const c = attach(new TransformStreamDefaultController(TOKEN), { kind: "TransformController" });
    let transformAlgorithm = (chunk) => {
      try { transformControllerEnqueue(c, chunk); return Promise.resolve(); } catch (e) { return Promise.reject(e); }
    };
    if (transform) transformAlgorithm = (chunk) => promiseCall(transform, t, [chunk, c.pub]);
    setUpTransformController(ts, c, transformAlgorithm,
      flush ? () => promiseCall(flush, t, [c.pub]) : resolvedUndefined,
      cancel ? (reason) => promiseCall(cancel, t, [reason]) : resolvedUndefined);
    if (start) startPromise.resolve(start.call(t, c.pub));
    else startPromise.resolve(undefined);
  }
  get readable() { return internal(this, "TransformStream", "readable").readable.pub; }
  get writable() { return internal(this, "TransformStream", "writable").writable.pub; }
}
tag(TransformStream, "TransformStream");

class TransformStreamDefaultController {
  constructor(token) { illegal(token); }
  get desiredSize() {
    const c = internal(this, "TransformController", "desiredSize");
    return controllerGetDesiredSize(c.stream.readable.controller);
  }
  enqueue(chunk = undefined) { transformControllerEnqueue(internal(this, "TransformController", "enqueue"), chunk); }
  error(reason = undefined) { transformStreamError(internal(this, "TransformController", "error").stream, reason); }
  terminate() { transformControllerTerminate(internal(this, "TransformController", "terminate")); }
}
tag(TransformStreamDefaultController, "TransformStreamDefaultController");

function initializeTransformStream(ts, startPromise, writableHWM, writableSize, readableHWM, readableSize) {
  const startAlgorithm = () => startPromise;
  ts.writable = createWritableStream(startAlgorithm,
    (chunk) => transformSinkWrite(ts, chunk),
    () => transformSinkClose(ts),
    (reason) => transformSinkAbort(ts, reason),
    writableHWM, writableSize);
  ts.readable = createReadableStream(startAlgorithm,
    () => { transformSetBackpressure(ts, false); return ts.backpressureChange.promise; },
    (reason) => transformSourceCancel(ts, reason),
    readableHWM, readableSize);
  ts.backpressure = undefined;
  ts.backpressureChange = undefined;
  transformSetBackpressure(ts, true);
  ts.controller = undefined;
}
function transformStreamError(ts, e) {
  controllerError(ts.readable.controller, e);
  transformErrorWritableAndUnblockWrite(ts, e);
}
function transformErrorWritableAndUnblockWrite(ts, e) {
  transformClearAlgorithms(ts.controller);
  writableControllerErrorIfNeeded(ts.writable.controller, e);
  if (ts.backpressure) transformSetBackpressure(ts, false);
}
function transformSetBackpressure(ts, backpressure) {
  if (ts.backpressureChange !== undefined) ts.backpressureChange.resolve(undefined);
  ts.backpressureChange = deferred();
  ts.backpressure = backpressure;
}
function setUpTransformController(ts, c, transformAlgorithm, flushAlgorithm, cancelAlgorithm) {
  c.stream = ts;
  ts.controller = c;
  c.transformAlgorithm = transformAlgorithm;
  c.flushAlgorithm = flushAlgorithm;
  c.cancelAlgorithm = cancelAlgorithm;
  c.finish = undefined;
}
function transformClearAlgorithms(c) {
  c.transformAlgorithm = undefined;
  c.flushAlgorithm = undefined;
  c.cancelAlgorithm = undefined;
}
function transformControllerEnqueue(c, chunk) {
  const ts = c.stream;
  const rc = ts.readable.controller;
  if (!controllerCanCloseOrEnqueue(rc)) throw new TypeError("Readable side is not in a state that permits enqueue");
  try { controllerEnqueue(rc, chunk); } catch (e) {
    transformErrorWritableAndUnblockWrite(ts, e);
    throw ts.readable.storedError;
  }
  const backpressure = controllerHasBackpressure(rc);
  if (backpressure !== ts.backpressure) transformSetBackpressure(ts, true);
}
function transformControllerTerminate(c) {
  const ts = c.stream;
  controllerClose(ts.readable.controller);
  transformErrorWritableAndUnblockWrite(ts, new TypeError("TransformStream terminated"));
}
function transformPerform(c, chunk) {
  return c.transformAlgorithm(chunk).then(undefined, (r) => {
    transformStreamError(c.stream, r);
    throw r;
  });
}
function transformSinkWrite(ts, chunk) {
  const c = ts.controller;
  if (ts.backpressure) {
    return ts.backpressureChange.promise.then(() => {
      const w = ts.writable;
      if (w.state === "erroring") throw w.storedError;
      return transformPerform(c, chunk);
    });
  }
  return transformPerform(c, chunk);
}
// The common steps of the sink's abort and close and the source's cancel: once (later calls
// get the same promise), run algorithm(c) and clear the algorithms; then, unless `other` (the
// stream on the other side) errored meanwhile, done() on success, failed(r) on a rejection.
function transformFinish(ts, other, algorithm, done, failed) {
  const c = ts.controller;
  if (c.finish !== undefined) return c.finish.promise;
  c.finish = deferred();
  const p = algorithm(c);
  transformClearAlgorithms(c);
  p.then(() => {
    if (other.state === "errored") c.finish.reject(other.storedError);
    else { done(); c.finish.resolve(undefined); }
  }, (r) => { failed(r); c.finish.reject(r); });
  return c.finish.promise;
}
function transformSinkAbort(ts, reason) {
  const readable = ts.readable;
  return transformFinish(ts, readable, (c) => c.cancelAlgorithm(reason),
    () => controllerError(readable.controller, reason), (r) => controllerError(readable.controller, r));
}
function transformSinkClose(ts) {
  const readable = ts.readable;
  return transformFinish(ts, readable, (c) => c.flushAlgorithm(),
    () => controllerClose(readable.controller), (r) => controllerError(readable.controller, r));
}
function transformSourceCancel(ts, reason) {
  const writable = ts.writable;
  const unblockWrite = (e) => {
    writableControllerErrorIfNeeded(writable.controller, e);
    if (ts.backpressure) transformSetBackpressure(ts, false);
  };
  return transformFinish(ts, writable, (c) => c.cancelAlgorithm(reason), () => unblockWrite(reason), unblockWrite);
}

// ---- internal hooks for other prelude modules ---------------------------

const streams = {
  // A ReadableStream driven by callbacks: pull(controller) / cancel(reason) may
  // return promises; controller is the public controller (enqueue/close/error).
  create({ start, pull, cancel, highWaterMark = 1, size, bytes = false } = {}) {
    const rs = createReadableStream(
      start ? (c) => start(c) : noop,
      pull ? (c) => promiseCall(pull, undefined, [c]) : resolvedUndefined,
      cancel ? (r) => promiseCall(cancel, undefined, [r]) : resolvedUndefined,
      highWaterMark, size || (bytes ? (chunk) => chunk.byteLength : () => 1), bytes);
    return rs.pub;
  },
  isReadableStream(v) { return internalOrUndefined(v, "ReadableStream") !== undefined; },
  isDisturbed(v) { return internal(v, "ReadableStream", "isDisturbed").disturbed; },
  isLocked(v) { return internal(v, "ReadableStream", "isLocked").reader !== undefined; },
  isErrored(v) { return internal(v, "ReadableStream", "isErrored").state === "errored"; },
  // Mark a stream disturbed (a body that was taken without being read).
  markDisturbed(v) { internal(v, "ReadableStream", "markDisturbed").disturbed = true; },
  // Tee a stream (chunks are copied for the second branch if they are typed arrays).
  tee(v, cloneChunks = true) {
    return readableStreamTee(internal(v, "ReadableStream", "tee"), cloneChunks).map((r) => r.pub);
  },
  // Cancel even if locked (used when a request is aborted).
  cancel(v, reason) { return readableStreamCancel(internal(v, "ReadableStream", "cancel"), reason); },
};

return {
  ReadableStream, ReadableStreamDefaultReader, ReadableStreamBYOBReader, ReadableStreamDefaultController,
  ReadableByteStreamController, WritableStream, WritableStreamDefaultWriter, WritableStreamDefaultController,
  TransformStream, TransformStreamDefaultController, ByteLengthQueuingStrategy, CountQueuingStrategy,
  streams,
};
