// test/run.ts: process-group service-light
/**
 * Hostile input, in-process against the real app and HTTP server: each class of request an outside probe turned
 * into a 500, a silently altered row or an unbounded wait gets its 4xx problem document (or the connection
 * closed) — and the client's fault is logged below error level, without a stack.
 */
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";
import { pino } from "pino";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { countLoans, http, startApp, type TestApp, uniqueBorrower } from "../support/app.js";
import { rawConnect } from "../support/raw-http.js";

interface LogLine {
  level: number;
  msg: string;
  err?: { stack?: string };
  [key: string]: unknown;
}

const lines: LogLine[] = [];
const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });

const test = suite<{ app: TestApp }>("hostile input", {} as { app: TestApp });
test.before(async (ctx) => {
  ctx.app = await startApp({ logger, requestTimeoutMs: 1500 });
});
test.after(async (ctx) => {
  await ctx.app.close();
});

const PROBLEM = "application/problem+json; charset=utf-8";
const SEED = "/api/loans/00000000-0000-0000-0000-000000000001";

async function send(
  app: TestApp,
  method: string,
  path: string,
  body?: Uint8Array,
  headers: Record<string, string> = {},
) {
  const res = await fetch(app.url + path, { method, headers, body });
  const text = await res.text();
  return { status: res.status, type: res.headers.get("content-type"), headers: res.headers, text };
}

function assertProblem(r: { status: number; type: string | null; text: string }, status: number, label: string) {
  assert.is(r.status, status, `${label}: ${r.text}`);
  assert.is(r.type, PROBLEM, label);
  const body = JSON.parse(r.text) as { status: number; title: string; detail: string };
  assert.is(body.status, status, label);
  assert.type(body.detail, "string");
  return body;
}

const noErrorLogs = (label: string) => {
  const bad = lines.filter((l) => l.level >= 50);
  assert.equal(bad, [], `${label}: nothing logged at error level`);
};

const valid = JSON.stringify({ borrower_id: "usr_zip", amount: 10, currency: "KES" });

test("a compressed body that is not valid gzip, deflate or br data is a 400 problem, logged below error level without a stack", async ({
  app,
}) => {
  lines.length = 0;
  const garbage = new TextEncoder().encode("this is not compressed data at all, not even a little");
  for (const encoding of ["gzip", "deflate", "br", "GZIP"]) {
    const r = await send(app, "POST", "/api/loans", garbage, {
      "content-type": "application/json",
      "content-encoding": encoding,
    });
    assertProblem(r, 400, encoding);
    // A gzip stream cut short is broken data too.
    const cut = gzipSync(valid).subarray(0, 12);
    assertProblem(
      await send(app, "PATCH", SEED, cut, { "content-type": "application/json", "content-encoding": "gzip" }),
      400,
      `${encoding} truncated`,
    );
  }
  noErrorLogs("bad compressed bodies");
  const rejected = lines.filter((l) => l.msg === "request rejected");
  assert.ok(rejected.length >= 8, "each is logged as a rejected request");
  assert.ok(
    rejected.every((l) => l.level === 30 && !l.err?.stack),
    "at info, without a stack",
  );
});

test("valid gzip, deflate and br bodies are accepted; an unsupported Content-Encoding is a 415 problem", async ({
  app,
}) => {
  const encoders: Record<string, (s: string) => Uint8Array> = {
    gzip: gzipSync,
    deflate: deflateSync,
    br: brotliCompressSync,
  };
  for (const [encoding, encode] of Object.entries(encoders)) {
    const borrower = uniqueBorrower(encoding);
    const r = await send(
      app,
      "POST",
      "/api/loans",
      encode(JSON.stringify({ borrower_id: borrower, amount: 3, currency: "KES" })),
      {
        "content-type": "application/json",
        "content-encoding": encoding,
      },
    );
    assert.is(r.status, 201, `${encoding}: ${r.text}`);
    assert.is(JSON.parse(r.text).borrower_id, borrower);
  }
  lines.length = 0;
  for (const encoding of ["compress", "zstd-ish", "identity, gzip", "x"]) {
    const r = await send(app, "POST", "/api/loans", new TextEncoder().encode(valid), {
      "content-type": "application/json",
      "content-encoding": encoding,
    });
    assertProblem(r, 415, encoding);
  }
  noErrorLogs("unsupported encodings");
});

