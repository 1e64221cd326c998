/** Module resolution hook (see uvu-guard.mjs): "uvu" → uvu-suite.mjs, except for uvu-suite.mjs itself. */
const wrapper = new URL("./uvu-suite.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === "uvu" && context.parentURL !== wrapper) return { url: wrapper, shortCircuit: true };
  return next(specifier, context);
}
