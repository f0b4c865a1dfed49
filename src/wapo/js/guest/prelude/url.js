// @provides URL URLSearchParams
// The WHATWG URL Standard: the basic URL parser (a state machine over code
// points), host parsing (IPv4, IPv6, opaque hosts, domains via UTS #46
// ToASCII with punycode), the URL and URLSearchParams classes.

// ---- percent-encode sets -------------------------------------------------

const inC0 = (c) => c < 0x20 || c > 0x7e;
const inFragment = (c) => inC0(c) || c === 0x20 || c === 0x22 || c === 0x3c || c === 0x3e || c === 0x60;
const inQuery = (c) => inC0(c) || c === 0x20 || c === 0x22 || c === 0x23 || c === 0x3c || c === 0x3e;
const inSpecialQuery = (c) => inQuery(c) || c === 0x27;
const inPath = (c) => inQuery(c) || c === 0x3f || c === 0x5e || c === 0x60 || c === 0x7b || c === 0x7d;
const inUserinfo = (c) => inPath(c) || c === 0x2f || c === 0x3a || c === 0x3b || c === 0x3d || c === 0x40 ||
  (c >= 0x5b && c <= 0x5d) || c === 0x7c;
const inComponent = (c) => inUserinfo(c) || (c >= 0x24 && c <= 0x26) || c === 0x2b || c === 0x2c;
const inForm = (c) => inComponent(c) || c === 0x21 || (c >= 0x27 && c <= 0x29) || c === 0x7e;

const HEX = "0123456789ABCDEF";

function utf8Bytes(cp) {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

function encodeCp(cp, inSet, spaceAsPlus) {
  if (spaceAsPlus && cp === 0x20) return "+";
  if (!inSet(cp)) return String.fromCodePoint(cp);
  let out = "";
  for (const b of utf8Bytes(cp)) out += "%" + HEX[b >> 4] + HEX[b & 15];
  return out;
}

function percentEncodeString(s, inSet, spaceAsPlus = false) {
  let out = "";
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    out += cp < 0x80 && !inSet(cp) && !(spaceAsPlus && cp === 0x20) ? ch : encodeCp(cp, inSet, spaceAsPlus);
  }
  return out;
}

const isHexDigit = (c) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
const hexVal = (c) => (c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57);

// Percent-decode a string into bytes (UTF-8 of the string, %XX decoded).
function percentDecodeBytes(s) {
  const input = host.utf8Encode(s);
  if (!s.includes("%")) return input;
  const out = new Uint8Array(input.length);
  let n = 0;
  for (let i = 0; i < input.length; i++) {
    const b = input[i];
    if (b === 0x25 && i + 2 < input.length && isHexDigit(input[i + 1]) && isHexDigit(input[i + 2])) {
      out[n++] = (hexVal(input[i + 1]) << 4) | hexVal(input[i + 2]);
      i += 2;
    } else out[n++] = b;
  }
  return out.subarray(0, n);
}

const utf8DecodeLossy = (bytes) => new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);

// ---- punycode (RFC 3492) -------------------------------------------------

const PC = { base: 36, tMin: 1, tMax: 26, skew: 38, damp: 700, initialBias: 72, initialN: 128 };

function adapt(delta, numPoints, first) {
  delta = first ? Math.floor(delta / PC.damp) : delta >> 1;
  delta += Math.floor(delta / numPoints);
  let k = 0;
  while (delta > ((PC.base - PC.tMin) * PC.tMax) >> 1) {
    delta = Math.floor(delta / (PC.base - PC.tMin));
    k += PC.base;
  }
  return k + Math.floor(((PC.base - PC.tMin + 1) * delta) / (delta + PC.skew));
}

const digitChar = (d) => String.fromCharCode(d < 26 ? d + 97 : d + 22);

function punycodeEncode(str) {
  const input = Array.from(str, (c) => c.codePointAt(0));
  let out = "";
  for (const c of input) if (c < 0x80) out += String.fromCharCode(c);
  const b = out.length;
  let h = b;
  if (b > 0) out += "-";
  let n = PC.initialN, delta = 0, bias = PC.initialBias;
  while (h < input.length) {
    let m = 0x7fffffff;
    for (const c of input) if (c >= n && c < m) m = c;
    delta += (m - n) * (h + 1);
    n = m;
    for (const c of input) {
      if (c < n) delta++;
      if (c === n) {
        let q = delta;
        for (let k = PC.base; ; k += PC.base) {
          const t = k <= bias ? PC.tMin : k >= bias + PC.tMax ? PC.tMax : k - bias;
          if (q < t) break;
          out += digitChar(t + ((q - t) % (PC.base - t)));
          q = Math.floor((q - t) / (PC.base - t));
        }
        out += digitChar(q);
        bias = adapt(delta, h + 1, h === b);
        delta = 0;
        h++;
      }
    }
    delta++;
    n++;
  }
  return out;
}

function punycodeDecode(input) {
  const out = [];
  let basic = input.lastIndexOf("-");
  if (basic < 0) basic = 0;
  for (let j = 0; j < basic; j++) {
    const c = input.charCodeAt(j);
    if (c >= 0x80) return null;
    out.push(c);
  }
  let n = PC.initialN, bias = PC.initialBias, i = 0;
  for (let idx = basic > 0 ? basic + 1 : 0; idx < input.length;) {
    const oldi = i;
    let w = 1;
    for (let k = PC.base; ; k += PC.base) {
      if (idx >= input.length) return null;
      const c = input.charCodeAt(idx++);
      const digit = c >= 0x30 && c <= 0x39 ? c - 22 : c >= 0x41 && c <= 0x5a ? c - 0x41 : c >= 0x61 && c <= 0x7a ? c - 0x61 : -1;
      if (digit < 0) return null;
      i += digit * w;
      if (i > 0x7fffffff) return null;
      const t = k <= bias ? PC.tMin : k >= bias + PC.tMax ? PC.tMax : k - bias;
      if (digit < t) break;
      w *= PC.base - t;
      if (w > 0x7fffffff) return null;
    }
    bias = adapt(i - oldi, out.length + 1, oldi === 0);
    n += Math.floor(i / (out.length + 1));
    i %= out.length + 1;
    if (n > 0x10ffff || (n >= 0xd800 && n <= 0xdfff)) return null;
    out.splice(i++, 0, n);
  }
  return String.fromCodePoint(...out);
}

