// The 12345 call-takers' page in headless Chromium: sign in, take a call whose address the gazetteer cannot
// place (confirm -> queued, shown in the queue), take a call whose address resolves (the resolution, the
// suggested categories with their confidence; screenshot), correct nothing and confirm (sent to the case
// stage), then place the queued call by its grid code (the queue empties). English switch and a phone width.
// Usage: node hotline_page.mjs <base url> <dispatcher token> <desktop screenshot> <phone screenshot>;
// prints one JSON line.
import { chromium } from "playwright-core";

const [base, token, shot, phoneShot] = process.argv.slice(2);
const executablePath = process.env.GS_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const seen = { errors: [] };
const text = async (page, sel) => (await page.locator(sel).innerText()).trim();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "zh-CN" });
  const page = await context.newPage();
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  await page.goto(`${base}/hotline`);
  seen.title = await text(page, ".sub");
  await page.fill("#token", token);
  await page.click("#signIn button[type=submit]");
  await page.locator("#work").waitFor({ state: "visible", timeout: 20000 });
  seen.queueAtStart = await text(page, "#queue");

  // 1. an address nobody can place: confirmed, it waits in the queue
  await page.fill("#text", "我家楼下的下水道堵了，污水冒出来");
  await page.fill("#address", "我家楼下");
  await page.click("#take");
  await page.locator("#result").waitFor({ state: "visible", timeout: 20000 });
  seen.vagueResolution = await text(page, "#resolution");
  seen.vagueCategory = await page.inputValue("#category");
  await page.click("#confirm");
  await page.waitForFunction(() => document.querySelector("#outcome").classList.contains("wait"), null, { timeout: 20000 });
  seen.vagueOutcome = await text(page, "#outcome");
  await page.waitForFunction(() => document.querySelectorAll("#queue li[data-call]").length === 1, null, { timeout: 20000 });
  seen.queued = await page.locator("#queue li[data-call]").allInnerTexts();

  // 2. an address the gazetteer places, a text with a clear category
  await page.fill("#text", "暨阳中路2号门口雨水井盖不见了，晚上很危险");
  await page.fill("#address", "暨阳路二号门口");
  await page.fill("#ticket", "12345-20261205-0042");
  await page.click("#take");
  await page.waitForFunction(() => document.querySelector("#resolution").classList.contains("ok"), null, { timeout: 20000 });
  seen.resolution = await text(page, "#resolution");
  seen.suggestions = await page.locator("#suggestions li").allInnerTexts();
  seen.category = await page.inputValue("#category");
  seen.checkedPlace = await page.evaluate(() => document.querySelector("input[name=place]:checked")?.value ?? null);
  await page.screenshot({ path: shot, fullPage: true });
  await page.click("#confirm");
  await page.waitForFunction(() => document.querySelector("#outcome").classList.contains("ok"), null, { timeout: 60000 });
  seen.outcome = await text(page, "#outcome");
  seen.resolutionAfter = await text(page, "#resolution");

  // 3. the queued call placed by its grid code
  await page.fill("#queue li[data-call] input", "320582004001004");
  await page.click("#queue li[data-call] button");
  await page.waitForFunction(() => document.querySelectorAll("#queue li[data-call]").length === 0, null, { timeout: 60000 });
  seen.queueAfter = await text(page, "#queue");

  await page.click(".langSwitch button[data-lang=en]");
  seen.englishTitle = await text(page, ".sub");
  seen.englishOutcome = await text(page, "#outcome");

  await page.setViewportSize({ width: 390, height: 844 });
  await page.click(".langSwitch button[data-lang=zh-CN]");
  seen.phoneWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: phoneShot, fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
