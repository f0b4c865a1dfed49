// zod (pinned in tests/test_package_agents.py): parse, transform and reject request data.
import { z } from "zod";

const User = z.object({
  name: z.string().min(2),
  age: z.number().int().nonnegative(),
  email: z.string().email(),
  tags: z.array(z.enum(["a", "b", "c"])).default([]),
  joined: z.string().transform((s) => s.split("-").map(Number)),
});

export default {
  async fetch(request) {
    const good = User.safeParse({ name: "Ada", age: 36, email: "ada@example.com", joined: "2026-01-02" });
    const bad = User.safeParse({ name: "A", age: -1.5, email: "nope", tags: ["d"], joined: 5 });
    const issues = bad.success ? [] : bad.error.issues.map((i) => [i.path.join("."), i.code]);
    const union = z.discriminatedUnion("kind", [
      z.object({ kind: z.literal("circle"), r: z.number() }),
      z.object({ kind: z.literal("square"), side: z.number() }),
    ]);
    return Response.json({
      good: good.success ? good.data : null,
      issues: issues.sort(),
      union: [union.safeParse({ kind: "square", side: 2 }).success, union.safeParse({ kind: "tri" }).success],
      coerced: z.coerce.number().parse("42"),
    });
  },
};
