/**
 * The project's nginx configuration, for real: Debian's nginx renders nginx/templates/default.conf.template
 * (with the values compose.yaml gives it for production, but its upstream pointed at a local port and high
 * listen ports), terminates TLS with a certificate from nginx/generate-cert.sh, and proxies to the real service
 * (started from source against the test PostgreSQL). A TCP relay between nginx and the service records what
 * reaches the service on the wire and counts upstream connections.
 *
 * Traffic goes only to 127.0.0.0/8; the rate-limit burst is bounded (a few dozen requests).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { gunzipSync } from "node:zlib";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parse } from "yaml";
import { interpolate, parseEnvFile } from "../compose/interpolate.js";
import { freePort } from "../support/postgres.js";
import {
  type Background,
  background,
  fetchRaw,
  headerCount,
  requireTool,
  root,
  run,
  startTap,
  type Tap,
  waitFor,
} from "./support.js";

const HOST_NAME = "loans.test";

interface Nginx {
  dir: string;
  httpPort: number;
  httpsPort: number;
  process: Background;
  stop(): Promise<void>;
}

interface Context {
  dir: string;
  cert: string;
  key: string;
  caPem: string;
  service: Background;
  servicePort: number;
  tap: Tap;
  nginx: Nginx;
  /** nginx's values from compose.yaml for production (env/prod.env.example). */
  composeEnv: Record<string, string>;
}

const ctx = {} as Context;

/** The nginx service's environment exactly as compose.yaml gives it in production. */
function composeNginxEnvironment(): Record<string, string> {
  const vars = parseEnvFile(readFileSync(join(root, "env/prod.env.example"), "utf8"));
  const model = parse(interpolate(readFileSync(join(root, "compose.yaml"), "utf8"), vars));
  const env = model.services.nginx.environment as Record<string, unknown>;
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}

/** Renders the template the way the nginx image's entrypoint does: only NGINX_* variables, all of them set. */
function renderTemplate(values: Record<string, string>): string {
  const template = readFileSync(join(root, "nginx/templates/default.conf.template"), "utf8");
  const rendered = template
    .split("\n")
    .map((line) =>
      line.trimStart().startsWith("#")
        ? line
        : line.replace(/\$\{(NGINX_[A-Z_]+)\}/g, (_m, name: string) => {
            const value = values[name];
            if (value === undefined) throw new Error(`the template uses ${name}, which has no value`);
            return value;
          }),
    )
    .join("\n");
  const left = rendered.split("\n").filter((l) => !l.trimStart().startsWith("#") && /\$\{/.test(l));
  if (left.length) throw new Error(`unrendered placeholders:\n${left.join("\n")}`);
  return rendered;
}

async function startNginx(overrides: Record<string, string>): Promise<Nginx> {
  const dir = mkdtempSync(join(ctx.dir, "nginx-"));
  mkdirSync(join(dir, "tmp"));
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  const values = {
    ...ctx.composeEnv,
    NGINX_UPSTREAM: `127.0.0.1:${ctx.tap.port}`,
    NGINX_HTTP_PORT: `127.0.0.1:${httpPort}`,
    NGINX_HTTPS_PORT: `127.0.0.1:${httpsPort}`,
    NGINX_PUBLIC_HTTPS_PORT: String(httpsPort),
    NGINX_SERVER_NAME: `${HOST_NAME} localhost`,
    NGINX_CERT: ctx.cert,
    NGINX_CERT_KEY: ctx.key,
    ...overrides,
  };
  writeFileSync(join(dir, "loans.conf"), renderTemplate(values));
  // The main file the official image provides around conf.d/*.conf, reduced to a private prefix.
  writeFileSync(
    join(dir, "nginx.conf"),
    [
      "daemon off;",
      "worker_processes 1;",
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      "events { worker_connections 512; }",
      "http {",
      "  default_type application/octet-stream;",
      `  access_log ${dir}/access.log;`,
      `  client_body_temp_path ${dir}/tmp/body;`,
      `  proxy_temp_path ${dir}/tmp/proxy;`,
      `  fastcgi_temp_path ${dir}/tmp/fastcgi;`,
      `  uwsgi_temp_path ${dir}/tmp/uwsgi;`,
      `  scgi_temp_path ${dir}/tmp/scgi;`,
      `  include ${dir}/loans.conf;`,
      "}",
      "",
    ].join("\n"),
  );
  const args = ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")];
  const check = await run("nginx", ["-t", ...args], { allowFailure: true });
  assert.is(check.code, 0, `nginx -t:\n${check.stderr}`);
  assert.match(check.stderr, /syntax is ok/);
  const proc = background("nginx", args, {});
  await waitFor("nginx to answer on HTTPS", async () => {
    if (proc.child.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(join(dir, "error.log"), "utf8")}`);
    const res = await fetchRaw(`https://127.0.0.1:${httpsPort}/health`, { ca: ctx.caPem });
    return res.status === 200 ? true : undefined;
  });
  return {
    dir,
    httpPort,
    httpsPort,
    process: proc,
    // SIGQUIT: nginx's graceful shutdown.
    stop: () => proc.stop("SIGQUIT", 5_000),
  };
}

function https(path: string) {
  return `https://127.0.0.1:${ctx.nginx.httpsPort}${path}`;
}

function openssl(args: string[], timeoutMs = 10_000) {
  return run("openssl", args, { allowFailure: true, timeoutMs, input: "" });
}

/** A TLS handshake with `openssl s_client -brief`, which prints the negotiated protocol and cipher on success. */
async function handshake(port: number, extra: string[]) {
  const r = await openssl([
    "s_client",
    "-brief",
    "-connect",
    `127.0.0.1:${port}`,
    "-servername",
    HOST_NAME,
    "-CAfile",
    ctx.cert,
    "-verify_return_error",
    ...extra,
  ]);
  const text = `${r.stdout}\n${r.stderr}`;
  return {
    ok: r.code === 0 && text.includes("CONNECTION ESTABLISHED"),
    protocol: /^Protocol version: (\S+)/m.exec(text)?.[1],
    cipher: /^Ciphersuite: (\S+)/m.exec(text)?.[1],
    text,
  };
}

/** The protocol ALPN settles on when the client offers h2 and http/1.1. */
function alpn(port: number): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      { host: "127.0.0.1", port, ca: ctx.caPem, servername: HOST_NAME, ALPNProtocols: ["h2", "http/1.1"] },
      () => {
        resolve(socket.alpnProtocol ?? false);
        socket.end();
      },
    );
    socket.on("error", reject);
  });
}

