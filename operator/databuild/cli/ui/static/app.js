// DataBuild's read-only web UI: plain JavaScript, no framework, no network beyond
// this server (every asset ships in the Python package, so it works offline).
"use strict";

const page = document.getElementById("page");

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function color(state) {
  return `var(--${String(state || "missing").toLowerCase()})`;
}

function badge(state) {
  return el("span", { class: "state", style: `background:${color(state)}`, text: state });
}

async function get(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function seconds(a, b) {
  return (Date.parse(b) - Date.parse(a)) / 1000;
}

function duration(s) {
  if (s < 120) return `${Math.round(s)}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

const STATES = ["Live", "Building", "Failed", "Tainted", "Missing"];

async function wantsPage() {
  const data = await get("api/wants");
  document.getElementById("namespace").textContent = `namespace ${data.namespace}`;
  const rows = data.wants.map((w) => {
    const bar = el("div", { class: "bar", title: JSON.stringify(w.counts) });
    for (const s of STATES) {
      const n = w.counts[s] || 0;
      if (n) bar.append(el("span", { style: `width:${(100 * n) / w.partitions}%;background:${color(s)}` }));
    }
    const live = w.counts.Live || 0;
    return el("tr", {},
      el("td", {}, el("a", { href: `#/timeline?want=${encodeURIComponent(w.name)}`, text: w.name })),
      el("td", {}, badge(w.state)),
      el("td", {}, bar),
      el("td", { text: `${live}/${w.partitions} live` }),
      el("td", { class: "muted", text: w.upstream ? "upstream" : "" }),
      el("td", { class: "muted", text: w.created }));
  });
  page.replaceChildren(
    el("h2", { text: `Wants (${data.wants.length})` }),
    el("table", { id: "wants" },
      el("tr", {}, ...["Want", "State", "Progress", "", "", "Created"].map((h) => el("th", { text: h }))),
      ...rows));
}

async function gridPage() {
  const data = await get("api/grid");
  document.getElementById("namespace").textContent = `namespace ${data.namespace}`;
  const head = el("tr", {}, el("th", { text: "dataset" }),
    ...data.columns.map((c) => el("th", { class: "col", text: c })));
  const rows = data.rows.map((r) => el("tr", {},
    el("th", { text: `${r.dataset} (${r.total})` }),
    ...data.columns.map((c) => {
      const state = r.cells[c];
      if (!state) return el("td", { class: "cell" });
      const ref = `${r.dataset}/${c}`;
      const td = el("td", { class: "cell", title: `${ref}: ${state}`, "data-ref": ref,
        "data-state": state, style: `background:${color(state)}` });
      td.onclick = () => { location.hash = `#/lineage?ref=${encodeURIComponent(ref)}`; };
      return td;
    })));
  const legend = el("p", { class: "legend" },
    ...STATES.map((s) => el("span", {}, el("i", { style: `background:${color(s)}` }), s)));
  const note = data.hiddenColumns
    ? el("p", { class: "muted", text: `${data.hiddenColumns} older time keys not shown` }) : "";
  page.replaceChildren(
    el("h2", { text: `Partitions (${data.partitions})` }), legend, note,
    el("div", { class: "grid" }, el("table", { id: "grid" }, head, ...rows)));
}

function showNamespace(data) {
  document.getElementById("namespace").textContent = `namespace ${data.namespace}`;
}

async function lineagePage(params) {
  const data = await get(`api/lineage?ref=${encodeURIComponent(params.get("ref"))}`);
  showNamespace(data);
  const levels = new Map();
  for (const n of data.nodes) {
    if (!levels.has(n.level)) levels.set(n.level, []);
    levels.get(n.level).push(n);
  }
  const order = [...levels.keys()].sort((a, b) => a - b);
  const W = 260, H = 46, pos = new Map();
  order.forEach((lvl, i) => levels.get(lvl).forEach((n, j) => pos.set(n.ref, [20 + i * W, 20 + j * H])));
  const width = 40 + order.length * W;
  const height = 40 + Math.max(...order.map((l) => levels.get(l).length)) * H;
  const svg = el("svg:svg", { id: "lineage", width, height });
  for (const e of data.edges) {
    const [x1, y1] = pos.get(e.from), [x2, y2] = pos.get(e.to);
    svg.append(el("svg:path", { d: `M${x1 + 210},${y1 + 15} C${x1 + 235},${y1 + 15} ${x2 - 25},${y2 + 15} ${x2},${y2 + 15}`,
      fill: "none", stroke: "#8c959f" }));
  }
  for (const n of data.nodes) {
    const [x, y] = pos.get(n.ref);
    const g = el("svg:g", { class: "node", "data-ref": n.ref, "data-state": n.state });
    g.append(el("svg:rect", { x, y, width: 210, height: 30, rx: 6, fill: "#fff",
      stroke: color(n.state), "stroke-width": n.ref === data.ref ? 3 : 1.5 }));
    g.append(el("svg:circle", { cx: x + 12, cy: y + 15, r: 5, fill: color(n.state) }));
    g.append(el("svg:text", { x: x + 22, y: y + 13, text: n.ref.length > 30 ? n.ref.slice(0, 29) + "…" : n.ref }));
    g.append(el("svg:text", { x: x + 22, y: y + 25, fill: "#57606a", text: `${n.state}${n.jobDefinition ? " · " + n.jobDefinition : ""}` }));
    g.onclick = () => { location.hash = `#/lineage?ref=${encodeURIComponent(n.ref)}`; };
    svg.append(g);
  }
  page.replaceChildren(
    el("h2", { text: `Lineage of ${data.ref}` }),
    el("p", { class: "muted", text: "upstream on the left, downstream on the right; click a partition to re-center" }),
    el("div", { style: "overflow:auto" }, svg),
    el("p", {}, el("a", { href: `#/events?ref=${encodeURIComponent(data.ref)}`, text: "its events" })));
}

