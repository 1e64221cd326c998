/**
 * What the processes did during a measurement, from /proc (Linux): CPU time per group of processes (the service,
 * PostgreSQL, the load generator) and the service's resident memory, sampled while the load runs.
 */
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number;
}

function readProc(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may contain spaces and parentheses: split after the last ')'.
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const fields = stat.slice(close + 2).split(" ");
    // fields[0] is state (field 3); utime/stime are fields 14/15 → indices 11/12.
    return { pid, ppid: Number(fields[1]), comm, ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

function allProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

/** The process and all its descendants. */
export function processTree(root: number, procs = allProcs()): number[] {
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const p of procs) if (p.ppid === tree[i]) tree.push(p.pid);
  }
  return tree;
}

export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Machine-wide CPU from /proc/stat: [busy, total] jiffies over all cores. */
function machineTicks(): [number, number] {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  return [total - idle, total];
}

/** CPU used during a measurement, in % of one core (200 % = two cores busy), per group of processes. */
export interface CpuUse {
  service: number;
  postgres: number;
  loadgen: number;
  /** Everything else on the machine: other people's work would show here. */
  other: number;
  /** The whole machine, kernel included, from /proc/stat. */
  machine: number;
}

export interface Observation {
  cpu: CpuUse;
  /** Largest resident set of any one service process, and of all of them together (MiB). */
  rssMaxMiB: number;
  rssTotalMaxMiB: number;
  processes: number;
}

type Group = "service" | "postgres" | "loadgen" | "other";

let watchedPostgres: number | undefined;
/**
 * The benchmark's own PostgreSQL (its postmaster's pid): only its processes count as "postgres", other servers on
 * the machine count as "other". Unset (a remote DATABASE_URL): every process named postgres counts.
 */
export function watchPostgres(pid: number | undefined): void {
  watchedPostgres = pid;
}

/**
 * Watches the machine while `work` runs: every 250 ms the CPU time of every process (the last value seen counts,
 * so processes that exit during the run, such as wrk, are included) and the service's RSS.
 */
export async function observe<T>(
  servicePid: number | undefined,
  work: () => Promise<T>,
): Promise<{ result: T; seen: Observation }> {
  const postgresPid = watchedPostgres;
  const first = new Map<number, number>();
  const last = new Map<number, { ticks: number; group: Group }>();
  let rssMax = 0;
  let rssTotalMax = 0;
  let processes = 0;
  const scan = (initial: boolean) => {
    const procs = allProcs();
    const service = new Set(servicePid ? processTree(servicePid, procs) : []);
    const postgres = postgresPid ? new Set(processTree(postgresPid, procs)) : undefined;
    for (const p of procs) {
      const group: Group = service.has(p.pid)
        ? "service"
        : postgres
          ? postgres.has(p.pid)
            ? "postgres"
            : p.comm === "wrk" || p.comm === "ab" || p.comm === "pgbench"
              ? "loadgen"
              : "other"
          : p.comm === "postgres"
            ? "postgres"
            : p.comm === "wrk" || p.comm === "ab" || p.comm === "pgbench"
              ? "loadgen"
              : "other";
      if (initial) first.set(p.pid, p.ticks);
      last.set(p.pid, { ticks: p.ticks, group });
    }
    if (servicePid) {
      let total = 0;
      for (const pid of service) {
        const kib = rssKiB(pid);
        total += kib;
        rssMax = Math.max(rssMax, kib);
      }
      rssTotalMax = Math.max(rssTotalMax, total);
      processes = Math.max(processes, service.size);
    }
  };
  const t0 = performance.now();
  const m0 = machineTicks();
  scan(true);
  const timer = setInterval(() => scan(false), 250);
  try {
    const result = await work();
    scan(false);
    const m1 = machineTicks();
    const seconds = (performance.now() - t0) / 1000;
    const ticks: Record<Group, number> = { service: 0, postgres: 0, loadgen: 0, other: 0 };
    for (const [pid, end] of last) ticks[end.group] += Math.max(0, end.ticks - (first.get(pid) ?? 0));
    const asPct = (t: number) => Math.round((t / TICKS_PER_SECOND / seconds) * 100);
    return {
      result,
      seen: {
        cpu: {
          service: asPct(ticks.service),
          postgres: asPct(ticks.postgres),
          loadgen: asPct(ticks.loadgen),
          other: asPct(ticks.other),
          machine: asPct(m1[0] - m0[0]),
        },
        rssMaxMiB: Math.round(rssMax / 1024),
        rssTotalMaxMiB: Math.round(rssTotalMax / 1024),
        processes,
      },
    };
  } finally {
    clearInterval(timer);
  }
}

/** Machine-wide busy CPU (% of one core) over `ms`, outside our own processes: is someone else loading the box? */
export async function backgroundLoad(ms = 1000): Promise<number> {
  const { seen } = await observe(undefined, () => new Promise((r) => setTimeout(r, ms)));
  return seen.cpu.machine;
}

/**
 * Waits (bounded) until the machine is idle enough to measure: on a shared machine someone else's build would
 * otherwise be part of the figures. Returns the last background load seen (% of one core).
 */
export async function waitForQuiet(maxPct: number, maxWaitS: number, say: (s: string) => void): Promise<number> {
  const deadline = Date.now() + maxWaitS * 1000;
  let load = await backgroundLoad();
  let warned = false;
  while (load > maxPct && Date.now() < deadline) {
    if (!warned) say(`   waiting for the machine to be quiet (background CPU ${load} % > ${maxPct} %)`);
    warned = true;
    await new Promise((r) => setTimeout(r, 2000));
    load = await backgroundLoad();
  }
  if (load > maxPct) say(`   measuring anyway: background CPU ${load} % after ${maxWaitS} s`);
  return load;
}
