// Style B: a Hono app answering through handle(app) of @phala/wapo-env. It must be bundled:
//   npm install hono@4.13.19 @phala/wapo-env@0.9.4
//   wapo publish examples/style_b.js      (bundles it with esbuild, then stores the bundle)
// Secrets arrive as process.env.secret (a JSON string).
import { Hono } from "hono";
import { handle } from "@phala/wapo-env/guest";

const app = new Hono();

app.get("/", (c) => c.json({ hello: c.req.query("name") ?? "world", style: "B" }));
app.post("/echo", async (c) => c.text(await c.req.text()));

export default handle(app);
