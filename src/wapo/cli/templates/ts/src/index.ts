// A wapo agent in TypeScript (style C: a Workers-style module). `npm run dev` serves it with reload.
interface Env {
  [secret: string]: unknown; // the vault's data (`?key=<vault key>`)
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") ?? "world";
    return Response.json({ hello: name, path: url.pathname });
  },
};
