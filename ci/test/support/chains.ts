/**
 * Helpers for asserting on recorded query chains (see recording-engine.ts).
 */
import { type Chain, type RecordedQuery, type RecordingEngine, renderChain, type Value } from "./recording-engine.js";

/** A recorded query's chain with every ID argument expanded into the chain it stands for. */
export function expanded(engine: RecordingEngine, query: RecordedQuery): Chain {
  return engine.expandChain(query.chain);
}

/** The chain an expanded ID argument stands for (`{ $id, chain }`), or undefined. */
export function sub(value: Value | undefined): Chain | undefined {
  if (value && typeof value === "object" && !Array.isArray(value) && "$id" in value) {
    return (value as unknown as { chain: Chain }).chain;
  }
  return undefined;
}

/** Index of the first step with this field (and, optionally, matching arguments), or -1. */
export function indexOf(
  chain: Chain,
  field: string,
  match: (args: Record<string, Value>) => boolean = () => true,
): number {
  return chain.findIndex((s) => s.field === field && match(s.args));
}

/** Index of the exec of exactly this command, or -1. */
export function execIndex(chain: Chain, cmd: string[]): number {
  return indexOf(chain, "withExec", (args) => JSON.stringify(args.args) === JSON.stringify(cmd));
}

/** The value of an environment variable set in the chain (the last one wins), or undefined. */
export function envValue(chain: Chain, name: string): string | undefined {
  const sets = chain.filter((s) => s.field === "withEnvVariable" && s.args.name === name);
  const last = sets[sets.length - 1];
  return last ? String(last.args.value) : undefined;
}

/** Labels set in the chain, name → value. */
export function labels(chain: Chain): Record<string, string> {
  return Object.fromEntries(
    chain.filter((s) => s.field === "withLabel").map((s) => [String(s.args.name), String(s.args.value)]),
  );
}

/**
 * Renders a chain with the two ways a pipeline receives its source — the engine's contextual directory
 * (module) or `host.directory(...)` (standalone client) — both shown as `<source>`, so that the two entry
 * points' requests can be compared.
 */
export function renderWithSource(chain: Chain): string {
  return renderChain(chain)
    .replace(/<contextDirectory\(defaultPath: "\/"\)>/g, "<source>")
    .replace(/<host\.directory\(path: "[^"]*", exclude: \[[^\]]*\]\)>/g, "<source>");
}

/** The first recorded query running exactly this command; fails loudly if there is none. */
export function queryRunning(engine: RecordingEngine, cmd: string[]): RecordedQuery {
  const found = engine.queriesRunning(cmd)[0];
  if (!found) throw new Error(`no recorded query runs ${cmd.join(" ")}`);
  return found;
}

/** The command of the last exec in a chain (what a `stdout`/`sync` query runs last). */
export function lastExec(chain: Chain): string[] | undefined {
  const execs = chain.filter((s) => s.field === "withExec");
  return execs[execs.length - 1]?.args.args as string[] | undefined;
}

/** Queries that evaluate a chain whose last command satisfies `match` (e.g. every Trivy gate run). */
export function execQueries(engine: RecordingEngine, match: (cmd: string[]) => boolean): RecordedQuery[] {
  return engine.queries.filter((q) => {
    const cmd = lastExec(q.chain);
    return ["stdout", "sync", "file"].includes(q.leaf) && cmd !== undefined && match(cmd);
  });
}

export const isTrivyGate = (cmd: string[]) => cmd[0] === "trivy" && cmd.join(" ").includes("--exit-code 1");
