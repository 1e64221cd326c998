/** The external tools the benchmark drives: present, or a failure that says how to install them. */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";

const HINTS: Record<string, string> = {
  wrk: "install it with: apt-get update && apt-get install -y wrk   (Debian/Ubuntu; macOS: brew install wrk)",
  ab: "install it with: apt-get update && apt-get install -y apache2-utils   (Debian/Ubuntu; it ships ab)",
  pgbench:
    "install it with: apt-get update && apt-get install -y postgresql-client   (Debian/Ubuntu; it ships pgbench)",
};

export function which(tool: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Exits with an install hint for every missing tool. */
export function requireTools(tools: string[]): void {
  const missing = tools.filter((t) => !which(t));
  if (missing.length === 0) return;
  for (const t of missing) process.stderr.write(`bench: \`${t}\` is not installed; ${HINTS[t] ?? ""}\n`);
  process.exit(2);
}

function firstLine(cmd: string, args: string[]): string {
  try {
    const out = execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return out.split("\n")[0]?.trim() ?? "";
  } catch (err) {
    // `wrk --version` prints its banner and exits 1.
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ""}${e.stderr ?? ""}`.split("\n")[0]?.trim() ?? "";
  }
}

/** The commit the service was built from, with "+changes" when service/ differs from it in the working tree. */
export function serviceRevision(root: string): string {
  try {
    const rev = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "service"], {
      cwd: root,
      encoding: "utf8",
    }).trim();
    return dirty ? `${rev}+changes` : rev;
  } catch {
    return "unknown";
  }
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  os: string;
  /** The harness's Node: its version and binary. */
  node: string;
  nodePath?: string;
  wrk: string;
  ab: string;
  pgbench: string;
}

export function describeMachine(): Machine {
  let osName = os.type();
  try {
    osName = /PRETTY_NAME="([^"]+)"/.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? osName;
  } catch {}
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    os: osName,
    node: process.version,
    nodePath: process.execPath,
    wrk: firstLine("wrk", ["--version"]).replace(/\s+Copyright.*$/, ""),
    ab: which("ab") ? firstLine("ab", ["-V"]).replace(/, Version/, "") : "–",
    pgbench: firstLine("pgbench", ["--version"]),
  };
}

/**
 * The versions of the Node binaries that will run the service (BENCH_NODE), each asked once with `--version`;
 * a binary that does not answer with a version stops the run before anything starts, naming its path.
 */
export function nodeVersions(binaries: Iterable<string>): Record<string, string> {
  const versions: Record<string, string> = {};
  for (const binary of binaries) {
    if (binary in versions) continue;
    let out: string;
    try {
      out = execFileSync(binary, ["--version"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 30_000,
      }).trim();
    } catch (err) {
      throw new Error(`BENCH_NODE: \`${binary} --version\` failed: ${(err as Error).message.split("\n")[0]}`);
    }
    if (!/^v\d+\.\d+\.\d+/.test(out)) {
      throw new Error(
        `BENCH_NODE: \`${binary} --version\` printed "${out.split("\n")[0]?.slice(0, 80)}", not a Node version`,
      );
    }
    versions[binary] = out;
  }
  return versions;
}

/** nodeVersions, or the reason on stderr and exit 2 (like a missing tool), before anything starts. */
export function requireNodes(binaries: Iterable<string>): Record<string, string> {
  try {
    return nodeVersions(binaries);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(2);
  }
}