async function timelinePage(params) {
  const data = await get(`api/timeline?want=${encodeURIComponent(params.get("want"))}`);
  showNamespace(data);
  const bars = [];
  for (const r of data.runs) {
    const attempts = r.attempts.length ? r.attempts
      : [{ attempt: "", state: r.state, start: r.start, end: r.end }];
    for (const a of attempts) if (a.start) bars.push({ run: r, a });
  }
  const starts = bars.map((b) => Date.parse(b.a.start));
  const t0 = Math.min(...starts), t1 = Math.max(...bars.map((b) => Date.parse(b.a.end || data.now)));
  const span = Math.max(1, (t1 - t0) / 1000), W = 700, L = 320, H = 22;
  const svg = el("svg:svg", { id: "timeline", width: L + W + 80, height: 40 + bars.length * H });
  svg.append(el("svg:text", { x: L, y: 14, text: `0s` }), el("svg:text", { x: L + W - 20, y: 14, text: duration(span) }));
  bars.forEach((b, i) => {
    const y = 24 + i * H, start = seconds(new Date(t0).toISOString(), b.a.start);
    const len = seconds(b.a.start, b.a.end || data.now);
    const g = el("svg:g", { class: "run", "data-run": b.run.name, "data-state": b.a.state });
    g.append(el("svg:text", { x: 4, y: y + 13, text: `${b.run.jobDefinition} ${b.a.attempt ? "#" + b.a.attempt : ""}  ${b.run.partitions[0] || ""}`.slice(0, 52) }));
    g.append(el("svg:rect", { x: L + (W * start) / span, y, height: 16, rx: 3,
      width: Math.max(2, (W * len) / span), fill: color(b.a.state) }));
    g.append(el("svg:text", { x: L + (W * (start + len)) / span + 4, y: y + 13, fill: "#57606a", text: `${duration(len)} ${b.a.state}` }));
    svg.append(g);
  });
  page.replaceChildren(
    el("h2", {}, `Timeline of Want ${data.want} `, badge(data.state)),
    bars.length ? el("div", { style: "overflow:auto" }, svg) : el("p", { text: "No run has started yet." }),
    el("p", {}, el("a", { href: `#/events?name=${encodeURIComponent(data.want)}&kind=Want`, text: "its events" })));
}

async function eventsPage(params) {
  const query = new URLSearchParams();
  for (const k of ["kind", "name", "ref"]) if (params.get(k)) query.set(k, params.get(k));
  const data = await get(`api/events?${query}`);
  const rows = data.events.slice().reverse().map((e) => el("tr", {},
    el("td", { class: "muted", text: e.time }), el("td", { text: e.kind }), el("td", { text: e.name }),
    el("td", { text: e.from || "-" }), el("td", {}, badge(e.to)), el("td", { text: e.reason })));
  page.replaceChildren(
    el("h2", { text: `Events${query.toString() ? " (" + query.toString() + ")" : ""}` }),
    data.note ? el("p", { class: "muted", text: data.note }) : "",
    el("table", { id: "events" },
      el("tr", {}, ...["Time", "Kind", "Name", "From", "To", "Reason"].map((h) => el("th", { text: h }))),
      ...rows));
}

const PAGES = { wants: wantsPage, grid: gridPage, lineage: lineagePage, timeline: timelinePage, events: eventsPage };

async function route() {
  const [path, query] = (location.hash.replace(/^#\//, "") || "wants").split("?");
  const name = PAGES[path] ? path : "wants";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  try {
    await PAGES[name](new URLSearchParams(query || ""));
    document.body.dataset.loaded = name;
  } catch (err) {
    page.replaceChildren(el("p", { class: "error", text: String(err.message || err) }));
    document.body.dataset.loaded = "error";
  }
}

window.addEventListener("hashchange", route);
route();
