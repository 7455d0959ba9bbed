// The weekly report page: fetches /api/v1/reports/weekly with the dashboard's token (sessionStorage) and
// shows the HTML in a frame; "Print" prints the frame (the same HTML the CLI prints to PDF).
"use strict";
const $ = (id) => document.getElementById(id);
const token = sessionStorage.getItem("gs-token") || "";

async function show() {
  const q = new URLSearchParams();
  if ($("week").value.trim()) q.set("week", $("week").value.trim());
  if ($("center").value.trim()) q.set("center", $("center").value.trim());
  q.set("forecast", $("forecast").checked ? "true" : "false");
  $("reportMsg").textContent = "building the report…";
  const r = await fetch(`/api/v1/reports/weekly?${q}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) {
    const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
    $("reportMsg").textContent = r.status === 401 ? "Sign in on the dashboard first." : (body?.error?.message || `HTTP ${r.status}`);
    return;
  }
  $("reportFrame").srcdoc = await r.text();
  $("reportMsg").textContent = "";
}
$("reportForm").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
$("printReport").addEventListener("click", () => $("reportFrame").contentWindow.print());
if (!token) $("reportMsg").textContent = "Sign in on the dashboard first.";
else show();