test("broken percent-encoding in a path parameter is a 400 problem, never a 500", async ({ app }) => {
  lines.length = 0;
  for (const path of [
    "/api/loans/%ZZ",
    "/api/loans/%",
    "/api/loans/%E0%A4%A",
    "/api/loans/%C0%AF",
    "/api/loans/abc%",
  ]) {
    for (const method of ["GET", "PATCH"]) {
      const r = await send(app, method, path, method === "PATCH" ? new TextEncoder().encode("{}") : undefined, {
        "content-type": "application/json",
      });
      assertProblem(r, 400, `${method} ${path}`);
    }
  }
  noErrorLogs("broken percent-encoding");
});

test("invalid UTF-8 in a body is a 400 and nothing is stored (never U+FFFD)", async ({ app }) => {
  const before = await countLoans(app.db);
  const enc = new TextEncoder();
  const bodies = [
    Buffer.concat([
      enc.encode('{"borrower_id":"usr_'),
      Buffer.from([0xff, 0xfe]),
      enc.encode('","amount":5,"currency":"KES"}'),
    ]),
    Buffer.concat([enc.encode('{"borrower_id":"'), Buffer.from([0xc3]), enc.encode('","amount":5,"currency":"KES"}')]),
    // An overlong encoding of "/" and a UTF-16 surrogate encoded in UTF-8 (CESU): both invalid UTF-8.
    Buffer.concat([
      enc.encode('{"borrower_id":"a'),
      Buffer.from([0xc0, 0xaf]),
      enc.encode('","amount":5,"currency":"KES"}'),
    ]),
    Buffer.concat([
      enc.encode('{"borrower_id":"a'),
      Buffer.from([0xed, 0xa0, 0x80]),
      enc.encode('","amount":5,"currency":"KES"}'),
    ]),
  ];
  for (const body of bodies) {
    const r = await send(app, "POST", "/api/loans", body, { "content-type": "application/json" });
    const problem = assertProblem(r, 400, body.toString("hex"));
    assert.match(problem.detail, /UTF-8/);
  }
  assert.is(await countLoans(app.db), before);
});

test("a charset other than UTF-8 is a 415 problem that says so; utf-8 in any spelling is accepted", async ({ app }) => {
  const before = await countLoans(app.db);
  for (const charset of ["latin1", "ISO-8859-1", "utf-16", '"windows-1252"', "us-ascii", "koi8-r"]) {
    const r = await send(app, "POST", "/api/loans", new TextEncoder().encode(valid), {
      "content-type": `application/json; charset=${charset}`,
    });
    const problem = assertProblem(r, 415, charset);
    assert.match(problem.detail, /UTF-8/);
  }
  assert.is(await countLoans(app.db), before);
  for (const charset of ["utf-8", "UTF-8", "utf8", '"utf-8"']) {
    const borrower = uniqueBorrower("cs");
    const r = await send(
      app,
      "POST",
      "/api/loans",
      new TextEncoder().encode(JSON.stringify({ borrower_id: borrower, amount: 1, currency: "EUR" })),
      {
        "content-type": `application/json; charset=${charset}`,
      },
    );
    assert.is(r.status, 201, `${charset}: ${r.text}`);
  }
});

test("borrower_id refuses C0/C1 controls, bidirectional controls and names with nothing visible; real names in any script pass", async ({
  app,
}) => {
  const refused = [
    "usr\u009b31m",
    "\u0085usr",
    "usr\u0007",
    "usr\u007f",
    "\u200b",
    "\u200b\u200d\u2060",
    "\u3164",
    "\u115f\u1160",
    "\u00ad",
    "\ufe0f",
    "\u0301",
    "\u2800\u200b".slice(1),
    "   \u00a0\u3000",
    "abc\u202egnp.exe",
    "\u2066usr\u2069",
    "usr\u2028x",
    "\ud800usr",
  ];
  for (const borrower_id of refused) {
    const r = await http(app.url, "POST", "/api/loans", { json: { borrower_id, amount: 1, currency: "KES" } });
    assert.is(r.status, 400, `${JSON.stringify(borrower_id)}: ${r.text}`);
    assert.equal(r.body.errors, [{ field: "borrower_id", message: "must be printable text, not blank" }]);
    if (borrower_id.isWellFormed()) {
      const q = await http(app.url, "GET", `/api/loans?borrower_id=${encodeURIComponent(borrower_id)}`);
      assert.is(q.status, 400, `filter ${JSON.stringify(borrower_id)}`);
    }
  }
  for (const name of ["José Ñúñez", "李小龍", "👩‍👩‍👧", "usr kenya 001", "ä", "Ωmega"]) {
    const borrower_id = `${name} ${uniqueBorrower("u")}`;
    const r = await http(app.url, "POST", "/api/loans", { json: { borrower_id, amount: 1, currency: "KES" } });
    assert.is(r.status, 201, `${name}: ${r.text}`);
    assert.is(r.body.borrower_id, borrower_id);
  }
});

