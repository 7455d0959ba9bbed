// The weekly report (an HTML file) to PDF with headless Chromium's print-to-PDF, and optionally a full-page
// screenshot of the same HTML; used by `gridsentinel report weekly --pdf` and the report's integration test.
// Usage: node report_pdf.mjs <report.html> <out.pdf> [<out.png>]; prints JSON {pdf, bytes, png, pageErrors}.
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { launch } from "./session.mjs";

const [html, pdf, png] = process.argv.slice(2);
if (!html || !pdf) {
  console.error("usage: node report_pdf.mjs <report.html> <out.pdf> [<out.png>]");
  process.exit(2);
}
const { browser, page, errors } = await launch({ width: 1100, height: 1400 });
try {
  await page.goto(pathToFileURL(resolve(html)).href, { waitUntil: "load" });
  if (png) await page.screenshot({ path: png, fullPage: true });
  await page.emulateMedia({ media: "print" });
  await page.pdf({ path: pdf, format: "A4", printBackground: true, preferCSSPageSize: true });
  console.log(JSON.stringify({ pdf, bytes: statSync(pdf).size, png: png || null, pageErrors: errors }));
} finally {
  await browser.close();
}
