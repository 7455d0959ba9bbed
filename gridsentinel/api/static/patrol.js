// The phone-sized patrol plan page: fetches /api/v1/patrol/plan with the dashboard's token (sessionStorage)
// and lists each inspector's cells in order with arrival times. ?inspector=N shows one inspector only.
// Words: i18n.js; arrival times are the plan's own clock times in the city (the API computes them).
"use strict";
const $ = (id) => document.getElementById(id);
const token = sessionStorage.getItem("gs-token") || "";
const COLOURS = ["#3fb6a8", "#e8a33d", "#d35d8f", "#6d8cf0", "#8fc449", "#b07ce8", "#e0604a", "#4bb3e0"];
const only = Number(new URLSearchParams(location.search).get("inspector")) || null;
const S = { plan: null, msg: null };  // the last plan, or the key of the message shown: re-worded on a switch

function node(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  e.append(...kids.filter((k) => k != null));
  return e;
}

async function show() {
  const q = new URLSearchParams({ inspectors: $("inspectors").value, shift_h: $("shiftH").value, speed_kmh: $("speed").value });
  if ($("day").value) q.set("date", $("day").value);
  showMsg("patrol.planning");
  const r = await fetch(`/api/v1/patrol/plan?${q}`, { headers: { Authorization: `Bearer ${token}` } });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    if (r.status === 401) showMsg("common.sign_in_first");
    else { S.msg = null; $("patrolSummary").textContent = body?.error?.message || `HTTP ${r.status}`; }
    S.plan = null; $("routes").replaceChildren();
    return;
  }
  if (!$("day").value) $("day").value = body.date;
  S.plan = body; S.msg = null;
  render();
}
function showMsg(key) { S.msg = key; $("patrolSummary").textContent = tr(key); }
function render() {
  const body = S.plan;
  $("patrolSummary").replaceChildren(
    node("div", { text: tr("patrol.summary", { date: body.date, cells: body.cells_planned, covered: body.expected_covered.toFixed(1),
      total: body.expected_total.toFixed(1), share: Math.round(body.covered_share * 100) }) }),
    node("div", { text: tr("patrol.start", { lat: body.depot.lat.toFixed(4), lon: body.depot.lon.toFixed(4), start: body.shift_start,
      method: body.method }) }));
  $("routes").replaceChildren(...body.routes.filter((rt) => !only || rt.inspector === only).map((rt) =>
    node("section", { class: "route", "data-inspector": String(rt.inspector), style: `--c: ${COLOURS[(rt.inspector - 1) % COLOURS.length]}` },
      node("h3", { text: tr("patrol.inspector_title", { n: rt.inspector }) }),
      node("div", { class: "hint", text: rt.stops.length ? tr("patrol.route_summary", { stops: rt.stops.length,
        km: rt.distance_km.toFixed(1), ends: rt.ends, expected: rt.expected.toFixed(1) }) : tr("patrol.no_cell") }),
      node("ol", {}, ...rt.stops.map((s) => node("li", { class: "stop", "data-cell": s.cell },
        node("span", { class: "n", text: String(s.order) }), node("span", { class: "t", text: s.arrive }),
        node("span", { class: "c", text: s.name }, node("small", { text: s.cell })),
        node("span", { class: "e", text: s.expected.toFixed(1) })))))));
}
$("patrolForm").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
document.addEventListener("gs-lang", () => { if (S.plan) render(); else if (S.msg) showMsg(S.msg); });
if (!token) showMsg("common.sign_in_first");
else show();
