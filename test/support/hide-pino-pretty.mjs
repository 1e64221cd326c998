// Loaded with `node --import`: makes the package `pino-pretty` unresolvable, as it is in the production image
// (a dev dependency, left out by `npm ci --omit=dev`), without touching node_modules.
import { register } from "node:module";

register(
  `data:text/javascript,${encodeURIComponent(`
export async function resolve(specifier, context, next) {
  if (specifier === "pino-pretty" || specifier.startsWith("pino-pretty/")) {
    const err = new Error("Cannot find package 'pino-pretty' (hidden by the test)");
    err.code = "ERR_MODULE_NOT_FOUND";
    throw err;
  }
  return next(specifier, context);
}`)}`,
);
