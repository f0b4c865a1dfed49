// @provides structuredClone
// The HTML structured clone algorithm (serialize + deserialize in one pass):
// cycles and shared references kept; primitives, wrappers, Date, RegExp,
// ArrayBuffer, views, Map, Set, Array, Error and plain objects cloned;
// functions, symbols and other platform objects throw a DataCloneError.
// `transfer` detaches the listed ArrayBuffers (the clone gets their bytes).

const ERROR_NAMES = new Set(["Error", "EvalError", "RangeError", "ReferenceError", "SyntaxError", "TypeError", "URIError"]);
const TYPED = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array];
if (typeof Float16Array === "function") TYPED.push(Float16Array);

const toStringTag = (v) => Object.prototype.toString.call(v).slice(8, -1);
const dataCloneError = (what) => new DOMException(`${what} could not be cloned.`, "DataCloneError");

function cloneValue(value, memo) {
  const t = typeof value;
  if (t === "symbol") throw dataCloneError(String(value));
  if (t === "function") throw dataCloneError(`${value.toString().slice(0, 60)}`);
  if (value === null || t !== "object") return value;
  if (memo.has(value)) return memo.get(value);
  const tag = toStringTag(value);
  let out;
  switch (tag) {
    case "Boolean": out = Object(Boolean.prototype.valueOf.call(value)); break;
    case "Number": out = Object(Number.prototype.valueOf.call(value)); break;
    case "String": out = Object(String.prototype.valueOf.call(value)); break;
    case "BigInt": out = Object(BigInt.prototype.valueOf.call(value)); break;
    case "Date": out = new Date(Date.prototype.getTime.call(value)); break;
    case "RegExp": out = new RegExp(value.source, value.flags); break;
    case "ArrayBuffer": {
      const opts = value.resizable ? { maxByteLength: value.maxByteLength } : undefined;
      out = new ArrayBuffer(value.byteLength, opts);
      new Uint8Array(out).set(new Uint8Array(value));
      break;
    }
    case "SharedArrayBuffer": out = value; break;
    case "DataView": {
      const buf = cloneValue(value.buffer, memo);
      out = new DataView(buf, value.byteOffset, value.byteLength);
      break;
    }
    case "Map": {
      out = new Map();
      memo.set(value, out);
      for (const [k, v] of Array.from(Map.prototype.entries.call(value))) out.set(cloneValue(k, memo), cloneValue(v, memo));
      return out;
    }
    case "Set": {
      out = new Set();
      memo.set(value, out);
      for (const v of Array.from(Set.prototype.values.call(value))) out.add(cloneValue(v, memo));
      return out;
    }
    case "Error": {
      let name = value.name;
      if (!ERROR_NAMES.has(name)) name = "Error";
      const Ctor = globalThis[name];
      out = Object.create(Ctor.prototype);
      memo.set(value, out);
      const msg = Object.getOwnPropertyDescriptor(value, "message");
      if (msg && "value" in msg)
        Object.defineProperty(out, "message", { value: String(msg.value), writable: true, configurable: true, enumerable: false });
      if (typeof value.stack === "string")
        Object.defineProperty(out, "stack", { value: value.stack, writable: true, configurable: true, enumerable: false });
      if (Object.prototype.hasOwnProperty.call(value, "cause"))
        Object.defineProperty(out, "cause", { value: cloneValue(value.cause, memo), writable: true, configurable: true, enumerable: false });
      return out;
    }
    case "Array": {
      out = new Array(value.length);
      memo.set(value, out);
      for (const key of Object.keys(value)) out[key] = cloneValue(value[key], memo);
      return out;
    }
    case "Object": {
      if (value instanceof DOMException) {
        out = new DOMException(value.message, value.name);
        break;
      }
      if (Array.isArray(value)) throw dataCloneError("Proxy");
      out = {};
      memo.set(value, out);
      for (const key of Object.keys(value)) out[key] = cloneValue(value[key], memo);
      return out;
    }
    default: {
      if (ArrayBuffer.isView(value)) {
        const Ctor = TYPED.find((C) => value instanceof C);
        if (!Ctor) throw dataCloneError(tag);
        const buf = cloneValue(value.buffer, memo);
        out = new Ctor(buf, value.byteOffset, value.length);
        break;
      }
      if (value instanceof DOMException) {
        out = new DOMException(value.message, value.name);
        break;
      }
      throw dataCloneError(tag === "Object" ? "#<Object>" : `#<${tag}>`);
    }
  }
  memo.set(value, out);
  return out;
}

function structuredClone(value, options = undefined) {
  if (arguments.length < 1)
    throw new TypeError("Failed to execute 'structuredClone': 1 argument required, but only 0 present.");
  let transfer = [];
  if (options !== undefined && options !== null) {
    if (typeof options !== "object") throw new TypeError("Failed to execute 'structuredClone': The provided value is not of type 'StructuredSerializeOptions'.");
    if (options.transfer !== undefined) {
      if (options.transfer === null || typeof options.transfer[Symbol.iterator] !== "function")
        throw new TypeError("Failed to execute 'structuredClone': The provided value cannot be converted to a sequence.");
      transfer = Array.from(options.transfer);
    }
  }
  const seen = new Set();
  for (const t of transfer) {
    if (toStringTag(t) !== "ArrayBuffer") throw dataCloneError("Value in the transfer list");
    if (seen.has(t)) throw dataCloneError("An ArrayBuffer is duplicated in the transfer list and");
    if (t.detached) throw dataCloneError("An ArrayBuffer is detached and");
    seen.add(t);
  }
  const memo = new Map();
  const out = cloneValue(value, memo);
  for (const t of transfer) t.transfer();
  return out;
}

return { structuredClone };
