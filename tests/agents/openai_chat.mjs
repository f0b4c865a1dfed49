// The official OpenAI SDK (pinned in tests/test_package_agents.py), pointed at a local stub server:
// a chat completion, a streamed one, and an API error.
import OpenAI from "openai";

export default {
  async fetch(request) {
    const base = new URL(request.url).searchParams.get("base");
    const client = new OpenAI({ apiKey: "sk-test", baseURL: base + "/v1", maxRetries: 0 });
    const completion = await client.chat.completions.create({
      model: "gpt-test", messages: [{ role: "user", content: "hello" }],
    });
    const stream = await client.chat.completions.create({
      model: "gpt-test", messages: [{ role: "user", content: "stream" }], stream: true,
    });
    const parts = [];
    for await (const chunk of stream) parts.push(chunk.choices[0]?.delta?.content ?? "");
    let error = null;
    try {
      await client.chat.completions.create({ model: "missing", messages: [{ role: "user", content: "x" }] });
    } catch (e) { error = [e.constructor.name, e.status, e.message]; }
    return Response.json({ text: completion.choices[0].message.content, usage: completion.usage, streamed: parts.join(""), error });
  },
};
