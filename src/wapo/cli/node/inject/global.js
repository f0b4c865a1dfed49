// Injected (esbuild --inject) when a bundle uses a free `global`.
const g = globalThis;
export { g as global };
