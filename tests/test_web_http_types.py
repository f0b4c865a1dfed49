"""Fetch types in WapoJS: Headers, Blob, File, FormData, AbortController/AbortSignal, Request, Response.

Each test runs many cases in one sandbox: `case(name, async fn)` records fn's result (or the
thrown error as "!Name: message") and the script outputs them all as JSON.
"""

from __future__ import annotations

from jscases import run_cases


def test_headers(js):
    res = run_cases(js, r"""
case('case-insensitive and combined', async () => {
  const h = new Headers({ 'Content-Type': 'text/html', 'X-Multi': 'a' });
  h.append('x-multi', 'b');
  return [h.get('content-type'), h.get('X-MULTI'), h.has('x-multi'), h.get('missing')];
});
case('iteration sorted and lowercased', async () => {
  const h = new Headers([['B', '2'], ['a', '1'], ['C', '3'], ['a', '0']]);
  return [[...h], [...h.keys()], [...h.values()]];
});
case('set-cookie', async () => {
  const h = new Headers();
  h.append('Set-Cookie', 'a=1; Path=/'); h.append('set-cookie', 'b=2');
  return [h.getSetCookie(), h.get('set-cookie'), [...h]];
});
case('set and delete', async () => {
  const h = new Headers([['x', '1'], ['y', '2'], ['x', '3']]);
  h.set('X', '9'); const afterSet = [...h];
  h.delete('y'); return [afterSet, [...h]];
});
case('value normalization', async () => new Headers({ a: '  padded\t' }).get('a'));
case('invalid names and values', async () => [
  catchName(() => new Headers({ 'bad name': 'x' })),
  catchName(() => new Headers().append('x', 'a\r\nb')),
  catchName(() => new Headers().set('', 'x')),
  catchName(() => new Headers().get('b@d:')),
  catchName(() => new Headers().append('x', '\u20ac')),
  catchName(() => new Headers([['only-one']])),
  catchName(() => new Headers(5)),
]);
case('copy from Headers and forEach', async () => {
  const a = new Headers({ k: 'v' }); const b = new Headers(a); b.set('k', 'w');
  const seen = []; b.forEach((v, k, obj) => seen.push(k + '=' + v + (obj === b)));
  return [a.get('k'), seen, Object.prototype.toString.call(a)];
});
""")
    assert res["case-insensitive and combined"] == ["text/html", "a, b", True, None]
    assert res["iteration sorted and lowercased"] == [
        [["a", "1, 0"], ["b", "2"], ["c", "3"]], ["a", "b", "c"], ["1, 0", "2", "3"]]
    assert res["set-cookie"] == [["a=1; Path=/", "b=2"], "a=1; Path=/, b=2",
                                 [["set-cookie", "a=1; Path=/"], ["set-cookie", "b=2"]]]
    assert res["set and delete"] == [[["x", "9"], ["y", "2"]], [["x", "9"]]]
    assert res["value normalization"] == "padded"
    assert res["invalid names and values"] == ["TypeError"] * 7
    assert res["copy from Headers and forEach"] == ["v", ["k=wtrue"], "[object Headers]"]


