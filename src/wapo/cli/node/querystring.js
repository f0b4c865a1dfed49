// node:querystring for bundled agents: querystring-es3 (parse, stringify) plus escape/unescape.
import qs from "querystring-es3";

export const parse = qs.parse;
export const decode = qs.parse;
export const stringify = qs.stringify;
export const encode = qs.stringify;
export function escape(s) { return encodeURIComponent(s); }
export function unescape(s) {
  try { return decodeURIComponent(s); } catch { return unescape_(s); }
}
function unescape_(s) { return s.replace(/%([0-9a-fA-F]{2})/g, (m, h) => String.fromCharCode(parseInt(h, 16))); }

export default { parse, decode, stringify, encode, escape, unescape };
