// GridSentinel dispatch dashboard: plain JS, no external code. Every call carries the tab's token.
// Words come from i18n.js (t(), zh-CN by default); every time is shown in the city's zone (fmtTime).
"use strict";
const $ = (id) => document.getElementById(id);
const S = { token: sessionStorage.getItem("gs-token") || "", me: null, cases: new Map(), grid: null,
  devices: [], selected: null, abort: null, proj: null, view: "cases", incidents: [], selectedIncident: null };
const NS = "http://www.w3.org/2000/svg";
const ROLES = ["viewer", "dispatcher", "supervisor", "engineer", "admin"];  // the ladder (api/auth.py LADDER)
const ACTIVE = ["open", "dispatched", "in_progress", "resolved", "verified"];

function el(tag, attrs = {}, ...kids) {
  const svg = ["svg", "path", "g", "text", "circle", "line", "polyline", "rect", "title"].includes(tag);
  const e = svg ? document.createElementNS(NS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(k);
  return e;
}
async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { Authorization: `Bearer ${S.token}`,
    ...(opts.body ? { "Content-Type": "application/json" } : {}), ...(opts.headers || {}) } });
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) { const e = new Error(body?.error?.message || `HTTP ${r.status}`); e.status = r.status; throw e; }
  return body;
}
const fmtTime = (t) => gsFormatTime(t);  // i18n.js: the UI language, the city's time zone
function fmtDue(t) {
  if (!t) return ["", false];
  const s = t - Date.now() / 1000;
  const txt = gsDuration(Math.abs(s));
  return [s < 0 ? tr("due.overdue", { d: txt }) : tr("due.in", { d: txt }), s < 0];
}
// Names of the UI language: categories and departments from /dashboard/me (the config files' name / name_zh).
const catName = (k) => (gsLang() === "en" ? S.me?.categories?.[k] : S.me?.categories_zh?.[k]) || S.me?.categories?.[k] || k;
const deptNames = () => (gsLang() === "en" ? S.me?.departments : S.me?.departments_zh) || S.me?.departments || {};
const deptName = (k) => k ? deptNames()[k] || k : "—";
const statusName = (s) => tr(`status.${s}`, {}, s.replace("_", " "));
const actionName = (a) => tr(`action.${a}`, {}, a.replace("_", " "));
const sevName = (s) => tr(`severity.${s}`, {}, s);
const sourceName = (s) => tr(`source.${s}`, {}, s);
const roleName = (r) => tr(`role.${r}`, {}, r);
// "street:320582004" -> 街道中心 320582004 / street center 320582004
function centerName(c) {
  const [level, code] = String(c || "").split(":");
  return code ? tr("center.name", { level: tr(`level.${level}`, {}, level), code }) : c || "—";
}
// The headline says the case's current state in the UI language: Case.headlines[lang] / Case.headline (the
// latest detection at the current severity), else the title, else the category.
const headline = (c) => c.headlines?.[gsLang()] || c.headline || c.title || catName(c.category_key);
const cellName = (code) => S.grid?.features.find((f) => f.properties.code === code)?.properties.name || code;
function toast(msg, bad = false) {
  const t = el("div", { class: `toast${bad ? " bad" : ""}`, text: msg });
  $("toasts").append(t); setTimeout(() => t.remove(), 5000);
}

// ---- sign in ---------------------------------------------------------------------------------------
async function signIn(token) {
  S.token = token;
  try { S.me = await api("/dashboard/me"); }
  catch (e) { S.token = ""; throw e; }
  sessionStorage.setItem("gs-token", token);
  $("login").hidden = true; $("signout").hidden = false;
  gsSetZone(S.me.timezone);
  renderWho();
  await Promise.all([loadGrid(), loadCases(), loadHealth()]);
  setInterval(() => loadHealth().catch(() => {}), 10000);
  stream();
}
$("loginForm").addEventListener("submit", async (ev) => {
  ev.preventDefault(); $("loginErr").textContent = "";
  try { await signIn($("tokenInput").value.trim()); }
  catch (e) { $("loginErr").textContent = e.status === 401 ? tr("login.unknown") : e.message; }
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem("gs-token"); location.reload(); });

function renderWho() {
  if (!S.me) return;
  $("whoami").replaceChildren(el("b", { text: S.me.id }), ` · ${roleName(S.me.role)}`);
  $("zone").textContent = gsZoneLabel();
  $("zone").title = tr("header.zone_title", { zone: gsZone() });
}

