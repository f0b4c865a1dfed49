// @provides Event EventTarget CustomEvent
// DOM events without a tree: an EventTarget is its own whole propagation path
// (capture listeners, then the others, at the target). An exception thrown by
// a listener is reported (console.error), never thrown out of dispatchEvent,
// as browsers do.

const S = Symbol("event state");
const LISTENERS = Symbol("listeners");

const { isObject, stateOf } = host.internal("shared");

function state(ev) { return stateOf(ev, S); }

function eventInit(init, what) {
  if (init === undefined || init === null) return {};
  if (!isObject(init)) throw new TypeError(`Failed to construct '${what}': The provided value is not of type '${what}Init'.`);
  return init;
}

class Event {
  constructor(type, eventInitDict = undefined) {
    if (arguments.length < 1)
      throw new TypeError("Failed to construct 'Event': 1 argument required, but only 0 present.");
    const init = eventInit(eventInitDict, "Event");
    this[S] = {
      type: String(type),
      bubbles: !!init.bubbles,
      cancelable: !!init.cancelable,
      composed: !!init.composed,
      target: null,
      currentTarget: null,
      eventPhase: 0,
      canceled: false,
      stopPropagation: false,
      stopImmediate: false,
      inPassive: false,
      dispatching: false,
      initialized: true,
      timeStamp: performance.now(),
    };
    Object.defineProperty(this, "isTrusted", { get: isTrustedGetter, enumerable: true, configurable: false });
  }
  get type() { return state(this).type; }
  get target() { return state(this).target; }
  get srcElement() { return state(this).target; }
  get currentTarget() { return state(this).currentTarget; }
  get eventPhase() { return state(this).eventPhase; }
  get bubbles() { return state(this).bubbles; }
  get cancelable() { return state(this).cancelable; }
  get composed() { return state(this).composed; }
  get defaultPrevented() { return state(this).canceled; }
  get timeStamp() { return state(this).timeStamp; }
  get returnValue() { return !state(this).canceled; }
  set returnValue(v) {
    const s = state(this);
    if (!v && s.cancelable && !s.inPassive) s.canceled = true;
  }
  get cancelBubble() { return state(this).stopPropagation; }
  set cancelBubble(v) { if (v) state(this).stopPropagation = true; }
  composedPath() {
    const s = state(this);
    return s.dispatching && s.currentTarget ? [s.currentTarget] : [];
  }
  stopPropagation() { state(this).stopPropagation = true; }
  stopImmediatePropagation() {
    const s = state(this);
    s.stopPropagation = true;
    s.stopImmediate = true;
  }
  preventDefault() {
    const s = state(this);
    if (s.cancelable && !s.inPassive) s.canceled = true;
  }
  initEvent(type, bubbles = false, cancelable = false) {
    const s = state(this);
    if (s.dispatching) return;
    s.type = String(type);
    s.bubbles = !!bubbles;
    s.cancelable = !!cancelable;
    s.canceled = s.stopPropagation = s.stopImmediate = false;
    s.target = null;
    s.initialized = true;
  }
  get [Symbol.toStringTag]() { return "Event"; }
}
function isTrustedGetter() { return false; }
const PHASES = { NONE: 0, CAPTURING_PHASE: 1, AT_TARGET: 2, BUBBLING_PHASE: 3 };
for (const [k, v] of Object.entries(PHASES)) {
  Object.defineProperty(Event, k, { value: v, enumerable: true });
  Object.defineProperty(Event.prototype, k, { value: v, enumerable: true });
}

class CustomEvent extends Event {
  constructor(type, eventInitDict = undefined) {
    if (arguments.length < 1)
      throw new TypeError("Failed to construct 'CustomEvent': 1 argument required, but only 0 present.");
    const init = eventInit(eventInitDict, "CustomEvent");
    super(type, init);
    this[S].detail = init.detail === undefined ? null : init.detail;
  }
  get detail() { return state(this).detail; }
  initCustomEvent(type, bubbles = false, cancelable = false, detail = null) {
    const s = state(this);
    if (s.dispatching) return;
    this.initEvent(type, bubbles, cancelable);
    s.detail = detail;
  }
  get [Symbol.toStringTag]() { return "CustomEvent"; }
}

