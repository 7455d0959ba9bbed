// The center page (/dashboard/center) in headless Chromium, one step of tests/integration/test_center_page.py
// per run (the Python test changes the world between steps: it runs the escalation sweep).
// Usage: node center_page.mjs <base url> <step> <json: tokens, case ids, screenshot dir>; prints one JSON
// line of what it saw. The browser's own zone is New York: the page must show the city's (Asia/Shanghai).
import { chromium } from "playwright-core";

const [base, step, raw] = process.argv.slice(2);
const A = JSON.parse(raw);
const executablePath = process.env.GS_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const errors = [];
const seen = {};

// A fresh tab (its own sessionStorage) signed in as `token`; `hash` opens a case by its address.
async function open(token, { lang = "", hash = "" } = {}) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, timezoneId: "America/New_York",
    locale: lang === "en" ? "en-US" : "zh-CN" });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error" && !/status of 404/.test(m.text())) errors.push(m.text()); });
  await page.goto(`${base}/dashboard/center${lang ? `?lang=${lang}` : ""}${hash}`);
  await page.fill("#tokenInput", token);
  await page.click("#loginBtn");
  await page.waitForSelector("#tabs button[data-queue]");
  return page;
}
// Every queue's case ids and its count as the tab shows it.
async function queues(page) {
  const out = {};
  for (const q of ["new", "escalated_in", "refused", "overdue", "escalated_out"]) {
    await page.click(`#tabs button[data-queue=${q}]`);
    out[q] = { count: await page.getAttribute(`#tabs button[data-queue=${q}] .count`, "data-count"),
      ids: await page.locator("#queue li[data-case]").evaluateAll((xs) => xs.map((x) => x.dataset.case)) };
  }
  return out;
}
async function openFromQueue(page, queue, id) {
  await page.click(`#tabs button[data-queue=${queue}]`);
  await page.click(`#queue li[data-case="${id}"]`);
  await page.waitForSelector("#actions");
}
// The action buttons: name, enabled, tooltip, and whether they look disabled (computed opacity).
async function buttons(page) {
  return page.locator("#actions button[data-action]").evaluateAll((bs) => bs.map((b) => ({
    action: b.dataset.action, enabled: !b.disabled, title: b.title, opacity: Number(getComputedStyle(b).opacity) })));
}
async function caseView(page) {
  return {
    title: (await page.locator("#caseTitle").innerText()).trim(),
    status: (await page.locator('[data-k="cp.case_status"]').innerText()).trim(),
    due: (await page.locator('[data-k="cp.case_due"]').innerText()).trim(),
    center: (await page.locator('[data-k="cp.case_center"]').innerText()).trim(),
    readonly: await page.locator("#readonlyNote").count() ? (await page.locator("#readonlyNote").innerText()).trim() : null,
    pending: await page.locator("#pending").count() ? (await page.locator("#pending").innerText()).trim() : null,
    buttons: await buttons(page),
    log: await page.locator("#log li").evaluateAll((ls) => ls.map((l) => ({ action: l.dataset.action, cls: l.className,
      text: l.innerText }))),
  };
}
// Click an action, answer its form (if it asks), confirm, and wait for the log to show `logged`.
async function act(page, action, { text = "", department = null, logged = action } = {}) {
  const before = await page.locator(`#log li[data-action="${logged}"]`).count();
  await page.click(`#actions button[data-action=${action}]`);
  if (await page.locator(`#actionForm button[data-confirm=${action}]`).count()) {
    if (department) await page.selectOption("#actionForm select[name=department]", department);
    await page.fill("#actionForm textarea", text);
    await page.click(`#actionForm button[data-confirm=${action}]`);
  }
  // the log gains the entry, or the page says why not (an error toast): fail with its words
  await page.waitForFunction(([a, n]) => document.querySelectorAll(`#log li[data-action="${a}"]`).length > n
    || document.querySelector(".toast.bad") || document.querySelector("#leftScope"), [logged, before]);
  const bad = page.locator(".toast.bad");
  if (await bad.count()) throw new Error(`${action}: the page says ${await bad.first().innerText()}`);
}
const shot = (page, name) => page.screenshot({ path: `${A.shots}/center-${name}.png` });

