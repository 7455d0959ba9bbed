// The 12345 call-takers' page (/hotline): take a call (free text + address), see where the gazetteer placed the
// address (or its candidates) and the suggested categories with their confidence, confirm or correct, and
// place the calls whose address could not be resolved (the queue: never dropped). Words: i18n.js.
// The token is the dashboard's (sessionStorage), or signed in here.
"use strict";
const S = { call: null, queue: [], outcome: null,
  drafts: new Map() };  // call id -> what was chosen or typed in the queue (kept across the 30 s refresh)
const { api, start } = gsPage(S, "/api/v1/hotline/me", () => { loadQueue(); });
const catName = (key) => {
  const c = S.me?.categories?.[key];
  return c ? `${gsLang() === "en" ? c.name : c.name_zh} (${key})` : key;
};

// --- taking a call ------------------------------------------------------------------------------------
$("callForm").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const payload = { text: $("text").value.trim(), address: $("address").value.trim() };
  if ($("ticket").value.trim()) payload.ticket = $("ticket").value.trim();
  $("take").disabled = true;
  try {
    const r = await api("/api/v1/hotline/calls", { method: "POST", body: JSON.stringify(payload) });
    if (!r.ok) { showOutcome("err", r.body?.error?.message || `HTTP ${r.status}`); return; }
    S.call = r.body; S.outcome = null;
    renderCall();
  } finally { $("take").disabled = false; }
});

function renderCall() {
  const call = S.call;
  $("result").hidden = !call;
  if (!call) return;
  const placed = call.grid_code != null;
  $("resolution").className = `resolution ${placed ? "ok" : "no"}`;
  $("resolution").replaceChildren(...[
    placed ? tr("hotline.resolved", { place: call.place || call.grid_code, cell: call.grid_code })
      : tr(call.candidates.length ? "hotline.unresolved_pick" : "hotline.unresolved_none"),
    call.resolution ? node("small", { text: call.resolution }) : null].filter((k) => k != null));
  // candidates: choosing one places the call there; the resolved one is pre-selected
  $("candidates").replaceChildren(...call.candidates.map((c, i) => node("li", {},
    node("label", {},
      node("input", { type: "radio", name: "place", value: c.name, checked: placed ? c.name === call.place : false }),
      node("span", { text: c.name }, node("small", { text: tr("hotline.candidate_detail", { matched: c.matched, cell: c.grid_code }) })),
      node("span", { class: "hint", text: tr("hotline.score", { score: c.score.toFixed(2) }) })))));
  // suggestions: the first is pre-selected; the select corrects it with any category
  $("suggestions").replaceChildren(...(call.suggestions.length ? call.suggestions.map((s, i) => node("li", {},
    node("label", {},
      node("input", { type: "radio", name: "suggestion", value: s.category, checked: i === 0 }),
      node("span", { text: catName(s.category) }, node("small", { text: tr("hotline.keywords", { words: s.keywords.join(tr("list.sep")) }) })),
      node("span", { class: "hint" }, tr("hotline.confidence", { pct: Math.round(s.confidence * 100) }),
        node("span", { class: "bar" }, node("i", { style: `width:${Math.round(s.confidence * 100)}%` })))))) :
    [node("li", { class: "hint", text: tr("hotline.no_suggestion") })]));
  for (const r of document.querySelectorAll("input[name=suggestion]")) r.addEventListener("change", () => { $("category").value = r.value; });
  const cats = Object.keys(S.me?.categories || {});
  $("category").replaceChildren(node("option", { value: "", text: "—" }), ...cats.map((k) => node("option", { value: k, text: catName(k) })));
  $("category").value = call.suggestions[0]?.category || "";
  $("confirm").disabled = call.status !== "pending";
  renderOutcome();
}

