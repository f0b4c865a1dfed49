"""Helpers for tests that run many JS checks in one sandbox (one sandbox per test keeps the suite fast)."""

from __future__ import annotations

import json

# `case(name, async fn)` records fn's result, or the thrown error as "!Name: message"; the script
# outputs all results as JSON. A case that never settles shows as "!unfinished".
HARNESS = """
const results = {};
const cases = [];
function case_(name, fn) { cases.push([name, fn]); }
const errName = (e) => (e && e.name) ? e.name : String(e);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const catchName = (fn) => { try { fn(); return 'no error'; } catch (e) { return errName(e); } };
async function readAll(stream) {
  const reader = stream.getReader(); const out = [];
  for (;;) { const { value, done } = await reader.read(); if (done) return out; out.push(value); }
}
(async () => {
  for (const [name, fn] of cases) {
    results[name] = '!unfinished';
    scriptOutput = JSON.stringify(results);
    try { results[name] = await fn(); } catch (e) { results[name] = '!' + errName(e) + ': ' + (e && e.message); }
  }
  scriptOutput = JSON.stringify(results);
})();
"""


def run_cases(js, body: str) -> dict:
    """Run the `case(...)` definitions of ``body`` and return {name: result}."""
    r = js(HARNESS.replace("(async () => {", body + "\n(async () => {", 1).replace("case(", "case_("))
    assert r.ok, r.error
    return json.loads(r.output)


def out(js, code: str, *args: str):
    """Run ``code`` and return its scriptOutput parsed as JSON."""
    r = js(code, *args)
    assert r.ok, r.error
    return json.loads(r.output)