def test_blob_file_formdata(js):
    res = run_cases(js, r"""
case('blob parts', async () => {
  const inner = new Blob(['in']);
  const b = new Blob(['a', new Uint8Array([98, 99]), inner, new Uint16Array([0x6564]).buffer, '\u20ac'], { type: 'Text/Plain' });
  return [b.size, b.type, await b.text(), Array.from(await b.bytes()).length, (await b.arrayBuffer()).byteLength];
});
case('slice', async () => {
  const b = new Blob(['hello world']);
  return [await b.slice(6).text(), await b.slice(-5, -2).text(), await b.slice(3, 1).text(), b.slice(0, 5, 'x/y').type];
});
case('blob stream', async () => {
  const reader = new Blob(['abc']).stream().getReader();
  const { value } = await reader.read();
  return [value instanceof Uint8Array, Array.from(value), (await reader.read()).done];
});
case('blob errors', async () => [catchName(() => new Blob('not a sequence')), new Blob([], { type: '\u00e9' }).type]);
case('file', async () => {
  const f = new File(['data'], 'a.txt', { type: 'text/plain', lastModified: 42 });
  return [f.name, f.type, f.size, f.lastModified, f instanceof Blob, await f.text(), catchName(() => new File(['x']))];
});
case('formdata', async () => {
  const fd = new FormData();
  fd.append('a', '1'); fd.append('a', '2'); fd.append('b', new Blob(['x'], { type: 'text/csv' }));
  fd.append('c', new File(['y'], 'orig.txt'), 'renamed.txt');
  const b = fd.get('b');
  const out = [fd.get('a'), fd.getAll('a'), fd.has('b'), b instanceof File, b.name, b.type, fd.get('c').name, fd.get('none')];
  fd.set('a', '3'); out.push(fd.getAll('a'), [...fd.keys()]);
  fd.delete('b'); out.push([...fd.keys()]);
  out.push(catchName(() => fd.append('x', 'str', 'name.txt')));
  return out;
});
""")
    assert res["blob parts"] == [10, "text/plain", "abcinde€", 10, 10]
    assert res["slice"] == ["world", "wor", "", "x/y"]
    assert res["blob stream"] == [True, [97, 98, 99], True]
    assert res["blob errors"] == ["TypeError", ""]
    assert res["file"] == ["a.txt", "text/plain", 4, 42, True, "data", "TypeError"]
    assert res["formdata"] == ["1", ["1", "2"], True, True, "blob", "text/csv", "renamed.txt", None,
                               ["3"], ["a", "b", "c"], ["a", "c"], "TypeError"]


def test_abort_controller_and_signal(js):
    res = run_cases(js, r"""
case('abort default reason and events', async () => {
  const ac = new AbortController(); const s = ac.signal; const log = [];
  s.addEventListener('abort', (e) => log.push('listener ' + e.type));
  s.onabort = () => log.push('onabort');
  s.addEventListener('abort', () => log.push('once'), { once: true });
  const before = [s.aborted, s.reason];
  ac.abort(); ac.abort('second');
  return [before, s.aborted, s.reason.name, s.reason instanceof Error, log, catchName(() => s.throwIfAborted())];
});
case('custom reason', async () => {
  const ac = new AbortController(); ac.abort({ code: 7 });
  try { ac.signal.throwIfAborted(); } catch (e) { return e; }
});
case('AbortSignal.abort', async () => {
  const s = AbortSignal.abort(); const t = AbortSignal.abort('why');
  return [s.aborted, s.reason.name, t.reason, catchName(() => new AbortSignal())];
});
case('AbortSignal.timeout', async () => {
  const s = AbortSignal.timeout(5); let fired = false;
  s.addEventListener('abort', () => fired = true);
  const early = s.aborted;
  await sleep(20);
  return [early, s.aborted, s.reason.name, fired, catchName(() => AbortSignal.timeout(-1))];
});
case('AbortSignal.any', async () => {
  const a = new AbortController(), b = new AbortController();
  const any = AbortSignal.any([a.signal, b.signal]);
  const nested = AbortSignal.any([any]);
  let events = 0; any.addEventListener('abort', () => events++); nested.onabort = () => events++;
  b.abort('from b'); a.abort('from a');
  const pre = AbortSignal.any([new AbortController().signal, AbortSignal.abort('already')]);
  return [any.aborted, any.reason, nested.reason, events, pre.reason, catchName(() => AbortSignal.any([1]))];
});
case('removeEventListener', async () => {
  const ac = new AbortController(); let n = 0; const f = () => n++;
  ac.signal.addEventListener('abort', f); ac.signal.removeEventListener('abort', f); ac.abort();
  return n;
});
""")
    before, aborted, name, is_error, log, thrown = res["abort default reason and events"]
    assert before == [False, None] and aborted is True and name == "AbortError" and is_error is True
    assert log == ["listener abort", "onabort", "once"] and thrown == "AbortError"
    assert res["custom reason"] == {"code": 7}
    assert res["AbortSignal.abort"] == [True, "AbortError", "why", "TypeError"]
    assert res["AbortSignal.timeout"] == [False, True, "TimeoutError", True, "TypeError"]
    assert res["AbortSignal.any"] == [True, "from b", "from b", 2, "already", "TypeError"]
    assert res["removeEventListener"] == 0


