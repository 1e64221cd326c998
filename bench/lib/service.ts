/**
 * The service under test as a child process: compiled once (`npm run build` into bench/out/<time>/dist, so the
 * repository's own dist/ is left alone), then started as `start:prod` starts it (`node dist/src/server.js`,
 * the image's CMD) from that dist, with a production-like environment plus the variant's own variables (e.g.
 * WEB_CONCURRENCY), by the harness's Node or the binary BENCH_NODE names. Its logs go to a file, as a container's stdout would go to a log driver. Started when /ready answers; stopped with SIGTERM (graceful shutdown).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { withoutServiceVariables } from "../../test/support/env.js";
import { freePort } from "../../test/support/postgres.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * The production start command of a source tree (`start:prod` in its package.json, as the image's CMD runs it):
 * `node <entry>`, the entry under dist/. A tree without the script (an older revision) gets the historical one.
 */
export function productionEntry(sourceRoot = ROOT): string {
  const command = packageScripts(sourceRoot)["start:prod"] ?? "node dist/src/server.js";
  const match = /^node (dist\/\S+\.js)$/.exec(command.trim());
  if (!match?.[1]) throw new Error(`start:prod is not "node dist/…js": ${command}`);
  return match[1];
}

function packageScripts(sourceRoot: string): Record<string, string> {
  try {
    const pkg = JSON.parse(readFileSync(join(sourceRoot, "package.json"), "utf8")) as {
      scripts?: Record<string, string>;
    };
    return pkg.scripts ?? {};
  } catch {
    return {};
  }
}

/**
 * Compiles the service of `sourceRoot` (default: this repository; a patched copy elsewhere works too, for
 * before/after measurements in one run) with its `npm run build` into `outDir/dist` (the tree's own dist/ is
 * left alone); returns the entry point `start:prod` names, under that dist.
 */
export function buildService(outDir: string, sourceRoot = ROOT): string {
  const dist = join(outDir, "dist");
  if (packageScripts(sourceRoot).build) {
    execFileSync("npm", ["run", "--silent", "build", "--", "--outDir", dist], { cwd: sourceRoot, stdio: "inherit" });
  } else {
    // A tree without the script (an older revision): what its build was.
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    execFileSync(process.execPath, [tsc, "-p", join(sourceRoot, "tsconfig.build.json"), "--outDir", dist], {
      cwd: sourceRoot,
      stdio: "inherit",
    });
  }
  // Wherever the output is (BENCH_OUT may be outside the repository), the compiled ES modules must load as such
  // and find the repository's dependencies.
  writeFileSync(join(dist, "package.json"), '{ "type": "module", "private": true }\n');
  const modules = join(outDir, "node_modules");
  if (!resolve(outDir).startsWith(ROOT) && !existsSync(modules)) symlinkSync(join(ROOT, "node_modules"), modules);
  const entry = join(outDir, productionEntry(sourceRoot));
  if (!existsSync(entry)) throw new Error(`the build did not produce ${entry}`);
  return entry;
}

export interface RunningService {
  url: string;
  pid: number;
  env: Record<string, string>;
  stop(): Promise<number | null>;
}

export async function startService(opts: {
  entry: string;
  env: Record<string, string>;
  logFile: string;
  timeoutMs?: number;
  /** Flags for node before the entry point, e.g. `--import tsx` for a TypeScript entry. */
  nodeArgs?: string[];
  /** The Node binary (BENCH_NODE); default the harness's own. */
  node?: string;
}): Promise<RunningService> {
  const port = await freePort();
  // Every variable the service reads is cleared first (the tests' one list, read off the config module).
  const env = withoutServiceVariables();
  // BENCH_NODE names the binary below; the harness's own setting, not one the service gets.
  delete env.BENCH_NODE;
  // No metrics listener unless asked for: its default port would collide between services run side by side.
  const serviceEnv = { HOST: "127.0.0.1", PORT: String(port), METRICS_PORT: "0", ...opts.env };
  Object.assign(env, serviceEnv);
  const log = openSync(opts.logFile, "a");
  const child: ChildProcess = spawn(opts.node ?? process.execPath, [...(opts.nodeArgs ?? []), opts.entry], {
    cwd: ROOT,
    env,
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      exited = code;
      resolve(code);
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (exited !== undefined)
      throw new Error(`the service exited (code ${exited}) before it was ready; see ${opts.logFile}`);
    try {
      const res = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`the service was not ready within ${opts.timeoutMs ?? 60_000} ms; see ${opts.logFile}`);
    }
    await sleep(100);
  }
  return {
    url,
    pid: child.pid as number,
    env: { ...serviceEnv, DATABASE_URL: "(the benchmark's database)" },
    async stop() {
      if (exited !== undefined) return exited;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      try {
        return await exit;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
