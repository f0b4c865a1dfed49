"""Small web globals: atob/btoa, performance.now, queueMicrotask, DOMException (native in QuickJS-ng),
and the prelude's process and localStorage."""

from __future__ import annotations


from jscases import out


def test_atob_btoa_follow_forgiving_base64(js):
    assert out(js, """
        const r = [];
        for (const s of ['YQ==', 'YQ', ' Y Q = = ', '\\t\\nYQ==\\f\\r', 'YR==', 'YWJj', '', 'YQ=', 'Y', 'YQ===', 'ab=c', 'YQ==YQ==', '\\u00ff', 'Y-Q=']) {
          try { r.push(atob(s)) } catch (e) { r.push(e.name + ':' + e.code + ':' + (e instanceof DOMException)) }
        }
        r.push(atob(null).length, btoa(''), btoa('\\xff\\xfe'), btoa(undefined), btoa(12));
        try { btoa('\\u0100') } catch (e) { r.push(e.name) }
        // Deviation of the native atob: with no argument browsers throw TypeError; QuickJS-ng decodes "undefined"
        try { atob() } catch (e) { r.push(e.name) }
        scriptOutput = JSON.stringify(r);
    """) == ["a", "a", "a", "a", "a", "abc", "", "InvalidCharacterError:5:true", "InvalidCharacterError:5:true",
             "InvalidCharacterError:5:true", "InvalidCharacterError:5:true", "InvalidCharacterError:5:true",
             "InvalidCharacterError:5:true", "InvalidCharacterError:5:true",
             3, "", "//4=", "dW5kZWZpbmVk", "MTI=", "InvalidCharacterError", "InvalidCharacterError"]


def test_performance_now_has_sub_millisecond_resolution(js):
    r = out(js, """
        const t0 = performance.now(); let t1;
        do { t1 = performance.now() } while (t1 === t0);
        let mono = true, prev = performance.now();
        for (let i = 0; i < 1000; i++) { const t = performance.now(); if (t < prev) mono = false; prev = t; }
        scriptOutput = JSON.stringify([t1 - t0, mono, typeof performance.timeOrigin]);
    """)
    assert 0 < r[0] < 1
    assert r[1] is True and r[2] == "number"


def test_queue_microtask_and_dom_exception(js):
    assert out(js, """
        const r = [];
        queueMicrotask(() => r.push('micro'));
        Promise.resolve().then(() => r.push('then'));
        r.push('sync');
        try { queueMicrotask(1) } catch (e) { r.push(e.name) }
        const e = new DOMException('m', 'AbortError');
        r.push(e.name, e.code, e.message, e instanceof Error, new DOMException('x', 'DataCloneError').code,
               new DOMException().name, DOMException.ABORT_ERR);
        setTimeout(() => { scriptOutput = JSON.stringify(r) }, 0);
    """) == ["sync", "TypeError", "AbortError", 20, "m", True, 25, "Error", 20, "micro", "then"]


def test_process(js):
    assert out(js, """
        const r = [process.argv, typeof process.env, Object.keys(process.env).length >= 0, process.platform,
                   process.cwd(), typeof process.hrtime.bigint(), Object.prototype.toString.call(process)];
        process.env.MY_VAR = 'x'; r.push(process.env.MY_VAR);
        process.nextTick((a) => r.push('tick ' + a), 1);
        setTimeout(() => { scriptOutput = JSON.stringify(r) }, 0);
    """, "a", "b c") == [["wapojs", "a", "b c"], "object", True, "wasi", "/", "bigint", "[object process]", "x",
                         "tick 1"]


def test_process_exit_ends_the_run(js):
    """Like Node: nothing catches it, pending timers are dropped, the output so far is the answer."""
    r = js("setTimeout(() => { scriptOutput = 'timer ran' }, 10); scriptOutput = 'before';"
           "try { process.exit(2) } catch (e) { scriptOutput = 'caught' } scriptOutput = 'after'")
    assert not r.ok
    assert str(r.error) == "process.exit(2)"
    assert r.output == b"before"


def test_process_exit_zero_is_a_success(js):
    r = js("setInterval(() => {}, 5); setTimeout(async () => { await null; scriptOutput = 'done'; process.exit() }, 10)")
    assert r.ok, r.error
    assert r.output == b"done"


def test_process_env_is_the_sandbox_environment():
    from wapo.js.runner import js_instance
    import asyncio
    inst = js_instance("scriptOutput = JSON.stringify(process.env)", env=[("A", "1"), ("B", "x=y")])
    r = asyncio.run(inst.run())
    assert r.ok and r.output == b'{"A":"1","B":"x=y"}'


def test_process_env_is_empty_by_default(js):
    """Nothing of the host's environment reaches a sandbox."""
    assert js("scriptOutput = JSON.stringify(process.env)").output == b"{}"


def test_local_storage(js):
    assert out(js, """
        const r = [];
        localStorage.setItem('k', 1); localStorage.j = { toString() { return 'v' } };
        r.push(localStorage.getItem('k'), localStorage.length, localStorage.key(0), localStorage.key(1), localStorage.key(5),
               localStorage.j, localStorage['k'], Object.keys(localStorage), 'k' in localStorage, localStorage.getItem('nope'));
        localStorage.setItem('k', 'again'); r.push(localStorage.length, localStorage.k);
        delete localStorage.k; localStorage.removeItem('missing');
        r.push(localStorage.length, localStorage.getItem('k'));
        localStorage.setItem('getItem', 'shadow?'); r.push(typeof localStorage.getItem, localStorage.getItem('getItem'));
        localStorage.clear(); r.push(localStorage.length, String(localStorage), localStorage instanceof Storage);
        sessionStorage.setItem('s', 1); r.push(localStorage.getItem('s'), sessionStorage.getItem('s'));
        try { new Storage() } catch (e) { r.push(e.name) }
        try { localStorage.setItem('k') } catch (e) { r.push(e.name) }
        try { localStorage.setItem('big', 'x'.repeat(6 * 1024 * 1024)) } catch (e) { r.push(e.name, e instanceof DOMException) }
        r.push(localStorage.length);
        scriptOutput = JSON.stringify(r);
    """) == ["1", 2, "k", "j", None, "v", "1", ["k", "j"], True, None, 2, "again", 1, None, "function", "shadow?",
             0, "[object Storage]", True, None, "1", "TypeError", "TypeError", "QuotaExceededError", True, 0]


def test_prelude_internals_are_not_globals(js):
    """Prelude modules share helpers through host.internal(name) (docs/prelude.md): no global
    for them, and replacing a global the prelude itself uses does not break the prelude."""
    assert out(js, """
        const seen = ['shared', 'streams', 'http', 'websocket', 'runAgent', '@shared', 'host', 'internal']
          .filter((n) => n in globalThis);
        delete globalThis.ReadableStream;
        const res = new Response('hi');
        const body = res.body;
        res.text().then((t) => { scriptOutput = JSON.stringify([seen, typeof body, t]); });
    """) == [[], "object", "hi"]