test("the OpenAPI document carries the borrower_id rule (Unicode property classes) from the same schema", async ({
  app,
}) => {
  const doc = (await http(app.url, "GET", "/openapi.json")).body;
  const pattern: string = doc.components.schemas.CreateLoan.properties.borrower_id.pattern;
  assert.match(pattern, /\\p\{Cc\}/);
  assert.match(pattern, /\\p\{Cf\}/);
  const re = new RegExp(pattern, "u");
  assert.ok(re.test("usr_kenya_001"));
  assert.not.ok(re.test("\u009b"));
});

test("limit must be decimal digits: 1e309, Infinity, 0x10, +5, ' 5', 5.0, -1 and empty are 400s", async ({ app }) => {
  for (const limit of [
    "1e309",
    "1e2",
    "Infinity",
    "-Infinity",
    "NaN",
    "0x10",
    "0b11",
    "0o7",
    "+5",
    " 5",
    "5 ",
    "5.0",
    "-1",
    "",
    "٥",
  ]) {
    const r = await http(app.url, "GET", `/api/loans?limit=${encodeURIComponent(limit)}`);
    assert.is(r.status, 400, `limit=${JSON.stringify(limit)}: ${r.status}`);
    assert.equal(r.body.errors?.[0]?.field, "limit", JSON.stringify(limit));
  }
  for (const [limit, n] of [
    ["5", 5],
    ["005", 5],
    ["1", 1],
  ] as const) {
    const r = await http(app.url, "GET", `/api/loans?limit=${limit}`);
    assert.is(r.status, 200, limit);
    assert.is(r.body.length, n);
  }
  assert.is((await http(app.url, "GET", "/api/loans?limit=201")).status, 400);
  assert.is((await http(app.url, "GET", "/api/loans?limit=0")).status, 400);
});

test("a declared Content-Length over the limit is a 413 problem before any of the body is sent, and the connection closes", async ({
  app,
}) => {
  for (const [length, status] of [
    ["1000000000", 413],
    ["8193", 413],
    // Past what Node's parser reads as a number: its own 400, as a problem document too.
    ["99999999999999999999", 400],
  ] as const) {
    const c = await rawConnect(app.port);
    await c.write(
      `POST /api/loans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`,
    );
    const [r] = await c.waitForResponses(1, 5000);
    assert.is(r?.status, status, length);
    assert.is(r?.headers["content-type"], PROBLEM);
    assert.is(r?.headers.connection, "close");
    assert.is(JSON.parse(r?.body ?? "{}").status, status);
    assert.ok(await c.closed(5000), `${length}: the server closes the connection`);
  }
});

test("a client streaming megabytes after an oversized Content-Length still reads its 413, and the server stops reading", async ({
  app,
}) => {
  const c = await rawConnect(app.port);
  await c.write(
    `POST /api/loans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n`,
  );
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  let sent = 0;
  // Keep writing until the server has answered and closed, or 20 MB.
  while (sent < 20 * 1024 * 1024 && c.responses().length === 0 && !c.socket.destroyed) {
    await c.write(chunk);
    sent += chunk.length;
  }
  const [r] = await c.waitForResponses(1, 5000);
  assert.is(r?.status, 413);
  assert.ok(await c.closed(5000), "closed");
  assert.ok(sent < 20 * 1024 * 1024, `the answer came before 20 MB were sent (sent ${sent})`);
});