// ---- UTS #46 (an approximation of the mapping table by NFKC + lower case) --

const IGNORED = /[\u00AD\u034F\u180B-\u180F\u200B\u2060-\u2064\u206A-\u206F\uFE00-\uFE0F\uFEFF\u{1BCA0}-\u{1BCA3}\u{E0100}-\u{E01EF}]/gu;
const DISALLOWED = /[\p{Cn}\p{Co}\p{Cs}\u0080-\u009F\u00A0\p{Zs}\p{Zl}\p{Zp}\u200E\u200F\u202A-\u202E\u06DD\u070F\u08E2\u0600-\u0605\u{110BD}\u{110CD}\uFFF9-\uFFFD\u{E0000}-\u{E007F}\u2FF0-\u2FFF\u3000\u{1D173}-\u{1D17A}]/u;
const COMBINING_START = /^\p{M}/u;
const VIRAMA = /[\u094D\u09CD\u0A4D\u0ACD\u0B4D\u0BCD\u0C4D\u0CCD\u0D3B\u0D3C\u0D4D\u0DCA\u0E3A\u0EBA\u0F84\u1039\u103A\u1714\u1734\u17D2\u1A60\u1B44\u1BAA\u1BAB\u1BF2\u1BF3\u2D7F\uA806\uA8C4\uA953\uA9C0\uAAF6\uABED\u{10A3F}\u{11046}\u{1107F}\u{110B9}\u{11133}\u{11134}\u{111C0}\u{11235}\u{112EA}\u{1134D}\u{11442}\u{114C2}\u{115BF}\u{1163F}\u{116B6}\u{1172B}\u{11839}\u{119E0}\u{11A34}\u{11A47}\u{11A99}\u{11C3F}\u{11D44}\u{11D45}\u{11D97}]/u;
const RTL = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}\u0608\u060B\u060D\u061B-\u064A\u066D-\u066F\u0671-\u06D5\u06E5\u06E6\u06EE\u06EF\u06FA-\u0710\u0712-\u072F\u074D-\u07A5\u07B1\u07C0-\u07EA\u07F4\u07F5\u07FA\u0800-\u0815\uFB1D-\uFDFF\uFE70-\uFEFC\u{10800}-\u{10FFF}\u{1E800}-\u{1EFFF}]/u;

function uts46Map(domain) {
  let s = domain.replace(IGNORED, "");
  if (/[^\x00-\x7f]/.test(s)) {
    // a character whose compatibility mapping holds a full stop (U+2024 ONE DOT LEADER, ⒈) is disallowed
    for (const ch of s) if (ch > "\x7f" && !/[\u3002\uFF0E\uFF61]/.test(ch) && ch.normalize("NFKC").includes(".")) return null;
  }
  s = s.toLowerCase().normalize("NFKC").toLowerCase().normalize("NFC");
  return s.replace(/[\u3002\uFF0E\uFF61]/g, ".");
}

function validJoiners(label) {
  const cps = Array.from(label);
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i];
    if (c !== "\u200C" && c !== "\u200D") continue;
    if (i > 0 && VIRAMA.test(cps[i - 1])) continue;
    if (c === "\u200D") return false;
    // ZWNJ: (Joining_Type:{L,D})(Joining_Type:T)* ZWNJ (Joining_Type:T)*(Joining_Type:{R,D}); approximated
    // by Arabic-like joining scripts on both sides, transparent marks skipped.
    let j = i - 1;
    while (j >= 0 && /\p{Mn}/u.test(cps[j])) j--;
    let k = i + 1;
    while (k < cps.length && /\p{Mn}/u.test(cps[k])) k++;
    const joining = /[\p{Script=Arabic}\p{Script=Syriac}\p{Script=Nko}\p{Script=Mongolian}\p{Script=Mandaic}\p{Script=Manichaean}\p{Script=Psalter_Pahlavi}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}\p{Script=Sogdian}]/u;
    if (!(j >= 0 && k < cps.length && joining.test(cps[j]) && joining.test(cps[k]))) return false;
  }
  return true;
}

function validLabel(label, decoded) {
  if (label.normalize("NFC") !== label) return false;
  if (decoded && label.startsWith("xn--")) return false;
  if (label.includes(".")) return false;
  if (COMBINING_START.test(label)) return false;
  if (DISALLOWED.test(label)) return false;
  if (decoded && uts46Map(label) !== label) return false;
  if (!validJoiners(label)) return false;
  return true;
}

// Bidi rule (RFC 5893), approximated: with an RTL label in the domain, every
// label must start with a strong character and not mix LTR letters into RTL labels.
function validBidi(labels) {
  if (!labels.some((l) => RTL.test(l))) return true;
  for (const label of labels) {
    if (!label) continue;
    const first = String.fromCodePoint(label.codePointAt(0));
    const rtlLabel = RTL.test(first);
    if (!rtlLabel && !/\p{L}/u.test(first)) return false;
    if (rtlLabel && /[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}]/u.test(label)) return false;
    if (!rtlLabel && RTL.test(label)) return false;
    const last = Array.from(label).reverse().find((c) => !/\p{Mn}/u.test(c));
    if (rtlLabel ? !(RTL.test(last) || /\p{N}/u.test(last)) : !(/\p{L}|\p{N}/u.test(last) && !RTL.test(last))) return false;
    if (rtlLabel && /[0-9]/.test(label) && /[\u0660-\u0669]/.test(label)) return false;
  }
  return true;
}

