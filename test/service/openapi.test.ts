// test/run.ts: process-group service-light
/** GET /openapi.json: the document agrees with the running API; the metrics are recorded, and not served on the app. */
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { http, type Res, startApp, type TestApp, uniqueBorrower } from "../support/app.js";

const test = suite<{ app: TestApp; doc: any; ajv: Ajv2020 }>("openapi", {} as any);
test.before(async (ctx) => {
  ctx.app = await startApp();
  ctx.doc = (await http(ctx.app.url, "GET", "/openapi.json")).body;
  ctx.ajv = new Ajv2020({ strict: false, allErrors: true });
  (addFormatsModule as unknown as (a: Ajv2020) => void)(ctx.ajv);
  ctx.ajv.addSchema({ $id: "doc", components: ctx.doc.components });
});
test.after(async (ctx) => {
  await ctx.app.close();
});

const METHODS = ["get", "post", "put", "patch", "delete"];
const concrete = (path: string) => path.replace("{id}", "00000000-0000-0000-0000-000000000003");

function check(ajv: Ajv2020, doc: any, path: string, method: string, r: Res<any>) {
  const response = doc.paths[path][method].responses[String(r.status)];
  assert.ok(response, `${method.toUpperCase()} ${path} answered ${r.status}, which the document does not list`);
  const [type, media] = Object.entries(response.content ?? {})[0] ?? [];
  if (!media) return;
  assert.ok(
    (r.headers.get("content-type") ?? "").startsWith(type as string),
    `${path} content-type ${r.headers.get("content-type")}`,
  );
  const schema = JSON.parse(JSON.stringify((media as any).schema).replaceAll('"#/components', '"doc#/components'));
  const validate = ajv.compile(schema);
  assert.ok(validate(r.body), `${method} ${path} ${r.status}: ${ajv.errorsText(validate.errors)}`);
}

test("the document is OpenAPI 3.1 and every schema in it compiles as JSON Schema 2020-12", ({ doc, ajv }) => {
  assert.is(doc.openapi, "3.1.0");
  for (const name of ["Loan", "CreateLoan", "PatchLoan", "Stats", "Problem"]) {
    assert.ok(ajv.getSchema(`doc#/components/schemas/${name}`), name);
  }
  assert.not.match(JSON.stringify(doc), /x-decimal|x-integer/);
});

test("every documented path and method exists; every other method on it is a 405 whose Allow matches", async ({
  app,
  doc,
}) => {
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    const documented = METHODS.filter((m) => item[m]);
    for (const m of METHODS) {
      const r = await http(app.url, m.toUpperCase(), concrete(path), m === "get" ? {} : { json: {} });
      if (documented.includes(m)) assert.is.not(r.status, 405, `${m} ${path}`);
      else {
        assert.is(r.status, 405, `${m} ${path} is not documented but answered ${r.status}`);
        const allow = (r.headers.get("allow") ?? "").split(", ").map((s) => s.toLowerCase());
        assert.equal(allow.filter((a) => METHODS.includes(a)).sort(), [...documented].sort(), path);
      }
    }
  }
});

test("real responses validate against the documented response schemas", async ({ app, doc, ajv }) => {
  const borrower = uniqueBorrower("oas");
  const example = doc.paths["/api/loans"].post.requestBody.content["application/json"].example;
  const created = await http(app.url, "POST", "/api/loans", { json: { ...example, borrower_id: borrower } });
  assert.is(created.status, 201, "the documented example is accepted");
  check(ajv, doc, "/api/loans", "post", created);
  const id = created.body.id;
  const calls: Array<[string, string, string, object?]> = [
    ["/health", "get", "/health"],
    ["/ready", "get", "/ready"],
    ["/api/loans", "get", "/api/loans?limit=3"],
    ["/api/loans", "get", "/api/loans?limit=0"],
    ["/api/loans", "post", "/api/loans", { json: { amount: "1.005" } }],
    ["/api/loans", "post", "/api/loans", { json: { ...example, filler: "x".repeat(9000) } }],
    ["/api/loans/{id}", "get", `/api/loans/${id}`],
    ["/api/loans/{id}", "get", "/api/loans/nope"],
    ["/api/loans/{id}", "get", "/api/loans/9b2f1c4e-0000-4000-8000-000000000000"],
    ["/api/loans/{id}", "patch", `/api/loans/${id}`, { json: { status: "approved" } }],
    ["/api/loans/{id}", "patch", `/api/loans/${id}`, { json: { status: "pending" } }],
    ["/api/stats", "get", "/api/stats"],
  ];
  for (const [path, method, url, options] of calls) {
    check(ajv, doc, path, method, await http(app.url, method.toUpperCase(), url, options));
  }
  const key = `oas-${borrower}`;
  await http(app.url, "POST", "/api/loans", {
    json: { ...example, borrower_id: borrower },
    headers: { "idempotency-key": key },
  });
  const reused = await http(app.url, "POST", "/api/loans", {
    json: { ...example, amount: 1 },
    headers: { "idempotency-key": key },
  });
  check(ajv, doc, "/api/loans", "post", reused);
});

test("the documented request schema accepts what the API accepts on the documented example and the seed values", async ({
  doc,
  ajv,
}) => {
  const validate = ajv.getSchema("doc#/components/schemas/CreateLoan");
  assert.ok(validate);
  const example = doc.paths["/api/loans"].post.requestBody.content["application/json"].example;
  assert.ok(validate?.(example));
  assert.ok(
    validate?.({ borrower_id: "x", amount: "12500.00", currency: "KES", term_months: 6, interest_rate_apr: "28.00" }),
  );
  assert.not.ok(validate?.({ borrower_id: "x", amount: 0, currency: "KES" }));
  assert.not.ok(validate?.({ amount: 1, currency: "KES" }));
});

test("the metrics (on their own listener in production) have request durations by route, pool gauges and loans by currency; the public app does not serve /metrics", async ({
  app,
}) => {
  await http(app.url, "GET", "/api/loans/00000000-0000-0000-0000-000000000001");
  await http(app.url, "POST", "/api/loans", { json: { borrower_id: uniqueBorrower("m"), amount: 5, currency: "XOF" } });
  const text = await app.metrics.registry.metrics();
  assert.match(text, /http_request_duration_seconds_bucket\{[^}]*route="\/api\/loans\/:id"[^}]*status_code="200"/);
  assert.match(text, /loans_created_total\{currency="XOF"\} 1/);
  assert.match(text, /db_pool_connections_used \d+/);
  assert.match(text, /db_pool_connections_max 20/);
  assert.match(text, /process_resident_memory_bytes \d+/);
  assert.not.match(text, /route="\/api\/loans\/00000000/);
  const pub = await http(app.url, "GET", "/metrics");
  assert.is(pub.status, 404);
  assert.is(pub.headers.get("content-type"), "application/problem+json; charset=utf-8");
});

test.run();
