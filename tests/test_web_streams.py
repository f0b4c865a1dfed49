"""WHATWG streams in WapoJS: ReadableStream, WritableStream, TransformStream, queuing strategies.

Each test runs many cases in one sandbox: `case(name, async fn)` records fn's result (or the
thrown error as "!Name: message") and the script outputs them all as JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from jscases import run_cases


def test_readable_stream_basics(js):
    res = run_cases(js, r"""
case('start enqueue close', async () => readAll(new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); c.close(); } })));
case('pull on demand', async () => {
  let n = 0; const pulls = [];
  const rs = new ReadableStream({ pull(c) { pulls.push(c.desiredSize); n++; if (n > 3) c.close(); else c.enqueue(n); } },
                                { highWaterMark: 2 });
  await sleep(0);
  const before = pulls.length;
  const chunks = await readAll(rs);
  return [before, chunks];
});
case('async start delays pull', async () => {
  const log = [];
  const rs = new ReadableStream({
    start() { log.push('start'); return sleep(5).then(() => log.push('started')); },
    pull(c) { log.push('pull'); c.enqueue('x'); c.close(); },
  });
  log.push('constructed');
  const chunks = await readAll(rs);
  return [log, chunks];
});
case('size strategy and desiredSize', async () => {
  let ctl;
  new ReadableStream({ start(c) { ctl = c; } }, { highWaterMark: 10, size: (ch) => ch.length });
  const sizes = [ctl.desiredSize];
  ctl.enqueue('abcd'); sizes.push(ctl.desiredSize);
  ctl.enqueue('123456789'); sizes.push(ctl.desiredSize);
  ctl.close(); return sizes;
});
case('byte length strategy', async () => {
  const s = new ByteLengthQueuingStrategy({ highWaterMark: 16 });
  const c = new CountQueuingStrategy({ highWaterMark: 3 });
  return [s.highWaterMark, s.size(new Uint8Array(5)), c.highWaterMark, c.size('anything'), Object.prototype.toString.call(s)];
});
case('invalid strategy', async () => {
  const out = [];
  try { new ReadableStream({}, { highWaterMark: -1 }); } catch (e) { out.push(e.name); }
  try { new ReadableStream({}, { highWaterMark: NaN }); } catch (e) { out.push(e.name); }
  try { new ReadableStream({ start: 5 }); } catch (e) { out.push(e.name); }
  try { new ReadableStream({ type: 'nope' }); } catch (e) { out.push(e.name); }
  try { new ReadableStream(null); } catch (e) { out.push(e.name); }
  try { new ReadableStreamDefaultController(); } catch (e) { out.push(e.name); }
  return out;
});
case('bad size result errors the stream', async () => {
  let ctl; const rs = new ReadableStream({ start(c) { ctl = c; } }, { size: () => -1 });
  let thrown; try { ctl.enqueue('x'); } catch (e) { thrown = e.name; }
  try { await rs.getReader().read(); return 'read ok'; } catch (e) { return [thrown, e.name]; }
});
case('locked and second reader', async () => {
  const rs = new ReadableStream();
  const r1 = rs.getReader();
  const out = [rs.locked];
  try { rs.getReader(); } catch (e) { out.push(e.name); }
  try { await rs.cancel(); } catch (e) { out.push('cancel ' + e.name); }
  r1.releaseLock(); out.push(rs.locked);
  try { await r1.read(); } catch (e) { out.push('released read ' + e.name); }
  try { await r1.closed; } catch (e) { out.push('closed ' + e.name); }
  rs.getReader(); out.push(rs.locked);
  return out;
});
case('enqueue after close', async () => {
  let ctl; new ReadableStream({ start(c) { ctl = c; } });
  ctl.close();
  const out = [];
  try { ctl.enqueue(1); } catch (e) { out.push(e.name); }
  try { ctl.close(); } catch (e) { out.push(e.name); }
  return out;
});
case('error reaches pending reads and closed', async () => {
  let ctl; const rs = new ReadableStream({ start(c) { ctl = c; } });
  const reader = rs.getReader();
  const p = reader.read();
  ctl.error(new RangeError('boom'));
  const out = [];
  try { await p; } catch (e) { out.push(e.message); }
  try { await reader.closed; } catch (e) { out.push('closed ' + e.message); }
  try { await reader.read(); } catch (e) { out.push('again ' + e.message); }
  return out;
});
case('pull rejection errors the stream', async () => {
  const rs = new ReadableStream({ pull() { throw new TypeError('pull failed'); } });
  try { await rs.getReader().read(); } catch (e) { return e.message; }
});
case('cancel propagates reason and resolves', async () => {
  let reason; const rs = new ReadableStream({ start(c) { c.enqueue('a'); }, cancel(r) { reason = r; } });
  const reader = rs.getReader();
  const pending = await reader.cancel('stop');
  const after = await reader.read();
  const closed = await reader.closed;
  return [reason, pending, after.done, closed];
});
case('cancel rejection', async () => {
  const rs = new ReadableStream({ cancel() { throw new Error('no cancel'); } });
  try { await rs.cancel(); } catch (e) { return e.message; }
});
case('toStringTag and instanceof', async () => {
  const rs = new ReadableStream();
  return [String(rs), rs instanceof ReadableStream, rs.getReader() instanceof ReadableStreamDefaultReader];
});
case('byob reader modes', async () => {
  const out = [];
  try { new ReadableStream().getReader({ mode: 'byob' }); } catch (e) { out.push(e.name); }
  out.push(String(new ReadableStream({ type: 'bytes' }).getReader({ mode: 'byob' })));
  try { new ReadableStream().getReader({ mode: 'bad' }); } catch (e) { out.push(e.name); }
  return out;
});
case('byte stream with default reader', async () => {
  const src = new Uint8Array([1, 2, 3]);
  const rs = new ReadableStream({ type: 'bytes', start(c) { c.enqueue(src); c.close(); } });
  const chunks = await readAll(rs);
  let err; try { new ReadableStream({ type: 'bytes', start(c) { c.enqueue('str'); } }); } catch (e) { err = e.name; }
  return [chunks[0] instanceof Uint8Array, Array.from(chunks[0]), err];
});
""")
    assert res["start enqueue close"] == [1, 2]
    assert res["pull on demand"] == [2, [1, 2, 3]]  # filled up to the high-water mark before any read
    assert res["async start delays pull"] == [["start", "constructed", "started", "pull"], ["x"]]
    assert res["size strategy and desiredSize"] == [10, 6, -3]
    assert res["byte length strategy"] == [16, 5, 3, 1, "[object ByteLengthQueuingStrategy]"]
    assert res["invalid strategy"] == ["RangeError", "RangeError", "TypeError", "TypeError", "TypeError", "TypeError"]
    assert res["bad size result errors the stream"] == ["RangeError", "RangeError"]
    assert res["locked and second reader"] == [True, "TypeError", "cancel TypeError", False,
                                               "released read TypeError", "closed TypeError", True]
    assert res["enqueue after close"] == ["TypeError", "TypeError"]
    assert res["error reaches pending reads and closed"] == ["boom", "closed boom", "again boom"]
    assert res["pull rejection errors the stream"] == "pull failed"
    assert res["cancel propagates reason and resolves"] == ["stop", None, True, None]
    assert res["cancel rejection"] == "no cancel"
    assert res["toStringTag and instanceof"] == ["[object ReadableStream]", True, True]
    assert res["byob reader modes"] == ["TypeError", "[object ReadableStreamBYOBReader]", "TypeError"]
    assert res["byte stream with default reader"] == [True, [1, 2, 3], "TypeError"]


def test_readable_stream_iteration_from_and_tee(js):
    res = run_cases(js, r"""
