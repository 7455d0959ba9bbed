// Screenshots of a running dashboard (e.g. `gridsentinel demo`) with a read-only token: one case view
// per wanted category, in the order given. Not a test: a look at the product as a dispatcher sees it.
// Usage: node screenshot.mjs <base url> <token> <out.png> <category key>[,<category key>...] [zh-CN|en]
// Writes <out.png> for the first category that has a case, <out>-2.png for the next, ...; prints JSON.
// The language is the dashboard's default (zh-CN) unless named; set TZ to see that times keep the city's zone.
import { launch, signIn } from "./session.mjs";

const [base, token, shot, wanted = "component:0103,event:0103", lang = "zh-CN"] = process.argv.slice(2);
const seen = { shots: [] };
const { browser, page, errors } = await launch({ width: 1680, height: 1000 });
try {
  await signIn(page, base, token);
  if (lang !== "zh-CN") {
    await page.click(`header .langSwitch button[data-lang="${lang}"]`);
    await page.waitForFunction((l) => document.documentElement.lang === l, lang);
  }
  seen.cases = await page.locator("#feed li.case").count();
  seen.colouredCells = await page.locator("#map path.cell:not(.c0)").count();
  const list = await (await fetch(`${base}/api/v1/cases?limit=500`, { headers: { Authorization: `Bearer ${token}` } })).json();
  let n = 0;
  for (const key of wanted.split(",")) {
    const c = list.items.find((x) => x.category_key === key);
    if (!c) continue;
    await page.click(`#feed li.case[data-case="${c.case_id}"]`);
    await page.waitForSelector("#casePanel:not([hidden]) .log li", { timeout: 20000 });
    await page.waitForFunction(() => !document.querySelector("#chart .hint") &&
      [...document.querySelectorAll(".snapshot img")].every((i) => i.complete), null, { timeout: 20000 }).catch(() => {});
    await page.waitForTimeout(500);
    const out = n === 0 ? shot : shot.replace(/\.png$/, `-${n + 1}.png`);
    await page.screenshot({ path: out });
    seen.shots.push({ out, category: key, title: c.title,
      snapshotPx: await page.locator(".snapshot img").evaluateAll((a) => a.map((i) => i.naturalWidth)),
      chartPoints: await page.locator("#chart polyline.series").evaluateAll((a) => a.map((p) => p.points.numberOfItems)),
      evidenceRows: await page.locator("dl.evidence dt").count() });
    n += 1;
  }
  seen.pageErrors = errors;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
