// node:process for bundled agents: the sandbox's own `process` (env, argv, exit) with what npm
// packages also expect of it (nextTick, version, platform, hrtime, cwd...). Bundles get it for
// every free `process` too (esbuild --inject).
const p = /* @__PURE__ */ (() => {
  const proc = globalThis.process || {};
  const define = (name, value) => { if (proc[name] === undefined) proc[name] = value; };
  define("nextTick", (fn, ...args) => queueMicrotask(() => fn(...args)));
  define("env", {});
  define("argv", []);
  define("version", "v20.0.0");
  define("versions", { node: "20.0.0", wapo: "1" });
  define("platform", "linux");
  define("arch", "wasm32");
  define("pid", 1);
  define("browser", false);
  define("release", { name: "wapo" });
  define("cwd", () => "/");
  define("chdir", () => { throw new Error("process.chdir is not supported in a wapo sandbox"); });
  define("umask", () => 0o22);
  define("emitWarning", (warning) => console.warn(String(warning && warning.message || warning)));
  define("hrtime", Object.assign((prev) => {
    const now = performance.now();
    const s = Math.floor(now / 1000), ns = Math.floor((now % 1000) * 1e6);
    if (!prev) return [s, ns];
    let ds = s - prev[0], dns = ns - prev[1];
    if (dns < 0) { ds -= 1; dns += 1e9; }
    return [ds, dns];
  }, { bigint: () => BigInt(Math.floor(performance.now() * 1e6)) }));
  define("memoryUsage", () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }));
  define("uptime", () => performance.now() / 1000);
  for (const name of ["on", "once", "off", "addListener", "removeListener", "removeAllListeners", "emit",
                      "prependListener", "prependOnceListener"]) define(name, () => proc);
  define("listeners", () => []);
  define("stdout", { write: (s) => { console.log(String(s).replace(/\n$/, "")); return true; }, isTTY: false });
  define("stderr", { write: (s) => { console.error(String(s).replace(/\n$/, "")); return true; }, isTTY: false });
  return proc;
})();

export default p;
export { p as process };
export const nextTick = (...a) => p.nextTick(...a);
export const env = p.env;
