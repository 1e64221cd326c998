/**
 * Zero setup as root (the pipeline's test container runs as root, and so does CI here): `npm start` and the test
 * runner's embedded PostgreSQL work from a clone inside a folder other users cannot enter, where PostgreSQL's
 * unprivileged user can reach neither node_modules nor the default data folder; a data folder that user cannot
 * use stops start-up with a sentence saying what to do. Run as another user, the same clone simply works.
 */
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { isRoot } from "../../service/src/embedded-access.js";
import { request } from "../support/http.js";
import { freePort } from "../support/postgres.js";
import { type PrivateClone, privateClone } from "../support/private-clone.js";
import { waitFor, within } from "../support/wait.js";

const test = suite<{ clone: PrivateClone; cleanup: string[] }>("process: embedded PostgreSQL from a private folder", {
  cleanup: [],
} as unknown as { clone: PrivateClone; cleanup: string[] });

test.before((ctx) => {
  ctx.clone = privateClone();
});
test.after((ctx) => {
  ctx.clone?.remove();
  for (const dir of ctx.cleanup) rmSync(dir, { recursive: true, force: true });
});

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(DATABASE_|EMBEDDED_PG_|METRICS_|PORT$|HOST$|NODE_ENV$|LOG_|MIGRATE_|SEED_)/.test(k)) delete env[k];
  }
  return { ...env, NODE_ENV: "development", HOST: "127.0.0.1", METRICS_PORT: "0", LOG_LEVEL: "info", ...extra };
}

function startIn(cwd: string, args: string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c));
  child.stderr.on("data", (c: Buffer) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return {
    child,
    output: () => out,
    exited,
    kill: () => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {}
    },
  };
}

test(
  "npm start's embedded PostgreSQL starts from the private clone, serves the seeded API and stops with exit 0",
  within(120_000, async ({ clone, cleanup }) => {
    const port = await freePort();
    const server = startIn(
      clone.dir,
      ["service/src/server.ts"],
      childEnv({ PORT: String(port), EMBEDDED_PG_PORT: String(await freePort()) }),
    );
    try {
      await waitFor(
        "listening",
        () => /"msg":"listening"/.test(server.output()) || server.child.exitCode !== null,
        90_000,
        200,
      );
      assert.match(server.output(), /"msg":"listening"/, server.output().slice(-3000));
      const loans = await request(`http://127.0.0.1:${port}`, "GET", "/api/loans");
      assert.is(loans.status, 200);
      assert.ok(loans.body.length >= 5, "the seed loans");
      if (isRoot()) {
        assert.match(server.output(), /using a copy of its binaries/, "root: the binaries were made reachable");
        const moved =
          /"dataDir":"([^"]+)","msg":"running as root: the postgres user cannot reach the default data folder/.exec(
            server.output(),
          );
        assert.ok(moved, "root: the data folder moved where postgres can reach it");
        if (moved?.[1]) cleanup.push(moved[1]);
      }
      server.child.kill("SIGTERM");
      assert.is(await server.exited, 0, server.output().slice(-2000));
    } finally {
      server.kill();
    }
  }),
);

test(
  "the test runner's embedded PostgreSQL (test/support/postgres.ts) starts from the private clone too",
  within(90_000, async ({ clone }) => {
    const script = join(clone.dir, "probe.ts");
    writeFileSync(
      script,
      `import { startTestPostgres } from "./test/support/postgres.ts";
const pg = await startTestPostgres({ database: "probe" });
const { default: Pg } = await import("pg");
const c = new Pg.Client(pg.url); await c.connect();
const r = await c.query("select 41 + 1 as n"); await c.end();
await pg.stop();
process.stdout.write("ANSWER " + r.rows[0].n + "\\n", () => process.exit(0));
`,
    );
    const probe = startIn(clone.dir, ["probe.ts"], childEnv({}));
    try {
      const code = await probe.exited;
      assert.is(code, 0, probe.output().slice(-3000));
      assert.match(probe.output(), /ANSWER 42/);
    } finally {
      probe.kill();
    }
  }),
);

test(
  "a data folder the postgres user cannot use stops start-up with a sentence saying what to do, never a TypeError",
  within(60_000, async ({ clone, cleanup }) => {
    if (!isRoot()) {
      // Not root: PostgreSQL runs as this user, who owns every folder it creates; nothing to refuse.
      assert.ok(true);
      return;
    }
    // An existing cluster only root can read.
    const locked = mkdtempSync(join(tmpdir(), "loan-locked-"));
    cleanup.push(locked);
    chmodSync(locked, 0o755);
    const data = join(locked, "data");
    mkdirSync(data, { mode: 0o700 });
    writeFileSync(join(data, "PG_VERSION"), "17\n");
    const a = startIn(
      clone.dir,
      ["service/src/server.ts"],
      childEnv({ PORT: String(await freePort()), EMBEDDED_PG_DIR: data }),
    );
    assert.is(await a.exited, 1);
    assert.match(a.output(), /cannot be read or written by the \\"postgres\\" user/);
    assert.match(a.output(), /chown -R postgres:postgres/);
    assert.not.match(a.output(), /Cannot read properties of undefined/);

    // An explicit folder inside the private one.
    const b = startIn(
      clone.dir,
      ["service/src/server.ts"],
      childEnv({ PORT: String(await freePort()), EMBEDDED_PG_DIR: join(clone.outer, "pgdata") }),
    );
    assert.is(await b.exited, 1);
    assert.match(b.output(), /cannot enter/);
    assert.match(b.output(), /Set EMBEDDED_PG_DIR to a folder it can reach/);
  }),
);

test.run();