function domainToASCII(domain, beStrict = false) {
  // fast path: ASCII without punycode labels
  if (/^[\x00-\x7f]*$/.test(domain)) {
    const lower = domain.toLowerCase();
    if (lower === "") return null;
    return lower;
  }
  const mapped = uts46Map(domain);
  if (mapped === null) return null;
  const labels = mapped.split(".");
  const unicodeLabels = [];
  for (const label of labels) {
    if (label.startsWith("xn--")) {
      if (/[^\x00-\x7f]/.test(label)) return null;
      const dec = punycodeDecode(label.slice(4));
      if (dec === null || dec === "" || /^[\x00-\x7f]*$/.test(dec)) return null;
      if (!validLabel(dec, true)) return null;
      unicodeLabels.push(dec);
    } else {
      if (!validLabel(label, false)) return null;
      unicodeLabels.push(label);
    }
  }
  if (!validBidi(unicodeLabels)) return null;
  const out = unicodeLabels.map((l, i) => (/[^\x00-\x7f]/.test(l) ? "xn--" + punycodeEncode(l) : labels[i])).join(".");
  if (out === "") return null;
  if (beStrict && (out.length > 253 || out.split(".").some((l) => l.length > 63 || l.length === 0))) return null;
  return out;
}

// ---- hosts ---------------------------------------------------------------

