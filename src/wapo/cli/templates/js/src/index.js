// A wapo agent (style C: a Workers-style module). `npm run dev` serves it with reload.
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") ?? "world";
    return Response.json({ hello: name, path: url.pathname });
  },
};