// ---- device health ---------------------------------------------------------------------------------
const num = (v, digits, unit) => v === null || v === undefined ? "—" : `${Number(v).toFixed(digits)}${unit}`;
async function loadHealth() {
  const status = $("healthFilter").value;
  const h = await api(`/api/v1/devices/health${status ? `?status=${status}` : ""}`);
  S.health = h;
  renderHealth();
}
function renderHealth() {
  const h = S.health;
  if (!h) return;
  $("healthCounts").textContent = Object.entries(h.counts).filter(([, n]) => n)
    .map(([k, n]) => tr("health.count", { n, state: tr(`device.${k}`, {}, k) })).join(" · ");
  $("health").tBodies[0].replaceChildren(...h.items.map((d) => el("tr", { "data-device": d.device_id, "data-state": d.state },
    el("td", { text: d.device_id }), el("td", {}, el("span", { class: `badge ${d.state}`, text: tr(`device.${d.state}`, {}, d.state) })),
    el("td", { class: "seen", text: fmtTime(d.last_seen) }),
    el("td", { text: num(d.messages_per_min, 1, "") }), el("td", { text: num(d.rejections_per_min, 1, "") }),
    el("td", { text: d.battery_level !== null ? num(d.battery_level, 0, " %") : num(d.battery, 2, " V") }),
    el("td", { text: num(d.rssi, 0, " dBm") }), el("td", { class: "why", text: d.reason }))));
}
$("healthFilter").addEventListener("change", () => loadHealth().catch((e) => toast(e.message, true)));

// ---- map -------------------------------------------------------------------------------------------
async function loadGrid() {
  const [grid, devices] = await Promise.all([api("/api/v1/grid"), api("/api/v1/devices").catch(() => null)]);
  S.grid = grid; S.devices = devices?.items || devices?.devices || (Array.isArray(devices) ? devices : []);
  $("gridName").textContent = grid.name || "";
  drawMap();
}
function project() {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of S.grid.features) for (const [x, y] of f.geometry.coordinates[0]) {
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  const k = Math.cos(((y0 + y1) / 2) * Math.PI / 180), W = 1000, pad = 20;
  const sx = (W - 2 * pad) / ((x1 - x0) * k), H = (y1 - y0) * sx + 2 * pad;
  return { W, H, p: ([x, y]) => [pad + (x - x0) * k * sx, pad + (y1 - y) * sx] };
}
function drawMap() {
  const svg = $("map"); svg.replaceChildren();
  const P = (S.proj = project()); svg.setAttribute("viewBox", `0 0 ${P.W} ${P.H}`);
  const counts = openCounts();
  for (const f of S.grid.features) {
    const code = f.properties.code, ring = f.geometry.coordinates[0].map(P.p);
    const n = counts.get(code) || 0, cls = `cell c${Math.min(n, 3)}${S.selectedCell === code ? " sel" : ""}`;
    const cx = ring.slice(0, -1).reduce((a, q) => a + q[0], 0) / (ring.length - 1);
    const cy = ring.slice(0, -1).reduce((a, q) => a + q[1], 0) / (ring.length - 1);
    svg.append(el("g", { "data-cell": code },
      el("path", { class: cls, d: "M" + ring.map((q) => q.join(",")).join("L") + "Z", "data-code": code,
        onclick: () => selectCell(code) }, el("title", { text: `${f.properties.name}\n${code}\n${tr("map.open_cases", { n })}` })),
      el("text", { class: "cellLabel", x: cx, y: cy + 34, text: `${code.slice(9, 12)}·${code.slice(12)}` }),
      n ? el("text", { class: "cellCount", x: cx, y: cy + 7, text: String(n) }) : null));
  }
  for (const d of S.devices) {
    if (!d.location) continue;
    const [x, y] = P.p([d.location.lon, d.location.lat]);
    svg.append(el("circle", { class: `devDot ${d.kind}`, cx: x, cy: y, r: 5 }, el("title", { text: `${d.id} (${d.kind})` })));
  }
  if (S.patrol && $("patrolToggle").checked) drawPatrol(svg, P);  // over the devices: stop numbers stay readable
}
// ---- patrol plan on the map (toggle): each inspector's route from the depot through its cells and back --
const PATROL_COLOURS = ["#3fb6a8", "#e8a33d", "#d35d8f", "#6d8cf0", "#8fc449", "#b07ce8", "#e0604a", "#4bb3e0"];
function drawPatrol(svg, P) {
  const depot = P.p([S.patrol.depot.lon, S.patrol.depot.lat]);
  for (const rt of S.patrol.routes) {
    if (!rt.stops.length) continue;
    const colour = PATROL_COLOURS[(rt.inspector - 1) % PATROL_COLOURS.length];
    const pts = [depot, ...rt.stops.map((s) => P.p([s.lon, s.lat])), depot];
    const g = el("g", { class: "patrol", "data-inspector": rt.inspector });
    g.append(el("polyline", { class: "patrolRoute", stroke: colour, points: pts.map((q) => q.join(",")).join(" ") }));
    rt.stops.forEach((s, i) => {
      const [x, y] = pts[i + 1];
      g.append(el("circle", { class: "patrolStop", cx: x, cy: y, r: 8, fill: colour },
        el("title", { text: `${tr("patrol.stop_title", { inspector: rt.inspector, order: s.order, arrive: s.arrive })}\n${s.name} · ${s.cell}\n${tr("patrol.expected", { n: s.expected })}` })),
        el("text", { class: "patrolNum", x, y: y + 3.5, text: String(s.order) }));
    });
    svg.append(g);
  }
  svg.append(el("circle", { class: "patrolDepot", cx: depot[0], cy: depot[1], r: 6 }, el("title", { text: tr("patrol.depot") })));
}
async function togglePatrol() {
  const on = $("patrolToggle").checked;
  $("patrolLegend").hidden = !on;
  if (on && !S.patrol) {
    try { S.patrol = await api("/api/v1/patrol/plan"); }
    catch (e) { toast(tr("patrol.failed", { message: e.message }), true); $("patrolToggle").checked = false; $("patrolLegend").hidden = true; return; }
  }
  renderPatrolLegend();
  if (S.grid) drawMap();
}
function renderPatrolLegend() {
  if (!S.patrol) return;
  $("patrolLegend").replaceChildren(tr("patrol.legend", { date: S.patrol.date }), ...S.patrol.routes.flatMap((rt) =>
    [el("i", { style: `background:${PATROL_COLOURS[(rt.inspector - 1) % PATROL_COLOURS.length]}` }), tr("patrol.inspector", { n: rt.inspector })]));
}
$("patrolToggle").addEventListener("change", () => togglePatrol());
function openCounts() {
  const m = new Map();
  for (const c of S.cases.values()) if (c.status !== "closed") m.set(c.grid_code, (m.get(c.grid_code) || 0) + 1);
  return m;
}
function selectCell(code) {
  S.selectedCell = S.selectedCell === code ? null : code; drawMap(); renderFeed();
}