function ratePerSecond(rate: string): number {
  const m = /^(\d+)r\/([sm])$/.exec(rate);
  if (!m) throw new Error(`unexpected rate ${rate}`);
  return Number(m[1]) / (m[2] === "m" ? 60 : 1);
}

const test = suite("nginx: TLS termination in front of the real service");

test.before(async () => {
  await requireTool("nginx", ["-v"], "apt-get install -y nginx");
  await requireTool("openssl", ["version"], "apt-get install -y openssl");
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error("DATABASE_URL is not set: run with `npm run test:nginx`");

  ctx.dir = mkdtempSync(join(tmpdir(), "loan-nginx-"));
  ctx.composeEnv = composeNginxEnvironment();

  // The certificate, from the project's own script.
  const certDir = join(ctx.dir, "certs");
  const gen = await run("bash", [join(root, "nginx/generate-cert.sh"), HOST_NAME], {
    env: { ...process.env, CERT_DIR: certDir },
  });
  assert.match(gen.stdout, /wrote/);
  ctx.cert = join(certDir, "tls.crt");
  ctx.key = join(certDir, "tls.key");
  ctx.caPem = readFileSync(ctx.cert, "utf8");

  // The real service, from source.
  ctx.servicePort = await freePort();
  ctx.service = background(process.execPath, ["--import", "tsx", "service/src/server.ts"], {
    env: {
      ...process.env,
      NODE_ENV: "test",
      HOST: "127.0.0.1",
      PORT: String(ctx.servicePort),
      DATABASE_URL: databaseUrl,
      MIGRATE_ON_START: "true",
      SEED_ON_START: "true",
      TRUST_PROXY: "1",
      LOG_LEVEL: "info",
    },
  });
  await waitFor(
    "the service to answer /health",
    async () => {
      if (ctx.service.child.exitCode !== null) throw new Error(`service exited:\n${ctx.service.output()}`);
      const res = await fetchRaw(`http://127.0.0.1:${ctx.servicePort}/health`);
      return res.status === 200 ? true : undefined;
    },
    60_000,
  );
  ctx.tap = await startTap(ctx.servicePort);
  ctx.nginx = await startNginx({});
});

test.after(async () => {
  await ctx.nginx?.stop();
  await ctx.tap?.close();
  await ctx.service?.stop("SIGTERM", 15_000);
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
});

