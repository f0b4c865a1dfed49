// The official Anthropic SDK (pinned in tests/test_package_agents.py), pointed at a local stub
// server: a message, a streamed one, and an API error.
import Anthropic from "@anthropic-ai/sdk";

export default {
  async fetch(request) {
    const base = new URL(request.url).searchParams.get("base");
    const client = new Anthropic({ apiKey: "sk-ant-test", baseURL: base, maxRetries: 0 });
    const message = await client.messages.create({
      model: "claude-test", max_tokens: 10, messages: [{ role: "user", content: "hello" }],
    });
    const parts = [];
    const stream = client.messages.stream({
      model: "claude-test", max_tokens: 10, messages: [{ role: "user", content: "stream" }],
    });
    stream.on("text", (t) => parts.push(t));
    const final = await stream.finalMessage();
    let error = null;
    try {
      await client.messages.create({ model: "missing", max_tokens: 1, messages: [{ role: "user", content: "x" }] });
    } catch (e) { error = [e.constructor.name, e.status]; }
    return Response.json({ text: message.content[0].text, usage: message.usage, streamed: parts.join(""),
                           final: final.content[0].text, error });
  },
};
