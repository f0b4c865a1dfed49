"""Event, EventTarget, CustomEvent and structuredClone in the WapoJS guest."""

from __future__ import annotations

import json

from jscases import out


def test_listener_order_options_and_return_value(js):
    assert out(js, """
        const r = [];
        const t = new EventTarget();
        t.addEventListener('x', () => r.push('a'));
        t.addEventListener('x', () => r.push('cap'), true);
        t.addEventListener('x', { handleEvent(e) { r.push('obj:' + (this !== t) + e.eventPhase) } });
        t.addEventListener('x', () => r.push('once'), { once: true });
        const dup = () => r.push('dup');
        t.addEventListener('x', dup); t.addEventListener('x', dup); t.addEventListener('x', dup, { capture: true });
        t.removeEventListener('x', dup, true);
        const ac = new AbortController();
        t.addEventListener('x', () => r.push('sig'), { signal: ac.signal });
        t.addEventListener('x', function (e) {
          e.preventDefault();
          r.push('pd:' + e.defaultPrevented + (e.target === t) + (e.currentTarget === t) + (this === t));
        });
        r.push(t.dispatchEvent(new Event('x', { cancelable: true })));
        ac.abort();
        r.push('--');
        r.push(t.dispatchEvent(new Event('x')));
        t.addEventListener('y', () => r.push('never'), { signal: AbortSignal.abort() });
        t.dispatchEvent(new Event('y'));
        scriptOutput = JSON.stringify(r);
    """) == ["cap", "a", "obj:true2", "once", "dup", "sig", "pd:truetruetruetrue", False, "--",
             "cap", "a", "obj:true2", "dup", "pd:falsetruetruetrue", True]


def test_stop_immediate_propagation_passive_and_removal_during_dispatch(js):
    assert out(js, """
        const r = [];
        const t = new EventTarget();
        t.addEventListener('y', (e) => { r.push('y1'); e.stopImmediatePropagation(); r.push(e.cancelBubble) });
        t.addEventListener('y', () => r.push('y2'));
        t.dispatchEvent(new Event('y'));
        t.addEventListener('p', (e) => { e.preventDefault(); r.push('passive:' + e.defaultPrevented) }, { passive: true });
        r.push(t.dispatchEvent(new Event('p', { cancelable: true })));
        const second = () => r.push('removed-ran');
        t.addEventListener('rm', () => t.removeEventListener('rm', second));
        t.addEventListener('rm', second);
        t.dispatchEvent(new Event('rm'));
        const e = new Event('z');
        t.addEventListener('z', () => { try { t.dispatchEvent(e) } catch (err) { r.push(err.name) } });
        t.dispatchEvent(e);
        r.push(e.eventPhase, e.currentTarget, e.target === t, e.isTrusted, e.bubbles, typeof e.timeStamp, Event.AT_TARGET);
        try { t.dispatchEvent({ type: 'fake' }) } catch (err) { r.push(err.name) }
        try { new Event() } catch (err) { r.push(err.name) }
        t.addEventListener('n', null);
        scriptOutput = JSON.stringify(r);
    """) == ["y1", True, "passive:false", True, "InvalidStateError", 0, None, True, False, False, "number", 2,
             "TypeError", "TypeError"]


def test_listener_errors_are_reported_not_thrown(js):
    r = js("""
        const t = new EventTarget(); const seen = [];
        t.addEventListener('z', () => { throw new Error('boom') });
        t.addEventListener('z', () => seen.push('next'));
        seen.push(t.dispatchEvent(new Event('z')));
        scriptOutput = JSON.stringify(seen);
    """)
    assert r.ok, r.error
    assert json.loads(r.output) == ["next", True]
    assert any("boom" in log.message and log.level == "error" for log in r.logs)


def test_custom_event_and_subclassing(js):
    assert out(js, """
        const r = [];
        class Emitter extends EventTarget { fire(d) { return this.dispatchEvent(new CustomEvent('msg', { detail: d })) } }
        const em = new Emitter();
        em.addEventListener('msg', (e) => r.push(e.detail, e instanceof CustomEvent, e instanceof Event, e.type));
        em.fire({ k: 1 });
        r.push(new CustomEvent('c').detail, Object.prototype.toString.call(new CustomEvent('c')),
               Object.prototype.toString.call(em), String(new Event('e')));
        scriptOutput = JSON.stringify(r);
    """) == [{"k": 1}, True, True, "msg", None, "[object CustomEvent]", "[object EventTarget]", "[object Event]"]


def test_structured_clone_types_and_cycles(js):
    assert out(js, """
        const src = { a: [1, 'two', null, undefined, 3n], d: new Date(5), m: new Map([[1, new Set([2])]]),
                      u8: new Uint8Array([1, 2, 3]).subarray(1), re: /x+/gi, e: new RangeError('r', { cause: 7 }),
                      n: new Number(4), nested: { deep: { x: 1 } } };
        src.self = src; src.again = src.nested;
        const c = structuredClone(src);
        const r = [c !== src, c.self === c, c.again === c.nested, c.nested !== src.nested, c.a[4] === 3n, c.a.length,
                   c.d instanceof Date && c.d.getTime(), c.m.get(1).has(2), c.u8 instanceof Uint8Array && Array.from(c.u8),
                   c.u8.byteOffset, c.u8.buffer !== src.u8.buffer, c.re.source + '/' + c.re.flags,
                   c.e instanceof RangeError, c.e.message, c.e.cause, c.n instanceof Number && +c.n];
        const ab = new ArrayBuffer(4); new Uint8Array(ab)[0] = 9;
        const t = structuredClone({ ab }, { transfer: [ab] });
        r.push(ab.byteLength, t.ab.byteLength, new Uint8Array(t.ab)[0]);
        class Point { constructor() { this.x = 1 } get y() { return 2 } }
        const p = structuredClone(new Point());
        r.push(Object.getPrototypeOf(p) === Object.prototype, p.x, p.y);
        scriptOutput = JSON.stringify(r);
    """) == [True, True, True, True, True, 5, 5, True, [2, 3], 1, True, "x+/gi", True, "r", 7, 4,
             0, 4, 9, True, 1, None]


def test_structured_clone_errors(js):
    assert out(js, """
        const r = [];
        for (const v of [() => 1, Symbol('s'), { f() {} }, new WeakMap(), Promise.resolve(), [Symbol()]]) {
          try { structuredClone(v); r.push('cloned') } catch (e) { r.push([e.name, e.code, e instanceof DOMException]) }
        }
        try { structuredClone() } catch (e) { r.push(e.name) }
        try { structuredClone(1, { transfer: [1] }) } catch (e) { r.push(e.name) }
        scriptOutput = JSON.stringify(r);
    """) == [["DataCloneError", 25, True]] * 6 + ["TypeError", "DataCloneError"]