test("HTTPS proxies to the API: list, create and read back a loan through nginx", async () => {
  const list = await fetchRaw(https("/api/loans"), { ca: ctx.caPem, localAddress: "127.0.0.11" });
  assert.is(list.status, 200);
  assert.ok(Array.isArray(JSON.parse(list.text)), "JSON array");

  const created = await fetchRaw(https("/api/loans"), {
    method: "POST",
    ca: ctx.caPem,
    localAddress: "127.0.0.11",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ borrower_id: "usr_nginx_test", amount: 1234.5, currency: "kes" }),
  });
  assert.is(created.status, 201, created.text);
  const loan = JSON.parse(created.text);
  assert.is(loan.amount, "1234.50");
  const read = await fetchRaw(https(`/api/loans/${loan.id}`), { ca: ctx.caPem, localAddress: "127.0.0.11" });
  assert.is(read.status, 200);
  assert.is(JSON.parse(read.text).id, loan.id);
});

test("the certificate verifies for localhost, 127.0.0.1 and the configured host name, and no other", async () => {
  for (const servername of ["localhost", HOST_NAME]) {
    const res = await fetchRaw(https("/health"), { ca: ctx.caPem, servername });
    assert.is(res.status, 200, servername);
  }
  // By IP address: Node checks the IP SAN (no SNI is sent for an IP).
  assert.is((await fetchRaw(https("/health"), { ca: ctx.caPem })).status, 200);
  let refused = "";
  try {
    await fetchRaw(https("/health"), { ca: ctx.caPem, servername: "other.example" });
  } catch (err) {
    refused = (err as Error).message;
  }
  assert.match(refused, /does not match|altnames/i);
});

test("HTTP answers only with a permanent redirect to the same URL on HTTPS", async () => {
  const res = await fetchRaw(`http://127.0.0.1:${ctx.nginx.httpPort}/api/loans?status=pending`, {
    headers: { host: HOST_NAME },
  });
  assert.is(res.status, 301);
  assert.is(res.headers.location, `https://${HOST_NAME}:${ctx.nginx.httpsPort}/api/loans?status=pending`);
  assert.is(ctx.tap.sent().includes("status=pending"), false, "nothing reached the service over plain HTTP");
});

test("the redirect leaves out the port when the public HTTPS port is 443", async () => {
  const second = await startNginx({ NGINX_PUBLIC_HTTPS_PORT: "443" });
  try {
    const res = await fetchRaw(`http://127.0.0.1:${second.httpPort}/x`, { headers: { host: HOST_NAME } });
    assert.is(res.status, 301);
    assert.is(res.headers.location, `https://${HOST_NAME}/x`);
  } finally {
    await second.stop();
  }
});

