// @provides @runAgent
// The agent entry point: runs an agent's code in whichever of the three styles
// it is written, with the request payload of spec section 5 in scriptArgs[0].
//   A: a `main(request)` function (global, or the default export of a module):
//      its resolved value (JSON of {status, headers, body}) becomes scriptOutput.
//   B: a bundle that runs itself (`handle(app)` of @phala/wapo-env) and sets
//      scriptOutput to msgpack of {status, headers, body}: left alone.
//   C: `export default { fetch(request, env, ctx) }` (or module.exports of one):
//      the Response is streamed out as a head line then body chunks.

// Marks streamed (style C) output: NUL cannot start a style A or B answer.
const HEAD_MAGIC = "\u0000wapo-http\u0000";

function write(bytes) {
  host.call("output.write", bytes);
}

function hasScheduled(x) {
  return x !== null && (typeof x === "object" || typeof x === "function") && typeof x.scheduled === "function";
}

function hasFetch(x) {
  return x !== null && (typeof x === "object" || typeof x === "function") && typeof x.fetch === "function";
}

// An ES module uses import or export statements at the start of a statement.
// (Not import() or import.meta alone; JS_DetectModule would accept any strict code.)
const MODULE_SYNTAX = /(^|[;}\n])[ \t]*(export[ \t\n]*(default\b|\{|\*|const\b|let\b|var\b|function\b|async\b|class\b)|import[ \t\n]*([{*"'`]|[A-Za-z_$][\w$]*[ \t\n]*(,|from\b)))/;

function looksLikeModule(code) {
  return MODULE_SYNTAX.test(code);
}

async function answerMain(main, payload) {
  const out = await main(payload);
  // A handler may answer by setting scriptOutput itself (handle(app) of @phala/wapo-env does).
  if (out !== undefined) globalThis.scriptOutput = typeof out === "string" ? out : JSON.stringify(out);
}

function headerPairs(headers) {
  const pairs = [];
  if (headers && typeof headers.forEach === "function") {
    headers.forEach((value, name) => {
      if (name === "set-cookie" && typeof headers.getSetCookie === "function") return;
      pairs.push([name, value]);
    });
    if (typeof headers.getSetCookie === "function") {
      for (const cookie of headers.getSetCookie()) pairs.push(["set-cookie", cookie]);
    }
  }
  return pairs;
}

async function serveFetch(target, req) {
  const method = (req.method || "GET").toUpperCase();
  const init = { method, headers: req.headers || {} };
  if (method !== "GET" && method !== "HEAD" && req.body !== undefined && req.body !== null && req.body !== "") {
    init.body = req.body;
  }
  // The client going away aborts request.signal (the host tells us through a watched resource).
  const controller = new AbortController();
  init.signal = controller.signal;
  const cancelled = new DataView(host.call("cancellation").buffer).getUint32(0, true);
  host.watch(cancelled, () => controller.abort(new DOMException("the client disconnected", "AbortError")));
  try {
    await respond(target, req, init);
  } finally {
    host.close(cancelled);
  }
}

async function respond(target, req, init) {
  const request = new Request(req.url, init);
  const env = Object.assign({}, req.secret || {});
  const waiting = [];
  const ctx = {
    waitUntil(promise) { waiting.push(Promise.resolve(promise).catch((e) => console.error(e))); },
    passThroughOnException() {},
  };
  const response = await target.fetch(request, env, ctx);
  if (!(response instanceof Response)) {
    throw new TypeError("the agent's fetch() must resolve to a Response, got " + Object.prototype.toString.call(response));
  }
  const head = { status: response.status, statusText: response.statusText, headers: headerPairs(response.headers) };
  write(HEAD_MAGIC + JSON.stringify(head) + "\n");
  if (response.body) {
    const reader = response.body.getReader();
    init.signal.addEventListener("abort", () => reader.cancel(init.signal.reason).catch(() => {})); // the client left: cancel the body (its source's cancel() runs)
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (value && value.byteLength) write(value);
    }
  }
  await Promise.all(waiting);
}

// A scheduled run (a [cron.<name>] job of the gateway) of an agent exporting scheduled(event, env,
// ctx), as Workers' cron triggers call it: the answer is an empty 200 once it and its waitUntil end.
async function runScheduled(target, req) {
  const env = Object.assign({}, req.secret || {});
  const waiting = [];
  const waitUntil = (promise) => { waiting.push(Promise.resolve(promise).catch((e) => console.error(e))); };
  const ctx = { waitUntil, passThroughOnException() {} };
  const s = req.scheduled;
  const event = { type: "scheduled", cron: s.cron, scheduledTime: s.scheduledTime, noRetry() {}, waitUntil };
  await target.scheduled(event, env, ctx);
  await Promise.all(waiting);
  write(HEAD_MAGIC + JSON.stringify({ status: 200, statusText: "OK", headers: [] }) + "\n");
}

// Compiles the agent into a per-agent snapshot (wapojs_precompile): the same module-or-script
// choice runAgent makes, so a run from the snapshot does what one from the source would.
function precompile(code, name, isModule) {
  if (isModule || looksLikeModule(code)) host.compileModule(code, name);
  else host.compileScript(code, name);
}

async function runAgent(code, name, isModule) {
  // An empty code from the host means: run what the snapshot holds compiled, if anything.
  const pre = code === "" ? host.precompiledKind() : "";
  const payload = scriptArgs[0] === undefined ? "{}" : scriptArgs[0];
  const req = JSON.parse(payload);
  // process.env.secret arrives through the sandbox environment (see wapo/agent/runner.py), so an
  // agent that never touches `process` does not pay for loading it.
  globalThis.module = { exports: {} };
  globalThis.exports = globalThis.module.exports;

  if (pre === "module" || (!pre && (isModule || looksLikeModule(code)))) {
    const [evaluated, ns] = pre ? host.evalPrecompiled() : host.evalModule(code, name);
    await evaluated;
    const def = ns.default;
    if (req.scheduled && hasScheduled(def)) return runScheduled(def, req);
    if (req.scheduled && hasScheduled(ns)) return runScheduled(ns, req);
    if (hasFetch(def)) return serveFetch(def, req);
    if (typeof def === "function") return answerMain(def, payload);
    if (typeof ns.main === "function") return answerMain(ns.main, payload);
    if (hasFetch(ns)) return serveFetch(ns, req);
    return undefined; // a module that answers by itself
  }

  if (pre) host.evalPrecompiled();
  else host.evalScript(code, name);
  const exported = globalThis.module.exports;
  if (req.scheduled && hasScheduled(exported)) return runScheduled(exported, req);
  if (req.scheduled && exported && hasScheduled(exported.default)) return runScheduled(exported.default, req);
  if (hasFetch(exported)) return serveFetch(exported, req);
  if (exported && hasFetch(exported.default)) return serveFetch(exported.default, req);
  if (globalThis.scriptOutput !== undefined) return undefined; // it answered while loading
  // A CommonJS bundle exporting its handler (style B: `export default handle(app)` built as CJS/IIFE)
  const handler = typeof exported === "function" ? exported
    : exported && typeof exported.default === "function" ? exported.default : null;
  if (handler) return answerMain(handler, payload);
  if (typeof globalThis.main === "function") return answerMain(globalThis.main, payload);
  return undefined; // a bundle that answers by itself (style B, or A with its own glue)
}

return { runAgent, precompile };