$("confirm").addEventListener("click", async () => {
  const category = $("category").value;
  if (!category) { showOutcome("err", tr("hotline.need_category")); return; }
  const body = { category };
  const place = document.querySelector("input[name=place]:checked")?.value;
  if (place && place !== S.call.place) body.place = place;
  $("confirm").disabled = true;
  const r = await api(`/api/v1/hotline/calls/${S.call.call_id}/confirm`, { method: "POST", body: JSON.stringify(body) });
  if (!r.ok) { $("confirm").disabled = false; showOutcome("err", r.body?.error?.message || `HTTP ${r.status}`); return; }
  S.call = { ...r.body, resolution: S.call.resolution };  // the gazetteer's reason is given at intake only
  renderCall();
  if (r.body.status === "sent") showOutcome("ok", "hotline.sent", { outcome: tr(`hotline.outcome_${r.body.outcome}`, {}, r.body.outcome),
    cat: catName(r.body.category), cell: r.body.grid_code, id: (r.body.case_id || "").slice(0, 8) });
  else showOutcome("wait", "hotline.queued");
  loadQueue();
});

function showOutcome(kind, key, vars) { S.outcome = { kind, key, vars }; renderOutcome(); }
function renderOutcome() {
  const o = S.outcome;
  $("outcome").className = `outcome ${o ? o.kind : ""}`;
  $("outcome").textContent = o ? (o.vars || o.kind !== "err" ? tr(o.key, o.vars || {}) : o.key) : "";
}

// --- the queue of unplaced calls -------------------------------------------------------------------------
async function loadQueue() {
  const r = await api("/api/v1/hotline/queue?status=queued&limit=100");
  if (!r.ok) return;
  S.queue = r.body.items;
  renderQueue();
}
function renderQueue() {
  $("queueCount").textContent = tr("hotline.queue_count", { n: S.queue.length });
  if (!S.queue.length) { $("queue").replaceChildren(node("li", { class: "item hint", text: tr("hotline.queue_empty") })); return; }
  $("queue").replaceChildren(...S.queue.map((call) => {
    const pick = node("select", { "aria-label": tr("hotline.pick") }, node("option", { value: "", text: tr("hotline.pick") }),
      ...call.candidates.map((c) => node("option", { value: c.name, text: `${c.name} · ${c.score.toFixed(2)}` })));
    const cell = node("input", { placeholder: tr("hotline.cell_hint"), pattern: "[0-9]{15}", maxlength: "15" });
    const draft = S.drafts.get(call.call_id) || {};
    pick.value = draft.pick || ""; cell.value = draft.cell || "";
    const keep = () => S.drafts.set(call.call_id, { pick: pick.value, cell: cell.value });
    pick.addEventListener("change", keep); cell.addEventListener("input", keep);
    const err = node("div", { class: "err" });
    const go = node("button", { type: "button", text: tr("hotline.resolve"), onclick: async () => {
      const body = pick.value ? { place: pick.value } : cell.value.trim() ? { grid_code: cell.value.trim() } : null;
      if (!body) { err.textContent = tr("hotline.need_place"); return; }
      const r = await api(`/api/v1/hotline/queue/${call.call_id}/resolve`, { method: "POST", body: JSON.stringify(body) });
      if (!r.ok) { err.textContent = r.body?.error?.message || `HTTP ${r.status}`; return; }
      S.drafts.delete(call.call_id);
      loadQueue();
    } });
    return node("li", { class: "item", "data-call": call.call_id },
      node("div", { class: "t", text: call.text }),
      node("div", { class: "m", text: tr("hotline.queue_item", { address: call.address || "—", time: gsFormatTime(call.called_at),
        cat: catName(call.category) }) }),
      node("div", { class: "row" }, pick, cell, go), err);
  }));
}

// --- language and refresh -------------------------------------------------------------------------------
document.addEventListener("gs-lang", () => { renderCall(); renderQueue(); });
setInterval(() => { if (S.me && !document.hidden) loadQueue(); }, 30000);
start();