function flatten(options) {
  if (isObject(options)) return { capture: !!options.capture, options };
  return { capture: !!options, options: null };
}

function listeners(target) {
  if (!isObject(target)) throw new TypeError("Illegal invocation");
  let l = target[LISTENERS];
  if (!l) {
    l = new Map();
    Object.defineProperty(target, LISTENERS, { value: l });
  }
  return l;
}

function report(err) {
  try {
    console.error(err);
  } catch (e) {
    /* nothing more to do */
  }
}

class EventTarget {
  constructor() {
    Object.defineProperty(this, LISTENERS, { value: new Map() });
  }
  addEventListener(type, callback, options = undefined) {
    if (arguments.length < 2)
      throw new TypeError(`Failed to execute 'addEventListener' on 'EventTarget': 2 arguments required, but only ${arguments.length} present.`);
    const { capture, options: opts } = flatten(options);
    const once = !!(opts && opts.once);
    const passive = !!(opts && opts.passive);
    const signal = opts ? opts.signal : undefined;
    if (signal !== undefined && !(isObject(signal) && "aborted" in signal))
      throw new TypeError("Failed to execute 'addEventListener' on 'EventTarget': member signal is not of type AbortSignal.");
    if (callback === null || callback === undefined) return;
    if (!isObject(callback))
      throw new TypeError("Failed to execute 'addEventListener' on 'EventTarget': The callback provided as parameter 2 is not an object.");
    if (signal && signal.aborted) return;
    type = String(type);
    const map = listeners(this);
    let list = map.get(type);
    if (!list) map.set(type, (list = []));
    if (list.some((l) => l.callback === callback && l.capture === capture)) return;
    const entry = { callback, capture, once, passive, removed: false };
    list.push(entry);
    if (signal) {
      signal.addEventListener("abort", () => this.removeEventListener(type, callback, { capture }));
    }
  }
  removeEventListener(type, callback, options = undefined) {
    if (arguments.length < 2)
      throw new TypeError(`Failed to execute 'removeEventListener' on 'EventTarget': 2 arguments required, but only ${arguments.length} present.`);
    const { capture } = flatten(options);
    const map = listeners(this);
    const list = map.get(String(type));
    if (!list) return;
    const i = list.findIndex((l) => l.callback === callback && l.capture === capture);
    if (i >= 0) {
      list[i].removed = true;
      list.splice(i, 1);
    }
  }
  dispatchEvent(event) {
    if (!(isObject(event) && S in event))
      throw new TypeError("Failed to execute 'dispatchEvent' on 'EventTarget': parameter 1 is not of type 'Event'.");
    const s = event[S];
    if (s.dispatching || !s.initialized)
      throw new DOMException("Failed to execute 'dispatchEvent' on 'EventTarget': The event is already being dispatched.", "InvalidStateError");
    s.dispatching = true;
    s.target = this;
    s.currentTarget = this;
    s.eventPhase = 2;
    try {
      const list = listeners(this).get(s.type);
      if (list && list.length) {
        const snapshot = list.slice();
        for (const phase of ["capturing", "bubbling"]) {
          if (s.stopPropagation) break;
          for (const l of snapshot) {
            if (l.removed || l.capture !== (phase === "capturing")) continue;
            if (l.once) this.removeEventListener(s.type, l.callback, { capture: l.capture });
            if (l.passive) s.inPassive = true;
            try {
              if (typeof l.callback === "function") {
                l.callback.call(this, event);
              } else {
                const handle = l.callback.handleEvent;
                if (typeof handle !== "function") throw new TypeError("The listener's handleEvent is not a function");
                handle.call(l.callback, event);
              }
            } catch (err) {
              report(err);
            }
            s.inPassive = false;
            if (s.stopImmediate) break;
          }
          if (s.stopImmediate) break;
        }
      }
    } finally {
      s.dispatching = false;
      s.eventPhase = 0;
      s.currentTarget = null;
      s.stopPropagation = false;
      s.stopImmediate = false;
    }
    return !s.canceled;
  }
  get [Symbol.toStringTag]() { return "EventTarget"; }
}

return { Event, EventTarget, CustomEvent };