def test_request(js):
    res = run_cases(js, r"""
case('hono style json body', async () => {
  const req = new Request('http://localhost/api?x=1', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ n: 5 }) });
  const data = await req.json();
  return [req.method, req.url, req.headers.get('content-type'), data, req.bodyUsed];
});
case('defaults', async () => {
  const r = new Request('https://example.com/a b');
  return [r.method, r.url, r.body, r.bodyUsed, r.redirect, r.mode, r.credentials, r.cache, r.signal.aborted,
          r.duplex, r.keepalive, String(r)];
});
case('method normalization', async () => [
  new Request('http://a/', { method: 'delete' }).method, new Request('http://a/', { method: 'patch' }).method,
  new Request('http://a/', { method: 'Options' }).method,
  catchName(() => new Request('http://a/', { method: 'CONNECT' })),
  catchName(() => new Request('http://a/', { method: 'bad method' })),
]);
case('errors', async () => [
  catchName(() => new Request('/relative')),
  catchName(() => new Request('http://user:pw@host/')),
  catchName(() => new Request('http://a/', { body: 'x' })),
  catchName(() => new Request('http://a/', { method: 'HEAD', body: 'x' })),
  catchName(() => new Request('http://a/', { method: 'POST', body: new ReadableStream() })),
  catchName(() => new Request('http://a/', { redirect: 'sometimes' })),
  catchName(() => new Request('http://a/', { signal: {} })),
  catchName(() => new Request('http://a/', { mode: 'navigate' })),
]);
case('read twice', async () => {
  const r = new Request('http://a/', { method: 'POST', body: 'abc' });
  const first = await r.text();
  try { await r.text(); } catch (e) { return [first, e.name, r.bodyUsed]; }
});
case('body kinds and content types', async () => {
  const mk = (body) => new Request('http://a/', { method: 'PUT', body });
  const out = [];
  for (const body of ['s', new Uint8Array([1, 2]), new Uint8Array([1, 2]).buffer, new Blob(['b'], { type: 'x/y' }),
                      new Blob(['b']), new URLSearchParams('a=1&b=2')]) {
    const r = mk(body); out.push([r.headers.get('content-type'), (await r.arrayBuffer()).byteLength]);
  }
  return out;
});
case('stream body with duplex', async () => {
  const r = new Request('http://a/', { method: 'POST', duplex: 'half', body: new ReadableStream({
    start(c) { c.enqueue(new TextEncoder().encode('chunk1,')); c.enqueue(new Uint8Array([50])); c.close(); } }) });
  return [r.duplex, r.headers.get('content-type'), await r.text()];
});
case('clone and signal', async () => {
  const ac = new AbortController();
  const r = new Request('http://a/', { method: 'POST', body: 'same', signal: ac.signal, headers: { k: 'v' } });
  const c = r.clone();
  c.headers.set('k', 'changed');
  ac.abort('stop');
  return [await r.text(), await c.text(), r.headers.get('k'), r.signal.aborted, r.signal.reason, c.signal.reason,
          catchName(() => r.clone())];
});
case('request from request', async () => {
  const a = new Request('http://a/x', { method: 'POST', body: 'payload', headers: { h: '1' } });
  const b = new Request(a, { headers: { h: '2' } });
  return [b.url, b.method, b.headers.get('h'), a.bodyUsed, await b.text(), catchName(() => new Request(a))];
});
case('urlencoded formData', async () => {
  const r = new Request('http://a/', { method: 'POST', body: new URLSearchParams({ name: 'a b', e: '\u20ac&=' }) });
  const fd = await r.formData();
  return [fd.get('name'), fd.get('e')];
});
case('multipart round trip', async () => {
  const fd = new FormData();
  fd.append('field', 'value "quoted"');
  fd.append('file', new File([new Uint8Array([0, 255, 13, 10, 45, 45])], 'bin.dat', { type: 'application/octet-stream' }));
  fd.append('empty', '');
  const r = new Request('http://a/', { method: 'POST', body: fd });
  const ct = r.headers.get('content-type');
  const back = await r.formData();
  const f = back.get('file');
  return [/^multipart\/form-data; boundary=/.test(ct), back.get('field'), f.name, f.type, Array.from(await f.bytes()),
          back.get('empty'), [...back.keys()]];
});
case('formData on bad content type', async () => {
  const r = new Request('http://a/', { method: 'POST', body: 'x=1' });
  try { await r.formData(); } catch (e) { return e.name; }
});
case('invalid json', async () => {
  try { await new Request('http://a/', { method: 'POST', body: '{nope' }).json(); } catch (e) { return e.name; }
});
""")
    assert res["hono style json body"] == ["POST", "http://localhost/api?x=1", "application/json", {"n": 5}, True]
    assert res["defaults"] == ["GET", "https://example.com/a%20b", None, False, "follow", "cors", "same-origin",
                               "default", False, "half", False, "[object Request]"]
    assert res["method normalization"] == ["DELETE", "patch", "OPTIONS", "TypeError", "TypeError"]
    assert res["errors"] == ["TypeError"] * 8
    assert res["read twice"] == ["abc", "TypeError", True]
    assert res["body kinds and content types"] == [
        ["text/plain;charset=UTF-8", 1], [None, 2], [None, 2], ["x/y", 1], [None, 1],
        ["application/x-www-form-urlencoded;charset=UTF-8", 7]]
    assert res["stream body with duplex"] == ["half", None, "chunk1,2"]
    assert res["clone and signal"] == ["same", "same", "v", True, "stop", "stop", "TypeError"]
    assert res["request from request"] == ["http://a/x", "POST", "2", True, "payload", "TypeError"]
    assert res["urlencoded formData"] == ["a b", "€&="]
    assert res["multipart round trip"] == [True, 'value "quoted"', "bin.dat", "application/octet-stream",
                                           [0, 255, 13, 10, 45, 45], "", ["field", "file", "empty"]]
    assert res["formData on bad content type"] == "TypeError"
    assert res["invalid json"] == "SyntaxError"


