// Style A: a global `main(request)`. `wapo call examples/style_a.js --query name=you`
//
// `request` is a JSON *string*: parse it first. Its fields: method, path, queries (every value
// is an array: ?a=1&a=2 gives {"a": ["1", "2"]}), headers (lower-case names), body (a string;
// absent for GET and HEAD), secret (the vault's data, {} without a key) and url.
// main answers with JSON.stringify({status, headers, body}) (an object also works).
async function main(request) {
  const req = JSON.parse(request);
  const name = (req.queries.name ?? ["world"])[0];
  return JSON.stringify({
    status: 200,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ hello: name, method: req.method, path: req.path }),
  });
}
