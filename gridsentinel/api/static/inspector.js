// The inspectors' phone page: file a finding (category, photos, position, note). Each finding is first put in
// an outbox in IndexedDB with the time it was made and a report id, then sent; without signal it stays
// there and is sent when the connection returns, keeping its original time (the API refuses it only after
// inspector.max_age_hours). A re-send after a lost answer has the same report id: the API applies it once.
"use strict";

// The words: i18n.js's dictionaries (loaded first; this page's keys are insp.*).

const $ = (id) => document.getElementById(id);
const MAX_SIDE = 1600; // photos are shrunk on the phone: a report stays well under the upload limit
let position = null;
let photos = [];

function applyStrings() {
  document.title = tr("insp.title");  // the static words: gsApply() (data-i18n attributes)
  $("lang").textContent = GS_LANG_NAMES[gsLang() === "en" ? "zh-CN" : "en"];
  showNet();
  renderOutbox();
}

// --- the outbox (IndexedDB) -------------------------------------------------------------------------
function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open("gs-inspector", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("outbox", { keyPath: 'report.report_id' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}
async function outbox(mode, fn) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction("outbox", mode);
    const req = fn(tx.objectStore("outbox"));
    tx.oncomplete = () => resolve(req?.result);
    tx.onerror = () => reject(tx.error);
  });
}
const allItems = () => outbox("readonly", (s) => s.getAll());
const putItem = (item) => outbox("readwrite", (s) => s.put(item));
const dropItem = (id) => outbox("readwrite", (s) => s.delete(id));

async function renderOutbox() {
  const items = (await allItems()) || [];
  $("outbox").replaceChildren(...(items.length ? items.map((it) => {
    const li = document.createElement("li");
    li.className = it.refused ? "refused" : "";
    const when = new Date(it.report.observed_at).toLocaleString(gsLang());
    li.textContent = `${when} · ${it.label} · ${it.refused ? `${tr("insp.refused")}: ${it.refused}` : tr("insp.waiting")}`;
    return li;
  }) : [Object.assign(document.createElement("li"), { textContent: tr("insp.outbox_empty") })]));
}

// --- sending ------------------------------------------------------------------------------------------
const token = () => localStorage.getItem("gs-inspector-token") || "";
let flushing = false;
async function flush() {
  if (flushing || !token()) return;
  flushing = true;
  try {
    for (const item of (await allItems()) || []) {
      if (item.refused) continue;
      let r;
      try {
        $("status").textContent = tr("insp.sending");
        r = await fetch("/api/v1/inspector/reports", {
          method: "POST", body: JSON.stringify(item.report),
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${token()}` },
        });
      } catch { $("status").textContent = tr("insp.queued"); break; } // no connection: keep it, try later
      const body = await r.json().catch(() => null);
      if (r.status === 201) {
        await dropItem(item.report.report_id);
        const c = body.case_id ? ` · ${tr("insp.case_label")} ${body.case_id.slice(0, 8)}` : "";
        $("status").textContent = `${tr(body.outcome === "duplicate" ? "insp.duplicate" : body.case_id ? "insp.sent" : "insp.pending")}${c}`;
      } else if (r.status === 401) { $("status").textContent = tr("insp.bad_token"); showSignIn(); break; }
      else if (r.status >= 400 && r.status < 500) { // refused for good (too old, outside the grid): keep it visible
        item.refused = body?.error?.message || `HTTP ${r.status}`;
        await putItem(item);
      } else { $("status").textContent = tr("insp.queued"); break; } // 5xx: the case stage is away; retry later
    }
  } finally { flushing = false; renderOutbox(); }
}

// --- the form -----------------------------------------------------------------------------------------
function shrink(file) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const scale = Math.min(1, MAX_SIDE / Math.max(img.width, img.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(img.width * scale); canvas.height = Math.round(img.height * scale);
      canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
      URL.revokeObjectURL(img.src);
      resolve(canvas.toDataURL("image/jpeg", 0.8));
    };
    img.onerror = reject;
    img.src = URL.createObjectURL(file);
  });
}
$("photos").addEventListener("change", async (ev) => {
  photos = await Promise.all([...ev.target.files].slice(0, 4).map(shrink));
  $("photoPreview").replaceChildren(...photos.map((src) => Object.assign(document.createElement("img"), { src })));
});
$("locate").addEventListener("click", () => {
  $("position").textContent = tr("insp.locating");
  navigator.geolocation.getCurrentPosition((p) => {
    position = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy_m: Math.round(p.coords.accuracy) };
    $("position").textContent = `${tr("insp.position_at")} ${position.lat.toFixed(6)}, ${position.lon.toFixed(6)} · ${tr("insp.accuracy")} ${position.accuracy_m} ${tr("insp.metres")}`;
  }, (err) => { $("position").textContent = tr("insp.no_geo") + err.message; }, { enableHighAccuracy: true, timeout: 20000 });
});
$("report").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!position) { $("status").textContent = tr("insp.need_position"); return; }
  if (!$("category").value) { $("status").textContent = tr("insp.need_category"); return; }
  const report = {
    report_id: crypto.randomUUID(), category: $("category").value, ...position,
    observed_at: new Date().toISOString(), note: $("note").value.trim(), photos: photos.map((data) => ({ data })),
  };
  await putItem({ report, label: $("category").selectedOptions[0].textContent });
  $("note").value = ""; $("photos").value = ""; photos = []; $("photoPreview").replaceChildren();
  $("status").textContent = tr("insp.queued");
  await renderOutbox();
  flush();
});

// --- sign-in, categories, connectivity ---------------------------------------------------------------
function showSignIn() { $("signIn").hidden = false; $("report").hidden = true; }
async function loadCategories() {
  let cats = JSON.parse(localStorage.getItem("gs-inspector-categories") || "null");
  try {
    const r = await fetch("/api/v1/inspector/me", { headers: { Authorization: `Bearer ${token()}` } });
    if (r.status === 401 || r.status === 403) { $("status").textContent = tr("insp.bad_token"); showSignIn(); return; }
    if (r.ok) { cats = (await r.json()).categories; localStorage.setItem("gs-inspector-categories", JSON.stringify(cats)); }
  } catch { /* offline: the cached list */ }
  $("category").replaceChildren(new Option("—", ""), ...Object.entries(cats || {}).map(([k, name]) => new Option(`${name} (${k})`, k)));
  $("signIn").hidden = true; $("report").hidden = false;
}
$("signIn").addEventListener("submit", (ev) => {
  ev.preventDefault();
  localStorage.setItem("gs-inspector-token", $("token").value.trim());
  loadCategories().then(flush);
});
$("lang").addEventListener("click", () => gsSetLang(gsLang() === "en" ? "zh-CN" : "en"));
document.addEventListener("gs-lang", applyStrings);
function showNet() { $("net").textContent = tr(navigator.onLine ? "insp.online" : "insp.offline"); $("net").classList.toggle("off", !navigator.onLine); }
window.addEventListener("online", () => { showNet(); flush(); });
window.addEventListener("offline", showNet);
setInterval(flush, 30000); // "online" is not always fired (captive portals, flaky signal)

applyStrings();
if (token()) loadCategories().then(flush); else showSignIn();