try {
  if (step === "scope") {
    // (a) a street user sees nothing of another street's case, and its address answers "not found"
    const li = await open(A.li);
    seen.me = (await li.locator("#centerName").innerText()).trim();
    seen.zone = (await li.locator("#zone").innerText()).trim();
    seen.queues = await queues(li);
    seen.pageText = await li.locator("body").innerText();
    await openFromQueue(li, "overdue", A.overdue);
    seen.overdueCase = await caseView(li);
    await shot(li, "a-street-queues");
    const direct = await open(A.li, { hash: `#case=${A.other}` });
    await direct.waitForSelector("#notFound");
    seen.direct = (await direct.locator("#notFound").innerText()).trim();
    seen.directBody = await direct.locator("body").innerText();
    await shot(direct, "a-other-street-not-found");
  } else if (step === "escalated") {
    // (b) after the sweep: in the district's queue, and read-only at the street (in English)
    const zhou = await open(A.zhou);
    seen.district = await queues(zhou);
    await openFromQueue(zhou, "escalated_in", A.overdue);
    seen.districtCase = await caseView(zhou);
    await shot(zhou, "b-district-escalated-in");
    const li = await open(A.li, { lang: "en" });
    seen.street = await queues(li);
    await openFromQueue(li, "escalated_out", A.overdue);
    seen.streetRow = (await li.locator(`#queue li[data-case="${A.overdue}"]`).innerText()).trim();
    seen.streetCase = await caseView(li);
    await shot(li, "b-street-escalated-out-en");
  } else if (step === "refuse") {
    // (c) the street dispatches, the department refuses with a reason, the case is back at the street
    const li = await open(A.li);
    await openFromQueue(li, "new", A.refuse);
    await act(li, "dispatch", { department: A.department });
    seen.afterDispatch = await caseView(li);
    const dept = await open(A.dept, { hash: `#case=${A.refuse}` });
    await dept.waitForSelector("#actions");
    seen.deptCase = await caseView(dept);
    await act(dept, "refuse", { text: A.reason });
    seen.deptAfter = (await dept.locator("#caseBody").innerText()).trim();
    await shot(dept, "c-department-refused");
    const again = await open(A.li);
    seen.street = await queues(again);
    await openFromQueue(again, "refused", A.refuse);
    seen.streetCase = await caseView(again);
    await shot(again, "c-street-refused-back");
  } else if (step === "false-alarm") {
    // (d) the first user's false alarm waits; a supervisor confirms it and the case closes
    const li = await open(A.li);
    await openFromQueue(li, "new", A.sensor);
    await act(li, "false_alarm", { text: A.note, logged: "request_false_alarm" });
    seen.first = await caseView(li);
    await shot(li, "d-false-alarm-pending");
    const sup = await open(A.sup, { hash: `#case=${A.sensor}` });
    await sup.waitForSelector("#pending");
    seen.second = await caseView(sup);
    await act(sup, "false_alarm", { text: "confirmed on the camera: a rain gauge test" });
    seen.closed = await caseView(sup);
    await shot(sup, "d-false-alarm-confirmed");
  } else {
    throw new Error(`unknown step ${step}`);
  }
  seen.pageErrors = errors;
  console.log(JSON.stringify(seen));
} catch (e) {
  // what each tab showed when it failed: artifacts/center-failed-<step>-<n>.png
  const pages = browser.contexts().flatMap((c) => c.pages());
  for (const [i, p] of pages.entries()) await p.screenshot({ path: `${A.shots}/center-failed-${step}-${i}.png` }).catch(() => {});
  throw e;
} finally {
  await browser.close();
}
