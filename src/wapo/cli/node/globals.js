// Injected into every bundle (esbuild --inject): free `Buffer`, `process` and `global` references
// resolve to these, as Node code expects. Unused ones are dropped by tree shaking.
export { Buffer } from "buffer";
export { process } from "./process.js";
export const global = globalThis;