// ---- feed ------------------------------------------------------------------------------------------
async function loadCases() {
  const r = await api("/api/v1/cases?limit=500");
  S.cases = new Map(r.items.map((c) => [c.case_id, c]));
  renderFeed(); renderStats();
  if (S.grid) drawMap();  // the grid may have loaded first: colour its cells by these cases
}
function renderStats() {
  const all = [...S.cases.values()], active = all.filter((c) => c.status !== "closed");
  const now = Date.now() / 1000;
  const stat = (n, label, hot) => el("div", { class: `stat${hot && n ? " hot" : ""}` }, el("b", { text: String(n) }), el("span", { text: label }));
  $("stats").replaceChildren(stat(all.filter((c) => c.status === "open").length, tr("stats.open"), true),
    stat(active.filter((c) => ["dispatched", "in_progress"].includes(c.status)).length, tr("stats.in_hand")),
    stat(active.filter((c) => c.due_at && c.due_at < now && ACTIVE.slice(0, 3).includes(c.status)).length, tr("stats.overdue"), true),
    stat(all.filter((c) => c.status === "closed").length, tr("stats.closed")));
}
function renderFeed(flashId) {
  if (S.view === "incidents") { renderIncidents(); return; }
  const f = $("statusFilter").value, want = f === "active" ? ACTIVE : f ? f.split(",") : null;
  const list = [...S.cases.values()].filter((c) => (!want || want.includes(c.status)) &&
    (!S.selectedCell || c.grid_code === S.selectedCell)).sort((a, b) => b.updated_at - a.updated_at);
  $("feedEmpty").hidden = list.length > 0;
  $("feedEmpty").textContent = tr("feed.empty");
  $("feed").replaceChildren(...list.map((c) => {
    const [due, late] = fmtDue(c.status === "resolved" || c.status === "verified" ? null : c.due_at);
    return el("li", { class: `case${c.case_id === S.selected ? " sel" : ""}${c.case_id === flashId ? " new" : ""}`,
      "data-case": c.case_id, onclick: () => openCase(c.case_id) },
      el("span", { class: `sev ${c.severity}` }),
      el("div", { class: "t", text: headline(c) }),
      el("div", { class: "r" }, el("span", { class: `badge ${c.status}`, text: statusName(c.status) })),
      el("div", { class: "m", text: `${catName(c.category_key)} · ${cellName(c.grid_code)}` }),
      el("div", { class: `due r${late ? " late" : ""}`, text: c.status === "closed" ? closingName(c.closing_reason) : due }),
      el("div", { class: "m", text: [sevName(c.severity), Object.keys(c.sources || {}).map(sourceName).join(tr("list.sep")),
        tr("feed.detections", { n: c.detection_count }), tr("feed.last_seen", { time: fmtTime(c.last_seen_at) })].join(" · ") }));
  }));
}
$("statusFilter").addEventListener("change", () => {
  if (S.view === "incidents") loadIncidents().catch((e) => toast(e.message, true)); else renderFeed();
});
$("feedView").addEventListener("change", () => {
  S.view = $("feedView").value;
  if (S.view === "incidents") loadIncidents().catch((e) => toast(e.message, true)); else renderFeed();
});

