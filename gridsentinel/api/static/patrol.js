// The phone-sized patrol plan page: fetches /api/v1/patrol/plan with the dashboard's token (sessionStorage)
// and lists each inspector's cells in order with arrival times. ?inspector=N shows one inspector only.
"use strict";
const $ = (id) => document.getElementById(id);
const token = sessionStorage.getItem("gs-token") || "";
const COLOURS = ["#3fb6a8", "#e8a33d", "#d35d8f", "#6d8cf0", "#8fc449", "#b07ce8", "#e0604a", "#4bb3e0"];
const only = Number(new URLSearchParams(location.search).get("inspector")) || null;

function node(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  e.append(...kids.filter((k) => k != null));
  return e;
}

async function show() {
  const q = new URLSearchParams({ inspectors: $("inspectors").value, shift_h: $("shiftH").value, speed_kmh: $("speed").value });
  if ($("day").value) q.set("date", $("day").value);
  $("patrolSummary").textContent = "planning…";
  const r = await fetch(`/api/v1/patrol/plan?${q}`, { headers: { Authorization: `Bearer ${token}` } });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    $("patrolSummary").textContent = r.status === 401 ? "Sign in on the dashboard first." : (body?.error?.message || `HTTP ${r.status}`);
    $("routes").replaceChildren();
    return;
  }
  if (!$("day").value) $("day").value = body.date;
  $("patrolSummary").replaceChildren(
    node("div", { text: `${body.date}: ${body.cells_planned} cells cover ${body.expected_covered.toFixed(1)} of ${body.expected_total.toFixed(1)} expected problems (${Math.round(body.covered_share * 100)} %).` }),
    node("div", { text: `Start and end at the depot ${body.depot.lat.toFixed(4)}, ${body.depot.lon.toFixed(4)} at ${body.shift_start}. ${body.method}.` }));
  $("routes").replaceChildren(...body.routes.filter((rt) => !only || rt.inspector === only).map((rt) =>
    node("section", { class: "route", "data-inspector": String(rt.inspector), style: `--c: ${COLOURS[(rt.inspector - 1) % COLOURS.length]}` },
      node("h3", { text: `Inspector ${rt.inspector}` }),
      node("div", { class: "hint", text: rt.stops.length ? `${rt.stops.length} cells · ${rt.distance_km.toFixed(1)} km · back by ${rt.ends} · ${rt.expected.toFixed(1)} expected` : "no cell fits the shift" }),
      node("ol", {}, ...rt.stops.map((s) => node("li", { class: "stop", "data-cell": s.cell },
        node("span", { class: "n", text: String(s.order) }), node("span", { class: "t", text: s.arrive }),
        node("span", { class: "c", text: s.name }, node("small", { text: s.cell })),
        node("span", { class: "e", text: s.expected.toFixed(1) })))))));
}
$("patrolForm").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
if (!token) $("patrolSummary").textContent = "Sign in on the dashboard first.";
else show();
