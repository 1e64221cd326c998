/**
 * How log lines leave the process. Each line must be written by the time the logging call returns (a synchronous
 * write to stdout): pino's default destination hands every line to libuv's thread pool instead, which costs more
 * than the rest of a `/health` request when clients open a connection per request (issue 11, bench/RESULTS.md),
 * and leaves lines in flight when the process dies.
 */
import { spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ROOT } from "../support/process.js";

const test = suite("logger");

/** Runs `script` in a child whose stdout is `file`, so what reached the file can be read back from inside it. */
function inChild(script: string, file: string, pretty = false) {
  const fd = openSync(file, "w");
  try {
    return spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT,
      env: { ...process.env, OUT_FILE: file, PRETTY: String(pretty) },
      stdio: ["ignore", fd, "pipe"],
      encoding: "utf8",
      timeout: 30_000,
    });
  } finally {
    closeSync(fd);
  }
}

test("a line is in stdout when the logging call returns, before the event loop turns", () => {
  const dir = mkdtempSync(join(tmpdir(), "logger-"));
  try {
    const file = join(dir, "out.log");
    const script = `
      import { readFileSync, writeSync } from "node:fs";
      import { createLogger } from "./service/src/logger.ts";
      const logger = createLogger({ level: "info" });
      logger.info({ n: 1 }, "first");
      logger.info({ n: 2 }, "second");
      // Read back synchronously, in the same tick: an asynchronous destination has written nothing yet.
      const seen = readFileSync(process.env.OUT_FILE, "utf8").split("\\n").filter(Boolean).length;
      writeSync(2, "lines-seen=" + seen + "\\n");
    `;
    const run = inChild(script, file);
    assert.is(run.status, 0, run.stderr);
    assert.match(run.stderr, /lines-seen=2/, run.stderr);
    const lines = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { msg: string; n: number });
    assert.equal(
      lines.map((l) => [l.msg, l.n]),
      [
        ["first", 1],
        ["second", 2],
      ],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