// ---- incidents: cases of one family close in space and time (docs/cases.md, "Incidents") ----------------
const familyName = (i) => (gsLang() === "en" ? i.family_name : i.family_name_zh) || i.family;
async function loadIncidents() {
  const f = $("statusFilter").value;
  // the case filter's "active" / "open" / "in hand" all mean incidents still open; "all" shows closed ones too
  const r = await api(`/api/v1/incidents?limit=200${f ? "&status=open" : ""}`);
  S.incidents = r.items;
  renderIncidents();
}
function renderIncidents() {
  const list = S.incidents || [];
  $("feedEmpty").hidden = list.length > 0;
  $("feedEmpty").textContent = tr("incident.empty");
  $("feed").replaceChildren(...list.map((i) => el("li", {
    class: `case incident${i.incident_id === S.selectedIncident ? " sel" : ""}`, "data-incident": i.incident_id,
    onclick: () => openIncident(i.incident_id) },
    el("span", { class: `sev ${i.severity}` }),
    el("div", { class: "t", text: tr("incident.headline", { family: familyName(i), n: i.case_count }) }),
    el("div", { class: "r" }, el("span", { class: `badge ${i.status === "open" ? "open" : "closed"}`,
      text: tr(`incident_status.${i.status}`) })),
    el("div", { class: "m", text: i.categories.map(catName).join(tr("list.sep")) }),
    el("div", { class: "m r", text: fmtTime(i.last_seen_at) }),
    el("div", { class: "m", text: Object.entries(i.sources).map(([k, v]) => `${sourceName(k)} ×${v}`).join(tr("list.sep")) }))));
}
async function openIncident(id, quiet = false) {
  S.selectedIncident = id; S.selected = null;
  let d;
  try { d = await api(`/api/v1/incidents/${encodeURIComponent(id)}`); }
  catch (e) { if (!quiet) toast(e.message, true); return; }
  if (S.view === "incidents") renderIncidents();
  const i = d.incident;
  document.querySelector("main").classList.add("withCase"); $("casePanel").hidden = false;
  $("caseTitle").textContent = tr("incident.headline", { family: familyName(i), n: i.case_count });
  const kv = el("dl", { class: "kv" });
  const add = (k, v) => kv.append(el("dt", { text: k }), el("dd", { text: v }));
  add(tr("case.status"), tr(`incident_status.${i.status}`));
  add(tr("incident.family"), `${familyName(i)} — ${i.family}`);
  add(tr("case.severity"), sevName(i.severity));
  add(tr("incident.cells"), i.grid_codes.map(cellName).join(tr("list.sep")));
  add(tr("incident.lead"), deptName(i.lead_department));
  if (i.departments.length) add(tr("incident.departments"), i.departments.map(deptName).join(tr("list.sep")));
  add(tr("case.seen"), `${fmtTime(i.first_seen_at)} / ${fmtTime(i.last_seen_at)}`);
  add(tr("incident.id"), i.incident_id);
  const cases = el("ol", { class: "feed members" }, ...d.cases.map((c) => {
    const [due, late] = fmtDue(["resolved", "verified", "closed"].includes(c.status) ? null : c.due_at);
    return el("li", { class: "case", "data-case": c.case_id, onclick: () => openCase(c.case_id) },
      el("span", { class: `sev ${c.severity}` }), el("div", { class: "t", text: catName(c.category_key) }),
      el("div", { class: "r" }, el("span", { class: `badge ${c.status}`, text: statusName(c.status) })),
      el("div", { class: "m", text: `${cellName(c.grid_code)} · ${deptName(c.department)}` }),
      el("div", { class: `due r${late ? " late" : ""}`, text: due }),
      el("div", { class: "m", text: Object.entries(c.sources).map(([k, v]) => `${sourceName(k)} ×${v}`).join(tr("list.sep")) }));
  }));
  const sources = el("table", { class: "health sources" },
    el("thead", {}, el("tr", {}, el("th", { text: tr("incident.source") }), el("th", { text: tr("case.detections") }),
      el("th", { text: tr("incident.devices") }), el("th", { text: tr("case.seen") }))),
    el("tbody", {}, ...d.sources.map((s) => el("tr", { "data-source": s.source }, el("td", { text: sourceName(s.source) }),
      el("td", { text: String(s.detections) }), el("td", { text: s.devices.join(", ") || "—" }),
      el("td", { text: `${fmtTime(s.first_seen_at)} / ${fmtTime(s.last_seen_at)}` })))));
  const log = el("ol", { class: "log" }, ...d.log.map((e) => el("li", {},
    el("div", {}, el("b", { text: tr(`incident_action.${e.action}`) }), el("span", { class: "actor", text: ` · ${e.actor}` })),
    el("div", { class: "when", text: fmtTime(e.at) }), e.note ? el("div", { text: e.note }) : null)));
  $("caseBody").replaceChildren(incidentActions(i, d.cases), kv,
    el("div", {}, el("h3", { text: tr("incident.cases", { n: d.cases.length }) }), cases),
    el("div", {}, el("h3", { text: tr("incident.sources") }), sources),
    el("div", {}, el("h3", { text: tr("log.title") }), log));
}
function incidentActions(i, cases) {
  const can = ROLES.indexOf(S.me.role) >= ROLES.indexOf("dispatcher");
  const box = el("div", { class: "actions" });
  const note = el("input", { class: "note", placeholder: tr("actions.note"), "aria-label": tr("actions.note") });
  const dept = el("select", { "aria-label": tr("incident.lead") },
    ...Object.entries(deptNames()).map(([k, v]) => el("option", { value: k, text: v, selected: k === i.lead_department })));
  const open = cases.some((c) => c.status === "open"), verified = cases.some((c) => c.status === "verified");
  box.append(
    el("button", { "data-action": "dispatch", disabled: !can || !open, title: can ? "" : tr("actions.needs_dispatcher"),
      onclick: () => incidentAct(i.incident_id, "dispatch", { department: dept.value, note: note.value }),
      text: tr("incident.dispatch") }),
    el("button", { class: "secondary", "data-action": "close", disabled: !can || !verified,
      title: can ? tr("incident.close_hint") : tr("actions.needs_dispatcher"),
      onclick: () => incidentAct(i.incident_id, "close", { note: note.value }), text: tr("incident.close") }),
    dept, note);
  if (!can) box.append(el("div", { class: "role", text: tr("actions.signed_in_as", { role: roleName(S.me.role) }) }));
  return box;
}
async function incidentAct(id, action, body) {
  if (!body.note) delete body.note;
  try {
    const r = await api(`/api/v1/incidents/${encodeURIComponent(id)}/${action}`, { method: "POST", body: JSON.stringify(body) });
    const done = r.results.filter((x) => x.outcome === "done").length;
    toast(tr("incident.done", { action: actionName(action), n: done, skipped: r.results.length - done }));
  } catch (e) { toast(e.message, true); }
  await loadCases();
  if (S.view === "incidents") await loadIncidents();
  openIncident(id, true);
}