test("a body trickled slower than the request timeout is cut with a 408 problem and the connection is closed", async ({
  app,
}) => {
  const before = await countLoans(app.db);
  const c = await rawConnect(app.port);
  const body = JSON.stringify({ borrower_id: uniqueBorrower("slow"), amount: 1, currency: "KES" });
  await c.write(
    `POST /api/loans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
  );
  // One byte every 200 ms: the whole body would take ~12 s; the app's request timeout is 1.5 s.
  const trickle = setInterval(() => {
    if (!c.socket.destroyed) c.socket.write(body.slice(0, 1));
  }, 200);
  try {
    assert.ok(await c.closed(8000), "the server closed the connection");
  } finally {
    clearInterval(trickle);
  }
  const [r] = c.responses();
  assert.is(r?.status, 408, c.received().toString());
  assert.is(r?.headers["content-type"], PROBLEM);
  assert.is(await countLoans(app.db), before);
});

test("headers trickled past the timeout are cut too; a malformed request line gets a 400 problem", async ({ app }) => {
  const slow = await rawConnect(app.port);
  await slow.write("GET /health HTTP/1.1\r\n");
  const drip = setInterval(() => void slow.write("X-A: b\r\n"), 200);
  try {
    assert.ok(await slow.closed(8000), "closed");
  } finally {
    clearInterval(drip);
  }
  assert.is(slow.responses()[0]?.status, 408);

  for (const line of ["GET /api/loans/\x01 HTTP/1.1", "GET /a b c HTTP/1.1", "\x00\x01\x02", "GET / HTTP/9.9"]) {
    const c = await rawConnect(app.port);
    await c.write(`${line}\r\nHost: x\r\n\r\n`);
    assert.ok(await c.closed(5000), JSON.stringify(line));
    const [r] = c.responses();
    assert.is(r?.status, 400, JSON.stringify(line));
    assert.is(r?.headers["content-type"], PROBLEM);
    assert.is(JSON.parse(r?.body ?? "{}").status, 400);
  }
});

test("metrics label every outcome by the full route template in canonical casing, shed 503s included; unknown paths share one label", async ({
  app,
}) => {
  const count = async (route: string, status: number, method = "GET") => {
    const metric = await app.metrics.registry.getSingleMetric("http_request_duration_seconds")?.get();
    const v = metric?.values.find(
      (x) =>
        (x as { metricName?: string }).metricName === "http_request_duration_seconds_count" &&
        x.labels.route === route &&
        x.labels.status_code === String(status) &&
        x.labels.method === method,
    );
    return v?.value ?? 0;
  };
  const routes = ["/api/loans/:id", "/api/loans", "/api/stats", "unmatched"] as const;
  const before = new Map<string, number>();
  for (const route of routes) {
    for (const status of [200, 400, 404, 405, 503]) before.set(`${route} ${status}`, await count(route, status));
  }
  const delta = async (route: string, status: number) =>
    (await count(route, status)) - (before.get(`${route} ${status}`) ?? 0);

  await http(app.url, "GET", SEED);
  await http(app.url, "GET", "/API/Loans/00000000-0000-0000-0000-000000000001");
  await http(app.url, "GET", "/api/loans/%ZZ");
  await http(app.url, "GET", "/api/loans/00000000-0000-0000-0000-0000000000ff");
  await http(app.url, "GET", "/Api/Stats/");
  await http(app.url, "GET", "/api/loans?limit=1e309");
  await http(app.url, "GET", "/no/such/thing");
  await http(app.url, "GET", "/API/LOANS/x/y");
  // 20 pipelined on one connection: past 8 in progress, shed with 503 under the same route.
  const c = await rawConnect(app.port);
  await c.write(`GET ${SEED} HTTP/1.1\r\nHost: x\r\n\r\n`.repeat(20));
  const answers = await c.waitForResponses(20, 10_000);
  c.destroy();
  const shed = answers.filter((r) => r.status === 503).length;
  assert.ok(shed > 0, "some were shed");

  assert.is(await delta("/api/loans/:id", 200), 2 + (20 - shed), "successes in either casing");
  assert.is(await delta("/api/loans/:id", 400), 1, "broken percent-encoding");
  assert.is(await delta("/api/loans/:id", 404), 1);
  assert.is(await delta("/api/loans/:id", 503), shed, "shed requests");
  assert.is(await delta("/api/stats", 200), 1, "trailing slash and casing");
  assert.is(await delta("/api/loans", 400), 1);
  assert.is(await delta("unmatched", 404), 2);
  const text = await app.metrics.registry.metrics();
  assert.not.match(text, /route="[^"]*[A-Z][^"]*"/, "no request casing in a label");
  assert.not.match(text, /route="\/loans/, "never a route without its mount point");
});

test.run();
