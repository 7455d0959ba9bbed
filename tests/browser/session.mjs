// Headless Chromium (playwright-core + Debian's chromium) on the dispatch dashboard, shared by the
// browser test (dashboard.mjs) and the screenshot tool (screenshot.mjs).

import { chromium } from "playwright-core";

// A browser with one page; page errors and console errors are collected in `errors`. The caller closes it.
export async function launch(viewport) {
  const executablePath = process.env.GS_CHROMIUM || "/usr/bin/chromium";
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
  const errors = [];
  const page = await browser.newPage({ viewport });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  return { browser, page, errors };
}

// Open the dashboard, sign in with `token` and wait for the live stream.
export async function signIn(page, base, token) {
  await page.goto(`${base}/dashboard`);
  await page.fill("#tokenInput", token);
  await page.click("#loginBtn");
  await page.waitForSelector("#live.on", { timeout: 20000 });
}
