"""The sample agent `wapo serve` publishes on a fresh machine, so there is something to call."""

SAMPLE_AGENT = """\
// A style A agent: main(request) receives the request as JSON and answers {status, headers, body}.
async function main(request) {
  const req = JSON.parse(request);
  const name = (req.queries.name && req.queries.name[0]) || "world";
  return JSON.stringify({
    status: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ hello: name, method: req.method, path: req.path, time: new Date().toISOString() }),
  });
}
"""
