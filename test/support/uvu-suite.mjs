/** uvu's API, with `before` hooks whose failure is printed and fails the run (see uvu-guard.mjs). */
import { suite as uvuSuite } from "uvu";

export * from "uvu";

/** The line test/run.ts looks for; followed by the error's stack. */
export const BEFORE_FAILED = "✘ before hook failed";

function guard(name, t) {
  const before = t.before;
  const guarded = (fn) =>
    before(async (state) => {
      try {
        await fn(state);
      } catch (err) {
        process.stdout.write(
          `\n  ${BEFORE_FAILED} in suite "${name}": none of its tests ran\n    ${String(err?.stack ?? err).replace(/\n/g, "\n    ")}\n`,
        );
        process.on("exit", () => {
          process.exitCode = 1;
        });
        throw err;
      }
    });
  guarded.each = before.each;
  t.before = guarded;
  return t;
}

export const suite = (name = "", state = {}) => guard(name, uvuSuite(name, state));
export const test = suite();
