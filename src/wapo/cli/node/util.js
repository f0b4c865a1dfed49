// node:util for bundled agents: the subset npm packages use (format, inspect, inherits,
// promisify, callbackify, deprecate, types, TextEncoder/TextDecoder, isDeepStrictEqual).
import { isDeepStrictEqual } from "./deep_equal.js";

const custom = Symbol.for("nodejs.util.inspect.custom");

function inspectValue(value, depth, seen) {
  if (value === null) return "null";
  switch (typeof value) {
    case "undefined": return "undefined";
    case "string": return depth === 0 ? value : `'${value.replace(/'/g, "\\'")}'`;
    case "number": return Object.is(value, -0) ? "-0" : String(value);
    case "bigint": return `${value}n`;
    case "symbol": return value.toString();
    case "function": return `[Function: ${value.name || "(anonymous)"}]`;
  }
  if (typeof value[custom] === "function") return String(value[custom](2, {}));
  if (seen.has(value)) return "[Circular *1]";
  if (value instanceof Error) return value.stack || `${value.name}: ${value.message}`;
  if (value instanceof Date) return value.toISOString();
  if (value instanceof RegExp) return String(value);
  if (depth > 2) return Array.isArray(value) ? "[Array]" : "[Object]";
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      return value.length ? `[ ${value.map((v) => inspectValue(v, depth + 1, seen)).join(", ")} ]` : "[]";
    }
    if (ArrayBuffer.isView(value)) {
      const name = value.constructor && value.constructor.name || "TypedArray";
      return `${name}(${value.length}) [ ${Array.from(value).slice(0, 50).join(", ")} ]`;
    }
    if (value instanceof Map) {
      return `Map(${value.size}) { ${[...value].map(([k, v]) => `${inspectValue(k, depth + 1, seen)} => ${inspectValue(v, depth + 1, seen)}`).join(", ")} }`;
    }
    if (value instanceof Set) {
      return `Set(${value.size}) { ${[...value].map((v) => inspectValue(v, depth + 1, seen)).join(", ")} }`;
    }
    const keys = Object.keys(value);
    if (!keys.length) return "{}";
    const body = keys.map((k) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : `'${k}'`}: ${inspectValue(value[k], depth + 1, seen)}`);
    return `{ ${body.join(", ")} }`;
  } finally {
    seen.delete(value);
  }
}

export function inspect(value) { return inspectValue(value, 1, new Set()); }
inspect.custom = custom;

export function format(fmt, ...args) {
  if (typeof fmt !== "string") return [fmt, ...args].map((a) => typeof a === "string" ? a : inspect(a)).join(" ");
  let i = 0;
  let out = fmt.replace(/%[sdifjoOc%]/g, (m) => {
    if (m === "%%") return "%";
    if (i >= args.length) return m;
    const a = args[i++];
    switch (m) {
      case "%s": return typeof a === "string" ? a : typeof a === "bigint" ? `${a}n` : (typeof a === "object" && a !== null ? inspect(a) : String(a));
      case "%d": return typeof a === "bigint" ? `${a}n` : String(Number(a));
      case "%i": return String(parseInt(a, 10));
      case "%f": return String(parseFloat(a));
      case "%j": try { return JSON.stringify(a); } catch { return "[Circular]"; }
      case "%c": return "";
      default: return inspect(a);
    }
  });
  for (; i < args.length; i++) out += " " + (typeof args[i] === "string" ? args[i] : inspect(args[i]));
  return out;
}

export function inherits(ctor, superCtor) {
  if (superCtor === undefined || superCtor === null) throw new TypeError("The super constructor must be a function");
  Object.defineProperty(ctor, "super_", { value: superCtor, writable: true, configurable: true });
  Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
}

const customPromisify = Symbol.for("nodejs.util.promisify.custom");
export function promisify(fn) {
  if (typeof fn !== "function") throw new TypeError('The "original" argument must be of type function');
  if (fn[customPromisify]) return fn[customPromisify];
  function promisified(...args) {
    return new Promise((resolve, reject) => {
      fn.call(this, ...args, (err, ...values) => (err ? reject(err) : resolve(values.length > 1 ? values : values[0])));
    });
  }
  Object.setPrototypeOf(promisified, Object.getPrototypeOf(fn));
  return Object.defineProperties(promisified, Object.getOwnPropertyDescriptors(fn));
}
promisify.custom = customPromisify;

export function callbackify(fn) {
  return function (...args) {
    const cb = args.pop();
    fn.apply(this, args).then((v) => queueMicrotask(() => cb(null, v)),
      (e) => queueMicrotask(() => cb(e || Object.assign(new Error("Promise was rejected with a falsy value"), { reason: e }))));
  };
}

export function deprecate(fn, message) {
  let warned = false;
  return function (...args) {
    if (!warned) { warned = true; console.warn(`DeprecationWarning: ${message}`); }
    return new.target ? Reflect.construct(fn, args, new.target) : fn.apply(this, args);
  };
}

export function debuglog() { const log = () => {}; log.enabled = false; return log; }
export const debug = debuglog;

const tag = (v) => Object.prototype.toString.call(v).slice(8, -1);
export const types = {
  isPromise: (v) => v instanceof Promise,
  isRegExp: (v) => v instanceof RegExp,
  isDate: (v) => v instanceof Date,
  isMap: (v) => v instanceof Map,
  isSet: (v) => v instanceof Set,
  isNativeError: (v) => v instanceof Error,
  isTypedArray: (v) => ArrayBuffer.isView(v) && !(v instanceof DataView),
  isUint8Array: (v) => v instanceof Uint8Array,
  isArrayBuffer: (v) => v instanceof ArrayBuffer,
  isAnyArrayBuffer: (v) => v instanceof ArrayBuffer || tag(v) === "SharedArrayBuffer",
  isArrayBufferView: (v) => ArrayBuffer.isView(v),
  isDataView: (v) => v instanceof DataView,
  isAsyncFunction: (v) => tag(v) === "AsyncFunction",
  isGeneratorFunction: (v) => tag(v) === "GeneratorFunction" || tag(v) === "AsyncGeneratorFunction",
  isBoxedPrimitive: (v) => v instanceof Number || v instanceof String || v instanceof Boolean,
};

export const isArray = Array.isArray;
export const isBoolean = (v) => typeof v === "boolean";
export const isNull = (v) => v === null;
export const isNullOrUndefined = (v) => v === null || v === undefined;
export const isNumber = (v) => typeof v === "number";
export const isString = (v) => typeof v === "string";
export const isSymbol = (v) => typeof v === "symbol";
export const isUndefined = (v) => v === undefined;
export const isRegExp = types.isRegExp;
export const isObject = (v) => v !== null && typeof v === "object";
export const isDate = types.isDate;
export const isError = types.isNativeError;
export const isFunction = (v) => typeof v === "function";
export const isPrimitive = (v) => v === null || (typeof v !== "object" && typeof v !== "function");

const TE = globalThis.TextEncoder, TD = globalThis.TextDecoder;
export { TE as TextEncoder, TD as TextDecoder, isDeepStrictEqual };

export default {
  format, inspect, inherits, promisify, callbackify, deprecate, debuglog, debug, types, isDeepStrictEqual,
  TextEncoder: TE, TextDecoder: TD, isArray, isBoolean, isNull, isNullOrUndefined, isNumber, isString,
  isSymbol, isUndefined, isRegExp, isObject, isDate, isError, isFunction, isPrimitive,
};