def test_response(js):
    res = run_cases(js, r"""
case('hono style', async () => {
  const res = new Response(JSON.stringify({ ok: 1 }), { status: 201, headers: { 'content-type': 'application/json' } });
  return [res.status, res.ok, res.statusText, res.headers.get('content-type'), res.type, res.url, res.redirected,
          await res.json(), res.bodyUsed];
});
case('defaults', async () => {
  const r = new Response();
  return [r.status, r.ok, r.body, r.bodyUsed, await r.text(), r.headers.get('content-type'), String(r)];
});
case('status checks', async () => [
  catchName(() => new Response('', { status: 199 })), catchName(() => new Response('', { status: 600 })),
  catchName(() => new Response('x', { status: 204 })), catchName(() => new Response('', { statusText: 'bad\n' })),
  new Response(null, { status: 204 }).status, new Response('', { status: 404 }).ok,
]);
case('Response.json', async () => {
  const r = Response.json({ a: [1] }, { status: 400, headers: { 'x-k': 'v' } });
  const custom = Response.json(1, { headers: { 'content-type': 'application/vnd+json' } });
  return [r.status, r.headers.get('content-type'), r.headers.get('x-k'), await r.text(),
          custom.headers.get('content-type'), catchName(() => Response.json(undefined))];
});
case('Response.error and redirect', async () => {
  const e = Response.error();
  const r = Response.redirect('http://example.com/next', 307);
  return [e.type, e.status, e.ok, r.status, r.headers.get('location'), Response.redirect('http://x/').status,
          catchName(() => Response.redirect('http://x/', 200)), catchName(() => Response.redirect('nope'))];
});
case('streamed body chunk by chunk', async () => {
  let i = 0;
  const rs = new ReadableStream({ pull(c) { i++; if (i > 3) c.close(); else c.enqueue(new TextEncoder().encode('part' + i)); } });
  const res = new Response(rs, { headers: { 'content-type': 'text/plain' } });
  const body = res.body;
  const reader = body.getReader();
  const chunks = [];
  for (;;) { const { value, done } = await reader.read(); if (done) break; chunks.push(new TextDecoder().decode(value)); }
  return [body === res.body, chunks, res.bodyUsed];
});
case('body getter of a byte body', async () => {
  const res = new Response('hello');
  const reader = res.body.getReader();
  const first = await reader.read();
  return [first.value instanceof Uint8Array, new TextDecoder().decode(first.value), (await reader.read()).done, res.bodyUsed];
});
case('locked body is unusable', async () => {
  const res = new Response('x'); res.body.getReader();
  const out = [];
  try { await res.text(); } catch (e) { out.push(e.name); }
  out.push(catchName(() => res.clone()));
  return out;
});
case('disturbed stream cannot be a body', async () => {
  const rs = new ReadableStream(); rs.getReader();
  return catchName(() => new Response(rs));
});
case('clone via tee', async () => {
  const res = new Response(new ReadableStream({ start(c) { c.enqueue(new Uint8Array([1, 2])); c.enqueue(new Uint8Array([3])); c.close(); } }));
  const copy = res.clone();
  const a = new Uint8Array(await res.arrayBuffer());
  const b = await copy.bytes();
  return [Array.from(a), Array.from(b)];
});
case('body reading twice and mixed', async () => {
  const res = new Response('abc');
  await res.arrayBuffer();
  const out = [];
  for (const m of ['text', 'json', 'blob', 'bytes', 'formData']) { try { await res[m](); } catch (e) { out.push(e.name); } }
  return out;
});
case('blob from response', async () => {
  const b = await new Response('data', { headers: { 'Content-Type': 'Text/Plain;charset=utf-8' } }).blob();
  return [b.size, b.type, await b.text()];
});
case('non byte chunk rejects', async () => {
  const res = new Response(new ReadableStream({ start(c) { c.enqueue('a string'); c.close(); } }));
  try { await res.text(); } catch (e) { return e.name; }
});
case('stream error propagates', async () => {
  const res = new Response(new ReadableStream({ start(c) { c.enqueue(new Uint8Array([1])); c.error(new RangeError('net down')); } }));
  try { await res.text(); } catch (e) { return [e.name, e.message]; }
});
case('cancel the body stream', async () => {
  let reason;
  const res = new Response(new ReadableStream({ cancel(r) { reason = r; } }));
  await res.body.cancel('not needed');
  return [reason, res.bodyUsed];
});
case('init from another response', async () => {
  const base = new Response('x', { status: 418, statusText: 'Teapot', headers: { a: '1' } });
  const copy = new Response('y', base);
  return [copy.status, copy.statusText, copy.headers.get('a'), await copy.text()];
});
case('utf-8 decoding', async () => [
  await new Response(new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0xff, 0x69])).text(),
  await new Response('\u00e9\u20ac\ud83d\ude00').text(),
]);
""")
    assert res["hono style"] == [201, True, "", "application/json", "default", "", False, {"ok": 1}, True]
    assert res["defaults"] == [200, True, None, False, "", None, "[object Response]"]
    assert res["status checks"] == ["RangeError", "RangeError", "TypeError", "TypeError", 204, False]
    assert res["Response.json"] == [400, "application/json", "v", '{"a":[1]}', "application/vnd+json", "TypeError"]
    assert res["Response.error and redirect"] == ["error", 0, False, 307, "http://example.com/next", 302,
                                                  "RangeError", "TypeError"]
    assert res["streamed body chunk by chunk"] == [True, ["part1", "part2", "part3"], True]
    assert res["body getter of a byte body"] == [True, "hello", True, True]
    assert res["locked body is unusable"] == ["TypeError", "TypeError"]
    assert res["disturbed stream cannot be a body"] == "TypeError"
    assert res["clone via tee"] == [[1, 2, 3], [1, 2, 3]]
    assert res["body reading twice and mixed"] == ["TypeError"] * 5
    assert res["blob from response"] == [4, "text/plain;charset=utf-8", "data"]
    assert res["non byte chunk rejects"] == "TypeError"
    assert res["stream error propagates"] == ["RangeError", "net down"]
    assert res["cancel the body stream"] == ["not needed", True]
    assert res["init from another response"] == [418, "Teapot", "1", "y"]
    assert res["utf-8 decoding"] == ["h\ufffdi", "é€😀"]