case('for await', async () => {
  const out = [];
  for await (const x of new ReadableStream({ start(c) { c.enqueue('a'); c.enqueue('b'); c.close(); } })) out.push(x);
  return out;
});
case('break cancels', async () => {
  let cancelled = 'no'; let i = 0;
  const rs = new ReadableStream({ pull(c) { c.enqueue(i++); }, cancel(r) { cancelled = String(r); } });
  for await (const x of rs) { if (x === 2) break; }
  return [cancelled, rs.locked];
});
case('preventCancel', async () => {
  let cancelled = false;
  const rs = new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); c.close(); }, cancel() { cancelled = true; } });
  for await (const x of rs.values({ preventCancel: true })) break;
  return [cancelled, rs.locked, await readAll(rs)];
});
case('iteration error', async () => {
  const rs = new ReadableStream({ start(c) { c.enqueue(1); c.error(new Error('it broke')); } });
  try { for await (const x of rs) {} } catch (e) { return e.message; }
});
case('from array and promises', async () => readAll(ReadableStream.from([1, Promise.resolve(2), 3])));
case('from async generator', async () => {
  async function* gen() { yield 'a'; await sleep(1); yield 'b'; }
  return readAll(ReadableStream.from(gen()));
});
case('from string', async () => readAll(ReadableStream.from('hi')));
case('from cancel calls return', async () => {
  let finished = false;
  function* gen() { try { yield 1; yield 2; } finally { finished = true; } }
  const rs = ReadableStream.from(gen());
  const reader = rs.getReader();
  await reader.read();
  await reader.cancel('enough');
  return finished;
});
case('from non iterable', async () => { ReadableStream.from(5); });
case('tee', async () => {
  const [a, b] = ReadableStream.from(['x', 'y']).tee();
  return [await readAll(a), await readAll(b)];
});
case('tee cancel both reaches source', async () => {
  let reason;
  const rs = new ReadableStream({ cancel(r) { reason = r; } });
  const [a, b] = rs.tee();
  const p1 = a.cancel('r1');
  const p2 = b.cancel('r2');
  await Promise.all([p1, p2]);
  return reason;
});
case('tee error', async () => {
  let ctl; const [a, b] = new ReadableStream({ start(c) { ctl = c; } }).tee();
  ctl.error(new Error('src'));
  const out = [];
  try { await a.getReader().read(); } catch (e) { out.push(e.message); }
  try { await b.getReader().read(); } catch (e) { out.push(e.message); }
  return out;
});
case('tee locks source', async () => {
  const rs = new ReadableStream(); rs.tee(); return rs.locked;
});
""")
    assert res["for await"] == ["a", "b"]
    assert res["break cancels"] == ["undefined", False]
    assert res["preventCancel"] == [False, False, [2]]
    assert res["iteration error"] == "it broke"
    assert res["from array and promises"] == [1, 2, 3]
    assert res["from async generator"] == ["a", "b"]
    assert res["from string"] == ["h", "i"]
    assert res["from cancel calls return"] is True
    assert res["from non iterable"].startswith("!TypeError")
    assert res["tee"] == [["x", "y"], ["x", "y"]]
    assert res["tee cancel both reaches source"] == ["r1", "r2"]
    assert res["tee error"] == ["src", "src"]
    assert res["tee locks source"] is True


def test_writable_and_transform_streams(js):
    res = run_cases(js, r"""
