// GridSentinel center page (/dashboard/center): the signed-in user's center, its queues (new, escalated in,
// refused back, overdue) and its escalated-out cases, one case with its log and the actions the API offers
// (`choices`: allowed ones enabled, the others disabled with the reason). Plain JS, no external code.
// The words: one dictionary per language (keys named like i18n.js's, so they can move there); zh-CN is the
// default, ?lang=en (or the dashboard's remembered choice) switches. Times: the city's zone (/dashboard/me).
"use strict";
const STR = {
  "zh-CN": {
    "page.title": "GridSentinel · 中心工作台",
    "sub": "中心工作台",
    "dashboard": "调度台",
    "signout": "退出登录",
    "lang.other": "English",
    "login.title": "登录",
    "login.help": "请输入 API 令牌。令牌只保存在当前标签页（sessionStorage）。",
    "login.placeholder": "API 令牌",
    "login.submit": "进入中心工作台",
    "login.unknown": "令牌无效。",
    "center.none": "全市（未归属中心）",
    "center.parent": "上级：{name}",
    "center.name": "{level} {prefix}",
    "level.city": "市",
    "level.district": "区",
    "level.street": "街道",
    "level.community": "社区",
    "role.viewer": "查看员",
    "role.dispatcher": "调度员",
    "role.supervisor": "主管",
    "role.engineer": "工程师",
    "role.admin": "管理员",
    "role.department": "部门",
    "queue.new": "新案件",
    "queue.escalated_in": "上报待办",
    "queue.refused": "退单返回",
    "queue.overdue": "超期",
    "queue.escalated_out": "已上报",
    "hint.new": "本中心新立的案件，尚未派遣。",
    "hint.escalated_in": "下级中心上报或超期转来、现由本中心负责的案件。",
    "hint.refused": "部门退单后退回本中心、需要重新派遣的案件。",
    "hint.overdue": "本中心负责、已超过处置时限的案件。",
    "hint.escalated_out": "本中心网格内、已交上级中心负责的案件：只读，显示其在上级的状态。",
    "queue.empty": "此队列暂无案件。",
    "queue.more": "仅显示前 {n} 件",
    "queue.at": "现由 {center} 负责",
    "status.open": "待派遣",
    "status.dispatched": "已派遣",
    "status.in_progress": "处置中",
    "status.resolved": "已处置",
    "status.verified": "已核查",
    "status.closed": "已结案",
    "action.dispatch": "派遣",
    "action.acknowledge": "受理",
    "action.start": "开始处置",
    "action.resolve": "处置完成",
    "action.verify": "核查通过",
    "action.rework": "返工",
    "action.close": "结案",
    "action.false_alarm": "误报",
    "action.duplicate": "重复",
    "action.reopen": "重新立案",
    "action.request_coordination": "申请上级协调",
    "action.hand_back": "退回下级",
    "action.refuse": "退单",
    "action.request_false_alarm": "申请误报",
    "action.reject_false_alarm": "驳回误报",
    "action.open": "立案",
    "action.evidence": "新增证据",
    "action.raise_severity": "严重程度上调",
    "action.escalate": "超期上报",
    "action.remind": "催办",
    "action.merged": "合并",
    "case.not_found": "案件不存在，或不在本中心的范围内。",
    "case.left_scope": "{action}：已完成。此案件已不在您的范围内（例如退单后回到了中心）。",
    "case.status": "状态",
    "case.category": "类别",
    "case.severity": "严重程度",
    "case.cell": "网格",
    "case.center": "现负责中心",
    "case.home_center": "立案中心",
    "case.department": "责任部门",
    "case.assisting": "协办部门",
    "case.due": "处置时限",
    "case.opened": "立案时间",
    "case.refusals": "退单次数",
    "case.id": "案件编号",
    "case.readonly": "此案件已交 {center} 负责：本中心只读。",
    "case.overdue": "已超期",
    "case.pending": "待第二人确认：{action}",
    "case.pending_by": "{actor} 于 {at} 提出",
    "case.actions": "可执行操作",
    "case.log": "处置记录",
    "case.no_choices": "（服务器未提供操作列表）",
    "log.reason": "原因：{text}",
    "log.to_department": "部门：{text}",
    "log.from_to": "{from} → {to}",
    "log.returned_to": "退回 {center}",
    "log.overdue_since": "自 {at} 起超期",
    "waiting": "{action}：已提交，等待第二人确认",
    "form.reason": "原因（必填）",
    "form.instructions": "处置要求（必填）",
    "form.note": "说明",
    "form.note_required": "说明（必填）",
    "form.department": "部门",
    "form.assisting": "协办部门（可多选）",
    "form.duplicate_of": "保留的案件编号",
    "form.confirm": "确认",
    "form.cancel": "取消",
    "form.required": "请填写此项。",
    "done": "{action}：已完成",
    "none": "—"
  },
  "en": {
    "page.title": "GridSentinel · Center",
    "sub": "Center",
    "dashboard": "Dashboard",
    "signout": "Sign out",
    "lang.other": "中文",
    "login.title": "Sign in",
    "login.help": "Enter your API token. It is kept in this tab only (sessionStorage).",
    "login.placeholder": "API token",
    "login.submit": "Open the center",
    "login.unknown": "Unknown token.",
    "center.none": "Whole city (no center)",
    "center.parent": "above: {name}",
    "center.name": "{level} {prefix}",
    "level.city": "City",
    "level.district": "District",
    "level.street": "Street",
    "level.community": "Community",
    "role.viewer": "viewer",
    "role.dispatcher": "dispatcher",
    "role.supervisor": "supervisor",
    "role.engineer": "engineer",
    "role.admin": "admin",
    "role.department": "department",
    "queue.new": "New",
    "queue.escalated_in": "Escalated in",
    "queue.refused": "Refused back",
    "queue.overdue": "Overdue",
    "queue.escalated_out": "Escalated out",
    "hint.new": "Cases opened at this center, not dispatched yet.",
    "hint.escalated_in": "Cases handed up from a center below (overdue or a coordination request), now this center's.",
    "hint.refused": "Cases a department refused: back with this center to dispatch again.",
    "hint.overdue": "Cases in this center's hands past their due time.",
    "hint.escalated_out": "Cases of this center's cells now in the hands of a center above: read-only, with their status there.",
    "queue.empty": "No cases in this queue.",
    "queue.more": "showing the first {n}",
    "queue.at": "now with {center}",
    "status.open": "open",
    "status.dispatched": "dispatched",
    "status.in_progress": "in progress",
    "status.resolved": "resolved",
    "status.verified": "verified",
    "status.closed": "closed",
    "action.dispatch": "Dispatch",
    "action.acknowledge": "Acknowledge",
    "action.start": "Start work",
    "action.resolve": "Resolve",
    "action.verify": "Verify",
    "action.rework": "Rework",
    "action.close": "Close",
    "action.false_alarm": "False alarm",
    "action.duplicate": "Duplicate",
    "action.reopen": "Reopen",
    "action.request_coordination": "Request coordination",
    "action.hand_back": "Hand back",
    "action.refuse": "Refuse",
    "action.request_false_alarm": "False alarm requested",
    "action.reject_false_alarm": "Reject false alarm",
    "action.open": "Opened",
    "action.evidence": "Evidence",
    "action.raise_severity": "Severity raised",
    "action.escalate": "Escalated (overdue)",
    "action.remind": "Reminder",
    "action.merged": "Merged",
    "case.not_found": "Not found: no such case, or not in this center's scope.",
    "case.left_scope": "{action}: done. The case has left your scope (refused, it went back to its center).",
    "case.status": "Status",
    "case.category": "Category",
    "case.severity": "Severity",
    "case.cell": "Cell",
    "case.center": "Center in charge",
    "case.home_center": "Opened at",
    "case.department": "Department",
    "case.assisting": "Assisting",
    "case.due": "Due",
    "case.opened": "Opened",
    "case.refusals": "Refusals",
    "case.id": "Case id",
    "case.readonly": "This case is with {center}: read-only here.",
    "case.overdue": "overdue",
    "case.pending": "Waiting for a second user: {action}",
    "case.pending_by": "requested by {actor} at {at}",
    "case.actions": "Actions",
    "case.log": "Log",
    "case.no_choices": "(the server sent no list of actions)",
    "log.reason": "reason: {text}",
    "log.to_department": "department: {text}",
    "log.from_to": "{from} → {to}",
    "log.returned_to": "back to {center}",
    "log.overdue_since": "overdue since {at}",
    "waiting": "{action}: requested; waiting for a second user to confirm",
    "form.reason": "Reason (required)",
    "form.instructions": "Instructions (required)",
    "form.note": "Note",
    "form.note_required": "Note (required)",
    "form.department": "Department",
    "form.assisting": "Assisting departments",
    "form.duplicate_of": "Id of the case that stays",
    "form.confirm": "Confirm",
    "form.cancel": "Cancel",
    "form.required": "Please fill this in.",
    "done": "{action}: done",
    "none": "—"
  }
};
const QUEUES = ["new", "escalated_in", "refused", "overdue", "escalated_out"];
// Actions that ask for words before they are sent: which field, and whether it may stay empty.
const ASKS = {
  request_coordination: { label: "form.reason", required: true },
  hand_back: { label: "form.instructions", required: true },
  refuse: { label: "form.reason", required: true, department: true },
  false_alarm: { label: "form.note_required", required: true },
  reject_false_alarm: { label: "form.note", required: false },
  dispatch: { label: "form.note", required: false, department: true, assisting: true },
  duplicate: { label: "form.note", required: false, duplicateOf: true },
  rework: { label: "form.note", required: false },
};
const HANDOVER = new Set(["escalate", "request_coordination", "hand_back"]);
const REFUSAL = new Set(["refuse"]);
const FOUR_EYES = new Set(["request_false_alarm", "false_alarm", "reject_false_alarm"]);

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const LANG = (() => {
  const asked = params.get("lang") || localStorage.getItem("gs-lang") || "zh-CN";
  return asked.toLowerCase().startsWith("en") ? "en" : "zh-CN";
})();
const S = { token: sessionStorage.getItem("gs-token") || "", me: null, names: null, zone: "UTC", queue: "new",
  lists: {}, counts: null, selected: null, fmt: null };

