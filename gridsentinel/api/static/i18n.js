// The words of the dashboard, patrol and report pages, in zh-CN (the default) and en, and the helpers they
// share: tr() (a key and {name} values -> text of the UI language), the 中文 / English switch, and times
// in the city's time zone (the API says which: config/calendar.yaml), never the browser's.
// GS_I18N below is plain JSON: tests/unit/api/test_i18n.py reads it (same keys in both languages, every
// key the pages use exists). Add a key to both dictionaries.
"use strict";
const GS_I18N =
{
  "zh-CN": {
    "lang.switch": "界面语言",
    "dash.page_title": "GridSentinel · 指挥调度",
    "dash.sub": "指挥调度中心",
    "dash.report": "周报",
    "dash.report_title": "协调周报",
    "dash.signout": "退出登录",
    "header.zone": "{zone}（{offset}）",
    "header.zone_title": "城市时区 {zone}：所有时间按此时区显示",
    "live.title": "实时推送",
    "live.off": "● 离线",
    "live.on": "● 实时",
    "live.reconnecting": "● 重连中",
    "login.title": "登录",
    "login.help": "请输入 API 令牌。令牌只保存在当前标签页（sessionStorage）。",
    "login.placeholder": "API 令牌",
    "login.submit": "进入调度台",
    "login.unknown": "令牌无效。",
    "common.loading": "加载中…",
    "common.sign_in_first": "请先在调度台登录。",
    "list.sep": "、",
    "dur.min": "{n} 分钟",
    "dur.h": "{n} 小时",
    "dur.d": "{n} 天",
    "due.in": "剩余 {d}",
    "due.overdue": "超期 {d}",
    "map.title": "单元网格",
    "map.aria": "单元网格地图",
    "map.patrol_toggle": "巡查计划",
    "map.plan_page": "计划页",
    "map.plan_page_title": "巡查计划（手机页面）",
    "map.open_cases": "未结案件 {n} 件",
    "legend.c0": "无未结案件",
    "legend.c1": "1 件",
    "legend.c2": "2 件",
    "legend.c3": "3 件以上",
    "legend.device": "设备",
    "feed.title": "案件",
    "feed.filter": "状态筛选",
    "feed.empty": "暂无案件。检测到的问题会在这里立案。",
    "feed.detections": "检测 {n} 次",
    "feed.last_seen": "最近发现 {time}",
    "filter.active": "未结案",
    "filter.open": "待派遣",
    "filter.in_hand": "处置中",
    "filter.all": "全部",
    "stats.open": "待派遣",
    "stats.in_hand": "处置中",
    "stats.overdue": "超期",
    "stats.closed": "已结案",
    "health.title": "设备状态",
    "health.filter": "设备状态筛选",
    "health.filter_offline": "离线或静默",
    "health.device": "设备",
    "health.state": "状态",
    "health.last_seen": "最后上报",
    "health.msg_rate": "消息/分",
    "health.rejected_rate": "拒收/分",
    "health.battery": "电量",
    "health.signal": "信号",
    "health.why": "原因",
    "health.count": "{state} {n}",
    "device.online": "在线",
    "device.offline": "离线",
    "device.silent": "静默",
    "device.unknown": "未知",
    "case.title": "案件",
    "case.close_panel": "关闭",
    "case.status": "状态",
    "case.category": "类别",
    "case.severity": "严重程度",
    "case.cell": "网格",
    "case.center": "中心",
    "case.escalated": "已上报 {n} 级",
    "case.department": "责任部门",
    "case.due": "处置时限",
    "case.detections": "检测",
    "case.detections_from": "{n} 次，来源：{sources}",
    "case.seen": "首次 / 最近发现",
    "case.id": "案件编号",
    "center.name": "{level}中心 {code}",
    "level.grid": "网格",
    "level.community": "社区",
    "level.street": "街道",
    "level.district": "区",
    "level.city": "市",
    "evidence.title": "证据 — {source} · {time}",
    "evidence.detector": "检测器",
    "evidence.finding": "发现",
    "snapshot.title": "证据截图（已脱敏）",
    "snapshot.alt": "已脱敏的摄像头截图",
    "snapshot.blurred": "已模糊 {n} 处",
    "snapshot.expired": "截图已过期（隐私保留期限）",
    "snapshot.gone": "截图已不再保存",
    "snapshot.unavailable": "截图不可用：{message}",
    "signal.title": "检测前后的信号",
    "signal.title_device": "检测前后的信号 — {device} · {metric}",
    "signal.none": "无信号：{message}",
    "signal.empty": "该时段没有存储的读数",
    "signal.detected": "检测时刻",
    "log.title": "处理日志",
    "actions.note": "备注（可选）",
    "actions.routed_department": "按路由分配的部门",
    "actions.not_allowed": "“{status}”状态下不可执行",
    "actions.needs_dispatcher": "需要调度员角色",
    "actions.signed_in_as": "当前角色：{role}。操作需要调度员角色。",
    "toast.event": "{event}：{category}，{cell}",
    "toast.new_case": "新案件",
    "toast.done": "{action}：已完成",
    "status.open": "待派遣",
    "status.dispatched": "已派遣",
    "status.in_progress": "处置中",
    "status.resolved": "已处置",
    "status.verified": "已核查",
    "status.closed": "已结案",
    "closing.resolved": "处置结案",
    "closing.false_alarm": "误报",
    "closing.duplicate": "重复",
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
    "action.open": "立案",
    "action.evidence": "新增证据",
    "action.raise_severity": "严重程度上调",
    "action.escalate": "超期上报",
    "action.remind": "催办",
    "severity.advisory": "提示",
    "severity.warning": "预警",
    "severity.alarm": "告警",
    "severity.critical": "紧急",
    "source.sensor": "传感器",
    "source.camera": "摄像头",
    "source.citizen": "市民",
    "source.inspector": "网格员",
    "source.hotline": "热线",
    "role.viewer": "查看员",
    "role.dispatcher": "调度员",
    "role.supervisor": "值班长",
    "role.engineer": "工程师",
    "role.admin": "管理员",
    "role.citizen": "市民",
    "patrol.page_title": "GridSentinel · 巡查计划",
    "patrol.sub": "巡查计划",
    "patrol.back": "← 调度台",
    "patrol.day": "日期",
    "patrol.inspectors": "网格员人数",
    "patrol.shift": "班次（小时）",
    "patrol.speed": "速度（km/h）",
    "patrol.plan": "生成计划",
    "patrol.planning": "正在规划…",
    "patrol.summary": "{date}：{cells} 个网格，覆盖预计 {total} 个问题中的 {covered} 个（{share} %）。",
    "patrol.start": "从驻点 {lat}, {lon} 出发并返回，{start} 开始。{method}。",
    "patrol.inspector": "网格员 {n}",
    "patrol.inspector_title": "网格员 {n}",
    "patrol.route_summary": "{stops} 个网格 · {km} km · {ends} 前返回 · 预计 {expected} 个问题",
    "patrol.no_cell": "班次内排不下任何网格",
    "patrol.stop_title": "网格员 {inspector}，第 {order} 站，{arrive} 到达",
    "patrol.expected": "预计 {n} 个问题",
    "patrol.depot": "驻点",
    "patrol.failed": "巡查计划：{message}",
    "patrol.legend": "{date} 计划：",
    "report.page_title": "GridSentinel · 协调周报",
    "report.sub": "协调周报",
    "report.back": "← 返回调度台",
    "report.week": "周",
    "report.week_placeholder": "本周",
    "report.week_title": "ISO 周，如 2026-W49",
    "report.center": "中心前缀",
    "report.center_placeholder": "全部网格",
    "report.center_title": "网格编码前缀",
    "report.forecast": "预测",
    "report.show": "显示",
    "report.print": "打印 / 另存为 PDF",
    "report.building": "正在生成周报…",
    "report.frame_title": "周报"
  },
  "en": {
    "lang.switch": "Interface language",
    "dash.page_title": "GridSentinel · Dispatch",
    "dash.sub": "Dispatch center",
    "dash.report": "Weekly report",
    "dash.report_title": "the weekly coordination report",
    "dash.signout": "Sign out",
    "header.zone": "{zone} ({offset})",
    "header.zone_title": "City time zone {zone}: every time is shown in it",
    "live.title": "live stream",
    "live.off": "● offline",
    "live.on": "● live",
    "live.reconnecting": "● reconnecting",
    "login.title": "Sign in",
    "login.help": "Enter your API token. It is kept in this tab only (sessionStorage).",
    "login.placeholder": "API token",
    "login.submit": "Open dashboard",
    "login.unknown": "Unknown token.",
    "common.loading": "loading…",
    "common.sign_in_first": "Sign in on the dashboard first.",
    "list.sep": ", ",
    "dur.min": "{n} min",
    "dur.h": "{n} h",
    "dur.d": "{n} d",
    "due.in": "due in {d}",
    "due.overdue": "overdue {d}",
    "map.title": "Unit grid",
    "map.aria": "unit grid map",
    "map.patrol_toggle": "patrol plan",
    "map.plan_page": "plan page",
    "map.plan_page_title": "the patrol plan, phone-sized",
    "map.open_cases": "{n} open case(s)",
    "legend.c0": "no open case",
    "legend.c1": "1 open",
    "legend.c2": "2 open",
    "legend.c3": "3+ open",
    "legend.device": "device",
    "feed.title": "Cases",
    "feed.filter": "status filter",
    "feed.empty": "No cases yet. Detections become cases here as they arrive.",
    "feed.detections": "{n} detection(s)",
    "feed.last_seen": "last seen {time}",
    "filter.active": "Active",
    "filter.open": "Open",
    "filter.in_hand": "In hand",
    "filter.all": "All",
    "stats.open": "open",
    "stats.in_hand": "in hand",
    "stats.overdue": "overdue",
    "stats.closed": "closed",
    "health.title": "Device health",
    "health.filter": "device state filter",
    "health.filter_offline": "Offline or silent",
    "health.device": "device",
    "health.state": "state",
    "health.last_seen": "last seen",
    "health.msg_rate": "msg/min",
    "health.rejected_rate": "rejected/min",
    "health.battery": "battery",
    "health.signal": "signal",
    "health.why": "why",
    "health.count": "{n} {state}",
    "device.online": "online",
    "device.offline": "offline",
    "device.silent": "silent",
    "device.unknown": "unknown",
    "case.title": "Case",
    "case.close_panel": "close",
    "case.status": "Status",
    "case.category": "Category",
    "case.severity": "Severity",
    "case.cell": "Cell",
    "case.center": "Center",
    "case.escalated": "escalated {n}",
    "case.department": "Department",
    "case.due": "Due",
    "case.detections": "Detections",
    "case.detections_from": "{n} from {sources}",
    "case.seen": "First / last seen",
    "case.id": "Case id",
    "center.name": "{level} center {code}",
    "level.grid": "grid",
    "level.community": "community",
    "level.street": "street",
    "level.district": "district",
    "level.city": "city",
    "evidence.title": "Evidence — {source} · {time}",
    "evidence.detector": "Detector",
    "evidence.finding": "Finding",
    "snapshot.title": "Evidence snapshot (de-identified)",
    "snapshot.alt": "de-identified camera snapshot",
    "snapshot.blurred": "{n} region(s) blurred",
    "snapshot.expired": "snapshot expired (privacy retention)",
    "snapshot.gone": "snapshot no longer stored",
    "snapshot.unavailable": "snapshot unavailable: {message}",
    "signal.title": "Signal around the detection",
    "signal.title_device": "Signal around the detection — {device} · {metric}",
    "signal.none": "no signal: {message}",
    "signal.empty": "no readings stored for this window",
    "signal.detected": "detected",
    "log.title": "Audit log",
    "actions.note": "note (optional)",
    "actions.routed_department": "routed department",
    "actions.not_allowed": "not allowed while {status}",
    "actions.needs_dispatcher": "needs the dispatcher role",
    "actions.signed_in_as": "Signed in as {role}: actions need the dispatcher role.",
    "toast.event": "{event}: {category} in {cell}",
    "toast.new_case": "New case",
    "toast.done": "{action}: done",
    "status.open": "open",
    "status.dispatched": "dispatched",
    "status.in_progress": "in progress",
    "status.resolved": "resolved",
    "status.verified": "verified",
    "status.closed": "closed",
    "closing.resolved": "resolved",
    "closing.false_alarm": "false alarm",
    "closing.duplicate": "duplicate",
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
    "action.open": "Opened",
    "action.evidence": "Evidence",
    "action.raise_severity": "Severity raised",
    "action.escalate": "Escalated",
    "action.remind": "Reminder",
    "severity.advisory": "advisory",
    "severity.warning": "warning",
    "severity.alarm": "alarm",
    "severity.critical": "critical",
    "source.sensor": "sensor",
    "source.camera": "camera",
    "source.citizen": "citizen",
    "source.inspector": "inspector",
    "source.hotline": "hotline",
    "role.viewer": "viewer",
    "role.dispatcher": "dispatcher",
    "role.supervisor": "supervisor",
    "role.engineer": "engineer",
    "role.admin": "admin",
    "role.citizen": "citizen",
    "patrol.page_title": "GridSentinel · Patrol plan",
    "patrol.sub": "Patrol plan",
    "patrol.back": "← Dashboard",
    "patrol.day": "Day",
    "patrol.inspectors": "Inspectors",
    "patrol.shift": "Shift (h)",
    "patrol.speed": "Speed (km/h)",
    "patrol.plan": "Plan",
    "patrol.planning": "planning…",
    "patrol.summary": "{date}: {cells} cells cover {covered} of {total} expected problems ({share} %).",
    "patrol.start": "Start and end at the depot {lat}, {lon} at {start}. {method}.",
    "patrol.inspector": "inspector {n}",
    "patrol.inspector_title": "Inspector {n}",
    "patrol.route_summary": "{stops} cells · {km} km · back by {ends} · {expected} expected",
    "patrol.no_cell": "no cell fits the shift",
    "patrol.stop_title": "Inspector {inspector}, stop {order} at {arrive}",
    "patrol.expected": "{n} expected",
    "patrol.depot": "depot",
    "patrol.failed": "Patrol plan: {message}",
    "patrol.legend": "plan {date}:",
    "report.page_title": "GridSentinel · Weekly report",
    "report.sub": "Weekly coordination report",
    "report.back": "← Dispatch dashboard",
    "report.week": "Week",
    "report.week_placeholder": "current",
    "report.week_title": "ISO week, e.g. 2026-W49",
    "report.center": "Center prefix",
    "report.center_placeholder": "all cells",
    "report.center_title": "grid-code prefix",
    "report.forecast": "forecast",
    "report.show": "Show",
    "report.print": "Print / save as PDF",
    "report.building": "building the report…",
    "report.frame_title": "weekly report"
  }
};
const GS_LANGS = ["zh-CN", "en"];
const GS_LANG_NAMES = { "zh-CN": "中文", en: "English" };  // each in its own language, never translated

