// The dashboard's incidents view (issue 17): sign in, switch the list to incidents, open the first one and
// read what a dispatcher sees (member cases, sources, log) in Chinese, then in English; screenshot each.
// Usage: node incidents_page.mjs <base url> <token> <out.png>   (writes <out.png> and <out>-en.png; prints JSON)
import { launch, signIn } from "./session.mjs";

const [base, token, shot] = process.argv.slice(2);
const { browser, page, errors } = await launch({ width: 1680, height: 1000 });
const seen = {};
async function read(lang) {
  return {
    title: await page.locator("#caseTitle").textContent(),
    listed: await page.locator("#feed li.incident").count(),
    members: await page.locator("#caseBody ol.members li.case").count(),
    sources: await page.locator("#caseBody table.sources tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.source)),
    sourceNames: await page.locator("#caseBody table.sources tbody tr td:first-child").allTextContents(),
    logActions: await page.locator("#caseBody ol.log li b").allTextContents(),
    buttons: await page.locator("#caseBody .actions button").allTextContents(),
    lang,
  };
}
try {
  await signIn(page, base, token);
  await page.selectOption("#feedView", "incidents");
  await page.waitForSelector("#feed li.incident", { timeout: 20000 });
  await page.click("#feed li.incident");
  await page.waitForSelector("#caseBody table.sources tbody tr", { timeout: 20000 });
  await page.waitForTimeout(300);
  seen.zh = await read("zh-CN");
  await page.screenshot({ path: shot });
  await page.click('header .langSwitch button[data-lang="en"]');
  await page.waitForFunction(() => document.documentElement.lang === "en");
  await page.waitForFunction(() => /case/.test(document.querySelector("#caseTitle")?.textContent || ""), null, { timeout: 20000 });
  await page.waitForTimeout(300);
  seen.en = await read("en");
  await page.screenshot({ path: shot.replace(/\.png$/, "-en.png") });
  // a member case shows its incident and leads back to it
  await page.click("#caseBody ol.members li.case");
  await page.waitForSelector("#caseBody a[data-incident]", { timeout: 20000 });
  seen.caseLinksBack = await page.locator("#caseBody a[data-incident]").count();
  seen.pageErrors = errors;
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