const FORBIDDEN_HOST = /[\x00\t\n\r #/:<>?@[\\\]^|]/;
const FORBIDDEN_DOMAIN = /[\x00-\x1f #%/:<>?@[\\\]^|\x7f]/;

function parseIPv4Number(s) {
  if (s === "") return NaN;
  let radix = 10;
  if (s.length >= 2 && s[0] === "0" && (s[1] === "x" || s[1] === "X")) { s = s.slice(2); radix = 16; }
  else if (s.length >= 2 && s[0] === "0") { s = s.slice(1); radix = 8; }
  if (s === "") return 0;
  const re = radix === 10 ? /^[0-9]+$/ : radix === 16 ? /^[0-9a-fA-F]+$/ : /^[0-7]+$/;
  if (!re.test(s)) return NaN;
  return parseInt(s, radix);
}

function endsInANumber(s) {
  const parts = s.split(".");
  if (parts[parts.length - 1] === "") {
    if (parts.length === 1) return false;
    parts.pop();
  }
  const last = parts[parts.length - 1];
  if (last !== "" && /^[0-9]+$/.test(last)) return true;
  return !Number.isNaN(parseIPv4Number(last));
}

// Returns the serialized IPv4 address, or null on failure.
function parseIPv4(s) {
  const parts = s.split(".");
  if (parts[parts.length - 1] === "" && parts.length > 1) parts.pop();
  if (parts.length > 4) return null;
  const nums = [];
  for (const p of parts) {
    const n = parseIPv4Number(p);
    if (Number.isNaN(n)) return null;
    nums.push(n);
  }
  for (let i = 0; i < nums.length - 1; i++) if (nums[i] > 255) return null;
  if (nums[nums.length - 1] >= 256 ** (5 - nums.length)) return null;
  let ipv4 = nums[nums.length - 1];
  for (let i = 0; i < nums.length - 1; i++) ipv4 += nums[i] * 256 ** (3 - i);
  const out = [];
  for (let i = 0; i < 4; i++) {
    out.unshift(String(ipv4 % 256));
    ipv4 = Math.floor(ipv4 / 256);
  }
  return out.join(".");
}

// Returns an array of 8 pieces, or null.
function parseIPv6(input) {
  const address = [0, 0, 0, 0, 0, 0, 0, 0];
  let pieceIndex = 0, compress = null, p = 0;
  const c = (i) => (i < input.length ? input.charCodeAt(i) : NaN);
  if (c(p) === 0x3a) {
    if (c(p + 1) !== 0x3a) return null;
    p += 2;
    compress = ++pieceIndex;
  }
  while (p < input.length) {
    if (pieceIndex === 8) return null;
    if (c(p) === 0x3a) {
      if (compress !== null) return null;
      p++;
      compress = ++pieceIndex;
      continue;
    }
    let value = 0, length = 0;
    while (length < 4 && isHexDigit(c(p))) {
      value = value * 16 + hexVal(c(p));
      p++;
      length++;
    }
    if (c(p) === 0x2e) {
      if (length === 0) return null;
      p -= length;
      if (pieceIndex > 6) return null;
      let numbersSeen = 0;
      while (p < input.length) {
        let ipv4Piece = null;
        if (numbersSeen > 0) {
          if (c(p) === 0x2e && numbersSeen < 4) p++;
          else return null;
        }
        if (!(c(p) >= 0x30 && c(p) <= 0x39)) return null;
        while (c(p) >= 0x30 && c(p) <= 0x39) {
          const number = c(p) - 0x30;
          if (ipv4Piece === null) ipv4Piece = number;
          else if (ipv4Piece === 0) return null;
          else ipv4Piece = ipv4Piece * 10 + number;
          if (ipv4Piece > 255) return null;
          p++;
        }
        address[pieceIndex] = address[pieceIndex] * 0x100 + ipv4Piece;
        numbersSeen++;
        if (numbersSeen === 2 || numbersSeen === 4) pieceIndex++;
      }
      if (numbersSeen !== 4) return null;
      break;
    } else if (c(p) === 0x3a) {
      p++;
      if (p >= input.length) return null;
    } else if (p < input.length) return null;
    address[pieceIndex++] = value;
  }
  if (compress !== null) {
    let swaps = pieceIndex - compress;
    pieceIndex = 7;
    while (pieceIndex !== 0 && swaps > 0) {
      const t = address[compress + swaps - 1];
      address[compress + swaps - 1] = address[pieceIndex];
      address[pieceIndex] = t;
      pieceIndex--;
      swaps--;
    }
  } else if (pieceIndex !== 8) return null;
  return address;
}

function serializeIPv6(a) {
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (a[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && a[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  let out = "";
  let ignore0 = false;
  for (let i = 0; i < 8; i++) {
    if (ignore0 && a[i] === 0) continue;
    ignore0 = false;
    if (best === i) {
      out += i === 0 ? "::" : ":";
      ignore0 = true;
      continue;
    }
    out += a[i].toString(16);
    if (i !== 7) out += ":";
  }
  return "[" + out + "]";
}

// Returns the serialized host, or null on failure.
function parseHost(input, isOpaque) {
  if (input.startsWith("[")) {
    if (!input.endsWith("]")) return null;
    const a = parseIPv6(input.slice(1, -1));
    return a ? serializeIPv6(a) : null;
  }
  if (isOpaque) {
    if (FORBIDDEN_HOST.test(input)) return null;
    return percentEncodeString(input, inC0);
  }
  const domain = utf8DecodeLossy(percentDecodeBytes(input));
  const ascii = domainToASCII(domain, false);
  if (ascii === null || FORBIDDEN_DOMAIN.test(ascii)) return null;
  if (endsInANumber(ascii)) return parseIPv4(ascii);
  return ascii;
}

// ---- the URL record and the basic URL parser --------------------------------

const SPECIAL = { ftp: 21, file: null, http: 80, https: 443, ws: 80, wss: 443 };
const isSpecialScheme = (s) => Object.prototype.hasOwnProperty.call(SPECIAL, s);
const defaultPort = (s) => (isSpecialScheme(s) ? SPECIAL[s] : null);

const isAlpha = (c) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c) => c >= 0x30 && c <= 0x39;
const isAlnum = (c) => isAlpha(c) || isDigit(c);

function isWindowsDriveLetter(cps, i, normalizedOnly) {
  if (!isAlpha(cps[i])) return false;
  const c = cps[i + 1];
  return c === 0x3a || (!normalizedOnly && c === 0x7c);
}
const isWindowsDriveLetterStr = (s, normalized) =>
  s.length === 2 && isAlpha(s.charCodeAt(0)) && (s[1] === ":" || (!normalized && s[1] === "|"));

function startsWithWindowsDriveLetter(cps, p) {
  if (cps.length - p < 2) return false;
  if (!isWindowsDriveLetter(cps, p, false)) return false;
  if (cps.length - p === 2) return true;
  const c = cps[p + 2];
  return c === 0x2f || c === 0x5c || c === 0x3f || c === 0x23;
}

const isSingleDot = (s) => s === "." || s.toLowerCase() === "%2e";
const isDoubleDot = (s) => {
  s = s.toLowerCase();
  return s === ".." || s === ".%2e" || s === "%2e." || s === "%2e%2e";
};

function newRecord() {
  return { scheme: "", username: "", password: "", host: null, port: null, path: [], query: null, fragment: null };
}
const hasOpaquePath = (u) => typeof u.path === "string";

function shortenPath(u) {
  const path = u.path;
  if (u.scheme === "file" && path.length === 1 && isWindowsDriveLetterStr(path[0], true)) return;
  path.pop();
}

const includesCredentials = (u) => u.username !== "" || u.password !== "";
const cannotHaveCredentialsOrPort = (u) => u.host === null || u.host === "" || u.scheme === "file";

const FAILURE = null;

// "?" and "#" start the query and the fragment: the state to go on in (null for another c).
function queryOrFragment(url, c) {
  if (c === 0x3f) {
    url.query = "";
    return "query";
  }
  if (c === 0x23) {
    url.fragment = "";
    return "fragment";
  }
  return null;
}

function copyAuthority(url, base) {
  url.username = base.username;
  url.password = base.password;
  url.host = base.host;
  url.port = base.port;
}

// The "relative" and "file" states over a base: url takes base's path and query; then c
// starts the query, the fragment or, if not EOF, a path relative to base's, which
// fixPath(url) adjusts. The state to go on in ("path": read c again), null at EOF.
function followBase(url, base, c, fixPath) {
  url.path = base.path.slice();
  url.query = base.query;
  const next = queryOrFragment(url, c);
  if (next !== null || c === undefined) return next;
  url.query = null;
  fixPath(url);
  return "path";
}

// The basic URL parser. With `url` and `stateOverride` it modifies url and
// returns true/false (or FAILURE); otherwise it returns a new record or FAILURE.
function basicParse(input, base, url, stateOverride) {
  if (!url) {
    url = newRecord();
    input = input.replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, "");
  }
  input = input.replace(/[\t\n\r]/g, "");
  const cps = Array.from(input, (ch) => ch.codePointAt(0));
  let state = stateOverride || "scheme start";
  let buffer = "";
  let atSignSeen = false, insideBrackets = false, passwordTokenSeen = false;
  const len = cps.length;
  for (let p = 0; p <= len; p++) {
    const c = p < len ? cps[p] : undefined; // undefined = EOF
    const ch = c === undefined ? "" : String.fromCodePoint(c);
    switch (state) {
      case "scheme start":
        if (c !== undefined && isAlpha(c)) {
          buffer += ch.toLowerCase();
          state = "scheme";
        } else if (!stateOverride) {
          state = "no scheme";
          p--;
        } else return FAILURE;
        break;

      case "scheme":
        if (c !== undefined && (isAlnum(c) || c === 0x2b || c === 0x2d || c === 0x2e)) {
          buffer += ch.toLowerCase();
        } else if (c === 0x3a) {
          if (stateOverride) {
            if (isSpecialScheme(url.scheme) !== isSpecialScheme(buffer)) return false;
            if ((includesCredentials(url) || url.port !== null) && buffer === "file") return false;
            if (url.scheme === "file" && url.host === "") return false;
          }
          url.scheme = buffer;
          if (stateOverride) {
            if (url.port === defaultPort(url.scheme)) url.port = null;
            return true;
          }
          buffer = "";
          if (url.scheme === "file") {
            state = "file";
          } else if (isSpecialScheme(url.scheme) && base && base.scheme === url.scheme) {
            state = "special relative or authority";
          } else if (isSpecialScheme(url.scheme)) {
            state = "special authority slashes";
          } else if (cps[p + 1] === 0x2f) {
            state = "path or authority";
            p++;
          } else {
            url.path = "";
            state = "opaque path";
          }
        } else if (!stateOverride) {
          buffer = "";
          state = "no scheme";
          p = -1;
        } else return FAILURE;
        break;

      case "no scheme":
        if (!base || (hasOpaquePath(base) && c !== 0x23)) return FAILURE;
        if (hasOpaquePath(base) && c === 0x23) {
          url.scheme = base.scheme;
          url.path = base.path;
          url.query = base.query;
          url.fragment = "";
          state = "fragment";
        } else if (base.scheme !== "file") {
          state = "relative";
          p--;
        } else {
          state = "file";
          p--;
        }
        break;

      case "special relative or authority":
      case "special authority slashes":
        // "//" is skipped; otherwise c is read again in the next state
        if (c === 0x2f && cps[p + 1] === 0x2f) {
          state = "special authority ignore slashes";
          p++;
        } else {
          state = state === "special relative or authority" ? "relative" : "special authority ignore slashes";
          p--;
        }
        break;

      case "path or authority":
        if (c === 0x2f) state = "authority";
        else {
          state = "path";
          p--;
        }
        break;

      case "relative":
        url.scheme = base.scheme;
        if (c === 0x2f || (isSpecialScheme(url.scheme) && c === 0x5c)) state = "relative slash";
        else {
          copyAuthority(url, base);
          const next = followBase(url, base, c, shortenPath);
          if (next !== null) state = next;
          if (next === "path") p--;
        }
        break;

      case "relative slash":
        if (isSpecialScheme(url.scheme) && (c === 0x2f || c === 0x5c)) {
          state = "special authority ignore slashes";
        } else if (c === 0x2f) {
          state = "authority";
        } else {
          copyAuthority(url, base);
          state = "path";
          p--;
        }
        break;

      case "special authority ignore slashes":
        if (c !== 0x2f && c !== 0x5c) {
          state = "authority";
          p--;
        }
        break;

      case "authority":
        if (c === 0x40) {
          if (atSignSeen) buffer = "%40" + buffer;
          atSignSeen = true;
          for (const bc of buffer) {
            const bcp = bc.codePointAt(0);
            if (bcp === 0x3a && !passwordTokenSeen) {
              passwordTokenSeen = true;
              continue;
            }
            const enc = encodeCp(bcp, inUserinfo);
            if (passwordTokenSeen) url.password += enc;
            else url.username += enc;
          }
          buffer = "";
        } else if (c === undefined || c === 0x2f || c === 0x3f || c === 0x23 || (isSpecialScheme(url.scheme) && c === 0x5c)) {
          if (atSignSeen && buffer === "") return FAILURE;
          p -= Array.from(buffer).length + 1;
          buffer = "";
          state = "host";
        } else buffer += ch;
        break;

      case "host":
      case "hostname":
        if (stateOverride && url.scheme === "file") {
          p--;
          state = "file host";
        } else if (c === 0x3a && !insideBrackets) {
          if (buffer === "") return FAILURE;
          if (stateOverride === "hostname") return false;
          const host = parseHost(buffer, !isSpecialScheme(url.scheme));
          if (host === null) return FAILURE;
          url.host = host;
          buffer = "";
          state = "port";
        } else if (c === undefined || c === 0x2f || c === 0x3f || c === 0x23 || (isSpecialScheme(url.scheme) && c === 0x5c)) {
          p--;
          if (isSpecialScheme(url.scheme) && buffer === "") return FAILURE;
          if (stateOverride && buffer === "" && (includesCredentials(url) || url.port !== null)) return false;
          const host = parseHost(buffer, !isSpecialScheme(url.scheme));
          if (host === null) return FAILURE;
          url.host = host;
          buffer = "";
          state = "path start";
          if (stateOverride) return true;
        } else {
          if (c === 0x5b) insideBrackets = true;
          if (c === 0x5d) insideBrackets = false;
          buffer += ch;
        }
        break;

      case "port":
        if (c !== undefined && isDigit(c)) {
          buffer += ch;
        } else if (c === undefined || c === 0x2f || c === 0x3f || c === 0x23 || (isSpecialScheme(url.scheme) && c === 0x5c) || stateOverride) {
          if (buffer !== "") {
            const port = parseInt(buffer, 10);
            if (port > 65535) return FAILURE;
            url.port = port === defaultPort(url.scheme) ? null : port;
            buffer = "";
            if (stateOverride) return true;
          }
          if (stateOverride) return false;
          state = "path start";
          p--;
        } else return FAILURE;
        break;

      case "file":
        url.scheme = "file";
        url.host = "";
        if (c === 0x2f || c === 0x5c) {
          state = "file slash";
        } else if (base && base.scheme === "file") {
          url.host = base.host;
          const next = followBase(url, base, c, (u) => {
            if (!startsWithWindowsDriveLetter(cps, p)) shortenPath(u);
            else u.path = [];
          });
          if (next !== null) state = next;
          if (next === "path") p--;
        } else {
          state = "path";
          p--;
        }
        break;

      case "file slash":
        if (c === 0x2f || c === 0x5c) {
          state = "file host";
        } else {
          if (base && base.scheme === "file") {
            url.host = base.host;
            if (!startsWithWindowsDriveLetter(cps, p) && base.path.length > 0 && isWindowsDriveLetterStr(base.path[0], true))
              url.path.push(base.path[0]);
          }
          state = "path";
          p--;
        }
        break;

      case "file host":
        if (c === undefined || c === 0x2f || c === 0x5c || c === 0x3f || c === 0x23) {
          p--;
          if (!stateOverride && isWindowsDriveLetterStr(buffer, false)) {
            state = "path";
          } else if (buffer === "") {
            url.host = "";
            if (stateOverride) return true;
            state = "path start";
          } else {
            let host = parseHost(buffer, !isSpecialScheme(url.scheme));
            if (host === null) return FAILURE;
            if (host === "localhost") host = "";
            url.host = host;
            if (stateOverride) return true;
            buffer = "";
            state = "path start";
          }
        } else buffer += ch;
        break;

      case "path start":
        if (isSpecialScheme(url.scheme)) {
          state = "path";
          if (c !== 0x2f && c !== 0x5c) p--;
        } else if (!stateOverride && (c === 0x3f || c === 0x23)) {
          state = queryOrFragment(url, c);
        } else if (c !== undefined) {
          state = "path";
          if (c !== 0x2f) p--;
        } else if (stateOverride && url.host === null) {
          url.path.push("");
        }
        break;

      case "path":
        if (c === undefined || c === 0x2f || (isSpecialScheme(url.scheme) && c === 0x5c) ||
            (!stateOverride && (c === 0x3f || c === 0x23))) {
          const slash = c === 0x2f || (isSpecialScheme(url.scheme) && c === 0x5c);
          if (isDoubleDot(buffer)) {
            shortenPath(url);
            if (!slash) url.path.push("");
          } else if (isSingleDot(buffer) && !slash) {
            url.path.push("");
          } else if (!isSingleDot(buffer)) {
            if (url.scheme === "file" && url.path.length === 0 && isWindowsDriveLetterStr(buffer, false))
              buffer = buffer[0] + ":";
            url.path.push(buffer);
          }
          buffer = "";
          state = queryOrFragment(url, c) || state;
        } else {
          buffer += encodeCp(c, inPath);
        }
        break;

      case "opaque path":
        if (c === 0x3f || c === 0x23) {
          state = queryOrFragment(url, c);
        } else if (c === 0x20) {
          const next = cps[p + 1];
          if (next === 0x3f || next === 0x23) url.path += "%20";
          else url.path += " ";
        } else if (c !== undefined) {
          url.path += encodeCp(c, inC0);
        }
        break;

      case "query":
        if ((!stateOverride && c === 0x23) || c === undefined) {
          url.query += percentEncodeString(buffer, isSpecialScheme(url.scheme) ? inSpecialQuery : inQuery);
          buffer = "";
          if (c === 0x23) {
            url.fragment = "";
            state = "fragment";
          }
        } else {
          buffer += ch;
        }
        break;

      case "fragment":
        if (c !== undefined) url.fragment += encodeCp(c, inFragment);
        break;
    }
  }
  return stateOverride ? true : url;
}

function serializePath(u) {
  if (hasOpaquePath(u)) return u.path;
  let out = "";
  for (const seg of u.path) out += "/" + seg;
  return out;
}

function serialize(u, excludeFragment = false) {
  let out = u.scheme + ":";
  if (u.host !== null) {
    out += "//";
    if (includesCredentials(u)) {
      out += u.username;
      if (u.password !== "") out += ":" + u.password;
      out += "@";
    }
    out += u.host;
    if (u.port !== null) out += ":" + u.port;
  } else if (!hasOpaquePath(u) && u.path.length > 1 && u.path[0] === "") {
    out += "/.";
  }
  out += serializePath(u);
  if (u.query !== null) out += "?" + u.query;
  if (!excludeFragment && u.fragment !== null) out += "#" + u.fragment;
  return out;
}

function serializeOrigin(u) {
  switch (u.scheme) {
    case "blob": {
      if (hasOpaquePath(u) || true) {
        const inner = basicParse(serializePath(u), null);
        if (inner && (inner.scheme === "http" || inner.scheme === "https")) return serializeOrigin(inner);
      }
      return "null";
    }
    case "ftp": case "http": case "https": case "ws": case "wss":
      return u.scheme + "://" + u.host + (u.port !== null ? ":" + u.port : "");
    default:
      return "null";
  }
}

// ---- URLSearchParams -------------------------------------------------------

function formParse(s) {
  const out = [];
  for (const seq of s.split("&")) {
    if (seq === "") continue;
    const eq = seq.indexOf("=");
    let name = eq >= 0 ? seq.slice(0, eq) : seq;
    let value = eq >= 0 ? seq.slice(eq + 1) : "";
    name = utf8DecodeLossy(percentDecodeBytes(name.replace(/\+/g, " ")));
    value = utf8DecodeLossy(percentDecodeBytes(value.replace(/\+/g, " ")));
    out.push([name, value]);
  }
  return out;
}

const formSerialize = (list) =>
  list.map(([k, v]) => percentEncodeString(k, inForm, true) + "=" + percentEncodeString(v, inForm, true)).join("&");

const usv = (v) => String(v).toWellFormed();

const UPDATE = Symbol("update"), LIST = Symbol("list"), URL_OBJ = Symbol("url"), RECORD = Symbol("record"), PARAMS = Symbol("params");

function checkParams(o) {
  if (!o || typeof o !== "object" || !(LIST in o)) throw new TypeError("Illegal invocation");
}
// checkParams for method `name`, which needs `required` arguments (it got argc).
function checkCall(o, name, argc, required) {
  checkParams(o);
  if (argc < required)
    throw new TypeError(`Failed to execute '${name}' on 'URLSearchParams': ${required} argument${required > 1 ? "s" : ""} required`);
}
// The entries delete(name, value) and has(name, value) look for: named `name` (with value
// `value`, if given).
function entryMatcher(name, value) {
  name = usv(name);
  if (value === undefined) return ([k]) => k === name;
  value = usv(value);
  return ([k, v]) => k === name && v === value;
}

class URLSearchParams {
  constructor(init = "") {
    this[LIST] = [];
    this[URL_OBJ] = null;
    if (init !== null && (typeof init === "object" || typeof init === "function")) {
      if (init instanceof URLSearchParams) {
        this[LIST] = init[LIST].map(([k, v]) => [k, v]);
      } else if (typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          if (pair === null || (typeof pair !== "object" && typeof pair !== "function") || typeof pair[Symbol.iterator] !== "function")
            throw new TypeError("Failed to construct 'URLSearchParams': The provided value cannot be converted to a sequence.");
          const arr = Array.from(pair);
          if (arr.length !== 2)
            throw new TypeError("Failed to construct 'URLSearchParams': Sequence initializer must only contain pair elements");
          this[LIST].push([usv(arr[0]), usv(arr[1])]);
        }
      } else {
        for (const key of Reflect.ownKeys(init)) {
          const desc = Reflect.getOwnPropertyDescriptor(init, key);
          if (!desc || !desc.enumerable) continue;
          if (typeof key === "symbol") throw new TypeError("Cannot convert a Symbol value to a string");
          this[LIST].push([usv(key), usv(init[key])]);
        }
      }
    } else {
      let s = usv(init);
      if (s.startsWith("?")) s = s.slice(1);
      this[LIST] = formParse(s);
    }
  }
  get size() { checkParams(this); return this[LIST].length; }
  append(name, value) {
    checkCall(this, "append", arguments.length, 2);
    this[LIST].push([usv(name), usv(value)]);
    this[UPDATE]();
  }
  delete(name, value = undefined) {
    checkCall(this, "delete", arguments.length, 1);
    const match = entryMatcher(name, value);
    this[LIST] = this[LIST].filter((e) => !match(e));
    this[UPDATE]();
  }
  get(name) {
    checkCall(this, "get", arguments.length, 1);
    name = usv(name);
    const e = this[LIST].find(([k]) => k === name);
    return e ? e[1] : null;
  }
  getAll(name) {
    checkCall(this, "getAll", arguments.length, 1);
    name = usv(name);
    return this[LIST].filter(([k]) => k === name).map(([, v]) => v);
  }
  has(name, value = undefined) {
    checkCall(this, "has", arguments.length, 1);
    return this[LIST].some(entryMatcher(name, value));
  }
  set(name, value) {
    checkCall(this, "set", arguments.length, 2);
    name = usv(name);
    value = usv(value);
    const list = this[LIST];
    const i = list.findIndex(([k]) => k === name);
    if (i < 0) list.push([name, value]);
    else {
      list[i][1] = value;
      this[LIST] = list.filter(([k], j) => j <= i || k !== name);
    }
    this[UPDATE]();
  }
  sort() {
    checkParams(this);
    // stable sort by UTF-16 code units
    this[LIST] = this[LIST].map((e, i) => [e, i]).sort((a, b) => (a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1])).map((x) => x[0]);
    this[UPDATE]();
  }
  forEach(callback, thisArg = undefined) {
    checkParams(this);
    if (typeof callback !== "function") throw new TypeError("Failed to execute 'forEach' on 'URLSearchParams': parameter 1 is not of type 'Function'.");
    for (let i = 0; i < this[LIST].length; i++) {
      const [k, v] = this[LIST][i];
      callback.call(thisArg, v, k, this);
    }
  }
  *entries() { checkParams(this); for (let i = 0; i < this[LIST].length; i++) yield [this[LIST][i][0], this[LIST][i][1]]; }
  *keys() { checkParams(this); for (let i = 0; i < this[LIST].length; i++) yield this[LIST][i][0]; }
  *values() { checkParams(this); for (let i = 0; i < this[LIST].length; i++) yield this[LIST][i][1]; }
  [Symbol.iterator]() { return this.entries(); }
  toString() { checkParams(this); return formSerialize(this[LIST]); }
  get [Symbol.toStringTag]() { return "URLSearchParams"; }
  [UPDATE]() {
    const url = this[URL_OBJ];
    if (!url) return;
    const rec = url[RECORD];
    const s = formSerialize(this[LIST]);
    rec.query = s === "" ? null : s;
    if (s === "") stripTrailingSpacesFromOpaquePath(url);
  }
}
for (const m of ["entries", "keys", "values"]) {
  const gen = URLSearchParams.prototype[m];
  Object.defineProperty(URLSearchParams.prototype, m, { value: gen, enumerable: true, writable: true, configurable: true });
}

function stripTrailingSpacesFromOpaquePath(url) {
  const rec = url[RECORD];
  if (!hasOpaquePath(rec)) return;
  if (rec.fragment !== null) return;
  if (rec.query !== null) return;
  rec.path = rec.path.replace(/ +$/, "");
}

// ---- URL -------------------------------------------------------------------

function parseWithBase(url, base) {
  let baseRec = null;
  if (base !== undefined) {
    baseRec = basicParse(usv(base), null);
    if (baseRec === FAILURE) return FAILURE;
  }
  return basicParse(usv(url), baseRec);
}

function checkURL(o) {
  if (!o || typeof o !== "object" || !(RECORD in o)) throw new TypeError("Illegal invocation");
}

// The username and password setters (`field`).
function setUserinfo(url, field, v) {
  checkURL(url);
  const rec = url[RECORD];
  if (cannotHaveCredentialsOrPort(rec)) return;
  rec[field] = percentEncodeString(usv(v), inUserinfo);
}
// The host and hostname setters (`state`: the parser's state for it).
function setHost(url, v, state) {
  checkURL(url);
  const rec = url[RECORD];
  if (hasOpaquePath(rec)) return;
  basicParse(usv(v), null, rec, state);
}
// The search and hash getters: url's query or fragment (`field`) after `prefix` ("?", "#"),
// "" if none.
function prefixed(url, field, prefix) {
  checkURL(url);
  const s = url[RECORD][field];
  return s === null || s === "" ? "" : prefix + s;
}
// The search and hash setters: v, without a leading `prefix`, parsed as url's query or
// fragment (`field`, also the parser's state for it), or that part removed if v is "".
// Returns what was parsed (null if removed).
function setQueryOrFragment(url, v, field, prefix) {
  checkURL(url);
  const rec = url[RECORD];
  v = usv(v);
  if (v === "") {
    rec[field] = null;
    stripTrailingSpacesFromOpaquePath(url);
    return null;
  }
  const input = v[0] === prefix ? v.slice(1) : v;
  rec[field] = "";
  basicParse(input, null, rec, field);
  return input;
}

class URL {
  constructor(url, base = undefined) {
    if (arguments.length < 1) throw new TypeError("Failed to construct 'URL': 1 argument required, but only 0 present.");
    const rec = parseWithBase(url, base);
    if (rec === FAILURE) throw new TypeError(`Invalid URL: ${usv(url)}`);
    this[RECORD] = rec;
    const params = new URLSearchParams();
    params[LIST] = rec.query ? formParse(rec.query) : [];
    params[URL_OBJ] = this;
    this[PARAMS] = params;
  }
  static canParse(url, base = undefined) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'canParse' on 'URL': 1 argument required, but only 0 present.");
    return parseWithBase(url, base) !== FAILURE;
  }
  static parse(url, base = undefined) {
    if (arguments.length < 1) throw new TypeError("Failed to execute 'parse' on 'URL': 1 argument required, but only 0 present.");
    const rec = parseWithBase(url, base);
    if (rec === FAILURE) return null;
    return new URL(serialize(rec));
  }
  get href() { checkURL(this); return serialize(this[RECORD]); }
  set href(v) {
    checkURL(this);
    const rec = basicParse(usv(v), null);
    if (rec === FAILURE) throw new TypeError(`Invalid URL: ${usv(v)}`);
    this[RECORD] = rec;
    this[PARAMS][LIST] = rec.query ? formParse(rec.query) : [];
  }
  toString() { return this.href; }
  toJSON() { return this.href; }
  get origin() { checkURL(this); return serializeOrigin(this[RECORD]); }
  get protocol() { checkURL(this); return this[RECORD].scheme + ":"; }
  set protocol(v) { checkURL(this); basicParse(usv(v) + ":", null, this[RECORD], "scheme start"); }
  get username() { checkURL(this); return this[RECORD].username; }
  set username(v) { setUserinfo(this, "username", v); }
  get password() { checkURL(this); return this[RECORD].password; }
  set password(v) { setUserinfo(this, "password", v); }
  get host() {
    checkURL(this);
    const rec = this[RECORD];
    if (rec.host === null) return "";
    return rec.port === null ? rec.host : rec.host + ":" + rec.port;
  }
  set host(v) { setHost(this, v, "host"); }
  get hostname() { checkURL(this); return this[RECORD].host === null ? "" : this[RECORD].host; }
  set hostname(v) { setHost(this, v, "hostname"); }
  get port() { checkURL(this); return this[RECORD].port === null ? "" : String(this[RECORD].port); }
  set port(v) {
    checkURL(this);
    const rec = this[RECORD];
    if (cannotHaveCredentialsOrPort(rec)) return;
    v = usv(v);
    if (v === "") rec.port = null;
    else basicParse(v, null, rec, "port");
  }
  get pathname() { checkURL(this); return serializePath(this[RECORD]); }
  set pathname(v) {
    checkURL(this);
    const rec = this[RECORD];
    if (hasOpaquePath(rec)) return;
    rec.path = [];
    basicParse(usv(v), null, rec, "path start");
  }
  get search() { return prefixed(this, "query", "?"); }
  set search(v) {
    const input = setQueryOrFragment(this, v, "query", "?");
    this[PARAMS][LIST] = input === null ? [] : formParse(input);
  }
  get searchParams() { checkURL(this); return this[PARAMS]; }
  get hash() { return prefixed(this, "fragment", "#"); }
  set hash(v) { setQueryOrFragment(this, v, "fragment", "#"); }
  get [Symbol.toStringTag]() { return "URL"; }
}
for (const name of ["href", "origin", "protocol", "username", "password", "host", "hostname", "port", "pathname",
  "search", "searchParams", "hash"]) {
  Object.defineProperty(URL.prototype, name, { ...Object.getOwnPropertyDescriptor(URL.prototype, name), enumerable: true });
}

// Internal hooks for tests of the IDNA layer (not part of the web API surface).
Object.defineProperty(URL, "_domainToASCII", { value: (d) => domainToASCII(usv(d), false), enumerable: false });

return { URL, URLSearchParams };