// "en", "EN-us", "zh", "zh-cn" -> one of GS_LANGS, or null
function gsNormLang(v) {
  const l = String(v || "").toLowerCase();
  return l.startsWith("zh") ? "zh-CN" : l.startsWith("en") ? "en" : null;
}
// ?lang= for this page, else the switch's choice (localStorage), else zh-CN
const GS = { lang: gsNormLang(new URLSearchParams(location.search).get("lang")) ||
  gsNormLang(localStorage.getItem("gs-lang")) || "zh-CN", zone: "Asia/Shanghai", fmt: new Map() };
const gsLang = () => GS.lang;

// The text of `key` in the UI language with {name} replaced from `vars`; `fallback` (or the key) when missing.
function tr(key, vars = {}, fallback) {
  const s = GS_I18N[GS.lang][key] ?? GS_I18N.en[key] ?? fallback ?? key;
  return s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

// Static text: data-i18n (text), data-i18n-placeholder, -title and -aria-label hold keys; <html lang> follows.
function gsApply(root = document) {
  document.documentElement.lang = GS.lang;
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = tr(e.dataset.i18n);
  for (const [attr, data] of [["placeholder", "i18nPlaceholder"], ["title", "i18nTitle"], ["aria-label", "i18nAriaLabel"]])
    for (const e of root.querySelectorAll(`[data-${attr === "aria-label" ? "i18n-aria-label" : `i18n-${attr}`}]`))
      e.setAttribute(attr, tr(e.dataset[data]));
  for (const box of root.querySelectorAll(".langSwitch")) {
    box.setAttribute("role", "group"); box.setAttribute("aria-label", tr("lang.switch"));
    box.replaceChildren(...GS_LANGS.map((l) => {
      const b = document.createElement("button");
      b.type = "button"; b.className = `ghost lang${l === GS.lang ? " on" : ""}`; b.dataset.lang = l;
      b.lang = l; b.textContent = GS_LANG_NAMES[l]; b.setAttribute("aria-pressed", String(l === GS.lang));
      b.addEventListener("click", () => gsSetLang(l));
      return b;
    }));
  }
}
// The switch: remembered in localStorage, ?lang= dropped from the address; pages re-render on "gs-lang".
function gsSetLang(lang) {
  GS.lang = gsNormLang(lang) || "zh-CN"; GS.fmt.clear();
  localStorage.setItem("gs-lang", GS.lang);
  const url = new URL(location.href);
  if (url.searchParams.has("lang")) { url.searchParams.delete("lang"); history.replaceState(null, "", url); }
  gsApply();
  document.dispatchEvent(new CustomEvent("gs-lang", { detail: GS.lang }));
}

// ---- times in the city's zone ------------------------------------------------------------------------
function gsSetZone(zone) {
  if (!zone) return;
  try { new Intl.DateTimeFormat("en", { timeZone: zone }); } catch { return; }  // unknown zone: keep the default
  GS.zone = zone; GS.fmt.clear();
}
const gsZone = () => GS.zone;
function gsFormatter(name, opts) {
  if (!GS.fmt.has(name)) GS.fmt.set(name, new Intl.DateTimeFormat(GS.lang, { timeZone: GS.zone, hourCycle: "h23", ...opts }));
  return GS.fmt.get(name);
}
// Unix seconds -> "12月5日 16:09:30" / "Dec 5, 16:09:30" in the city's zone; "—" for none
function gsFormatTime(t) {
  return t ? gsFormatter("time", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    second: "2-digit" }).format(new Date(t * 1000)) : "—";
}
// Unix seconds -> "16:09" in the city's zone (chart axes)
const gsFormatClock = (t) => gsFormatter("clock", { hour: "2-digit", minute: "2-digit" }).format(new Date(t * 1000));
// "Asia/Shanghai（GMT+8）": the zone and its offset now, shown once in the header
function gsZoneLabel() {
  const part = gsFormatter("offset", { timeZoneName: "shortOffset" }).formatToParts(new Date())
    .find((p) => p.type === "timeZoneName");
  return tr("header.zone", { zone: GS.zone, offset: part ? part.value : "" });
}
// seconds -> "5 分钟" / "1.5 h" / "3 d"
function gsDuration(s) {
  return s < 3600 ? tr("dur.min", { n: Math.round(s / 60) }) : s < 172800 ? tr("dur.h", { n: (s / 3600).toFixed(1) })
    : tr("dur.d", { n: Math.round(s / 86400) });
}

gsApply();
