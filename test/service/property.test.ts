/**
 * Property-based: generated bodies, ids and query strings never produce a 5xx; every 4xx is a problem
 * document; rejected requests leave the row count unchanged.
 */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { countLoans, http, type Res, startApp, type TestApp } from "../support/app.js";
import { fc } from "../support/property.js";

const test = suite<{ app: TestApp }>("property", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp();
});
test.after(async (ctx) => {
  await ctx.app.close();
});

const RUNS = Number(process.env.PROPERTY_RUNS ?? 150);

function assertWellFormed(r: Res<any>, label: string) {
  assert.ok(r.status < 500, `${label} → ${r.status} ${r.text.slice(0, 200)}`);
  if (r.status >= 400) {
    assert.is(r.headers.get("content-type"), "application/problem+json; charset=utf-8", label);
    assert.is(r.body.status, r.status, label);
    assert.type(r.body.title, "string");
  }
}

const edgy = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    1,
    -1,
    0.005,
    1e-7,
    1e21,
    2147483648,
    Number.MAX_SAFE_INTEGER,
    50000,
    50000.001,
    "NaN",
    "Infinity",
    "-0",
    "1e999999",
    "0x10",
    " 12 ",
    "１２",
    "ßab",
    "ﬀ",
    "İ",
    "",
    " ",
    "\u0000",
    "\ud800",
    "' OR 1=1 --",
    null,
    true,
    [],
    {},
  ),
  fc.string(),
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

const loanLike = fc.record(
  {
    borrower_id: edgy,
    amount: edgy,
    currency: fc.oneof(edgy, fc.stringMatching(/^[A-Za-z]{2,4}$/)),
    term_months: edgy,
    interest_rate_apr: edgy,
    status: edgy,
  },
  { requiredKeys: [] },
);

test("POST with generated bodies: never a 5xx, every 4xx a problem, rejected requests write nothing", async ({
  app,
}) => {
  await fc.assert(
    fc.asyncProperty(fc.oneof(loanLike, fc.jsonValue(), fc.string()), fc.boolean(), async (body, asIs) => {
      const before = await countLoans(app.db);
      // A generated string is sent as it is (usually not JSON) or as a JSON string.
      const raw = typeof body === "string" && asIs ? body : JSON.stringify(body);
      const r = await http(app.url, "POST", "/api/loans", {
        body: raw ?? "",
        headers: { "content-type": "application/json" },
      });
      assertWellFormed(r, `POST ${raw?.slice(0, 120)}`);
      const after = await countLoans(app.db);
      assert.is(after, r.status === 201 ? before + 1 : before, `row count for ${r.status}`);
    }),
    { numRuns: RUNS },
  );
});

test("GET and PATCH with generated ids: never a 5xx, every 4xx a problem", async ({ app }) => {
  const id = fc.oneof(
    fc.string(),
    fc.string({ unit: "binary", maxLength: 80 }),
    fc.uuid(),
    fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF-{}"), minLength: 30, maxLength: 40 }),
  );
  await fc.assert(
    fc.asyncProperty(id, loanLike, async (raw, body) => {
      const path = `/api/loans/${encodeURIComponent(raw.toWellFormed())}`;
      assertWellFormed(await http(app.url, "GET", path), `GET ${path}`);
      assertWellFormed(await http(app.url, "PATCH", path, { json: body }), `PATCH ${path}`);
    }),
    { numRuns: RUNS },
  );
});

test("GET /api/loans with generated query strings: never a 5xx, every 4xx a problem", async ({ app }) => {
  const key = fc.constantFrom("limit", "cursor", "status", "borrower_id", "x", "limit[]", "__proto__");
  const value = fc.oneof(
    fc.string(),
    fc.string({ unit: "binary", maxLength: 50 }),
    fc.integer().map(String),
    fc.base64String(),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(key, value), { maxLength: 4 }), async (pairs) => {
      const qs = new URLSearchParams(pairs).toString();
      const r = await http(app.url, "GET", `/api/loans?${qs}`);
      assertWellFormed(r, `GET ?${qs}`);
      if (r.status === 200) assert.ok(Array.isArray(r.body));
    }),
    { numRuns: RUNS },
  );
});

test.run();
