/**
 * One seed for the property tests of a process: PROPERTY_SEED when set (to reproduce a failure), otherwise a new
 * one, printed either way. fast-check draws everything from it; no test calls Math.random() for its inputs.
 */
import fc from "fast-check";

function chooseSeed(): number {
  const given = process.env.PROPERTY_SEED;
  if (given !== undefined && given !== "") {
    const n = Number(given);
    if (!Number.isInteger(n)) throw new Error(`PROPERTY_SEED must be an integer (got "${given}")`);
    return n;
  }
  return (Date.now() ^ (process.pid << 16)) | 0;
}

export const PROPERTY_SEED = chooseSeed();
fc.configureGlobal({ seed: PROPERTY_SEED });
process.stdout.write(`property seed ${PROPERTY_SEED} (reproduce: PROPERTY_SEED=${PROPERTY_SEED} npm test -- <file>)\n`);

export { fc };
