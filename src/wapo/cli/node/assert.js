// node:assert for bundled agents: ok, equal, strictEqual, deepStrictEqual (and their not-forms),
// throws, rejects, match, fail, AssertionError; `assert.strict` is the same object.
import { isDeepStrictEqual } from "./deep_equal.js";
import { inspect } from "./util.js";

export class AssertionError extends Error {
  constructor(options = {}) {
    super(options.message || `${inspect(options.actual)} ${options.operator} ${inspect(options.expected)}`);
    this.name = "AssertionError";
    this.code = "ERR_ASSERTION";
    this.actual = options.actual;
    this.expected = options.expected;
    this.operator = options.operator;
    this.generatedMessage = !options.message;
  }
}

function fail_(actual, expected, message, operator) {
  if (message instanceof Error) throw message;
  throw new AssertionError({ actual, expected, message, operator });
}

function assert(value, message) { if (!value) fail_(value, true, message || "The expression evaluated to a falsy value", "=="); }

export const ok = assert;
export function equal(a, b, m) { if (!(a == b || (a !== a && b !== b))) fail_(a, b, m, "=="); }
export function notEqual(a, b, m) { if (a == b || (a !== a && b !== b)) fail_(a, b, m, "!="); }
export function strictEqual(a, b, m) { if (!Object.is(a, b)) fail_(a, b, m, "strictEqual"); }
export function notStrictEqual(a, b, m) { if (Object.is(a, b)) fail_(a, b, m, "notStrictEqual"); }
export function deepStrictEqual(a, b, m) { if (!isDeepStrictEqual(a, b)) fail_(a, b, m, "deepStrictEqual"); }
export function notDeepStrictEqual(a, b, m) { if (isDeepStrictEqual(a, b)) fail_(a, b, m, "notDeepStrictEqual"); }
export const deepEqual = deepStrictEqual;
export const notDeepEqual = notDeepStrictEqual;
export function fail(message = "Failed") { fail_(undefined, undefined, message, "fail"); }
export function match(s, re, m) { if (!re.test(s)) fail_(s, re, m, "match"); }
export function doesNotMatch(s, re, m) { if (re.test(s)) fail_(s, re, m, "doesNotMatch"); }
export function ifError(v) { if (v !== null && v !== undefined) throw v; }

function matches(error, expected) {
  if (expected === undefined) return true;
  if (typeof expected === "function" && expected.prototype !== undefined && error instanceof expected) return true;
  if (expected instanceof RegExp) return expected.test(String(error && error.message || error));
  if (typeof expected === "function") return expected(error) === true;
  if (typeof expected === "object") return Object.keys(expected).every((k) =>
    expected[k] instanceof RegExp ? expected[k].test(error[k]) : isDeepStrictEqual(error[k], expected[k]));
  return false;
}

export function throws(fn, expected, message) {
  try { fn(); } catch (e) {
    if (!matches(e, expected)) throw e;
    return;
  }
  fail_(undefined, expected, typeof expected === "string" ? expected : message || "Missing expected exception.", "throws");
}
export function doesNotThrow(fn, message) {
  try { fn(); } catch (e) { fail_(e, undefined, message || `Got unwanted exception: ${e && e.message}`, "doesNotThrow"); }
}
export async function rejects(promiseOrFn, expected, message) {
  try { await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn); } catch (e) {
    if (!matches(e, expected)) throw e;
    return;
  }
  fail_(undefined, expected, message || "Missing expected rejection.", "rejects");
}
export async function doesNotReject(promiseOrFn, message) {
  try { await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn); } catch (e) {
    fail_(e, undefined, message || `Got unwanted rejection: ${e && e.message}`, "doesNotReject");
  }
}

Object.assign(assert, {
  ok, equal, notEqual, strictEqual, notStrictEqual, deepStrictEqual, notDeepStrictEqual, deepEqual, notDeepEqual,
  fail, match, doesNotMatch, ifError, throws, doesNotThrow, rejects, doesNotReject, AssertionError,
});
assert.strict = assert;
export const strict = assert;
export default assert;
