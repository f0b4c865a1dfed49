import { Buffer as NodeBuffer } from "node:buffer";
import EventEmitter, { once } from "events";
import util from "node:util";
import { createHash, createHmac, timingSafeEqual, randomBytes, randomUUID } from "node:crypto";
import crypto from "crypto";
import path from "node:path";
import { URL as NodeURL, fileURLToPath, parse as parseUrl, format as formatUrl } from "node:url";
import querystring from "querystring";
import assert from "node:assert";
import { StringDecoder } from "node:string_decoder";
import { Readable, Transform, PassThrough } from "node:stream";

async function compute() {
  const out = {};
  const b = Buffer.from("héllo wörld");
  out.buffer = [b.toString("hex"), b.toString("base64"), b.length, NodeBuffer === Buffer,
                Buffer.concat([Buffer.from([1, 2]), Buffer.alloc(2, 7)]).toJSON().data,
                b.readUInt16BE(0), Buffer.byteLength("€"), Buffer.from("aGk=", "base64").toString()];
  const e = new EventEmitter();
  const seen = [];
  e.on("x", (v) => seen.push(v));
  e.once("x", (v) => seen.push("once:" + v));
  e.emit("x", 1); e.emit("x", 2);
  setTimeout(() => e.emit("ready", 42), 1);
  const [ready] = await once(e, "ready");
  out.events = [seen, e.listenerCount("x"), ready];
  out.util = [util.format("%s=%d %j", "a", 42, { k: [1] }), util.inspect({ a: 1, b: "x", c: [1, 2] }),
              util.isDeepStrictEqual({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }), util.types.isUint8Array(b),
              await util.promisify((x, cb) => cb(null, x * 2))(21)];
  out.nextTick = await new Promise((r) => process.nextTick(r, "ticked"));
  out.crypto = [createHash("sha256").update("abc").digest("hex"), createHash("sha1").update("abc").digest("base64"),
                createHash("md5").update("a").update("bc").digest("hex"), createHash("sha512").update("").digest("hex").slice(0, 32),
                createHmac("sha256", "key").update("The quick brown fox jumps over the lazy dog").digest("hex"),
                createHmac("sha512", Buffer.alloc(200, 1)).update("m").digest("base64"),
                timingSafeEqual(Buffer.from("ab"), Buffer.from("ab")), randomBytes(16).length,
                /^[0-9a-f-]{36}$/.test(randomUUID()), crypto.createHash("sha384").update("x").digest("hex").length];
  out.path = [path.join("/a/b", "../c", "d.ts"), path.resolve("/x", "y", "..", "z"), path.extname("f.tar.gz"),
              path.basename("/p/q/r.js", ".js"), path.dirname("/p/q/r.js"), path.normalize("a//b/./c/.."),
              path.relative("/a/b/c", "/a/d"), path.parse("/home/u/f.txt"), path.sep, path.isAbsolute("./x")];
  const u = new NodeURL("https://user:pw@example.com:8080/p/a?x=1&y=2#h");
  const legacy = parseUrl("https://example.com:8080/p/a?x=1#frag", true);
  out.url = [u.hostname, u.port, u.searchParams.get("y"), fileURLToPath("file:///tmp/a%20b.txt"),
             [legacy.protocol, legacy.host, legacy.pathname, legacy.query, legacy.hash],
             formatUrl({ protocol: "https", hostname: "h.com", pathname: "/x", query: { a: "1", b: "two" } })];
  out.querystring = [querystring.parse("a=1&b=2&a=3&c=%20x"), querystring.stringify({ q: "a b", n: [1, 2] }),
                     querystring.escape("a&b")];
  const errors = [];
  try { assert.strictEqual(1, 2); } catch (err) { errors.push(err.name, err.code); }
  try { assert.deepStrictEqual({ a: [1] }, { a: [1] }); errors.push("deep ok"); } catch { errors.push("deep failed"); }
  assert.throws(() => { throw new TypeError("bad"); }, TypeError);
  await assert.rejects(Promise.reject(new Error("no")), /no/);
  try { assert(false, "custom message"); } catch (err) { errors.push(err.message); }
  out.assert = errors;
  const dec = new StringDecoder("utf8");
  const euro = Buffer.from("€");
  out.string_decoder = [dec.write(euro.subarray(0, 1)), dec.write(euro.subarray(1)), dec.end()];
  const upper = new Transform({ transform(chunk, enc, cb) { cb(null, chunk.toString().toUpperCase()); } });
  const chunks = [];
  await new Promise((resolve, reject) => {
    Readable.from(["ab", "cd", "ef"]).pipe(upper).pipe(new PassThrough())
      .on("data", (c) => chunks.push(c.toString())).on("end", resolve).on("error", reject);
  });
  out.stream = chunks.join("");
  return out;
}

export default {
  async fetch(request) {
    return Response.json(await compute());
  },
};
