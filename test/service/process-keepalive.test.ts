/**
 * Process level: a keep-alive client whose request is in flight at SIGTERM and that then goes quiet must not
 * hold server.close() open until SHUTDOWN_GRACE_MS: the response asks it to close, and the process exits 0.
 */
import http from "node:http";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { lockLoans } from "../support/db-lock.js";
import { request } from "../support/http.js";
import { runnerDatabase } from "../support/postgres.js";
import { startServer } from "../support/process.js";
import { within } from "../support/wait.js";

const test = suite("process: graceful shutdown with keep-alive clients");

test(
  "a keep-alive connection whose request is in flight at SIGTERM is closed after its response: exit 0 well within SHUTDOWN_GRACE_MS",
  within(40_000, async () => {
    const grace = 6000;
    const db = await runnerDatabase();
    const server = await startServer({
      DATABASE_URL: db.url,
      MIGRATE_ON_START: "true",
      SEED_ON_START: "true",
      SHUTDOWN_GRACE_MS: String(grace),
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const lock = await lockLoans(db.url);
    try {
      assert.is((await request(server.url, "GET", "/health", { agent })).status, 200);
      const inFlight = request(server.url, "GET", "/api/loans", { agent, timeoutMs: 15_000 });
      inFlight.catch(() => {});
      await lock.waitForWaiters();
      const signalled = Date.now();
      server.signal("SIGTERM");
      await server.waitForLog((l) => l.msg?.startsWith("shutting down") ?? false, 3000);
      await lock.release();
      const res = await inFlight;
      assert.is(res.status, 200);
      assert.is(res.headers.connection, "close", "the response asks the client to close the connection");
      const exit = await server.waitForExit(grace + 5000);
      const took = Date.now() - signalled;
      assert.is(exit.code, 0, server.describe());
      assert.ok(took < grace / 2, `exited ${took} ms after SIGTERM (grace ${grace} ms)`);
    } finally {
      agent.destroy();
      await lock.release();
      server.kill();
      await db.stop();
    }
  }),
);

test.run();
