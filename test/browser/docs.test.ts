/**
 * The API reference at /docs in a real headless browser (Debian's Chromium, driven by playwright-core): Swagger
 * UI renders every operation of /openapi.json — the five endpoints of the original API among them — with no
 * request leaving this machine, no Content-Security-Policy violation and no script error.
 * Needs /usr/bin/chromium (scripts/runtime/setup-browser.sh installs it); run by `npm run test:runtime`.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { http, startApp, type TestApp } from "../support/app.js";
import { ROOT } from "../support/process.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

interface State {
  app: TestApp;
  browser: Browser;
}
const test = suite<State>("browser: /docs", {} as State);

test.before(async (state) => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: run scripts/runtime/setup-browser.sh (apt-get install chromium)`);
  }
  state.app = await startApp();
  state.browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root without a sandbox; no background traffic (this machine's network is closed). playwright gives
    // the browser a new empty profile of its own.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
test.after(async (state) => {
  await state.browser?.close();
  await state.app?.close();
});

test("Swagger UI renders every operation of /openapi.json, from this origin only, without errors", async ({
  app,
  browser,
}) => {
  const spec = (await http(app.url, "GET", "/openapi.json")).body as { paths: Record<string, Record<string, unknown>> };
  const operations = Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
  for (const original of [
    "GET /health",
    "GET /api/loans",
    "GET /api/loans/{id}",
    "POST /api/loans",
    "GET /api/stats",
  ]) {
    assert.ok(operations.includes(original), `${original} is in /openapi.json`);
  }

  const page = await browser.newPage();
  const origin = new URL(app.url).origin;
  const elsewhere: string[] = [];
  const problems: string[] = [];
  page.on("request", (r) => {
    const url = new URL(r.url());
    if (url.origin !== origin && url.protocol !== "data:") elsewhere.push(r.url());
  });
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

  const response = await page.goto(`${app.url}/docs`, { waitUntil: "load" });
  assert.is(response?.status(), 200);
  await page.waitForSelector(".opblock", { timeout: 20_000 });
  const rendered = await page.$$eval(".opblock", (blocks) =>
    blocks.map((b) => {
      const method = b.querySelector(".opblock-summary-method")?.textContent?.trim() ?? "";
      const path = b.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "";
      return `${method} ${path}`;
    }),
  );
  assert.equal([...rendered].sort(), [...operations].sort(), "one block per operation");
  const title = await page.textContent(".info .title");
  assert.match(title ?? "", /loan/i);

  mkdirSync(join(ROOT, ".tmp"), { recursive: true });
  await page.screenshot({ path: join(ROOT, ".tmp/docs.png"), fullPage: true });
  assert.equal(elsewhere, [], "requests that left this origin");
  assert.equal(problems, [], "script errors or CSP violations");
  await page.close();
});

test.run();
