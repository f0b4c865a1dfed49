// Injected (esbuild --inject) when a bundle uses a free `process`: the sandbox's, with nextTick etc.
export { process } from "../process.js";
