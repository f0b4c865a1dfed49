// jose (pinned in tests/test_package_agents.py): sign and verify HS256 JWTs, with fixed times so
// the token is the same on Node and in wapo.
import { SignJWT, jwtVerify, decodeProtectedHeader, errors, generateKeyPair, exportJWK, importJWK } from "jose";

const secret = new TextEncoder().encode("a-test-secret-of-at-least-32-bytes!!");
const NOW = 1767225600; // 2026-01-01T00:00:00Z

export default {
  async fetch(request) {
    const jwt = await new SignJWT({ sub: "user-1", role: "admin", n: [1, 2] })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt(NOW).setExpirationTime(NOW + 3600).setIssuer("wapo-test").setAudience("agents")
      .sign(secret);
    const { payload, protectedHeader } = await jwtVerify(jwt, secret, {
      issuer: "wapo-test", audience: "agents", currentDate: new Date((NOW + 60) * 1000),
    });
    const failures = [];
    try {
      await jwtVerify(jwt, new TextEncoder().encode("another-secret-of-at-least-32-bytes!"), { currentDate: new Date((NOW + 60) * 1000) });
    } catch (e) { failures.push([e.code, e instanceof errors.JWSSignatureVerificationFailed]); }
    try {
      await jwtVerify(jwt, secret, { currentDate: new Date((NOW + 7200) * 1000) });
    } catch (e) { failures.push([e.code, e.claim]); }
    // ES256: keys are random, so only what does not depend on them is compared with Node
    const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
    const es = await new SignJWT({ sub: "es" }).setProtectedHeader({ alg: "ES256" }).setIssuedAt(NOW).sign(privateKey);
    const publicJwk = await exportJWK(publicKey);
    const verified = await jwtVerify(es, await importJWK(publicJwk, "ES256"));
    const other = await generateKeyPair("ES256");
    let es256Failure = null;
    try { await jwtVerify(es, other.publicKey); } catch (e) { es256Failure = e.code; }
    const es256 = [verified.protectedHeader, verified.payload, publicJwk.kty, publicJwk.crv, es.split(".").length,
                   es256Failure];
    return Response.json({ jwt, payload, protectedHeader, header: decodeProtectedHeader(jwt), failures, es256 });
  },
};
