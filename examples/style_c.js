// Style C: a Workers-style module. `wapo call examples/style_c.js --path /hello --query name=you`
// `request` is a standard Request (its URL is the gateway's origin plus the path after
// /ipfs/<cid>), `env` holds the vault's secrets, `ctx.waitUntil(promise)` keeps the run alive
// after the answer. A streamed Response body reaches the client as it is produced.
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/stream") {
      const body = new ReadableStream({
        start(controller) {
          for (const n of [1, 2, 3]) controller.enqueue(new TextEncoder().encode(`data: ${n}\n\n`));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    }
    const name = url.searchParams.get("name") ?? "world";
    return Response.json({ hello: name, method: request.method, path: url.pathname, style: "C" });
  },
};