case('writer backpressure', async () => {
  const written = []; const sizes = [];
  let release; const gate = new Promise((r) => release = r);
  const ws = new WritableStream({ async write(chunk) { await gate; written.push(chunk); } }, { highWaterMark: 2 });
  const w = ws.getWriter();
  sizes.push(w.desiredSize);
  const p1 = w.write('a'); sizes.push(w.desiredSize);
  const p2 = w.write('b'); sizes.push(w.desiredSize);
  let readyResolved = false; w.ready.then(() => readyResolved = true);
  await sleep(1);
  const readyBefore = readyResolved;
  release();
  await Promise.all([p1, p2]); await w.ready;
  await w.close();
  return [sizes, readyBefore, readyResolved, written, w.desiredSize];
});
case('sink lifecycle', async () => {
  const log = [];
  const ws = new WritableStream({
    start() { log.push('start'); },
    write(c) { log.push('write ' + c); },
    close() { log.push('close'); },
  });
  const w = ws.getWriter();
  w.write(1); w.write(2);
  await w.close(); await w.closed;
  return log;
});
case('write after close', async () => {
  const w = new WritableStream().getWriter();
  w.close();
  try { await w.write('x'); } catch (e) { return e.name; }
});
case('write error errors the stream', async () => {
  const ws = new WritableStream({ write() { throw new Error('disk full'); } });
  const w = ws.getWriter();
  const out = [];
  try { await w.write(1); } catch (e) { out.push(e.message); }
  try { await w.closed; } catch (e) { out.push('closed ' + e.message); }
  try { await w.write(2); } catch (e) { out.push('again ' + e.message); }
  out.push(w.desiredSize);
  return out;
});
case('abort reason reaches sink and signal', async () => {
  let sinkReason, signalReason;
  const ws = new WritableStream({
    start(c) { c.signal.addEventListener('abort', () => { signalReason = c.signal.reason; }); },
    abort(r) { sinkReason = r; },
  });
  const w = ws.getWriter();
  await w.abort('bye');
  let closedErr; try { await w.closed; } catch (e) { closedErr = e; }
  return [sinkReason, signalReason, closedErr];
});
case('locked writable', async () => {
  const ws = new WritableStream(); ws.getWriter();
  const out = [ws.locked];
  try { ws.getWriter(); } catch (e) { out.push(e.name); }
  try { await ws.close(); } catch (e) { out.push(e.name); }
  try { await ws.abort(); } catch (e) { out.push(e.name); }
  return out;
});
case('controller.error', async () => {
  let ctl; const ws = new WritableStream({ start(c) { ctl = c; } });
  ctl.error(new Error('ctl err'));
  try { await ws.getWriter().write('x'); } catch (e) { return e.message; }
});
case('transform', async () => {
  const ts = new TransformStream({
    transform(chunk, c) { c.enqueue(chunk * 2); c.enqueue(chunk * 2 + 1); },
    flush(c) { c.enqueue('end'); },
  });
  const w = ts.writable.getWriter();
  w.write(1); w.write(5); w.close();
  return readAll(ts.readable);
});
case('identity transform', async () => {
  const ts = new TransformStream();
  const w = ts.writable.getWriter(); w.write('a'); w.close();
  return [String(ts), await readAll(ts.readable)];
});
case('transform error', async () => {
  const ts = new TransformStream({ transform() { throw new TypeError('bad chunk'); } });
  const w = ts.writable.getWriter();
  const out = [];
  const read = ts.readable.getReader().read();  // the readable side has highWaterMark 0: a read lets writes in
  try { await w.write(1); } catch (e) { out.push(e.message); }
  try { await read; } catch (e) { out.push(e.message); }
  return out;
});
case('terminate', async () => {
  const ts = new TransformStream({ transform(chunk, c) { c.enqueue(chunk); c.terminate(); } });
  const w = ts.writable.getWriter();
  w.write('only').catch(() => {});
  const chunks = await readAll(ts.readable);
  try { await w.write('more'); } catch (e) { return [chunks, e.name]; }
});
case('pipeThrough and pipeTo', async () => {
  const sink = [];
  await ReadableStream.from(['a', 'b', 'c'])
    .pipeThrough(new TransformStream({ transform(c, ctl) { ctl.enqueue(c.toUpperCase()); } }))
    .pipeTo(new WritableStream({ write(c) { sink.push(c); } }));
  return sink;
});
case('pipeTo source error aborts dest', async () => {
  let aborted;
  const src = new ReadableStream({ start(c) { c.enqueue(1); c.error(new Error('src failed')); } });
  try { await src.pipeTo(new WritableStream({ abort(r) { aborted = r.message; } })); }
  catch (e) { return [e.message, aborted]; }
});
case('pipeTo dest error cancels source', async () => {
  let cancelled;
  const src = new ReadableStream({ pull(c) { c.enqueue(1); }, cancel(r) { cancelled = r.message; } });
  try { await src.pipeTo(new WritableStream({ write() { throw new Error('dest failed'); } })); }
  catch (e) { return [e.message, cancelled]; }
});
case('pipeTo preventClose', async () => {
  const ws = new WritableStream();
  await ReadableStream.from([1]).pipeTo(ws, { preventClose: true });
  const w = ws.getWriter(); await w.write(2); await w.close();
  return 'ok';
});
case('pipeTo abort signal', async () => {
  const ac = new AbortController();
  const p2 = new ReadableStream().pipeTo(new WritableStream(), { signal: ac.signal });
  ac.abort();
  let err; try { await p2; } catch (e) { err = e.name; }
  let cancelReason, abortReason;
  const ac3 = new AbortController();
  const src3 = new ReadableStream({ pull(c) { return sleep(2).then(() => c.enqueue('tick')); }, cancel(r) { cancelReason = r; } });
  const dst3 = new WritableStream({ abort(r) { abortReason = r; } });
  const p4 = src3.pipeTo(dst3, { signal: ac3.signal });
  const locked = await src3.pipeTo(new WritableStream()).catch((e) => 'locked:' + e.name);
  setTimeout(() => ac3.abort('custom reason'), 5);
  let err4; try { await p4; } catch (e) { err4 = e; }
  return [err, locked, err4, cancelReason, abortReason, src3.locked, dst3.locked];
});
case('pipeTo locked', async () => {
  const rs = new ReadableStream(); rs.getReader();
  try { await rs.pipeTo(new WritableStream()); } catch (e) { return e.name; }
});
case('pipeThrough bad transform', async () => {
  try { new ReadableStream().pipeThrough({}); } catch (e) { return e.name; }
});
""")
    assert res["writer backpressure"] == [[2, 1, 0], False, True, ["a", "b"], 0]
    assert res["sink lifecycle"] == ["start", "write 1", "write 2", "close"]
    assert res["write after close"] == "TypeError"
    assert res["write error errors the stream"] == ["disk full", "closed disk full", "again disk full", None]
    assert res["abort reason reaches sink and signal"] == ["bye", "bye", "bye"]
    assert res["locked writable"] == [True, "TypeError", "TypeError", "TypeError"]
    assert res["controller.error"] == "ctl err"
    assert res["transform"] == [2, 3, 10, 11, "end"]
    assert res["identity transform"] == ["[object TransformStream]", ["a"]]
    assert res["transform error"] == ["bad chunk", "bad chunk"]
    assert res["terminate"] == [["only"], "TypeError"]
    assert res["pipeThrough and pipeTo"] == ["A", "B", "C"]
    assert res["pipeTo source error aborts dest"] == ["src failed", "src failed"]
    assert res["pipeTo dest error cancels source"] == ["dest failed", "dest failed"]
    assert res["pipeTo preventClose"] == "ok"
    assert res["pipeTo abort signal"] == ["AbortError", "locked:TypeError", "custom reason", "custom reason",
                                          "custom reason", False, False]
    assert res["pipeTo locked"] == "TypeError"
    assert res["pipeThrough bad transform"] == "TypeError"


BYOB = """
const out = {};
const chunks = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11]];
let i = 0;
const rs = new ReadableStream({
  type: "bytes",
  // closed right after the last chunk: a close while a BYOB read waits would, on Node, need
  // byobRequest.respond(0) (wapo resolves such a read as done: its byobRequest is always null)
  pull(c) { c.enqueue(new Uint8Array(chunks[i++])); if (i === chunks.length) c.close(); },
});
const reader = rs.getReader({ mode: "byob" });
const buf = new ArrayBuffer(4);
let r = await reader.read(new Uint8Array(buf));
out.first = [Array.from(r.value), r.done, buf.byteLength];  // the caller's buffer is transferred
r = await reader.read(new Uint8Array(r.value.buffer, 0, 4), { min: 4 });  // waits for 4 bytes across chunks
out.second = Array.from(r.value);
r = await reader.read(new Uint16Array(2));  // whole elements only: the odd byte stays queued
out.third = [r.value.constructor.name, r.value.length, Array.from(new Uint8Array(r.value.buffer, 0, r.value.byteLength))];
r = await reader.read(new Uint8Array(8));
out.fourth = Array.from(r.value);
r = await reader.read(new Uint8Array(8));
out.fifth = Array.from(r.value);
r = await reader.read(new Uint8Array(8));
out.end = [r.done, r.value.byteLength];
try { await reader.read(new Uint8Array(0)); } catch (e) { out.empty = e.name; }
try { await reader.read(new Uint8Array(2), { min: 3 }); } catch (e) { out.tooMany = e.name; }
const dv = new ReadableStream({ type: "bytes", start(c) { c.enqueue(new Uint8Array([0, 1, 2])); c.close(); } }).getReader({ mode: "byob" });
const d = await dv.read(new DataView(new ArrayBuffer(2)));
out.dataview = [d.value.constructor.name, d.value.byteLength, d.value.getUint8(1)];
const errored = new ReadableStream({ type: "bytes", pull(c) { c.error(new Error("bad source")); } }).getReader({ mode: "byob" });
try { await errored.read(new Uint8Array(4)); } catch (e) { out.error = e.message; }
const q = new ReadableStream({ type: "bytes", start(c) { c.enqueue(new Uint8Array([1, 2, 3])); c.enqueue(new Uint8Array([4, 5])); c.close(); } }).getReader({ mode: "byob" });
const q1 = await q.read(new Uint8Array(4)), q2 = await q.read(new Uint8Array(4)), q3 = await q.read(new Uint8Array(4));
out.queued = [Array.from(q1.value), Array.from(q2.value), q3.done];  // a read takes what the queue holds
globalThis.scriptOutput = JSON.stringify(out);
if (typeof process !== "undefined" && process.versions?.node) console.log(JSON.stringify(out));
"""


def test_byob_reader(js, tmp_path):
    r = js(BYOB, module=True)
    assert r.error is None, r.error
    out = json.loads(r.output)
    assert out == {"first": [[1, 2, 3], False, 0], "second": [4, 5, 6, 7], "third": ["Uint16Array", 1, [8, 9]],
                   "fourth": [10], "fifth": [11], "end": [True, 0], "empty": "TypeError", "tooMany": "RangeError",
                   "dataview": ["DataView", 2, 1], "error": "bad source", "queued": [[1, 2, 3, 4], [5], True]}
    if shutil.which("node"):  # the same answers as Node's streams
        script = tmp_path / "byob.mjs"
        script.write_text(BYOB)
        node = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
        assert node.returncode == 0 and json.loads(node.stdout) == out, node.stderr