// ---- live stream (fetch + SSE parsing, so the token travels in a header) -------------------------------
async function stream() {
  let lastId = null;
  for (;;) {
    try {
      S.abort = new AbortController();
      const r = await fetch("/api/v1/cases/stream", { signal: S.abort.signal,
        headers: { Authorization: `Bearer ${S.token}`, ...(lastId ? { "Last-Event-ID": lastId } : {}) } });
      if (!r.ok) throw new Error(`stream HTTP ${r.status}`);
      setLive(true);
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          let data = "", id = null;
          for (const line of block.split("\n")) {
            if (line.startsWith("data:")) data += line.slice(5).trim();
            else if (line.startsWith("id:")) id = line.slice(3).trim();
          }
          if (id) lastId = id;
          if (data) onEvent(JSON.parse(data));
        }
      }
    } catch (e) { if (e.name === "AbortError") return; }
    setLive(false);
    await new Promise((res) => setTimeout(res, 3000));
  }
}
function setLive(on) {
  S.live = on;
  const l = $("live"); l.className = `live ${on ? "on" : "off"}`; l.textContent = tr(on ? "live.on" : "live.reconnecting");
}
function onEvent(ev) {
  const c = ev.case && ev.case.case_id ? ev.case : null;
  if (!c) return;
  const isNew = !S.cases.has(c.case_id);
  S.cases.set(c.case_id, { ...S.cases.get(c.case_id), ...c });
  renderFeed(isNew ? c.case_id : null); renderStats(); drawMap();
  const cell = document.querySelector(`path[data-code="${c.grid_code}"]`);
  if (cell) { cell.classList.remove("flash"); void cell.getBBox(); cell.classList.add("flash"); }
  if (isNew || ev.notify) toast(tr("toast.event", { event: ev.type === "open" ? tr("toast.new_case") : actionName(ev.type),
    category: catName(c.category_key), cell: cellName(c.grid_code) }), ev.notify && c.severity === "critical");
  if (S.selected === c.case_id) openCase(c.case_id, true);
  if (S.view === "incidents" || S.selectedIncident) {  // a case event may link, dispatch or close incidents
    clearTimeout(S.incidentTimer);
    S.incidentTimer = setTimeout(() => {
      if (S.view === "incidents") loadIncidents().catch(() => {});
      if (S.selectedIncident) openIncident(S.selectedIncident, true);
    }, 1000);
  }
}

