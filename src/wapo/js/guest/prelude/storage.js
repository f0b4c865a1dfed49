// @provides localStorage sessionStorage Storage
// The Web Storage API, in memory (per sandbox run; nothing persists). Keys
// and values are strings; items are also reachable as properties
// (localStorage.x = "1"), as in browsers. A storage area holds at most
// 5 MiB (UTF-16 code units of keys and values, as browsers count):
// more throws a QuotaExceededError DOMException.

const QUOTA = 5 * 1024 * 1024;
const ITEMS = Symbol("items");
let constructing = false;

class Storage {
  constructor() {
    if (!constructing) throw new TypeError("Illegal constructor");
    Object.defineProperty(this, ITEMS, { value: { map: new Map(), used: 0 } });
  }
  get length() { return items(this).map.size; }
  key(index) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'key' on 'Storage': 1 argument required, but only 0 present.");
    const i = Number(index) >>> 0;
    const keys = Array.from(items(this).map.keys());
    return i < keys.length ? keys[i] : null;
  }
  getItem(key) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'getItem' on 'Storage': 1 argument required, but only 0 present.");
    const v = items(this).map.get(String(key));
    return v === undefined ? null : v;
  }
  setItem(key, value) {
    if (arguments.length < 2) throw new TypeError(`Failed to execute 'setItem' on 'Storage': 2 arguments required, but only ${arguments.length} present.`);
    const st = items(this);
    key = String(key);
    value = String(value);
    const old = st.map.get(key);
    const used = st.used - (old === undefined ? 0 : key.length + old.length) + key.length + value.length;
    if (used > QUOTA)
      throw new DOMException(`Failed to execute 'setItem' on 'Storage': Setting the value of '${key}' exceeded the quota.`, "QuotaExceededError");
    st.map.set(key, value);
    st.used = used;
  }
  removeItem(key) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'removeItem' on 'Storage': 1 argument required, but only 0 present.");
    const st = items(this);
    key = String(key);
    const old = st.map.get(key);
    if (old === undefined) return;
    st.map.delete(key);
    st.used -= key.length + old.length;
  }
  clear() {
    const st = items(this);
    st.map.clear();
    st.used = 0;
  }
  get [Symbol.toStringTag]() { return "Storage"; }
}

function items(s) {
  const target = s && s[ITEMS];
  if (!target) throw new TypeError("Illegal invocation");
  return target;
}

// Named properties map to items, except the names on Storage.prototype.
function makeStorage() {
  constructing = true;
  let target;
  try {
    target = new Storage();
  } finally {
    constructing = false;
  }
  const st = target[ITEMS];
  const isItem = (p) => typeof p === "string" && !(p in Storage.prototype) && st.map.has(p);
  return new Proxy(target, {
    get(t, p, receiver) {
      if (isItem(p)) return st.map.get(p);
      return Reflect.get(t, p, t);
    },
    set(t, p, v) {
      if (typeof p === "symbol" || p in Storage.prototype) return Reflect.set(t, p, v, t);
      t.setItem(p, v);
      return true;
    },
    has(t, p) { return isItem(p) || Reflect.has(t, p); },
    deleteProperty(t, p) {
      if (isItem(p)) t.removeItem(p);
      return Reflect.deleteProperty(t, p);
    },
    ownKeys(t) { return [...st.map.keys(), ...Reflect.ownKeys(t)]; },
    getOwnPropertyDescriptor(t, p) {
      if (isItem(p)) return { value: st.map.get(p), writable: true, enumerable: true, configurable: true };
      return Reflect.getOwnPropertyDescriptor(t, p);
    },
    defineProperty(t, p, desc) {
      if (typeof p === "string" && !(p in Storage.prototype) && "value" in desc) {
        t.setItem(p, desc.value);
        return true;
      }
      return Reflect.defineProperty(t, p, desc);
    },
  });
}

return { localStorage: makeStorage(), sessionStorage: makeStorage(), Storage };
