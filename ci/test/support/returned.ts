/**
 * Reading what a module function returned through the recording engine when it is a `Directory`: the chain its
 * ID stands for (`directory().withNewFile(…).withFile(…)…`), as the files it would contain. Nothing is executed.
 */

import { sub } from "./chains.js";
import type { Chain, RecordingEngine } from "./recording-engine.js";

export interface ReturnedEntry {
  /** Contents of a file written with `withNewFile`. */
  contents?: string;
  /** The chain of a file copied in with `withFile` (e.g. `…withExec([…]).file(path)`). */
  source?: Chain;
}

/** The files of a directory chain, by path (later writes win, as in the engine). */
export function directoryEntries(chain: Chain): Record<string, ReturnedEntry> {
  const entries: Record<string, ReturnedEntry> = {};
  for (const step of chain) {
    if (step.field === "withNewFile") entries[String(step.args.path)] = { contents: String(step.args.contents) };
    if (step.field === "withFile") entries[String(step.args.path)] = { source: sub(step.args.source) ?? [] };
  }
  return entries;
}

/** The directory a module function returned (its `returnValue` is the directory's ID as a JSON string). */
export function returnedDirectory(engine: RecordingEngine): Record<string, ReturnedEntry> {
  const id = JSON.parse(engine.returnedValue ?? "null") as string | null;
  if (typeof id !== "string") throw new Error(`no directory was returned: ${engine.returnedValue}`);
  const chain = engine.chainOf(id);
  if (!chain) throw new Error(`unknown directory ID ${id}`);
  return directoryEntries(engine.expandChain(chain));
}
