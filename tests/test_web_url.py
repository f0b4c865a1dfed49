"""URL and URLSearchParams: the web-platform-tests URL data (../shared/wpt beside the repository) and the API surface."""

from __future__ import annotations

import json
import os

from jscases import out
from pathlib import Path

import pytest

# the repository is cloned with the shared/ folder beside it (here and in CI)
WPT = Path(__file__).resolve().parent.parent.parent / "shared" / "wpt"

# Pass counts reached; a lower count is a regression.
EXPECTED_PASSES = {
    "urltestdata": 891,
    "setters": 278,
    "percent-encoding": 7,
    "toascii": 87,
}

URL_PROPS = ["href", "protocol", "username", "password", "host", "hostname", "port", "pathname", "search", "hash"]

RUNNER = r"""
const {kind, cases} = JSON.parse(scriptArgs[0]);
const PROPS = %s;
const failures = [];
let pass = 0;
function check(name, ok, detail) { if (ok) pass++; else failures.push(name + ': ' + detail); }
for (const t of cases) {
  try {
    if (kind === 'urltestdata') {
      const name = JSON.stringify(t.input) + ' against ' + JSON.stringify(t.base);
      if (t.failure) {
        let threw = null;
        try { new URL(t.input, t.base === null ? undefined : t.base) } catch (e) { threw = e }
        const canParse = URL.canParse(t.input, t.base === null ? undefined : t.base);
        check(name, threw instanceof TypeError && !canParse && URL.parse(t.input, t.base === null ? undefined : t.base) === null,
              'expected TypeError, got ' + threw);
        continue;
      }
      const u = new URL(t.input, t.base === null ? undefined : t.base);
      const bad = PROPS.filter((p) => u[p] !== t[p]).map((p) => p + '=' + JSON.stringify(u[p]) + ' want ' + JSON.stringify(t[p]));
      if (t.origin !== undefined && u.origin !== t.origin) bad.push('origin=' + JSON.stringify(u.origin) + ' want ' + JSON.stringify(t.origin));
      if (t.searchParams !== undefined && u.searchParams.toString() !== t.searchParams) bad.push('searchParams');
      check(name, bad.length === 0, bad.join(', '));
    } else if (kind === 'setters') {
      const u = new URL(t.href);
      u[t.setter] = t.new_value;
      const bad = Object.entries(t.expected).filter(([p, v]) => u[p] !== v).map(([p, v]) => p + '=' + JSON.stringify(u[p]) + ' want ' + JSON.stringify(v));
      check(t.setter + ' ' + JSON.stringify(t.href) + ' <- ' + JSON.stringify(t.new_value), bad.length === 0, bad.join(', '));
    } else if (kind === 'percent-encoding') {
      const u = new URL('https://doesnotmatter.invalid/?' + t.input + '#' + t.input);
      const want = t.output['utf-8'];
      check('percent ' + JSON.stringify(t.input), u.search === '?' + want && u.hash === '#' + want, u.search + ' ' + u.hash);
    } else if (kind === 'toascii') {
      const name = 'toascii ' + JSON.stringify(t.input);
      let got;
      try { const u = new URL('https://' + t.input + '/x'); got = [u.host, u.hostname, u.pathname, u.href]; } catch (e) { got = null }
      const want = t.output === null ? null : [t.output, t.output, '/x', 'https://' + t.output + '/x'];
      const u2 = new URL('https://x/x'); u2.host = t.input;
      const u3 = new URL('https://x/x'); u3.hostname = t.input;
      const setWant = t.output === null ? 'x' : t.output;
      check(name, JSON.stringify(got) === JSON.stringify(want) && u2.host === setWant && u3.hostname === setWant,
            JSON.stringify(got) + ' host setter ' + u2.host + ' hostname setter ' + u3.hostname);
    }
  } catch (e) {
    failures.push(JSON.stringify(t) + ' threw ' + e);
  }
}
scriptOutput = JSON.stringify({pass, total: cases.length, failures});
""" % json.dumps(URL_PROPS)


