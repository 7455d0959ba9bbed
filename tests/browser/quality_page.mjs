// The citizen-report quality page (/dashboard/quality) in headless Chromium, as an inspector (pseudonyms, blurred
// photo) and as a dispatcher (identity): the held report with its reasons, the per-account table, and an
// inspector's confirmation that empties the queue.
// Usage: node quality_page.mjs <base url> <inspector token> <dispatcher token> <screenshot>; prints one JSON line.
import { chromium } from "playwright-core";

const [base, inspector, dispatcher, shot] = process.argv.slice(2);
const executablePath = process.env.GS_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const seen = { errors: [] };
const text = async (page, sel) => (await page.locator(sel).innerText()).trim();
async function signIn(context, token) {
  const page = await context.newPage();
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  await page.goto(`${base}/dashboard/quality`);
  await page.fill("#token", token);
  await page.click("#signIn button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#queue li[data-report]").length === 1, null, { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll("#accounts tr[data-account]").length >= 2, null, { timeout: 30000 });
  return page;
}
try {
  const boss = await signIn(await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "zh-CN" }), dispatcher);
  seen.dispatcherItem = await text(boss, "#queue li[data-report]");
  seen.dispatcherAccounts = await boss.locator("#accounts tr[data-account]").evaluateAll((rows) => rows.map((r) => r.dataset.account));

  const page = await signIn(await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "zh-CN" }), inspector);
  seen.title = await text(page, ".sub");
  seen.item = await text(page, "#queue li[data-report]");
  seen.note = await text(page, "#identityNote");
  seen.accounts = await page.locator("#accounts tr[data-account]").evaluateAll((rows) => rows.map((r) => r.dataset.account));
  seen.accountRows = await page.locator("#accounts tbody tr").allInnerTexts();
  await page.locator("#queue img.thumb:not([hidden])").waitFor({ timeout: 30000 });
  seen.photo = await page.locator("#queue img.thumb").evaluate((img) => ({ w: img.naturalWidth, h: img.naturalHeight }));
  await page.screenshot({ path: shot, fullPage: true });
  await page.fill("#queue li[data-report] input", "现场确认积水");
  await page.click("#queue li[data-report] button:not(.danger)");
  await page.waitForFunction(() => !document.querySelector("#queue li[data-report]"), null, { timeout: 30000 });
  seen.after = await text(page, "#queue");
  await page.click(".langSwitch button[data-lang=en]");
  seen.englishTitle = await text(page, ".sub");
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
