/**
 * uvu with `before` hooks that cannot fail silently. uvu 0.5 runs a suite's `before` hooks inside a try whose
 * `finally` returns: an exception thrown there is swallowed, the reason never printed, the exit code left 0.
 * test/run.ts loads this file (`--import`): it redirects every `import … from "uvu"` outside this folder to
 * uvu-suite.mjs, whose `suite` and `test` print such a failure with its stack and make the run fail.
 */
import { register } from "node:module";

register("./uvu-resolve.mjs", import.meta.url);