def load_cases(kind: str) -> list[dict]:
    if kind == "urltestdata":
        return [c for c in json.loads((WPT / "urltestdata.json").read_text()) if isinstance(c, dict)]
    if kind == "setters":
        data = json.loads((WPT / "setters_tests.json").read_text())
        return [dict(c, setter=setter) for setter, cases in data.items() if setter != "comment" for c in cases]
    if kind == "percent-encoding":
        return [c for c in json.loads((WPT / "percent-encoding.json").read_text()) if isinstance(c, dict)]
    if kind == "toascii":
        return [c for c in json.loads((WPT / "toascii.json").read_text()) if isinstance(c, dict)]
    raise ValueError(kind)


def run_wpt(js, kind: str) -> dict:
    cases = load_cases(kind)
    r = js(RUNNER, json.dumps({"kind": kind, "cases": cases}))
    assert r.ok, r.error
    result = json.loads(r.output)
    assert result["total"] == len(cases)
    return result


@pytest.mark.parametrize("kind", list(EXPECTED_PASSES))
def test_wpt_url_data(js, kind):
    if not WPT.is_dir():
        # in CI a silent skip would hide that the WPT data was never read
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"no WPT data at {WPT} (the shared/ folder beside the repository)")
        pytest.skip(f"no WPT data at {WPT}")
    result = run_wpt(js, kind)
    print(f"\nWPT {kind}: {result['pass']}/{result['total']} pass")
    for f in result["failures"][:50]:
        print("  FAIL", f)
    assert result["pass"] >= EXPECTED_PASSES[kind], result["failures"][:20]


def test_invalid_url_is_a_type_error(js):
    assert out(js, """
        const r = [];
        for (const [u, b] of [['nope'], ['http://[::1'], ['/x', 'also bad'], ['http://a:99999'], ['']]) {
          try { new URL(u, b); r.push('parsed') } catch (e) { r.push([e.name, e instanceof TypeError, e.message.startsWith('Invalid URL')]) }
        }
        try { new URL() } catch (e) { r.push(e.name) }
        r.push(URL.canParse('nope'), URL.canParse('/x', 'https://a'), URL.parse('nope'), URL.parse('/x', 'https://a').href);
        scriptOutput = JSON.stringify(r);
    """) == [["TypeError", True, True]] * 5 + ["TypeError", False, True, None, "https://a/x"]


def test_url_parts_setters_and_json(js):
    assert out(js, """
        const u = new URL('HTTPS://user:pa ss@EXAMPLE.com:443/a/../b/./c?q=1 2#frag ment');
        const r = [u.href, u.origin, u.port, u.host, u.pathname, u.search, u.hash, u.username, u.password];
        u.port = '8443'; u.hostname = 'b\u00fccher.de'; u.pathname = '/x y'; u.hash = ''; u.protocol = 'wss';
        r.push(u.href, JSON.stringify({u}), String(u), u.toJSON());
        r.push(new URL('http://[0:0:0:0:0:0:0:1]:80/').href, new URL('http://0x7f.1/').host, new URL('http://[::ffff:192.168.0.1]').host);
        r.push(Object.prototype.toString.call(u), Object.keys(URL.prototype).includes('href'));
        scriptOutput = JSON.stringify(r);
    """) == [
        "https://user:pa%20ss@example.com/b/c?q=1%202#frag%20ment", "https://example.com", "", "example.com",
        "/b/c", "?q=1%202", "#frag%20ment", "user", "pa%20ss",
        "wss://user:pa%20ss@xn--bcher-kva.de:8443/x%20y?q=1%202",
        '{"u":"wss://user:pa%20ss@xn--bcher-kva.de:8443/x%20y?q=1%202"}',
        "wss://user:pa%20ss@xn--bcher-kva.de:8443/x%20y?q=1%202", "wss://user:pa%20ss@xn--bcher-kva.de:8443/x%20y?q=1%202",
        "http://[::1]/", "127.0.0.1", "[::ffff:c0a8:1]", "[object URL]", True]


