// Drives the dispatch dashboard in headless Chromium (playwright-core + Debian's chromium).
// Usage: node dashboard.mjs <base url> <dispatcher token> <screenshot path>
// Run it with TZ set to a zone other than the city's: the page must still show the city's times.
// Writes <shot>-login.png (the sign-in card), <shot> (zh-CN, the default) and <shot>-en.png (after the
// switch to English).
// Prints one JSON line with what it saw; exits non-zero on any failed expectation.
import { launch, signIn } from "./session.mjs";

const [base, token, shot] = process.argv.slice(2);
const seen = {};
const { browser, page, errors } = await launch({ width: 1600, height: 900 });
const text = async (sel) => (await page.locator(sel).first().textContent()).trim();
// the case view's definition list as {label: value}
const caseFacts = () => page.locator("#caseBody dl.kv:not(.evidence)").evaluate((dl) =>
  Object.fromEntries([...dl.querySelectorAll("dt")].map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
try {
  await page.goto(`${base}/dashboard`);
  seen.browserZone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  seen.login = { lang: await page.evaluate(() => document.documentElement.lang), button: await text("#loginBtn"),
    switches: await page.locator("#login .langSwitch button").allTextContents() };
  await page.screenshot({ path: shot.replace(/\.png$/, "-login.png") });
  await signIn(page, base, token);
  seen.htmlLang = await page.evaluate(() => document.documentElement.lang);
  seen.zoneLabel = await text("#zone");
  seen.filterLabel = await text("#statusFilter option[value=active]");
  seen.cells = await page.locator("#map path.cell").count();
  seen.casesBefore = await page.locator("#feed li.case").count();

  // Device health: every registered device has a row; drain-001 (a gateway's report is on gs.device-health)
  // shows online, with its battery, and its last-seen time in the city's time zone.
  await page.locator('#health tr[data-device="drain-001"][data-state="online"]').waitFor({ timeout: 30000 });
  seen.healthRows = await page.locator("#health tbody tr").count();
  seen.healthHead = await text("#healthSeenHead");
  seen.healthDrain = await page.locator('#health tr[data-device="drain-001"] td').allTextContents();

  // A citizen report through the API while the page is open: it must arrive live (SSE).
  const r = await fetch(`${base}/open311/v2/requests.json`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Idempotency-Key": `browser-${Date.now()}` },
    body: JSON.stringify({ service_code: "event:0103", lat: 31.8714, long: 120.5517, description: "Bags of rubbish dumped by the wall" }),
  });
  if (r.status !== 201) throw new Error(`Open311 POST answered ${r.status}: ${await r.text()}`);
  const answer = (await r.json())[0];
  let caseId = answer.service_request_id;
  for (let i = 0; !caseId && i < 120; i++) { // the case stage has not applied the report yet: ask by token
    await new Promise((ok) => setTimeout(ok, 500));
    const t = await fetch(`${base}/open311/v2/tokens/${answer.token}.json`, { headers: { Authorization: `Bearer ${token}` } });
    caseId = (await t.json())[0].service_request_id;
  }
  if (!caseId) throw new Error(`Open311 token ${answer.token} never resolved to a request id`);
  seen.caseId = caseId;
  const item = page.locator(`#feed li.case[data-case="${caseId}"]`);
  await item.waitFor({ timeout: 20000 });
  seen.liveArrived = true;
  seen.cellCount = await page.locator("#map text.cellCount").allTextContents();
  seen.itemBadge = await item.locator(".badge").textContent();
  seen.itemHeadline = await item.locator(".t").textContent();
  seen.itemMeta = await item.locator(".m").allTextContents();

  await item.click();
  await page.waitForSelector("#casePanel:not([hidden]) button[data-action=dispatch]:not([disabled])", { timeout: 20000 });
  seen.dispatchLabel = await text("button[data-action=dispatch]");
  const buttons = () => page.locator("#casePanel .actions button[data-action]").evaluateAll((bs) =>
    bs.map((b) => ({ action: b.dataset.action, disabled: b.disabled, title: b.title })));
  const choicesNow = async () => (await (await fetch(`${base}/api/v1/cases/${caseId}`,
    { headers: { Authorization: `Bearer ${token}` } })).json()).choices;
  seen.open = { choices: await choicesNow(), buttons: await buttons() };  // the new case, before dispatching
  await page.click("button[data-action=dispatch]");
  await page.locator(`#feed li.case[data-case="${caseId}"] .badge.dispatched`).waitFor({ timeout: 20000 });
  const check = await fetch(`${base}/api/v1/cases/${caseId}`, { headers: { Authorization: `Bearer ${token}` } });
  const detail = await check.json();
  seen.case = detail.case;
  seen.statusAfter = detail.case.status;
  seen.logActions = detail.log.map((e) => e.action);
  await page.locator("#caseBody .log li").nth(detail.log.length - 1).waitFor({ timeout: 20000 });
  // the buttons follow the API's choices for this user (issue 16): enabled exactly where allowed
  seen.dispatched = { choices: detail.choices, buttons: await buttons() };
  seen.zh = { facts: await caseFacts(), badge: await item.locator(".badge").textContent(),
    title: await text("#caseTitle"), log: await page.locator("#caseBody .log li b").allTextContents() };
  await page.waitForTimeout(300);
  await page.screenshot({ path: shot });

  // The switch to English re-words the page in place (the open case stays open) and is remembered.
  await page.click("header .langSwitch button[data-lang=en]");
  await page.waitForFunction(() => document.documentElement.lang === "en");
  await page.locator("#caseBody .log li b", { hasText: "Dispatch" }).waitFor({ timeout: 20000 });
  seen.en = { facts: await caseFacts(), badge: await item.locator(".badge").textContent(),
    filterLabel: await text("#statusFilter option[value=active]"), zoneLabel: await text("#zone"),
    stats: await page.locator("#stats .stat span").allTextContents(),
    stored: await page.evaluate(() => localStorage.getItem("gs-lang")) };
  await page.waitForTimeout(300);
  await page.screenshot({ path: shot.replace(/\.png$/, "-en.png") });
  await page.reload();
  await page.waitForSelector("#live.on", { timeout: 20000 });
  seen.afterReload = { lang: await page.evaluate(() => document.documentElement.lang), live: await text("#live") };

  // Back to Chinese with the switch, then ?lang=en for one visit: English without changing the choice.
  await page.click("header .langSwitch button[data-lang=zh-CN]");
  await page.waitForFunction(() => document.documentElement.lang === "zh-CN");
  await page.goto(`${base}/dashboard?lang=en`);
  await page.waitForSelector("#live.on", { timeout: 20000 });
  seen.query = { lang: await page.evaluate(() => document.documentElement.lang), signout: await text("#signout"),
    stored: await page.evaluate(() => localStorage.getItem("gs-lang")) };
  seen.pageErrors = errors;
  console.log(JSON.stringify(seen));
} catch (e) {
  await page.screenshot({ path: shot.replace(/\.png$/, "-failed.png") }).catch(() => {});
  console.error(JSON.stringify({ seen, errors }));
  throw e;
} finally {
  await browser.close();
}