// ---- case view -------------------------------------------------------------------------------------
$("closeCase").addEventListener("click", () => { S.selected = null; S.selectedIncident = null; $("casePanel").hidden = true;
  document.querySelector("main").classList.remove("withCase"); renderFeed(); });
async function openCase(id, quiet = false) {
  S.selected = id; S.selectedIncident = null; renderFeed();
  let d;
  try { d = await api(`/api/v1/cases/${encodeURIComponent(id)}`); }
  catch (e) { if (!quiet) toast(e.message, true); return; }
  const c = d.case; S.cases.set(c.case_id, c);
  document.querySelector("main").classList.add("withCase"); $("casePanel").hidden = false;
  $("caseTitle").textContent = headline(c);
  const [due, late] = fmtDue(c.due_at);
  const kv = el("dl", { class: "kv" });
  const add = (k, v, cls) => kv.append(el("dt", { text: k }), el("dd", { class: cls || null, text: v }));
  add(tr("case.status"), `${statusName(c.status)}${c.closing_reason ? ` (${closingName(c.closing_reason)})` : ""}`);
  add(tr("case.category"), `${catName(c.category_key)} — ${c.category_key} (${c.category_standard})`);
  add(tr("case.severity"), sevName(c.severity)); add(tr("case.cell"), `${cellName(c.grid_code)} · ${c.grid_code}`);
  add(tr("case.center"), `${centerName(c.center)}${c.escalation_level ? ` (${tr("case.escalated", { n: c.escalation_level })})` : ""}`);
  add(tr("case.department"), deptName(c.department));
  add(tr("case.due"), c.due_at ? `${fmtTime(c.due_at)} (${due})` : "—", late ? "due late" : null);
  add(tr("case.detections"), tr("case.detections_from", { n: c.detection_count,
    sources: Object.entries(c.sources || {}).map(([k, v]) => `${sourceName(k)} ×${v}`).join(tr("list.sep")) }));
  add(tr("case.seen"), `${fmtTime(c.first_seen_at)} / ${fmtTime(c.last_seen_at)}`);
  add(tr("case.id"), c.case_id);
  if (d.incident_id) kv.append(el("dt", { text: tr("case.incident") }), el("dd", {}, el("a", { href: "#",
    "data-incident": d.incident_id, text: tr("case.incident_open"),
    onclick: (ev) => { ev.preventDefault(); openIncident(d.incident_id); } })));
  const parts = [actionsBox(c, d.allowed_actions, d.choices), kv];
  const facts = evidenceOf(d.detections);
  if (facts) parts.push(facts);
  const snap = snapshotOf(d.detections);
  const img = snap ? el("img", { alt: tr("snapshot.alt") }) : null;
  if (snap) parts.push(el("figure", { class: "snapshot" }, el("h3", { text: tr("snapshot.title") }),
    img, el("figcaption", { text: snap.caption })));
  const chart = el("div", { class: "chart", id: "chart" }, el("h3", { text: tr("signal.title") }), el("div", { class: "hint", text: tr("common.loading") }));
  const dev = (d.detections || []).find((x) => x.device_id && x.source !== "camera");
  if (dev) parts.push(chart);
  parts.push(el("div", {}, el("h3", { text: tr("log.title") }), el("ol", { class: "log" }, ...d.log.map((e) =>
    el("li", {}, el("div", {}, el("b", { text: actionName(e.action || e.type) }), el("span", { class: "actor", text: ` · ${e.actor}` })),
      el("div", { class: "when", text: fmtTime(e.at) }), e.note ? el("div", { text: e.note }) : null)))));
  $("caseBody").replaceChildren(...parts);
  if (snap) showSnapshot(img, snap);
  if (dev) drawSignal(chart, dev, c);
}
function evidenceOf(dets) {
  // the latest detection's own words and measurements (scalars only; pictures are shown below)
  const d = (dets || [])[dets.length - 1];
  if (!d) return null;
  const dl = el("dl", { class: "kv evidence" });
  const add = (k, v) => dl.append(el("dt", { text: k }), el("dd", { text: v }));
  add(tr("evidence.detector"), `${d.detector}${d.detector_version ? ` (${d.detector_version})` : ""} · ${d.kind} · ${sevName(d.severity)}`);
  if (d.message) add(tr("evidence.finding"), d.message);
  const fmt = (v) => typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 3 : 1)) : String(v);
  const skip = new Set(["phase", "incident_started_at", "snapshot"]);
  const rows = Object.entries(d.evidence || {}).filter(([k, v]) => !skip.has(k) && v !== null &&
    ["number", "string", "boolean"].includes(typeof v)).slice(0, 10);
  for (const [k, v] of rows) add(k.replaceAll("_", " "), fmt(v));
  return el("div", {}, el("h3", { text: tr("evidence.title", { source: d.device_id || sourceName(d.source), time: fmtTime(d.observed_at) }) }), dl);
}
function snapshotOf(dets) {
  // newest first: the latest detection's picture is the most useful to a dispatcher
  for (const d of [...(dets || [])].reverse()) {
    const ev = d.evidence || {};
    const url = ev.snapshot_url, b64 = ev.snapshot_jpeg_b64 || ev.snapshot_b64 || ev.snapshot;
    const caption = `${d.device_id || ""} · ${fmtTime(d.observed_at)} · ${d.message || d.kind || ""}`;
    if (b64 && typeof b64 === "object" && b64.path && /^[0-9a-f]{32}$/.test(d.detection_id || "")) {
      // the frames stage's stored snapshot (docs/cameras.md): served by the API, fetched with the token
      const expired = b64.expires_at && b64.expires_at < Date.now() / 1000;
      const blurred = Number.isFinite(b64.blurred_regions) ? ` · ${tr("snapshot.blurred", { n: b64.blurred_regions })}` : "";
      return { api: `/api/v1/evidence/${d.detection_id}.jpg`, expired, caption: caption + blurred };
    }
    if (typeof url === "string") return { src: url, caption };
    if (typeof b64 === "string") return { src: b64.startsWith("data:") ? b64 : `data:image/jpeg;base64,${b64}`, caption };
  }
  return null;
}
async function showSnapshot(img, snap) {
  if (snap.src) { img.src = snap.src; return; }
  const fig = img.parentElement;
  const gone = (why) => img.replaceWith(el("div", { class: "hint", text: why }));
  if (snap.expired) { gone(tr("snapshot.expired")); return; }
  try {
    const r = await fetch(snap.api, { headers: { Authorization: `Bearer ${S.token}` } });
    if (!r.ok) { gone(r.status === 404 ? tr("snapshot.gone") : tr("snapshot.unavailable", { message: `HTTP ${r.status}` })); return; }
    if (S.snapUrl) URL.revokeObjectURL(S.snapUrl);
    S.snapUrl = URL.createObjectURL(await r.blob());
    if (fig.isConnected) img.src = S.snapUrl;
  } catch (e) { gone(tr("snapshot.unavailable", { message: e.message })); }
}
function actionsBox(c, allowed, choices) {
  // `choices` (issue 16) say, for this user and this case, which actions the case's state offers and
  // whether this user may take each (with the reason why not, e.g. another center holds the case, or a
  // second user confirms a false alarm); without them (an older API) the role alone decides
  const can = ROLES.indexOf(S.me.role) >= ROLES.indexOf("dispatcher");
  const mine = new Map((choices || []).map((ch) => [ch.action, ch]));
  const box = el("div", { class: "actions" });
  const note = el("input", { class: "note", placeholder: tr("actions.note"), "aria-label": tr("actions.note") });
  const dept = el("select", { "aria-label": tr("case.department") }, el("option", { value: "", text: tr("actions.routed_department") }),
    ...Object.entries(deptNames()).map(([k, v]) => el("option", { value: k, text: v })));
  const main = ["acknowledge", "dispatch", "resolve", "false_alarm"];
  const extra = (choices ? choices.map((ch) => ch.action) : allowed).filter((x) => !main.includes(x) && x !== "duplicate");
  let any = false;
  for (const a of [...main, ...extra]) {
    const ch = mine.get(a);
    const ok = choices ? Boolean(ch && ch.allowed) : can && allowed.includes(a);
    any = any || ok;
    const why = ok ? (ch?.reason || "") : ch?.reason || (can || choices ? tr("actions.not_allowed", { status: statusName(c.status) }) : tr("actions.needs_dispatcher"));
    box.append(el("button", { class: a === "false_alarm" ? "danger" : a === "dispatch" ? null : "secondary",
      disabled: !ok, "aria-disabled": String(!ok), "data-action": a, title: why,
      onclick: () => act(c.case_id, a, note.value, a === "dispatch" ? dept.value : ""), text: actionName(a) }));
  }
  if ((choices ? mine.get("dispatch")?.allowed : allowed.includes("dispatch") && can)) box.append(dept);
  box.append(note);
  if (!any && !can) box.append(el("div", { class: "role", text: tr("actions.signed_in_as", { role: roleName(S.me.role) }) }));
  return box;
}
async function act(id, action, note, department) {
  const body = { action }; if (note) body.note = note; if (department) body.department = department;
  try {
    const r = await api(`/api/v1/cases/${encodeURIComponent(id)}/transitions`, { method: "POST", body: JSON.stringify(body) });
    S.cases.set(id, r.case); toast(tr("toast.done", { action: actionName(action) }));
    renderFeed(); renderStats(); drawMap(); openCase(id, true);
  } catch (e) { toast(e.message, true); }
}
async function drawSignal(box, det, c) {
  const t0 = (c.first_seen_at || det.observed_at) - 5400, t1 = Math.min(Date.now() / 1000, (c.last_seen_at || det.observed_at) + 1800);
  let r;
  try { r = await api(`/api/v1/signals/${encodeURIComponent(det.device_id)}?start=${t0}&end=${Math.max(t1, t0 + 60)}`); }
  catch (e) { box.lastChild.textContent = tr("signal.none", { message: e.message }); return; }
  const names = Object.keys(r.series);
  if (!names.length) { box.lastChild.textContent = tr("signal.empty"); return; }
  const name = names.includes(det.evidence?.metric) ? det.evidence.metric : names[0];
  const pts = r.series[name], W = 600, H = 190, L = 44, B = 22, T = 10, R = 10;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  let y0 = Math.min(...ys), y1 = Math.max(...ys); if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.08; y0 -= pad; y1 += pad;
  const X = (t) => L + (t - t0) / (Math.max(t1, xs[xs.length - 1]) - t0) * (W - L - R), Y = (v) => T + (y1 - v) / (y1 - y0) * (H - T - B);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  svg.append(el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }), el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  for (const v of [y0 + pad, (y0 + y1) / 2, y1 - pad]) svg.append(el("text", { class: "lbl", x: L - 4, y: Y(v) + 3, "text-anchor": "end", text: v.toFixed(Math.abs(v) < 10 ? 2 : 0) }));
  for (const t of [t0, (t0 + t1) / 2, t1]) svg.append(el("text", { class: "lbl", x: X(t), y: H - 6, "text-anchor": "middle", text: gsFormatClock(t) }));
  svg.append(el("polyline", { class: "series", points: pts.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ") }));
  const dx = X(c.first_seen_at || det.observed_at);
  svg.append(el("line", { class: "det", x1: dx, x2: dx, y1: T, y2: H - B }), el("text", { class: "detLbl", x: dx + 4, y: T + 10, text: tr("signal.detected") }));
  box.replaceChildren(el("h3", { text: tr("signal.title_device", { device: det.device_id, metric: name }) }), svg);
}

// ---- language --------------------------------------------------------------------------------------
const closingName = (r) => r ? tr(`closing.${r}`, {}, r) : "";
// The switch (中文 / English) re-renders what is on screen in place: the sign-in, the stream and the open case stay.
document.addEventListener("gs-lang", () => {
  if (S.live !== undefined) setLive(S.live);
  renderWho();
  if (!S.me) return;
  renderFeed(); renderStats(); renderHealth(); renderPatrolLegend();
  if (S.grid) drawMap();
  if (S.selected) openCase(S.selected, true);
  if (S.selectedIncident) openIncident(S.selectedIncident, true);
});

// ---- start -----------------------------------------------------------------------------------------
setInterval(() => { if (S.me) { renderFeed(); renderStats(); } }, 30000);
if (S.token) signIn(S.token).catch(() => { $("login").hidden = false; });
else $("login").hidden = false;
