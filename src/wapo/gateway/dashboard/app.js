// The wapo dashboard: a hash-routed page over the gateway's /admin/api routes (the session cookie
// set by the login form authorizes them). No framework and no build step.
"use strict";

const view = () => document.getElementById("view");
let tail = null; // the EventSource of the live log tail, closed when the page changes

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : document.createTextNode(child == null ? "" : String(child)));
  }
  return node;
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 404) { location.reload(); throw new Error("logged out"); }
  if (!response.ok) throw new Error(path + ": " + response.status);
  return response.json();
}

const ms = (v) => (v == null ? "–" : v < 1000 ? v.toFixed(1) + " ms" : (v / 1000).toFixed(2) + " s");
const pct = (v) => (v * 100).toFixed(1) + " %";
const when = (t) => (t ? new Date(t * 1000).toLocaleTimeString() : "–");

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "nothing yet"))));
}

async function agentsPage() {
  const data = await api("/admin/api/agents");
  const rows = data.agents.map((a) => el("tr", { "data-cid": a.cid },
    el("td", { class: "cid" }, el("a", { href: "#/agent/" + a.cid }, a.cid)),
    el("td", {}, a.requests), el("td", { class: a.errors ? "bad" : "" }, pct(a.errorRate)),
    el("td", {}, ms(a.p50Ms)), el("td", {}, ms(a.p99Ms)),
    el("td", {}, Object.entries(a.limits).map(([k, n]) => k + " ×" + n).join(", ") || "–"),
    el("td", {}, when(a.lastRun))));
  return [el("h2", {}, "Agents (last hour)"),
    table(["CID", "requests", "errors", "p50", "p99", "limits hit", "last run"], rows)];
}

function chart(series) {
  const w = 720, h = 160, pad = 20;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("preserveAspectRatio", "none");
  const maxN = Math.max(1, ...series.map((s) => s.requests));
  const maxL = Math.max(1, ...series.map((s) => s.p50Ms || 0));
  const step = (w - 2 * pad) / Math.max(1, series.length);
  const points = [];
  series.forEach((s, i) => {
    const x = pad + i * step;
    const bh = (s.requests / maxN) * (h - 2 * pad);
    const bar = document.createElementNS(svg.namespaceURI, "rect");
    Object.entries({ x, y: h - pad - bh, width: Math.max(1, step - 1), height: bh, class: "bar" })
      .forEach(([k, v]) => bar.setAttribute(k, v));
    const title = document.createElementNS(svg.namespaceURI, "title");
    title.textContent = `${new Date(s.start * 1000).toLocaleTimeString()}: ${s.requests} requests, p50 ${ms(s.p50Ms)}`;
    bar.append(title);
    svg.append(bar);
    if (s.p50Ms != null) {
      const [cx, cy] = [x + step / 2, h - pad - (s.p50Ms / maxL) * (h - 2 * pad)];
      points.push(`${cx},${cy}`);
      const dot = document.createElementNS(svg.namespaceURI, "circle");
      Object.entries({ cx, cy, r: 2.5, class: "dot" }).forEach(([k, v]) => dot.setAttribute(k, v));
      svg.append(dot);
    }
  });
  const line = document.createElementNS(svg.namespaceURI, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("class", "line");
  svg.append(line);
  const label = document.createElementNS(svg.namespaceURI, "text");
  label.setAttribute("x", pad); label.setAttribute("y", 12);
  label.textContent = `bars: requests a minute (max ${maxN}); line: p50 latency (max ${ms(maxL)})`;
  svg.append(label);
  return svg;
}

async function agentPage(cid) {
  const data = await api("/admin/api/agents/" + encodeURIComponent(cid));
  const rows = data.runs.map((r) => el("tr", {},
    el("td", {}, when(r.time)), el("td", { class: r.status >= 500 ? "bad" : "" }, r.status),
    el("td", {}, ms(r.durationMs)), el("td", { class: "mono" }, r.requestId), el("td", {}, r.trigger),
    el("td", {}, r.errorKind || "")));
  const log = el("pre", { id: "tail" });
  tail = new EventSource("/admin/api/agents/" + encodeURIComponent(cid) + "/logs");
  tail.onmessage = (event) => {
    const r = JSON.parse(event.data);
    const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.append(el("div", { class: r.level }, `${r.time} [${r.request_id.slice(-8)}] ${r.level} ${r.message}`));
    if (stick) log.scrollTop = log.scrollHeight;
  };
  return [el("h2", {}, "Agent ", el("span", { class: "mono" }, data.cid)),
    el("section", {}, chart(data.series)),
    el("section", {}, el("h2", {}, "Recent runs"), table(["time", "status", "duration", "request id", "trigger", "error"], rows)),
    el("section", {}, el("h2", {}, "Logs (live)"), log)];
}

async function vaultsPage() {
  const data = await api("/admin/api/vaults");
  const rows = data.vaults.map((v) => el("tr", { "data-key": v.key },
    el("td", { class: "mono" }, v.key), el("td", { class: "cid" }, el("a", { href: "#/agent/" + v.cid }, v.cid)),
    el("td", { class: "mono" }, v.inherit || "–"), el("td", {}, new Date(v.created * 1000).toLocaleString())));
  return [el("h2", {}, "Vaults"), el("p", { class: "muted" }, "Keys and agents only: a vault's data needs its token."),
    table(["key", "CID", "inherits", "created"], rows)];
}

async function appsPage() {
  const data = await api("/admin/api/apps");
  const rows = data.apps.map((a) => el("tr", {},
    el("td", { class: "mono" }, a.id), el("td", {}, a.kind), el("td", {}, a.mode),
    el("td", { class: a.state === "running" ? "" : "bad" }, a.state), el("td", {}, a.restarts),
    el("td", {}, a.lastExit ? `${a.lastExit.kind}${a.lastExit.error ? ": " + a.lastExit.error : ""}` : "–")));
  return [el("h2", {}, "Apps"), table(["id", "kind", "mode", "state", "restarts", "last error"], rows)];
}

async function cronPage() {
  const data = await api("/admin/api/cron");
  const rows = data.jobs.map((j) => el("tr", { "data-job": j.name },
    el("td", { class: "mono" }, j.name), el("td", { class: "mono" }, j.schedule), el("td", {}, j.timezone),
    el("td", { class: "cid" }, el("a", { href: "#/agent/" + j.cid }, j.cid)), el("td", {}, j.method + " " + j.path),
    el("td", {}, new Date(j.nextTick * 1000).toLocaleString()),
    el("td", {}, j.ticks.slice(0, 8).map((t) => t.state).join(" ") || "–")));
  return [el("h2", {}, "Scheduled runs"),
    table(["job", "schedule", "zone", "CID", "request", "next tick", "latest ticks"], rows)];
}

async function route() {
  if (tail) { tail.close(); tail = null; }
  const hash = location.hash || "#/agents";
  const [, page, arg] = hash.split("/");
  for (const name of ["agents", "vaults", "apps", "cron"]) {
    document.getElementById("nav-" + name).classList.toggle("active", page === name || (page === "agent" && name === "agents"));
  }
  const pages = { agents: agentsPage, agent: () => agentPage(decodeURIComponent(arg || "")), vaults: vaultsPage, apps: appsPage, cron: cronPage };
  try {
    const content = await (pages[page] || agentsPage)();
    view().replaceChildren(...content);
  } catch (e) {
    view().replaceChildren(el("p", { class: "error" }, String(e.message || e)));
  }
}

window.addEventListener("hashchange", route);
route();
