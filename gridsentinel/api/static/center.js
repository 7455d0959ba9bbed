// GridSentinel center page (/dashboard/center): the signed-in user's center, its queues (new, escalated in,
// refused back, overdue) and its escalated-out cases, one case with its log and the actions the API offers
// (`choices`: allowed ones enabled, the others disabled with the reason). Plain JS, no external code.
// The words: i18n.js's dictionaries (loaded first; the page's own keys are cp.*); zh-CN is the default,
// ?lang=en (or the dashboard's remembered choice) switches. Times: the city's zone (/dashboard/me).
"use strict";
const QUEUES = ["new", "escalated_in", "refused", "overdue", "escalated_out"];
// Actions that ask for words before they are sent: which field, and whether it may stay empty.
const ASKS = {
  request_coordination: { label: "cp.form_reason", required: true },
  hand_back: { label: "cp.form_instructions", required: true },
  refuse: { label: "cp.form_reason", required: true, department: true },
  false_alarm: { label: "cp.form_note_required", required: true },
  reject_false_alarm: { label: "cp.form_note", required: false },
  dispatch: { label: "cp.form_note", required: false, department: true, assisting: true },
  duplicate: { label: "cp.form_note", required: false, duplicateOf: true },
  rework: { label: "cp.form_note", required: false },
};
const HANDOVER = new Set(["escalate", "request_coordination", "hand_back"]);
const REFUSAL = new Set(["refuse"]);
const FOUR_EYES = new Set(["request_false_alarm", "false_alarm", "reject_false_alarm"]);

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const LANG = gsLang();  // fixed for the page's life: the language link reloads it with ?lang=
const S = { token: sessionStorage.getItem("gs-token") || "", me: null, names: null, zone: "UTC", queue: "new",
  lists: {}, counts: null, selected: null, fmt: null };

// A back-end value's name (status, action, role, level), or the value itself when it has none.
const label = (prefix, value) => GS_I18N[LANG][`${prefix}.${value}`] ? tr(`${prefix}.${value}`) : value;
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids) if (k !== null && k !== undefined && k !== false) e.append(k);
  return e;
}
async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { Authorization: `Bearer ${S.token}`,
    ...(opts.body ? { "Content-Type": "application/json" } : {}), ...(opts.headers || {}) } });
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) { const e = new Error(body?.error?.message || `HTTP ${r.status}`); e.status = r.status; throw e; }
  return body;
}
function toast(msg, bad = false) {
  const t = el("div", { class: `toast${bad ? " bad" : ""}`, text: msg });
  $("toasts").append(t); setTimeout(() => t.remove(), 6000);
}