def test_search_params_live_binding(js):
    assert out(js, """
        const u = new URL('https://a/p?b=2&a=1&a=3');
        const sp = u.searchParams;
        const r = [sp.get('a'), sp.getAll('a'), sp.size, sp.has('a', '3'), sp.has('a', '9')];
        sp.append('c', 'x y&z'); r.push(u.search);
        sp.sort(); r.push(u.href);
        sp.set('a', 'only'); r.push(u.search);
        sp.delete('a'); sp.delete('b', '2'); r.push(u.search);
        u.search = '?q=%20w+v'; r.push(sp.get('q'), u.searchParams === sp);
        u.href = 'https://b/?n=1'; r.push(sp.get('n'), sp.size);
        sp.delete('n'); r.push(u.href);
        scriptOutput = JSON.stringify(r);
    """) == ["1", ["1", "3"], 3, True, False, "?b=2&a=1&a=3&c=x+y%26z",
             "https://a/p?a=1&a=3&b=2&c=x+y%26z", "?a=only&b=2&c=x+y%26z", "?c=x+y%26z", " w v", True, "1", 1,
             "https://b/"]


def test_search_params_constructors_and_iteration(js):
    assert out(js, """
        const r = [];
        r.push(new URLSearchParams('?a=1&b=%F0%9F%98%80&c&=d&&e=%zz').toString());
        r.push([...new URLSearchParams({x: '1', y: 2})]);
        r.push([...new URLSearchParams([['k', 'v'], new Set(['s', 't'])]).keys()]);
        r.push([...new URLSearchParams(new URLSearchParams('z=9')).values()]);
        r.push(new URLSearchParams('a=\\u00e9 ~*').toString());
        try { new URLSearchParams([['only-one']]) } catch (e) { r.push(e.name) }
        const seen = []; new URLSearchParams('p=1&q=2').forEach((v, k, o) => seen.push(k + v + (o instanceof URLSearchParams)));
        r.push(seen, Object.prototype.toString.call(new URLSearchParams()), new URLSearchParams('b=1').get('zz'));
        const sp = new URLSearchParams('z=1&a=2&z=0&\\ud83d\\ude00=e&\\uff41=f'); sp.sort(); r.push([...sp.keys()]);
        scriptOutput = JSON.stringify(r);
    """) == ["a=1&b=%F0%9F%98%80&c=&=d&e=%25zz", [["x", "1"], ["y", "2"]], ["k", "s"], ["9"],
             "a=%C3%A9+%7E*", "TypeError", ["p1true", "q2true"], "[object URLSearchParams]", None,
             ["a", "z", "z", "\U0001F600", "\uff41"]]


def test_opaque_paths_and_origins(js):
    assert out(js, """
        const r = [];
        for (const s of ['data:text/plain,hi there', 'mailto:a@b.c', 'blob:https://x.org:8080/uuid', 'file:///C:/a/../b',
                         'javascript:alert(1)', 'sc://h/p', 'http://example.com/%7Efoo/\\u00e9']) {
          const u = new URL(s); r.push([u.href, u.origin, u.pathname, u.host]);
        }
        scriptOutput = JSON.stringify(r);
    """) == [
        ["data:text/plain,hi there", "null", "text/plain,hi there", ""],
        ["mailto:a@b.c", "null", "a@b.c", ""],
        ["blob:https://x.org:8080/uuid", "https://x.org:8080", "https://x.org:8080/uuid", ""],
        ["file:///C:/b", "null", "/C:/b", ""],
        ["javascript:alert(1)", "null", "alert(1)", ""],
        ["sc://h/p", "null", "/p", "h"],
        ["http://example.com/%7Efoo/%C3%A9", "http://example.com", "/%7Efoo/%C3%A9", "example.com"]]
