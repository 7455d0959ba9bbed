// Citizen reports (/dashboard/quality): the verification queue (held reports with every reason, the account's
// gaming score, the photo; confirm or reject with a note) and report quality per account (gaming score and its
// signals, location/EXIF flags, near-duplicate photos). The API decides what each role sees (api/privacy.py):
// dispatchers and up the citizen's identity and the photo as sent; inspectors and viewers pseudonyms (p-...) and
// the photo with faces and plates blurred. Words: i18n.js. Token: the dashboard's (sessionStorage) or signed in.
"use strict";
const S = { queue: null, queueError: null, accounts: null, photos: new Map() };
const { api, start } = gsPage(S, "/dashboard/me", () => { loadQueue(); loadAccounts(); });
const reasonName = (code) => tr(`quality.reason_${code}`, {}, code);
const stateName = (s) => tr(`quality.state_${s}`, {}, s);
const scoreClass = (x) => (x >= 0.5 ? "score hi" : x > 0 ? "score mid" : "score");

// Photos need the token: fetched once as blobs (blurred by the API for roles without identity rights).
async function photoURL(url) {
  if (!S.photos.has(url)) {
    S.photos.set(url, fetch(url, { headers: { Authorization: `Bearer ${S.token}` } })
      .then((r) => (r.ok ? r.blob().then((b) => URL.createObjectURL(b)) : null)).catch(() => null));
  }
  return S.photos.get(url);
}

// --- the verification queue -----------------------------------------------------------------------------
async function loadQueue() {
  const r = await api("/api/v1/verification?limit=100");
  S.queue = r.ok ? r.body : null;
  S.queueError = r.ok ? null : r.status === 403 ? { key: "quality.queue_forbidden" } : { text: r.body?.error?.message || `HTTP ${r.status}` };
  renderQueue();
}
function renderQueue() {
  if (!S.queue) {
    $("queueCount").textContent = ""; $("identityNote").textContent = "";
    $("queue").replaceChildren(node("li", { class: "item hint", text: S.queueError ? (S.queueError.key ? tr(S.queueError.key) : S.queueError.text) : tr("common.loading") }));
    return;
  }
  const items = S.queue.items;
  $("queueCount").textContent = tr("quality.queue_count", { n: S.queue.total });
  $("identityNote").textContent = tr(items.length && !items[0].identity_shown ? "quality.pseudonymised" : "quality.identity_shown");
  if (!items.length) { $("queue").replaceChildren(node("li", { class: "item hint", text: tr("quality.queue_empty") })); return; }
  $("queue").replaceChildren(...items.map((it) => {
    const img = node("img", { class: "thumb", alt: tr("quality.photo"), hidden: true });
    if (it.photo_url) photoURL(it.photo_url).then((u) => { if (u) { img.src = u; img.hidden = false; } });
    const note = node("input", { maxlength: "500", placeholder: tr("quality.note_hint") });
    const err = node("div", { class: "err" });
    const decide = async (action) => {
      if (action === "reject" && !note.value.trim()) { err.textContent = tr("quality.need_reason"); return; }
      const body = action === "reject" ? { reason: note.value.trim() } : { note: note.value.trim() };
      const r = await api(`/api/v1/verification/${it.id}/${action}`, { method: "POST", body: JSON.stringify(body) });
      if (!r.ok) { err.textContent = r.body?.error?.message || `HTTP ${r.status}`; return; }
      loadQueue(); loadAccounts();
    };
    const who = [it.account_id, it.device_id && `${tr("quality.device")} ${it.device_id}`, it.phone && `${tr("quality.phone")} ${it.phone}`]
      .filter(Boolean).join(" · ");
    return node("li", { class: "item", "data-report": it.id },
      node("div", { class: "t", text: `${it.description || "—"}` }),
      node("div", { class: "m", text: tr("quality.item_meta", { time: gsFormatTime(it.received_at), cat: it.category_key,
        cell: it.grid_code, who: who || "—" }) }),
      node("div", { class: "tags" }, ...it.reasons.map((x) => node("span", {
        class: `tag ${["photo_far", "photo_old", "photo_after_report", "duplicate_photo"].includes(x.code) || x.code in GAMING ? "bad" : "warn"}`,
        title: x.detail || "", text: reasonName(x.code) }))),
      node("div", { class: "m" }, tr("quality.gaming"), " ", node("span", { class: scoreClass(it.gaming_score), text: it.gaming_score.toFixed(2) }),
        it.photo_distance_m != null ? ` · ${tr("quality.distance", { m: Math.round(it.photo_distance_m) })}` : ""),
      img,
      node("div", { class: "row" }, note,
        node("button", { type: "button", text: tr("quality.confirm"), onclick: () => decide("confirm") }),
        node("button", { type: "button", class: "danger", text: tr("quality.reject"), onclick: () => decide("reject") })),
      err);
  }));
}
const GAMING = { ad_cluster: 1, one_place: 1, burst: 1, photo_reused: 1 };

// --- report quality per account -------------------------------------------------------------------------
async function loadAccounts() {
  const r = await api(`/api/v1/verification/accounts?days=${$("days").value}`);
  S.accounts = r.ok ? r.body : { error: r.body?.error?.message || `HTTP ${r.status}` };
  renderAccounts();
}
function renderAccounts() {
  const a = S.accounts;
  if (!a) return;
  if (a.error) { $("accountsSummary").textContent = a.error; $("accounts").replaceChildren(); return; }
  $("accountsSummary").textContent = tr("quality.accounts_summary", { n: a.accounts.length, reports: a.reports }) + " " +
    tr(a.identity_shown ? "quality.identity_shown" : "quality.pseudonymised");
  const counts = (obj, name) => Object.entries(obj).map(([k, n]) => node("span", { class: "tag warn", text: `${name(k)} ×${n}` }));
  $("accounts").replaceChildren(
    node("thead", {}, node("tr", {}, ...["quality.col_account", "quality.col_reports", "quality.col_gaming", "quality.col_signals",
      "quality.col_location", "quality.col_duplicates"].map((k) => node("th", { text: tr(k) })))),
    node("tbody", {}, ...a.accounts.map((x) => node("tr", { "data-account": x.account },
      node("td", {}, node("b", { text: x.account }), node("div", { class: "hint", text: tr("quality.last", { time: gsFormatTime(x.last_report_at) }) })),
      node("td", {}, String(x.reports), node("div", { class: "tags" }, ...counts(x.states, stateName))),
      node("td", {}, node("span", { class: scoreClass(x.gaming_score_max), text: x.gaming_score_max.toFixed(2) }),
        node("div", { class: "hint", text: tr("quality.latest", { s: x.gaming_score_last.toFixed(2) }) })),
      node("td", {}, node("div", { class: "tags" }, ...counts(x.gaming_signals, reasonName))),
      node("td", {}, node("div", { class: "tags" }, ...counts(x.location_flags, reasonName))),
      node("td", { text: x.duplicate_photos.length ? x.duplicate_photos.map((d) => tr("quality.dup", { a: d.report.slice(0, 8),
        b: d.duplicate_of.slice(0, 8) })).join(tr("list.sep")) : "—" })))));
}
$("days").addEventListener("change", loadAccounts);

// --- language and refresh -------------------------------------------------------------------------------
document.addEventListener("gs-lang", () => { renderQueue(); renderAccounts(); });
setInterval(() => { if (S.me && !document.hidden) { loadQueue(); loadAccounts(); } }, 30000);
start();
