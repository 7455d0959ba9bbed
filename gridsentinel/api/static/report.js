// The weekly report page: fetches /api/v1/reports/weekly with the dashboard's token (sessionStorage) and
// shows the HTML in a frame; "Print" prints the frame (the same HTML the CLI prints to PDF). Words: i18n.js.
"use strict";
const $ = (id) => document.getElementById(id);
const token = sessionStorage.getItem("gs-token") || "";
const S = { msg: null };  // the key of the message shown, so the language switch can re-word it

async function show() {
  const q = new URLSearchParams();
  if ($("week").value.trim()) q.set("week", $("week").value.trim());
  if ($("center").value.trim()) q.set("center", $("center").value.trim());
  q.set("forecast", $("forecast").checked ? "true" : "false");
  S.msg = "report.building"; $("reportMsg").textContent = tr(S.msg);
  const r = await fetch(`/api/v1/reports/weekly?${q}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!r.ok) {
    const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
    S.msg = r.status === 401 ? "common.sign_in_first" : null;
    $("reportMsg").textContent = S.msg ? tr(S.msg) : (body?.error?.message || `HTTP ${r.status}`);
    return;
  }
  $("reportFrame").srcdoc = await r.text();
  S.msg = null; $("reportMsg").textContent = "";
}
$("reportForm").addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
$("printReport").addEventListener("click", () => $("reportFrame").contentWindow.print());
document.addEventListener("gs-lang", () => { if (S.msg) $("reportMsg").textContent = tr(S.msg); });
if (!token) { S.msg = "common.sign_in_first"; $("reportMsg").textContent = tr(S.msg); }
else show();