// ---- words and times -------------------------------------------------------------------------------
// Unix seconds -> the city's wall time ("12/05 16:09" / "12/05, 16:09"), whatever the browser's zone.
function fmtTime(t) {
  if (!t) return tr("cp.none");
  S.fmt ??= new Intl.DateTimeFormat(LANG, { timeZone: S.zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  return S.fmt.format(new Date(t * 1000));
}
function zoneLabel() {
  const part = new Intl.DateTimeFormat("en", { timeZone: S.zone, timeZoneName: "shortOffset" })
    .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
  return `${S.zone} (${part ? part.value : ""})`;
}
function centerName(id) {
  if (!id) return tr("cp.center_none");
  const [level, prefix] = id.split(":");
  return tr("cp.center_name", { level: label("level", level), prefix });
}
const catName = (key) => (LANG === "zh-CN" ? S.names?.categories_zh?.[key] : null) || S.names?.categories?.[key] || key;
const deptName = (key) => key ? ((LANG === "zh-CN" ? S.names?.departments_zh?.[key] : null)
  || S.names?.departments?.[key] || key) : tr("cp.none");
const prefixOf = (center) => (center || "").split(":")[1] || "";
// A case the user's center handed up: shown, but only the center above may act on it.
const isEscalatedOut = (c) => !!S.me?.center && !prefixOf(c.center).startsWith(S.me.center.prefix);
function applyWords() {
  document.title = tr("cp.page_title");  // the static words: i18n.js's gsApply() (data-i18n attributes)
  const other = new URL(location.href);
  if (LANG === "en") other.searchParams.set("lang", "zh-CN"); else other.searchParams.set("lang", "en");
  $("langLink").href = other.pathname + other.search + other.hash; $("langLink").textContent = GS_LANG_NAMES[LANG === "en" ? "zh-CN" : "en"];
  $("langLink").onclick = () => localStorage.setItem("gs-lang", LANG === "en" ? "zh-CN" : "en");
}

// ---- sign in ---------------------------------------------------------------------------------------
async function signIn(token) {
  S.token = token;
  try { [S.me, S.names] = await Promise.all([api("/api/v1/me"), api("/dashboard/me")]); }
  catch (e) { S.token = ""; throw e; }
  sessionStorage.setItem("gs-token", token);
  if (S.names.timezone) { S.zone = S.names.timezone; S.fmt = null; }
  $("login").hidden = true; $("signout").hidden = false;
  $("zone").textContent = zoneLabel();
  $("whoami").replaceChildren(el("b", { text: S.me.name }), ` · ${label("role", S.me.role)}`,
    S.me.department ? ` · ${deptName(S.me.department)}` : "");
  const c = S.me.center;
  $("centerName").replaceChildren(el("b", { id: "centerId", "data-center": c?.id || "", text: centerName(c?.id) }),
    c?.parent ? el("span", { class: "hint", text: ` · ${tr("cp.center_parent", { name: centerName(c.parent) })}` }) : null);
  await loadQueues();
  const wanted = caseFromUrl();
  if (wanted) await openCase(wanted);
}
$("loginForm").addEventListener("submit", async (ev) => {
  ev.preventDefault(); $("loginErr").textContent = "";
  try { await signIn($("tokenInput").value.trim()); }
  catch (e) { $("loginErr").textContent = e.status === 401 ? tr("cp.login_unknown") : e.message; }
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem("gs-token"); location.reload(); });

// ---- queues ----------------------------------------------------------------------------------------
const LIMIT = 200;
async function loadQueues() {
  const [centers, ...lists] = await Promise.all([api("/api/v1/centers").catch(() => null),
    ...QUEUES.map((q) => api(`/api/v1/cases?queue=${q}&limit=${LIMIT}`))]);
  S.lists = Object.fromEntries(QUEUES.map((q, i) => [q, lists[i]]));
  // the counts of the user's own center (all of each queue, not just the first LIMIT listed)
  S.counts = centers?.items?.find((c) => c.relation === "own")?.queues || null;
  renderTabs(); renderQueue();
}
function renderTabs() {
  $("tabs").replaceChildren(...QUEUES.map((q) => {
    const list = S.lists[q], n = S.counts?.[q] ?? (list ? list.items.length : 0);
    return el("button", { class: `tab${q === S.queue ? " on" : ""}${q === "escalated_out" ? " out" : ""}`,
      role: "tab", "aria-selected": String(q === S.queue), "data-queue": q, onclick: () => { S.queue = q; renderTabs(); renderQueue(); } },
    el("span", { text: tr(`queue.${q}`) }),
    el("b", { class: `count${n && q !== "escalated_out" ? " hot" : ""}`, "data-count": String(n),
      text: S.counts || list?.next_offset == null ? String(n) : `${n}+` }));
  }));
}
function fmtDue(c, named = true) {
  if (!c.due_at || !["open", "dispatched", "in_progress"].includes(c.status)) return null;
  const late = c.due_at < Date.now() / 1000;
  return el("span", { class: `due${late ? " late" : ""}`,
    text: `${named ? `${tr("cp.case_due")} ` : ""}${fmtTime(c.due_at)}${late ? ` · ${tr("cp.case_overdue")}` : ""}` });
}
function renderQueue() {
  const list = S.lists[S.queue], items = list ? list.items : [];
  $("queueHint").replaceChildren(tr(`queue_hint.${S.queue}`),
    list?.next_offset != null ? ` (${tr("cp.queue_more", { n: items.length })})` : "");
  $("queueEmpty").textContent = tr("cp.queue_empty"); $("queueEmpty").hidden = items.length > 0;
  $("queue").replaceChildren(...items.map((c) => el("li", {
    class: `case${S.selected === c.case_id ? " sel" : ""}${isEscalatedOut(c) ? " readonly" : ""}`,
    "data-case": c.case_id, "data-status": c.status, onclick: () => openCase(c.case_id) },
  el("div", { class: `sev ${c.severity}` }),
  el("div", { class: "t", text: c.headline || c.title || catName(c.category_key) }),
  el("div", { class: "r" }, el("span", { class: `badge ${c.status}`, text: label("status", c.status) })),
  el("div", { class: "m", text: `${catName(c.category_key)} · ${c.grid_code}` }),
  el("div", { class: "r" }, fmtDue(c)),
  isEscalatedOut(c) ? el("div", { class: "m at", text: tr("cp.queue_at", { center: centerName(c.center) }) }) : null)));
}

// ---- one case --------------------------------------------------------------------------------------
function caseFromUrl() {
  const m = /(?:^|[#&])case=([^&]+)/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : params.get("case");
}
window.addEventListener("hashchange", () => { const id = caseFromUrl(); if (id && S.me && id !== S.selected) openCase(id); });
$("closeCase").addEventListener("click", () => {
  S.selected = null; $("casePanel").hidden = true; document.querySelector("main").classList.remove("withCase");
  history.replaceState(null, "", location.pathname + location.search);
  renderQueue();
});
async function openCase(id, after = null) {
  S.selected = id; renderQueue();
  if (location.hash !== `#case=${encodeURIComponent(id)}`) history.replaceState(null, "", `#case=${encodeURIComponent(id)}`);
  $("casePanel").hidden = false; document.querySelector("main").classList.add("withCase");
  let d;
  try { d = await api(`/api/v1/cases/${encodeURIComponent(id)}`); }
  catch (e) {
    $("caseTitle").textContent = id;
    // after the user's own action a 404 means the case left their scope (a department's refusal)
    $("caseBody").replaceChildren(after && e.status === 404
      ? el("div", { class: "leftScope", id: "leftScope", text: tr("cp.case_left_scope", { action: label("action", after) }) })
      : el("div", { class: "notFound", id: "notFound", text: e.status === 404 ? tr("cp.case_not_found") : e.message }));
    return;
  }
  if (S.selected !== id) return;  // another case was clicked meanwhile
  renderCase(d);
}
function renderCase(d) {
  const c = d.case;
  $("caseTitle").textContent = c.headline || c.title || catName(c.category_key);
  const kv = el("dl", { class: "kv" });
  const add = (k, v) => { kv.append(el("dt", { text: tr(k) }), el("dd", { "data-k": k }, v)); };
  add("cp.case_status", el("span", { class: `badge ${c.status}`, text: label("status", c.status) }));
  add("cp.case_category", catName(c.category_key));
  add("cp.case_cell", c.grid_code);
  add("cp.case_center", centerName(c.center));
  if (c.home_center && c.home_center !== c.center) add("cp.case_home_center", centerName(c.home_center));
  add("cp.case_department", deptName(c.department));
  if (c.assisting_departments?.length) add("cp.case_assisting", c.assisting_departments.map(deptName).join(LANG === "en" ? ", " : "、"));
  add("cp.case_due", fmtDue(c, false) || tr("cp.none"));
  add("cp.case_opened", fmtTime(c.opened_at));
  if (c.refusal_count) add("cp.case_refusals", String(c.refusal_count));
  add("cp.case_id", c.case_id);
  const parts = [];
  if (isEscalatedOut(c)) parts.push(el("div", { class: "readonlyNote", id: "readonlyNote", text: tr("cp.case_readonly", { center: centerName(c.center) }) }));
  if (c.pending_action) parts.push(pendingBox(c.pending_action));
  parts.push(actionsBox(c, d), kv, logBox(d.log));
  $("caseBody").replaceChildren(...parts);
}
function pendingBox(p) {
  const action = p.action || p.type || "";
  const actor = p.actor || p.by || p.requested_by || "";
  const at = p.at || p.requested_at;
  const note = p.note || p.reason || "";
  return el("div", { class: "pending", id: "pending", "data-action": action },
    el("b", { text: tr("cp.case_pending", { action: label("action", action) }) }),
    el("div", { class: "hint", text: tr("cp.case_pending_by", { actor, at: fmtTime(at) }) }),
    note ? el("div", { text: note }) : null,
    // the machines still find it: evidence observed after the request (the case stage counts it)
    p.evidence_since ? el("div", { class: "pendingEvidence", id: "pendingEvidence",
      text: tr("cp.case_pending_evidence", { n: p.evidence_since, at: fmtTime(p.last_evidence_at) }) }) : null);
}
function actionsBox(c, d) {
  const box = el("div", { class: "actions", id: "actions" });
  const form = el("div", { class: "actionForm", id: "actionForm", hidden: true });
  // `choices` (issue 16): every action the state allows, allowed or not, with the reason (why not; or a
  // note such as "a second user confirms"); an older API sends only `allowed_actions`, which says nothing
  // of who may act
  const choices = d.choices || (d.allowed_actions || []).map((a) => ({ action: a, allowed: true, reason: "" }));
  for (const ch of choices) {
    box.append(el("button", { class: `${ch.action === "false_alarm" || ch.action === "refuse" ? "danger" : "secondary"}${ch.allowed ? "" : " off"}`,
      disabled: !ch.allowed, "data-action": ch.action, title: ch.reason || null,
      "aria-disabled": String(!ch.allowed), onclick: () => ask(c, ch.action, form), text: label("action", ch.action) }));
  }
  if (!d.choices) box.append(el("div", { class: "hint", text: tr("cp.case_no_choices") }));
  return el("div", {}, el("h3", { text: tr("cp.case_actions") }), box, form);
}
function departmentSelect(name, chosen) {
  const all = Object.keys(S.names?.departments || {});
  return el("select", { name, "aria-label": tr("cp.form_department") },
    ...all.map((k) => el("option", { value: k, selected: k === chosen, text: deptName(k) })));
}
// Actions in ASKS open a small form for their words (and department); the rest are sent at once.
function ask(c, action, form) {
  const spec = ASKS[action];
  if (!spec) { act(c.case_id, { action }); return; }
  const text = el("textarea", { name: "text", rows: 3, placeholder: tr(spec.label), "aria-label": tr(spec.label) });
  const fields = [el("label", { class: "lbl", text: tr(spec.label) }), text];
  let dept = null, assisting = null, dup = null;
  if (spec.department) {
    const chosen = action === "refuse" ? (S.me.department || c.department) : c.department;
    dept = departmentSelect("department", chosen);
    fields.unshift(el("label", { class: "lbl", text: tr("cp.form_department") }), dept);
  }
  if (spec.assisting) {
    assisting = el("select", { name: "assisting", multiple: true, size: 4, "aria-label": tr("cp.form_assisting") },
      ...Object.keys(S.names?.departments || {}).map((k) => el("option", { value: k, text: deptName(k) })));
    fields.push(el("label", { class: "lbl", text: tr("cp.form_assisting") }), assisting);
  }
  if (spec.duplicateOf) {
    dup = el("input", { name: "duplicate_of", "aria-label": tr("cp.form_duplicate_of") });
    fields.unshift(el("label", { class: "lbl", text: tr("cp.form_duplicate_of") }), dup);
  }
  const err = el("div", { class: "err" });
  const send = () => {
    const words = text.value.trim();
    if (spec.required && !words) { err.textContent = tr("cp.form_required"); text.focus(); return; }
    const body = { action };
    if (words) body.note = words;
    if (dept) body.department = dept.value;
    if (assisting) {
      const picked = [...assisting.selectedOptions].map((o) => o.value).filter((v) => v !== body.department);
      if (picked.length) body.assisting_departments = picked;
    }
    if (dup) body.duplicate_of = dup.value.trim();
    act(c.case_id, body);
  };
  form.replaceChildren(el("b", { text: label("action", action) }), ...fields, err,
    el("div", { class: "row" }, el("button", { type: "button", class: "confirm", "data-confirm": action, onclick: send, text: tr("cp.form_confirm") }),
      el("button", { type: "button", class: "ghost", onclick: () => { form.hidden = true; }, text: tr("cp.form_cancel") })));
  form.hidden = false; text.focus();
}
async function act(id, body) {
  let done = false;
  try {
    const r = await api(`/api/v1/cases/${encodeURIComponent(id)}/transitions`, { method: "POST", body: JSON.stringify(body) });
    // four eyes: the first false_alarm on a machine-found case is only a request
    toast(tr(r?.waiting_for ? "cp.waiting" : "cp.done", { action: label("action", body.action) })); done = true;
  } catch (e) { toast(e.message, true); }
  await loadQueues().catch((e) => toast(e.message, true));
  await openCase(id, done ? body.action : null);
}
function logBox(entries) {
  const li = (e) => {
    const kind = HANDOVER.has(e.action) ? "handover" : REFUSAL.has(e.action) ? "refusal" : FOUR_EYES.has(e.action) ? "foureyes" : "";
    const data = e.data || {};
    const extra = [];
    const to = data.to_center || data.center;
    if (HANDOVER.has(e.action) && data.from_center && to) extra.push(tr("cp.log_from_to", { from: centerName(data.from_center), to: centerName(to) }));
    if (REFUSAL.has(e.action) && data.center) extra.push(tr("cp.log_returned_to", { center: centerName(data.center) }));
    // the sweep's note carries Unix seconds: say the time in the city's zone instead
    const note = e.action === "escalate" && data.overdue_since ? tr("cp.log_overdue_since", { at: fmtTime(data.overdue_since) }) : e.note;
    if (data.department && e.action !== "dispatch") extra.push(tr("cp.log_to_department", { text: deptName(data.department) }));
    if (e.action === "dispatch" && data.department) extra.push(deptName(data.department) +
      (data.assisting_departments?.length ? ` + ${data.assisting_departments.map(deptName).join(", ")}` : ""));
    return el("li", { class: kind, "data-action": e.action },
      el("div", {}, el("b", { text: label("action", e.action) }), el("span", { class: "actor", text: ` · ${e.actor}` })),
      el("div", { class: "when", text: fmtTime(e.at) }),
      extra.length ? el("div", { class: "hint", text: extra.join(" · ") }) : null,
      note ? el("div", { class: "why", text: note }) : null);
  };
  return el("div", {}, el("h3", { text: tr("cp.case_log") }), el("ol", { class: "log", id: "log" }, ...entries.map(li)));
}

// ---- start -----------------------------------------------------------------------------------------
applyWords();
setInterval(() => { if (S.me) loadQueues().catch(() => {}); }, 30000);
if (S.token) signIn(S.token).catch(() => { $("login").hidden = false; });
else $("login").hidden = false;
