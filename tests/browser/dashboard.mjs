// Drives the dispatch dashboard in headless Chromium (playwright-core + Debian's chromium).
// Usage: node dashboard.mjs <base url> <dispatcher token> <screenshot path>
// Prints one JSON line with what it saw; exits non-zero on any failed expectation.
import { launch, signIn } from "./session.mjs";

const [base, token, shot] = process.argv.slice(2);
const seen = {};
const { browser, page, errors } = await launch({ width: 1600, height: 900 });
try {
  await signIn(page, base, token);
  seen.cells = await page.locator("#map path.cell").count();
  seen.casesBefore = await page.locator("#feed li.case").count();

  // Device health: every registered device has a row; drain-001 (a gateway's report is on gs.device-health)
  // shows online, with its battery, and its last-seen time in the city's time zone.
  await page.locator('#health tr[data-device="drain-001"][data-state="online"]').waitFor({ timeout: 30000 });
  seen.healthRows = await page.locator("#health tbody tr").count();
  seen.healthHead = await page.locator("#healthSeenHead").textContent();
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

  await item.click();
  await page.waitForSelector("#casePanel:not([hidden]) button[data-action=dispatch]:not([disabled])", { timeout: 20000 });
  await page.click("button[data-action=dispatch]");
  await page.locator(`#feed li.case[data-case="${caseId}"] .badge.dispatched`).waitFor({ timeout: 20000 });
  const check = await fetch(`${base}/api/v1/cases/${caseId}`, { headers: { Authorization: `Bearer ${token}` } });
  const detail = await check.json();
  seen.statusAfter = detail.case.status;
  seen.logActions = detail.log.map((e) => e.action);
  await page.waitForTimeout(300);
  await page.screenshot({ path: shot });
  seen.pageErrors = errors;
  console.log(JSON.stringify(seen));
} catch (e) {
  await page.screenshot({ path: shot.replace(/\.png$/, "-failed.png") }).catch(() => {});
  console.error(JSON.stringify({ seen, errors }));
  throw e;
} finally {
  await browser.close();
}
