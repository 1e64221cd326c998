/**
 * Regenerates test/compose/k8s/schemas/crds.json: the OpenAPI v3 schemas of the custom resources the manifests
 * use, taken from the operators' own CustomResourceDefinitions (descriptions dropped; everything else kept).
 *
 *   npx tsx scripts/k8s/vendor-crd-schemas.ts <source>=<crd.yaml> …
 *
 * where <source> says where the file came from (repository@tag:path). The CRD files are not committed: get them
 * from the operators' release tags (see the sources recorded in crds.json) and run this script again on a bump.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { parse } from "yaml";

interface Crd {
  kind: string;
  spec: {
    group: string;
    names: { kind: string };
    versions: Array<{ name: string; served: boolean; schema?: { openAPIV3Schema: unknown } }>;
  };
}

function withoutDescriptions(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutDescriptions);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key, inner]) => !(key === "description" && typeof inner === "string"))
        .map(([key, inner]) => [key, withoutDescriptions(inner)]),
    );
  }
  return value;
}

const sources: Array<{ kind: string; source: string; sha256: string }> = [];
const schemas: Record<string, unknown> = {};
for (const arg of process.argv.slice(2)) {
  const [source, file] = arg.split("=");
  if (!source || !file) throw new Error(`expected <source>=<file>, got ${arg}`);
  const text = readFileSync(file, "utf8");
  const crd = parse(text) as Crd;
  if (crd.kind !== "CustomResourceDefinition") throw new Error(`${file} is not a CustomResourceDefinition`);
  for (const version of crd.spec.versions.filter((v) => v.served && v.schema)) {
    const key = `${crd.spec.group}/${version.name}/${crd.spec.names.kind}`;
    schemas[key] = withoutDescriptions(version.schema?.openAPIV3Schema);
    sources.push({ kind: key, source, sha256: createHash("sha256").update(text).digest("hex") });
  }
}
const out = new URL("../../test/compose/k8s/schemas/crds.json", import.meta.url);
writeFileSync(out, `${JSON.stringify({ generatedBy: "scripts/k8s/vendor-crd-schemas.ts", sources, schemas })}\n`);
process.stdout.write(`wrote ${Object.keys(schemas).join(", ")}\n`);
