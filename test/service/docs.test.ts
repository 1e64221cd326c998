// test/run.ts: process-group service-light
/** GET /docs: the API reference page and its assets, all from this service (the browser check: test/browser). */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { http, startApp, type TestApp } from "../support/app.js";

const test = suite<{ app: TestApp }>("docs", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp();
});
test.after(async (ctx) => {
  await ctx.app.close();
});

test("GET /docs is an HTML page whose every script, style and icon is served here", async ({ app }) => {
  const page = await http(app.url, "GET", "/docs");
  assert.is(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  // helmet's policy, unrelaxed: scripts only from this origin, so the page has no inline script.
  assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'(;|$)/);
  assert.not.match(page.text, /<script>(?!<)/);
  const refs = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] as string);
  assert.ok(refs.length >= 3, refs.join(" "));
  for (const ref of refs) {
    assert.ok(ref.startsWith("/"), `${ref} is not on this origin`);
    const r = await http(app.url, "GET", ref);
    assert.is(r.status, 200, ref);
    const type = r.headers.get("content-type") ?? "";
    if (ref.includes(".js")) assert.match(type, /javascript/, ref);
    if (ref.includes(".css")) assert.match(type, /text\/css/, ref);
  }
  const init = await http(app.url, "GET", "/docs/init.js");
  assert.match(init.text, /url: "\/openapi.json"/);
  assert.match(init.text, /validatorUrl: null/);
});

test("only the files the page needs are served from the package; other methods are 405", async ({ app }) => {
  for (const path of ["/docs/assets/index.html", "/docs/assets/swagger-ui.js.map", "/docs/assets/package.json"]) {
    assert.is((await http(app.url, "GET", path)).status, 404, path);
  }
  const post = await http(app.url, "POST", "/docs", { json: {} });
  assert.is(post.status, 405);
  assert.match(post.headers.get("allow") ?? "", /GET/);
});

test.run();
