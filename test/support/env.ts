/**
 * The variables the service reads, for every harness that starts it (process tests, the bench): none is
 * inherited from the caller's environment by accident (an ambient WEB_CONCURRENCY would turn every process test
 * into a cluster), each is only set on purpose. The list is read off the config module itself: `loadConfig` is
 * run once on an environment that records which names it asks for, so a variable added to config.ts is here
 * with no edit.
 */
import { loadConfig } from "../../service/src/config.js";

let names: readonly string[] | undefined;

export function serviceVariables(): readonly string[] {
  if (names) return names;
  const asked = new Set<string>();
  const recorder = new Proxy({} as NodeJS.ProcessEnv, {
    get(_target, key) {
      if (typeof key === "string") asked.add(key);
      return undefined;
    },
    has(_target, key) {
      if (typeof key === "string") asked.add(key);
      return false;
    },
  });
  loadConfig(recorder);
  names = Object.freeze([...asked].sort());
  return names;
}

/** `base` (default: this process's environment) without any variable the service reads. */
export function withoutServiceVariables(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const name of serviceVariables()) delete env[name];
  return env;
}
