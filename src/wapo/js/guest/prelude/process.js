// @provides process
// A Node-like `process` for scripts and libraries that probe it.
// - env: the sandbox's environment when the host exposes it (host.environ(),
//   a list of "NAME=value" strings); otherwise an empty object.
// - argv: ["wapojs", ...scriptArgs].
// - exit(code): ends the run at once, like Node: nothing can catch it; the
//   scriptOutput set so far is the answer; code 0 is a success, others fail
//   the run with "process.exit(code)".

function readEnv() {
  const env = {};
  if (typeof host.environ === "function") {
    let list = [];
    try {
      list = host.environ() || [];
    } catch (e) {
      list = [];
    }
    for (const item of list) {
      const s = String(item);
      const eq = s.indexOf("=");
      if (eq > 0) env[s.slice(0, eq)] = s.slice(eq + 1);
    }
  }
  return env;
}

class ProcessExit extends Error {
  constructor(code) {
    super(`process.exit(${code})`);
    this.name = "ProcessExit";
    this.code = code;
  }
}

function hrtime(prev = undefined) {
  const ns = BigInt(Math.round(performance.now() * 1e6));
  let sec = Number(ns / 1000000000n), nsec = Number(ns % 1000000000n);
  if (prev) {
    sec -= prev[0];
    nsec -= prev[1];
    if (nsec < 0) { sec--; nsec += 1e9; }
  }
  return [sec, nsec];
}
hrtime.bigint = () => BigInt(Math.round(performance.now() * 1e6));

// env and argv are read on first use, not when this module loads: the module may be loaded
// before the run's arguments exist (a pre-initialized snapshot).
let env, argv;

const process = {
  get env() { return env === undefined ? (env = readEnv()) : env; },
  set env(value) { env = value; },
  get argv() {
    if (argv === undefined) {
      const args = typeof scriptArgs !== "undefined" && Array.isArray(scriptArgs) ? scriptArgs.map(String) : [];
      argv = ["wapojs", ...args];
    }
    return argv;
  },
  set argv(value) { argv = value; },
  argv0: "wapojs",
  execArgv: [],
  exitCode: undefined,
  platform: "wasi",
  arch: "wasm32",
  pid: 1,
  version: "v0.0.0",
  versions: {},
  release: { name: "wapojs" },
  browser: false,
  title: "wapojs",
  exit(code = undefined) {
    const c = code === undefined ? (process.exitCode === undefined ? 0 : process.exitCode) : Number(code) | 0;
    process.exitCode = c;
    if (typeof host.exit === "function") host.exit(c); // ends the run: uncatchable, like Node
    throw new ProcessExit(c);
  },
  cwd() { return "/"; },
  nextTick(callback, ...a) {
    if (typeof callback !== "function") throw new TypeError("The \"callback\" argument must be of type function");
    queueMicrotask(() => callback(...a));
  },
  hrtime,
  uptime() { return performance.now() / 1000; },
  emitWarning(warning) { console.warn(typeof warning === "string" ? "Warning: " + warning : warning); },
  on() { return process; },
  once() { return process; },
  off() { return process; },
  removeListener() { return process; },
  removeAllListeners() { return process; },
  listeners() { return []; },
  emit() { return false; },
  get [Symbol.toStringTag]() { return "process"; },
};

return { process };
