const enc = new TextEncoder();
const s = crypto.subtle;
const out = {};
const hex = (b) => Array.from(new Uint8Array(b)).map((x) => x.toString(16).padStart(2, "0")).join("");
// ECDSA
const ec = await s.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
const sig = await s.sign({ name: "ECDSA", hash: "SHA-256" }, ec.privateKey, enc.encode("m"));
out.ecdsa = [sig.byteLength, await s.verify({ name: "ECDSA", hash: "SHA-256" }, ec.publicKey, sig, enc.encode("m")),
  await s.verify({ name: "ECDSA", hash: "SHA-256" }, ec.publicKey, sig, enc.encode("x"))];
const jwk = await s.exportKey("jwk", ec.privateKey);
const back = await s.importKey("jwk", jwk, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
out.jwk = [jwk.kty, jwk.crv, typeof jwk.d, back.type, back.algorithm.namedCurve];
// Ed25519
const ed = await s.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
const esig = await s.sign("Ed25519", ed.privateKey, enc.encode("m"));
out.ed = [esig.byteLength, await s.verify("Ed25519", ed.publicKey, esig, enc.encode("m")), (await s.exportKey("raw", ed.publicKey)).byteLength];
// RSA-PSS
const rsa = await s.generateKey({ name: "RSA-PSS", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"]);
const rsig = await s.sign({ name: "RSA-PSS", saltLength: 32 }, rsa.privateKey, enc.encode("m"));
out.rsa = [rsig.byteLength, await s.verify({ name: "RSA-PSS", saltLength: 32 }, rsa.publicKey, rsig, enc.encode("m")), rsa.publicKey.algorithm.modulusLength];
// AES-GCM
const aes = await s.importKey("raw", new Uint8Array(32).fill(7), "AES-GCM", true, ["encrypt", "decrypt"]);
const iv = new Uint8Array(12).fill(1);
const ct = await s.encrypt({ name: "AES-GCM", iv, additionalData: enc.encode("aad") }, aes, enc.encode("hello"));
out.gcm = [hex(ct), new TextDecoder().decode(await s.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode("aad") }, aes, ct))];
const cbc = await s.importKey("raw", new Uint8Array(16).fill(2), "AES-CBC", false, ["encrypt", "decrypt"]);
out.cbc = hex(await s.encrypt({ name: "AES-CBC", iv: new Uint8Array(16) }, cbc, enc.encode("sixteen bytes!!!")));
const ctr = await s.importKey("raw", new Uint8Array(16).fill(3), "AES-CTR", false, ["encrypt"]);
out.ctr = hex(await s.encrypt({ name: "AES-CTR", counter: new Uint8Array(16).fill(255), length: 8 }, ctr, new Uint8Array(40)));
// PBKDF2 / HKDF
const pw = await s.importKey("raw", enc.encode("password"), "PBKDF2", false, ["deriveBits", "deriveKey"]);
out.pbkdf2 = hex(await s.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: enc.encode("salt"), iterations: 1000 }, pw, 256));
const hk = await s.importKey("raw", new Uint8Array(22).fill(11), "HKDF", false, ["deriveBits"]);
out.hkdf = hex(await s.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(13), info: new Uint8Array(10) }, hk, 336));
const dk = await s.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt: enc.encode("salt"), iterations: 10 }, pw, { name: "AES-GCM", length: 128 }, true, ["encrypt"]);
out.derivedKey = [dk.algorithm.name, dk.algorithm.length, (await s.exportKey("raw", dk)).byteLength];
// ECDH
const a = await s.generateKey({ name: "ECDH", namedCurve: "P-384" }, false, ["deriveBits"]);
const b = await s.generateKey({ name: "ECDH", namedCurve: "P-384" }, false, ["deriveBits"]);
const ab = hex(await s.deriveBits({ name: "ECDH", public: b.publicKey }, a.privateKey, 384));
const ba = hex(await s.deriveBits({ name: "ECDH", public: a.publicKey }, b.privateKey, 384));
out.ecdh = [ab === ba, ab.length];
// RSA-OAEP + wrap
const oaep = await s.generateKey({ name: "RSA-OAEP", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["encrypt", "decrypt", "wrapKey", "unwrapKey"]);
const oct = await s.encrypt({ name: "RSA-OAEP" }, oaep.publicKey, enc.encode("secret"));
out.oaep = new TextDecoder().decode(await s.decrypt({ name: "RSA-OAEP" }, oaep.privateKey, oct));
const wrapped = await s.wrapKey("jwk", aes, oaep.publicKey, { name: "RSA-OAEP" });
const unwrapped = await s.unwrapKey("jwk", wrapped, oaep.privateKey, { name: "RSA-OAEP" }, "AES-GCM", true, ["decrypt"]);
out.unwrapped = new TextDecoder().decode(await s.decrypt({ name: "AES-GCM", iv, additionalData: enc.encode("aad") }, unwrapped, ct));
// spki/pkcs8 round trip
const spki = await s.exportKey("spki", ec.publicKey);
const pub2 = await s.importKey("spki", spki, { name: "ECDSA", namedCurve: "P-256" }, true, ["verify"]);
out.spki = await s.verify({ name: "ECDSA", hash: "SHA-256" }, pub2, sig, enc.encode("m"));
try { await s.importKey("raw", new Uint8Array(5), "AES-GCM", true, ["encrypt"]); } catch (e) { out.badAes = e.name; }
globalThis.scriptOutput = JSON.stringify(out);
if (typeof process !== "undefined" && process.versions && process.versions.node) console.log(JSON.stringify(out));
