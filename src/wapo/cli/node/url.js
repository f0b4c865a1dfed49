// node:url for bundled agents: the WHATWG URL of the sandbox plus the legacy helpers packages use
// (parse, format, resolve, fileURLToPath, pathToFileURL, domainToASCII).
const URLClass = globalThis.URL;
const Params = globalThis.URLSearchParams;

export { URLClass as URL, Params as URLSearchParams };

export function fileURLToPath(url) {
  const u = typeof url === "string" ? new URLClass(url) : url;
  if (u.protocol !== "file:") throw new TypeError("The URL must be of scheme file");
  return decodeURIComponent(u.pathname);
}

export function pathToFileURL(path) {
  return new URLClass("file://" + encodeURI(path.startsWith("/") ? path : "/" + path).replace(/[?#]/g, encodeURIComponent));
}

export function domainToASCII(domain) {
  try { return new URLClass("http://" + domain).hostname; } catch { return ""; }
}
export function domainToUnicode(domain) { return domain; }

export function parse(input, parseQuery = false) {
  let u;
  try { u = new URLClass(input); } catch { u = null; }
  if (u === null) {
    const [pathPart, hash = null] = input.split("#");
    const [pathname, search = null] = pathPart.split("?");
    return { protocol: null, slashes: null, auth: null, host: null, port: null, hostname: null,
             hash: hash === null ? null : "#" + hash, search: search === null ? null : "?" + search,
             query: search === null ? (parseQuery ? {} : null) : (parseQuery ? Object.fromEntries(new Params(search)) : search),
             pathname, path: pathPart, href: input };
  }
  const auth = u.username ? decodeURIComponent(u.username) + (u.password ? ":" + decodeURIComponent(u.password) : "") : null;
  const query = u.search ? u.search.slice(1) : (parseQuery ? "" : null);
  return {
    protocol: u.protocol, slashes: true, auth, host: u.host, port: u.port || null, hostname: u.hostname,
    hash: u.hash || null, search: u.search || null,
    query: parseQuery ? Object.fromEntries(new Params(query || "")) : query,
    pathname: u.pathname, path: u.pathname + u.search, href: u.href,
  };
}

export function format(obj) {
  if (typeof obj === "string") return obj;
  if (obj instanceof URLClass) return obj.href;
  const protocol = obj.protocol ? (obj.protocol.endsWith(":") ? obj.protocol : obj.protocol + ":") : "";
  const host = obj.host || (obj.hostname ? obj.hostname + (obj.port ? ":" + obj.port : "") : "");
  const auth = obj.auth ? encodeURIComponent(obj.auth).replace(/%3A/i, ":") + "@" : "";
  let search = obj.search || "";
  if (!search && obj.query && typeof obj.query === "object") {
    const q = new Params(obj.query).toString();
    search = q ? "?" + q : "";
  }
  if (search && !search.startsWith("?")) search = "?" + search;
  let hash = obj.hash || "";
  if (hash && !hash.startsWith("#")) hash = "#" + hash;
  const slashes = obj.slashes || /^(https?|ftp|file|wss?):$/.test(protocol) ? "//" : "";
  return protocol + (host || protocol === "file:" ? slashes : "") + auth + host + (obj.pathname || "") + search + hash;
}

export function resolve(from, to) {
  const base = new URLClass(from, "resolve://");
  const out = new URLClass(to, base);
  if (out.protocol === "resolve:") return out.pathname + out.search + out.hash;
  return out.href;
}

export default { URL: URLClass, URLSearchParams: Params, fileURLToPath, pathToFileURL, domainToASCII,
                 domainToUnicode, parse, format, resolve };
