// The patrol plan in headless Chromium: sign in on the dashboard, switch the plan on over the map (screenshot),
// then open the phone-sized plan page from the map's link (screenshot at a phone's size).
// Usage: node patrol_page.mjs <base url> <token> <map screenshot> <page screenshot>; prints one JSON line.
import { launch, signIn } from "./session.mjs";

const [base, token, mapShot, pageShot] = process.argv.slice(2);
const seen = {};
const { browser, page, errors } = await launch({ width: 1400, height: 900 });
try {
  await signIn(page, base, token);
  await page.locator("#map path.cell").first().waitFor({ timeout: 20000 });
  seen.routesBefore = await page.locator("#map g.patrol").count();
  await page.check("#patrolToggle");
  await page.locator("#map g.patrol polyline").first().waitFor({ timeout: 60000 });
  seen.routesOnMap = await page.locator("#map g.patrol").count();
  seen.stopsOnMap = await page.locator("#map g.patrol circle.patrolStop").count();
  seen.legend = (await page.locator("#patrolLegend").innerText()).trim();
  await page.locator(".mapPanel").screenshot({ path: mapShot });
  await page.uncheck("#patrolToggle");
  seen.routesAfterOff = await page.locator("#map g.patrol").count();

  await page.setViewportSize({ width: 390, height: 844 });
  await page.click("#patrolLink");
  await page.waitForURL(`${base}/dashboard/patrol`);
  await page.locator(".route li.stop").first().waitFor({ timeout: 60000 });
  seen.summary = (await page.locator("#patrolSummary").innerText()).trim();
  seen.inspectors = await page.locator(".route").count();
  seen.firstRoute = await page.locator(".route").first().locator("li.stop").evaluateAll((lis) =>
    lis.map((li) => [li.querySelector(".t").textContent, li.dataset.cell]));
  seen.pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: pageShot, fullPage: true });
  seen.pageErrors = errors;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
