// What the small pages (/hotline, /dashboard/quality) share: `$` and `node` to build the page, and gsPage: the
// token (the dashboard's, kept in sessionStorage, or signed in on the page), the sign-in form, the API call
// that sends the token and shows the sign-in again on 401, and the start that loads the signed-in user.
// Words: i18n.js (loaded first). Plain JS, no external code.
"use strict";
const $ = (id) => document.getElementById(id);

function node(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v === true) e.setAttribute(k, ""); else if (v !== false && v != null) e.setAttribute(k, v);
  }
  e.append(...kids.filter((k) => k != null));
  return e;
}

// `S` is the page's state (its `token` and `me` are set here); `meUrl` answers the signed-in user (id, role,
// timezone, ...); `ready` runs once it has. The page's markup has #signIn (a form with #token and #signInErr),
// #work and #whoami.
function gsPage(S, meUrl, ready) {
  S.token = sessionStorage.getItem("gs-token") || "";
  S.me = null;
  const signIn = (message) => { $("signIn").hidden = false; $("work").hidden = true; $("signInErr").textContent = message || ""; };
  async function api(path, opts = {}) {
    const r = await fetch(path, { ...opts, headers: { "Content-Type": "application/json", Authorization: `Bearer ${S.token}` } });
    const body = await r.json().catch(() => null);
    if (r.status === 401) { signIn(tr("login.unknown")); throw new Error("401"); }
    return { ok: r.ok, status: r.status, body };
  }
  const showWho = () => { if (S.me) $("whoami").textContent = tr("hotline.whoami", { id: S.me.id, role: tr(`role.${S.me.role}`) }); };
  async function start() {
    if (!S.token) { signIn(); return; }
    let r;
    try { r = await api(meUrl); } catch { return; }
    if (!r.ok) { signIn(r.body?.error?.message || `HTTP ${r.status}`); return; }
    S.me = r.body;
    gsSetZone(S.me.timezone);
    showWho();
    $("signIn").hidden = true; $("work").hidden = false;
    ready();
  }
  $("signIn").addEventListener("submit", (ev) => {
    ev.preventDefault();
    S.token = $("token").value.trim();
    sessionStorage.setItem("gs-token", S.token);
    start();
  });
  document.addEventListener("gs-lang", showWho);
  return { api, start };
}
