// Injected (esbuild --inject) when a bundle uses a free `Buffer`, as Node code expects.
export { Buffer } from "buffer";