function tr(key, values = {}) {
  const text = STR[LANG][key] ?? STR.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
}
const label = (prefix, value) => STR[LANG][`${prefix}.${value}`] ? tr(`${prefix}.${value}`) : value;
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
  if (!t) return tr("none");
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
  if (!id) return tr("center.none");
  const [level, prefix] = id.split(":");
  return tr("center.name", { level: label("level", level), prefix });
}
const catName = (key) => (LANG === "zh-CN" ? S.names?.categories_zh?.[key] : null) || S.names?.categories?.[key] || key;
const deptName = (key) => key ? ((LANG === "zh-CN" ? S.names?.departments_zh?.[key] : null)
  || S.names?.departments?.[key] || key) : tr("none");
const prefixOf = (center) => (center || "").split(":")[1] || "";
// A case the user's center handed up: shown, but only the center above may act on it.
const isEscalatedOut = (c) => !!S.me?.center && !prefixOf(c.center).startsWith(S.me.center.prefix);
function applyWords() {
  document.documentElement.lang = LANG; document.title = tr("page.title");
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = tr(e.dataset.t);
  $("tokenInput").placeholder = tr("login.placeholder");
  const other = new URL(location.href);
  if (LANG === "en") other.searchParams.set("lang", "zh-CN"); else other.searchParams.set("lang", "en");
  $("langLink").href = other.pathname + other.search + other.hash; $("langLink").textContent = tr("lang.other");
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
    c?.parent ? el("span", { class: "hint", text: ` · ${tr("center.parent", { name: centerName(c.parent) })}` }) : null);
  await loadQueues();
  const wanted = caseFromUrl();
  if (wanted) await openCase(wanted);
}
$("loginForm").addEventListener("submit", async (ev) => {
  ev.preventDefault(); $("loginErr").textContent = "";
  try { await signIn($("tokenInput").value.trim()); }
  catch (e) { $("loginErr").textContent = e.status === 401 ? tr("login.unknown") : e.message; }
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
    text: `${named ? `${tr("case.due")} ` : ""}${fmtTime(c.due_at)}${late ? ` · ${tr("case.overdue")}` : ""}` });
}
function renderQueue() {
  const list = S.lists[S.queue], items = list ? list.items : [];
  $("queueHint").replaceChildren(tr(`hint.${S.queue}`),
    list?.next_offset != null ? ` (${tr("queue.more", { n: items.length })})` : "");
  $("queueEmpty").textContent = tr("queue.empty"); $("queueEmpty").hidden = items.length > 0;
  $("queue").replaceChildren(...items.map((c) => el("li", {
    class: `case${S.selected === c.case_id ? " sel" : ""}${isEscalatedOut(c) ? " readonly" : ""}`,
    "data-case": c.case_id, "data-status": c.status, onclick: () => openCase(c.case_id) },
  el("div", { class: `sev ${c.severity}` }),
  el("div", { class: "t", text: c.headline || c.title || catName(c.category_key) }),
  el("div", { class: "r" }, el("span", { class: `badge ${c.status}`, text: label("status", c.status) })),
  el("div", { class: "m", text: `${catName(c.category_key)} · ${c.grid_code}` }),
  el("div", { class: "r" }, fmtDue(c)),
  isEscalatedOut(c) ? el("div", { class: "m at", text: tr("queue.at", { center: centerName(c.center) }) }) : null)));
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
      ? el("div", { class: "leftScope", id: "leftScope", text: tr("case.left_scope", { action: label("action", after) }) })
      : el("div", { class: "notFound", id: "notFound", text: e.status === 404 ? tr("case.not_found") : e.message }));
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
  add("case.status", el("span", { class: `badge ${c.status}`, text: label("status", c.status) }));
  add("case.category", catName(c.category_key));
  add("case.cell", c.grid_code);
  add("case.center", centerName(c.center));
  if (c.home_center && c.home_center !== c.center) add("case.home_center", centerName(c.home_center));
  add("case.department", deptName(c.department));
  if (c.assisting_departments?.length) add("case.assisting", c.assisting_departments.map(deptName).join(LANG === "en" ? ", " : "、"));
  add("case.due", fmtDue(c, false) || tr("none"));
  add("case.opened", fmtTime(c.opened_at));
  if (c.refusal_count) add("case.refusals", String(c.refusal_count));
  add("case.id", c.case_id);
  const parts = [];
  if (isEscalatedOut(c)) parts.push(el("div", { class: "readonlyNote", id: "readonlyNote", text: tr("case.readonly", { center: centerName(c.center) }) }));
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
    el("b", { text: tr("case.pending", { action: label("action", action) }) }),
    el("div", { class: "hint", text: tr("case.pending_by", { actor, at: fmtTime(at) }) }),
    note ? el("div", { text: note }) : null);
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
  if (!d.choices) box.append(el("div", { class: "hint", text: tr("case.no_choices") }));
  return el("div", {}, el("h3", { text: tr("case.actions") }), box, form);
}
function departmentSelect(name, chosen) {
  const all = Object.keys(S.names?.departments || {});
  return el("select", { name, "aria-label": tr("form.department") },
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
    fields.unshift(el("label", { class: "lbl", text: tr("form.department") }), dept);
  }
  if (spec.assisting) {
    assisting = el("select", { name: "assisting", multiple: true, size: 4, "aria-label": tr("form.assisting") },
      ...Object.keys(S.names?.departments || {}).map((k) => el("option", { value: k, text: deptName(k) })));
    fields.push(el("label", { class: "lbl", text: tr("form.assisting") }), assisting);
  }
  if (spec.duplicateOf) {
    dup = el("input", { name: "duplicate_of", "aria-label": tr("form.duplicate_of") });
    fields.unshift(el("label", { class: "lbl", text: tr("form.duplicate_of") }), dup);
  }
  const err = el("div", { class: "err" });
  const send = () => {
    const words = text.value.trim();
    if (spec.required && !words) { err.textContent = tr("form.required"); text.focus(); return; }
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
    el("div", { class: "row" }, el("button", { type: "button", class: "confirm", "data-confirm": action, onclick: send, text: tr("form.confirm") }),
      el("button", { type: "button", class: "ghost", onclick: () => { form.hidden = true; }, text: tr("form.cancel") })));
  form.hidden = false; text.focus();
}
async function act(id, body) {
  let done = false;
  try {
    const r = await api(`/api/v1/cases/${encodeURIComponent(id)}/transitions`, { method: "POST", body: JSON.stringify(body) });
    // four eyes: the first false_alarm on a machine-found case is only a request
    toast(tr(r?.waiting_for ? "waiting" : "done", { action: label("action", body.action) })); done = true;
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
    if (HANDOVER.has(e.action) && data.from_center && to) extra.push(tr("log.from_to", { from: centerName(data.from_center), to: centerName(to) }));
    if (REFUSAL.has(e.action) && data.center) extra.push(tr("log.returned_to", { center: centerName(data.center) }));
    // the sweep's note carries Unix seconds: say the time in the city's zone instead
    const note = e.action === "escalate" && data.overdue_since ? tr("log.overdue_since", { at: fmtTime(data.overdue_since) }) : e.note;
    if (data.department && e.action !== "dispatch") extra.push(tr("log.to_department", { text: deptName(data.department) }));
    if (e.action === "dispatch" && data.department) extra.push(deptName(data.department) +
      (data.assisting_departments?.length ? ` + ${data.assisting_departments.map(deptName).join(", ")}` : ""));
    return el("li", { class: kind, "data-action": e.action },
      el("div", {}, el("b", { text: label("action", e.action) }), el("span", { class: "actor", text: ` · ${e.actor}` })),
      el("div", { class: "when", text: fmtTime(e.at) }),
      extra.length ? el("div", { class: "hint", text: extra.join(" · ") }) : null,
      note ? el("div", { class: "why", text: note }) : null);
  };
  return el("div", {}, el("h3", { text: tr("case.log") }), el("ol", { class: "log", id: "log" }, ...entries.map(li)));
}

// ---- start -----------------------------------------------------------------------------------------
applyWords();
setInterval(() => { if (S.me) loadQueues().catch(() => {}); }, 30000);
if (S.token) signIn(S.token).catch(() => { $("login").hidden = false; });
else $("login").hidden = false;
