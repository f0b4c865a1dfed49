// A wapo agent built on Hono (style C: the app is the default export). `npm install`, then `npm run dev`.
import { Hono } from "hono";

const app = new Hono();

app.get("/", (c) => c.text("hello from hono"));
app.get("/hello", (c) => c.json({ hello: c.req.query("name") ?? "world", path: c.req.path }));

export default app;
