/** Bounded waits: polling for a condition, and an upper bound on a whole test body. */
import { setTimeout as sleep } from "node:timers/promises";

/** Polls `check` until it returns a truthy value; rejects after `timeoutMs` with the last value or error. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T> | T,
  timeoutMs: number,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${String(last)})`);
    await sleep(intervalMs);
  }
}

/** Runs a test body with an upper bound, so that no test can hang the suite. */
export function within<T = unknown>(timeoutMs: number, body: (context: T) => Promise<void>) {
  return async (context: T) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        body(context),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`test did not finish within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
}
