// The inspectors' phone page in headless Chromium: sign in, file a finding while OFFLINE (category, photo from
// the camera input, GPS position, note), see it wait in the outbox, go back online and see it sent with the
// time it was made. Usage: node inspector_page.mjs <base url> <inspector token> <photo.jpg> <screenshot>;
// prints one JSON line.
import { chromium } from "playwright-core";

const [base, token, photo, shot] = process.argv.slice(2);
const executablePath = process.env.GS_CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const seen = { errors: [] };
try {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 }, geolocation: { latitude: 31.87225, longitude: 120.55053, accuracy: 6 },
    permissions: ["geolocation"], locale: "zh-CN",
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  await page.goto(`${base}/inspector`);
  seen.title = (await page.locator(".sub").innerText()).trim();
  await page.fill("#token", token);
  await page.click("#signIn button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#category option").length > 1, null, { timeout: 20000 });

  await context.setOffline(true);
  await page.selectOption("#category", "component:0103");
  await page.setInputFiles("#photos", photo);
  await page.locator("#photoPreview img").first().waitFor({ timeout: 20000 });
  await page.click("#locate");
  await page.waitForFunction(() => document.getElementById("position").textContent.includes("31.87"), null,
    { timeout: 20000 });
  await page.fill("#note", "雨水井盖缺失（离线上报）");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#outbox li")?.textContent.includes("待发送"), null,
    { timeout: 20000 });
  seen.offlineOutbox = await page.locator("#outbox li").allInnerTexts();
  seen.offlineStatus = (await page.locator("#status").innerText()).trim();
  seen.filed = await page.evaluate(() => new Promise((resolve, reject) => {
    const req = indexedDB.open("gs-inspector", 1);
    req.onsuccess = () => {
      const all = req.result.transaction("outbox").objectStore("outbox").getAll();
      all.onsuccess = () => resolve(all.result.map((it) => ({ report_id: it.report.report_id,
        observed_at: it.report.observed_at, photos: it.report.photos.length })));
      all.onerror = () => reject(all.error);
    };
    req.onerror = () => reject(req.error);
  }));
  await page.waitForTimeout(1500); // stay offline a moment: the report must keep its own time, not the sending time
  seen.onlineAt = new Date().toISOString();
  await context.setOffline(false);
  await page.waitForFunction(() => document.querySelector("#outbox li")?.textContent.includes("没有待发送"), null,
    { timeout: 60000 });
  seen.onlineStatus = (await page.locator("#status").innerText()).trim();
  seen.pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.click("#lang");
  seen.englishTitle = (await page.locator(".sub").innerText()).trim();
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
