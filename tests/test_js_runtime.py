"""The WapoJS guest: scripts, scriptArgs, scriptOutput, timers, promises, console, errors."""

from __future__ import annotations


def test_script_output_string_and_args(js):
    r = js("scriptOutput = scriptArgs.join('|')", "a", "b c", "")
    assert r.ok, r.error
    assert r.output == b"a|b c|"


def test_script_output_bytes(js):
    r = js("scriptOutput = new Uint8Array([0, 255, 10])")
    assert r.output == b"\x00\xff\n"


def test_script_output_array_buffer_and_non_string(js):
    assert js("scriptOutput = new Uint8Array([7, 8]).buffer").output == b"\x07\x08"
    assert js("scriptOutput = 42").output == b"42"
    assert js("scriptOutput = undefined").output == b""


def test_unicode_round_trip(js):
    r = js("scriptOutput = scriptArgs[0] + '✓'", "héllo €")
    assert r.output.decode() == "héllo €✓"


def test_console_levels_and_formatting(js):
    r = js("console.log('a', 1, {x: [1, 2]}); console.info('i'); console.warn('w'); console.error('e');"
           "console.debug('d'); print('p')")
    assert r.ok
    assert [(log.level, log.message) for log in r.logs] == [
        ("info", 'a 1 {"x":[1,2]}'), ("info", "i"), ("warn", "w"), ("error", "e"), ("debug", "d"), ("info", "p")]


def test_console_logs_errors_with_stack(js):
    r = js("function boom() { return new Error('bad') }\nconsole.log(boom())")
    assert r.ok
    assert r.logs[0].message.startswith("Error: bad")
    assert "boom" in r.logs[0].message


def test_timers_run_in_order_through_the_poll_loop(js):
    r = js("""
        const seen = [];
        setTimeout(() => seen.push('t30'), 30);
        setTimeout(() => seen.push('t0'), 0);
        setTimeout(() => { seen.push('t10'); }, 10);
        setImmediate(() => seen.push('imm'));
        queueMicrotask(() => seen.push('micro'));
        Promise.resolve().then(() => seen.push('then'));
        setTimeout(() => { scriptOutput = seen.join(','); }, 60);
    """)
    assert r.ok, r.error
    assert r.output == b"micro,then,t0,imm,t10,t30"


def test_set_interval_and_clear(js):
    r = js("""
        let n = 0;
        const id = setInterval(() => { n++; if (n === 3) { clearInterval(id); scriptOutput = String(n); } }, 5);
        const never = setTimeout(() => { scriptOutput = 'cleared timer ran'; }, 1);
        clearTimeout(never);
    """)
    assert r.ok, r.error
    assert r.output == b"3"


def test_timer_arguments_and_bad_callback(js):
    assert js("setTimeout((a, b) => { scriptOutput = a + b }, 1, 'x', 'y')").output == b"xy"
    r = js("try { setTimeout('code', 1) } catch (e) { scriptOutput = e.name }")
    assert r.output == b"TypeError"


def test_async_main_resolves_before_output(js):
    r = js("""
        const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
        async function main() { await sleep(20); await sleep(5); return 'done'; }
        main().then((v) => { scriptOutput = v; });
    """)
    assert r.output == b"done"


def test_run_waits_for_timers_even_without_output(js):
    r = js("setTimeout(() => console.log('late'), 50)")
    assert r.ok
    assert [log.message for log in r.logs] == ["late"]
    assert r.duration >= 0.04


def test_uncaught_error_reports_message_and_stack(js):
    r = js("function inner() { throw new TypeError('nope') }\nfunction outer() { inner() }\nouter()")
    assert not r.ok
    assert r.error.kind == "guest_error"
    assert r.error.message == "TypeError: nope"
    assert "inner" in r.error.stack and "outer" in r.error.stack
    assert any("TypeError: nope" in log.message for log in r.logs if log.level == "error")


def test_uncaught_error_in_timer_fails_the_run(js):
    r = js("setTimeout(() => { throw new Error('in timer') }, 1)")
    assert r.error.message == "Error: in timer"


def test_thrown_non_error_value(js):
    r = js("throw {code: 7}")
    assert not r.ok
    assert '"code":7' in r.error.message or "object" in r.error.message


def test_unhandled_rejection_fails_the_run(js):
    r = js("async function f() { await null; throw new RangeError('deep') }\nf()")
    assert r.error.kind == "unhandled_rejection"
    assert "RangeError: deep" in r.error.message


def test_rejection_handled_later_in_the_same_tick_is_fine(js):
    r = js("const p = Promise.reject(new Error('x')); p.catch(() => { scriptOutput = 'caught' })")
    assert r.ok, r.error
    assert r.output == b"caught"


def test_syntax_error(js):
    r = js("let = = 1")
    assert r.error.kind == "guest_error"
    assert "SyntaxError" in r.error.message


def test_es_module_with_top_level_await(js):
    r = js("await new Promise((r) => setTimeout(r, 5)); export const x = 1; scriptOutput = 'module ' + x",
           module=True)
    assert r.ok, r.error
    assert r.output == b"module 1"


def test_globals_present(js):
    names = ["console", "setTimeout", "setInterval", "clearTimeout", "clearInterval", "setImmediate",
             "queueMicrotask", "scriptArgs", "print"]
    r = js(f"scriptOutput = JSON.stringify({names!r}.filter((n) => typeof globalThis[n] === 'undefined'))")
    assert r.output == b"[]"


def test_no_host_access_from_js(js):
    """quickjs-libc's std/os modules are not part of the guest: no files, no processes."""
    r = js("scriptOutput = [typeof std, typeof os, typeof require, typeof process.binding, "
           "typeof process.dlopen].join()")
    assert r.output == b"undefined,undefined,undefined,undefined,undefined"
    r = js("import * as std from 'std'; scriptOutput = 'loaded'", module=True)
    assert not r.ok


def test_each_run_is_a_fresh_sandbox(js):
    assert js("globalThis.leak = 1; scriptOutput = 'set'").output == b"set"
    assert js("scriptOutput = typeof leak").output == b"undefined"


def test_math_random_differs_between_sandboxes(js):
    a = js("scriptOutput = String(Math.random())").output
    b = js("scriptOutput = String(Math.random())").output
    assert a != b


def test_nul_in_script_is_a_clear_error():
    import pytest

    from wapo.js.runner import ScriptError, run_js
    with pytest.raises(ScriptError, match="NUL"):
        run_js("scriptOutput = 'a\0b'")