test("TLS 1.1 is refused while TLS 1.2 (Mozilla intermediate ciphers) and TLS 1.3 succeed", async () => {
  const port = ctx.nginx.httpsPort;
  const tls13 = await handshake(port, ["-tls1_3"]);
  assert.ok(tls13.ok, tls13.text);
  assert.is(tls13.protocol, "TLSv1.3");

  const tls12 = await handshake(port, ["-tls1_2"]);
  assert.ok(tls12.ok, tls12.text);
  assert.is(tls12.protocol, "TLSv1.2");
  const intermediate = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
  ];
  assert.ok(intermediate.includes(tls12.cipher ?? ""), `TLS 1.2 cipher ${tls12.cipher}`);

  // A TLS 1.2 client offering only a CBC (non-AEAD) cipher is refused.
  const cbc = await handshake(port, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"]);
  assert.not.ok(cbc.ok, cbc.text);

  // TLS 1.1 (the client allowed to offer it with SECLEVEL=0) is refused with a protocol_version alert.
  const tls11 = await handshake(port, ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
  assert.not.ok(tls11.ok, tls11.text);
  assert.match(tls11.text, /alert protocol version|unsupported protocol|wrong version/i);

  // Control: the same client command does complete TLS 1.1 against a server that allows it, so the refusal
  // above is nginx's configuration, not the client.
  let controlProtocol = "";
  const controlPort = await freePort();
  const control = background(
    "openssl",
    [
      "s_server",
      "-accept",
      `127.0.0.1:${controlPort}`,
      "-cert",
      ctx.cert,
      "-key",
      ctx.key,
      "-tls1_1",
      "-cipher",
      "DEFAULT@SECLEVEL=0",
      "-www",
    ],
    {},
  );
  try {
    await waitFor("openssl s_server", async () => (control.output().includes("ACCEPT") ? true : undefined), 10_000);
    const allowed = await handshake(controlPort, ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    assert.ok(allowed.ok, `control TLS 1.1 handshake failed:\n${allowed.text}`);
    assert.is(allowed.protocol, "TLSv1.1");
    controlProtocol = `${allowed.protocol} completed`;
  } finally {
    await control.stop("SIGTERM", 3_000);
  }

  // HTTP/2 is offered by ALPN.
  const negotiated = await alpn(port);
  assert.is(negotiated, "h2");
  const alert = /alert [a-z ]+/.exec(tls11.text)?.[0] ?? "refused";
  console.log(
    `  TLS 1.3: ${tls13.cipher}; TLS 1.2: ${tls12.cipher}; TLS 1.2 CBC-only client: refused; ` +
      `TLS 1.1: refused (${alert}), same client vs a TLS 1.1 server: ${controlProtocol}; ALPN: ${negotiated}`,
  );
});

test("HSTS and the security headers are present exactly once, also on errors; no version leaks", async () => {
  const expected: Record<string, string> = {
    "strict-transport-security": "max-age=63072000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  };
  const answers = {
    "200 from the service": await fetchRaw(https("/api/stats"), { ca: ctx.caPem, localAddress: "127.0.0.12" }),
    "404 from the service": await fetchRaw(https("/nowhere"), { ca: ctx.caPem }),
    "413 from nginx": await fetchRaw(https("/api/loans"), {
      method: "POST",
      ca: ctx.caPem,
      localAddress: "127.0.0.12",
      headers: { "content-type": "application/json" },
      body: "x".repeat(200 * 1024),
    }),
  };
  assert.is(answers["200 from the service"].status, 200);
  assert.is(answers["404 from the service"].status, 404);
  assert.is(answers["413 from nginx"].status, 413);
  for (const [what, res] of Object.entries(answers)) {
    for (const [name, value] of Object.entries(expected)) {
      assert.is(headerCount(res.rawHeaders, name), 1, `${what}: ${name} appears once`);
      assert.is(res.headers[name], value, `${what}: ${name}`);
    }
    assert.is(res.headers.server, "nginx", `${what}: server_tokens off`);
    assert.is(res.headers["x-powered-by"], undefined);
  }
});

test("the client address reaches the service as X-Forwarded-For (a forged one is replaced), with Proto and Host", async () => {
  const marker = `xff-${Date.now()}`;
  const res = await fetchRaw(https("/api/loans?limit=1"), {
    ca: ctx.caPem,
    servername: HOST_NAME,
    localAddress: "127.0.0.2",
    headers: { host: HOST_NAME, "x-request-id": marker, "x-forwarded-for": "203.0.113.9" },
  });
  assert.is(res.status, 200);
  assert.is(res.headers["x-request-id"], marker, "the service saw and echoed the request id");
  const head = ctx.tap
    .sent()
    .split("\r\n\r\n")
    .find((block) => block.includes(`X-Request-Id: ${marker}`));
  assert.ok(head, "the request reached the service");
  assert.match(head, /\r\nX-Forwarded-For: 127\.0\.0\.2\r\n/);
  assert.not.match(head, /203\.0\.113\.9/);
  assert.match(head, /\r\nX-Forwarded-Proto: https\r\n/);
  assert.match(head, new RegExp(`\\r\\nX-Forwarded-Host: ${HOST_NAME.replace(".", "\\.")}\\r\\n`));
  assert.match(head, /\r\nX-Real-IP: 127\.0\.0\.2\r\n/);
  assert.match(head, /^GET \/api\/loans\?limit=1 HTTP\/1\.1\r\n/m);
});

test("JSON is gzip-compressed when the client accepts it, and only then", async () => {
  // Enough loans for a body over gzip_min_length (1 KiB).
  for (let i = 0; i < 8; i++) {
    await fetchRaw(https("/api/loans"), {
      method: "POST",
      ca: ctx.caPem,
      localAddress: "127.0.0.13",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ borrower_id: `usr_gzip_${i}`, amount: 100 + i, currency: "USD" }),
    });
  }
  const plain = await fetchRaw(https("/api/loans"), { ca: ctx.caPem, localAddress: "127.0.0.13" });
  assert.is(plain.status, 200);
  assert.ok(plain.body.length > 1024, `body of ${plain.body.length} bytes`);
  assert.is(plain.headers["content-encoding"], undefined);

  const gz = await fetchRaw(https("/api/loans"), {
    ca: ctx.caPem,
    localAddress: "127.0.0.13",
    headers: { "accept-encoding": "gzip" },
  });
  assert.is(gz.status, 200);
  assert.is(gz.headers["content-encoding"], "gzip");
  assert.match(String(gz.headers.vary), /Accept-Encoding/i);
  const unzipped = JSON.parse(gunzipSync(gz.body).toString("utf8"));
  assert.ok(Array.isArray(unzipped) && unzipped.length >= 8);
  assert.ok(gz.body.length < plain.body.length, `gzip ${gz.body.length} < plain ${plain.body.length}`);
});

test("upstream keepalive: 20 client connections reuse one or two connections to the service", async () => {
  ctx.tap.reset();
  for (let i = 0; i < 20; i++) {
    const res = await fetchRaw(https("/health"), { ca: ctx.caPem }); // a new client TLS connection each time
    assert.is(res.status, 200);
  }
  assert.ok(ctx.tap.connections() <= 2, `${ctx.tap.connections()} new upstream connections for 20 requests`);
});

test("the service's /metrics is not published through nginx", async () => {
  const marker = `metrics-${Date.now()}`;
  const res = await fetchRaw(https("/metrics"), { ca: ctx.caPem, headers: { "x-request-id": marker } });
  assert.is(res.status, 404);
  assert.not.ok(ctx.tap.sent().includes(marker), "the request did not reach the service");
  assert.is(res.headers["strict-transport-security"], "max-age=63072000");
});

test("a body over the limit gets 413 problem+json from nginx and never reaches the service", async () => {
  const limit = ctx.composeEnv.NGINX_CLIENT_MAX_BODY_SIZE ?? "";
  assert.match(limit, /^\d+k$/);
  const bytes = (Number.parseInt(limit, 10) + 1) * 1024;
  const marker = `too-large-${Date.now()}`;
  const res = await fetchRaw(https("/api/loans"), {
    method: "POST",
    ca: ctx.caPem,
    localAddress: "127.0.0.14",
    headers: { "content-type": "application/json", "x-request-id": marker },
    body: `{"borrower_id":"${"x".repeat(bytes)}"}`,
  });
  assert.is(res.status, 413);
  assert.is(res.headers["content-type"], "application/problem+json");
  assert.is(JSON.parse(res.text).status, 413);
  assert.not.ok(ctx.tap.sent().includes(marker), "the request did not reach the service");
});

test("the /api rate limit answers 429 past the burst, per client address; other paths are not limited", async () => {
  const rate = ratePerSecond(ctx.composeEnv.NGINX_API_RATE ?? "");
  const burst = Number(ctx.composeEnv.NGINX_API_BURST);
  assert.ok(rate > 0 && burst > 0, "rate and burst from compose.yaml");
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const total = burst + 40;
  const statuses: number[] = [];
  let tooMany: Awaited<ReturnType<typeof fetchRaw>> | undefined;
  const started = Date.now();
  try {
    for (let i = 0; i < total; i++) {
      const res = await fetchRaw(https("/api/stats"), { ca: ctx.caPem, localAddress: "127.0.0.3", agent });
      statuses.push(res.status);
      if (res.status === 429) tooMany ??= res;
    }
  } finally {
    agent.destroy();
  }
  const seconds = (Date.now() - started) / 1000;
  const ok = statuses.filter((s) => s === 200).length;
  const limited = statuses.filter((s) => s === 429).length;
  console.log(`  rate limit ${rate}/s burst ${burst}: ${ok} × 200, ${limited} × 429 in ${seconds.toFixed(2)} s`);
  assert.is(ok + limited, total, `only 200 and 429: ${statuses.join(",")}`);
  assert.ok(ok >= burst + 1, `the burst is let through (${ok} ok)`);
  assert.ok(ok <= burst + 1 + Math.ceil(rate * seconds) + 1, `no more than burst + rate × time (${ok} ok)`);
  assert.ok(limited > 0, "429 past the burst");
  assert.ok(tooMany, "a 429 answer");
  assert.is(tooMany.headers["content-type"], "application/problem+json");
  assert.is(JSON.parse(tooMany.text).status, 429);
  assert.is(tooMany.headers["retry-after"], "1");
  assert.is(tooMany.headers["strict-transport-security"], "max-age=63072000");

  // Another client is not affected, and the same client still reaches non-/api paths.
  const other = await fetchRaw(https("/api/stats"), { ca: ctx.caPem, localAddress: "127.0.0.4" });
  assert.is(other.status, 200);
  const health = await fetchRaw(https("/health"), { ca: ctx.caPem, localAddress: "127.0.0.3" });
  assert.is(health.status, 200);
});

test.run();
