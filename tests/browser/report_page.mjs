// The dashboard's weekly-report page in headless Chromium: sign in on the dashboard, follow its "Weekly report"
// link, ask for one week, wait for the report in the frame and take a screenshot.
// Usage: node report_page.mjs <base url> <token> <week> <screenshot path>; prints one JSON line of what it saw.
import { launch, signIn } from "./session.mjs";

const [base, token, week, shot] = process.argv.slice(2);
const seen = {};
const { browser, page, errors } = await launch({ width: 1280, height: 1000 });
try {
  await signIn(page, base, token);
  await page.click("#reportLink");
  await page.waitForURL(`${base}/dashboard/report`);
  await page.fill("#week", week);
  await page.uncheck("#forecast");
  await page.click("#showReport");
  const frame = page.frameLocator("#reportFrame");
  await frame.locator("h1").filter({ hasText: week }).waitFor({ timeout: 30000 });
  seen.title = (await frame.locator("h1").innerText()).trim();
  seen.sections = await frame.locator("section[id]").evaluateAll((s) => s.map((x) => x.id));
  seen.flagged = await frame.locator("#selective-reporting table td:first-child").allInnerTexts();
  seen.stuck = await frame.locator("#stuck table td:first-child").allInnerTexts();
  seen.charts = await frame.locator("svg.chart, svg.map").count();
  seen.message = await page.locator("#reportMsg").innerText();
  await page.screenshot({ path: shot });
  seen.pageErrors = errors;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
