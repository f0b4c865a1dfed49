"""Every limit: a test that hits it (with an error that says which limit, the usage and where)
and a check that the process and the next sandbox are fine afterwards."""

from __future__ import annotations

import pytest

GB = 1000**3


def assert_next_run_works(js):
    r = js("scriptOutput = 'still fine'")
    assert r.ok and r.output == b"still fine"


def test_burst_limit_stops_a_js_loop_with_its_stack(js):
    r = js("function spin() { for (;;) {} }\nspin()", burst=0.2)
    assert r.error.kind == "burst_limit"
    assert "burst limit exceeded" in r.error.message and "of 200 ms" in r.error.message
    assert "spin" in r.error.stack
    assert any("burst limit exceeded" in log.message for log in r.logs if log.level == "error")
    assert_next_run_works(js)


def test_burst_limit_is_per_return_to_the_host(js):
    """Work split across timers may use more CPU in total than one burst allows."""
    r = js("""
        let rounds = 0;
        function work() { const end = Date.now() + 60; while (Date.now() < end) {} if (++rounds < 5) setTimeout(work, 0); else scriptOutput = String(rounds); }
        work();
    """, burst=0.15)
    assert r.ok, r.error
    assert r.output == b"5"


def test_burst_limit_holds_inside_a_long_builtin(js):
    """'x'.repeat with a large memory limit runs in one C call: the host's epoch stops it."""
    r = js("const s = 'x'.repeat(1e9); scriptOutput = String(s.length)", memory=4 * 1024**3, burst=0.05)
    assert r.error is not None
    assert r.error.kind in ("burst_limit", "memory_limit")
    assert "limit exceeded" in r.error.message
    assert_next_run_works(js)


def test_huge_json_stringify_is_stopped(js):
    r = js("const a = []; for (let i = 0; i < 2e5; i++) a.push({i, s: 'abcdefghij'.repeat(10)});"
           "let out = ''; for (;;) out += JSON.stringify(a);", burst=0.5)
    assert r.error.kind in ("burst_limit", "memory_limit")
    assert_next_run_works(js)


def test_time_limit_while_waiting(js):
    r = js("setInterval(() => {}, 10)", time=0.3)
    assert r.error.kind == "time_limit"
    assert "time limit exceeded" in r.error.message and "of 0.3 s" in r.error.message
    assert 0.25 <= r.duration < 5


def test_time_limit_while_running_across_bursts(js):
    r = js("function tick() { const end = Date.now() + 50; while (Date.now() < end) {} setTimeout(tick, 0) }\ntick()",
           time=0.4, burst=1)
    assert r.error.kind in ("time_limit", "burst_limit")
    assert r.error.kind == "time_limit", r.error.describe()
    assert "tick" in r.error.stack or "waiting" in r.error.stack


def test_time_limit_zero_means_unlimited(js):
    r = js("setTimeout(() => { scriptOutput = 'ok' }, 30)", time=0)
    assert r.ok and r.output == b"ok"


def test_memory_limit_js_allocation(js):
    r = js("const a = []; for (;;) a.push('abcdefgh' + a.length)", memory=20 * 1024 * 1024)
    assert r.error.kind == "memory_limit"
    assert "memory limit exceeded" in r.error.message and "20.0 MiB" in r.error.message
    assert_next_run_works(js)


def test_memory_limit_large_single_allocation_is_catchable(js):
    r = js("try { new ArrayBuffer(200 * 1024 * 1024) } catch (e) { scriptOutput = e.name + ': ' + e.message }")
    assert r.ok, r.error
    assert b"out of memory" in r.output or b"RangeError" in r.output


def test_memory_limit_allows_big_heaps_when_raised(js):
    r = js("const b = new Uint8Array(150 * 1024 * 1024); b[b.length - 1] = 7; scriptOutput = String(b[b.length - 1])",
           memory=400 * 1024 * 1024)
    assert r.ok, r.error
    assert r.output == b"7"


def test_stack_limit_deep_recursion_is_a_catchable_range_error(js):
    r = js("let d = 0; function f() { d++; return f() + 1 }\n"
           "try { f() } catch (e) { scriptOutput = e.name + ' ' + (d > 1000) }")
    assert r.ok, r.error
    assert r.output == b"RangeError true"
    assert_next_run_works(js)


def test_stack_limit_uncaught(js):
    r = js("function f() { return f() + 1 }\nf()")
    assert r.error.kind == "guest_error"
    assert "RangeError" in r.error.message


def test_deeply_nested_json_is_a_clean_error(js):
    r = js("JSON.parse('['.repeat(200000))")
    assert not r.ok
    assert r.error.kind in ("stack_limit", "guest_error")
    assert_next_run_works(js)


def test_fuel_limit(js):
    r = js("let x = 0; function burn() { for (;;) x++ }\nburn()", fuel=20_000_000)
    assert r.error.kind == "fuel_limit"
    assert "fuel limit exceeded" in r.error.message and "20000000" in r.error.message
    assert "burn" in r.error.stack
    assert_next_run_works(js)


def test_fuel_metering_reports_consumption(js):
    r = js("let x = 0; for (let i = 0; i < 1000; i++) x += i; scriptOutput = String(x)", fuel=10**9)
    assert r.ok and r.output == b"499500"
    assert 0 < r.fuel_consumed < 10**9


@pytest.mark.parametrize("kwargs,message", [
    ({"memory": 1024}, "outside 2 MiB"),
    ({"memory": 5 * 1024**3}, "outside 2 MiB"),
    ({"time": -1}, ">= 0"),
    ({"burst": 0}, "> 0"),
    ({"fuel": 0}, "positive"),
])
def test_invalid_limits_are_rejected(kwargs, message):
    from wapo.host import Limits
    with pytest.raises(ValueError, match=message):
        Limits(**kwargs)


def test_limit_parsing():
    from wapo.host import parse_duration, parse_size
    assert parse_size("100MB") == 100_000_000
    assert parse_size("64MiB") == 64 * 1024 * 1024
    assert parse_size("4GB") == 4_000_000_000
    assert parse_duration("60s") == 60.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration("0") == 0.0
    for bad in ("", "ten", "5 parsecs", "-1s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    with pytest.raises(ValueError, match="invalid size"):
        parse_size("lots")
