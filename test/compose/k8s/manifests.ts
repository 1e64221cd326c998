/**
 * The rendered manifests as objects, and their validation: Kubernetes' own kinds against the schemas of the
 * pinned Kubernetes version that the `kubernetes-models` package bundles (generated from Kubernetes' OpenAPI
 * spec, compiled with ajv; 4.5.0 carries Kubernetes v1.33: its 5.x line, v1.36, refuses Node 20), the custom resources (CloudNativePG's Cluster and
 * ScheduledBackup, the Barman Cloud plugin's ObjectStore) against the OpenAPI schemas of their own CRDs, vendored
 * in schemas/crds.json (sources and checksums recorded there), with ajv.
 *
 * CRD schemas are validated the way the API server treats a structural schema: a field the schema does not
 * declare is an error (the server would prune it silently, which hides typos) unless the schema preserves
 * unknown fields.
 */
import { readFileSync } from "node:fs";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { parseAllDocuments } from "yaml";

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  /** Arbitrary YAML: the tests assert its shape. */
  spec?: any;
  data?: Record<string, string>;
  [key: string]: unknown;
}

/** Every document of a multi-document YAML stream. */
export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length) throw new Error(doc.errors.map((e) => e.message).join("; "));
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** The one object of this kind (and name); fails loudly when absent or ambiguous. */
export function find(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ""}, found ${found.length}`);
  return found[0] as K8sObject;
}

export const crdBundle = JSON.parse(readFileSync(new URL("./schemas/crds.json", import.meta.url), "utf8")) as {
  sources: Array<{ kind: string; source: string; sha256: string }>;
  schemas: Record<string, Record<string, unknown>>;
};

/** The schema with `additionalProperties: false` wherever it declares properties and keeps no unknown fields. */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (!schema || typeof schema !== "object") return schema;
  const s = Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [k, k === "enum" || k === "default" ? v : strict(v)]),
  );
  if (s.properties && s.additionalProperties === undefined && s["x-kubernetes-preserve-unknown-fields"] !== true) {
    s.additionalProperties = false;
  }
  return s;
}

// ajv-formats is CommonJS with a default export that TypeScript sees as the module.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const crdValidators = new Map<string, ValidateFunction>();

function crdValidator(key: string): ValidateFunction | undefined {
  const schema = crdBundle.schemas[key];
  if (!schema) return undefined;
  const cached = crdValidators.get(key);
  if (cached) return cached;
  // apiVersion, kind and metadata are the API server's business (metadata is `type: object` in a CRD).
  const s = strict(schema) as { properties: Record<string, unknown> };
  const validate = ajv.compile({ ...s, properties: { ...s.properties, metadata: { type: "object" } } });
  crdValidators.set(key, validate);
  return validate;
}

/** The kubernetes-models module of a built-in kind, e.g. apps/v1 Deployment → kubernetes-models/apps/v1/Deployment. */
async function builtinModel(apiVersion: string, kind: string) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const path = group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
  try {
    const module = (await import(path)) as Record<string, new (data: unknown) => { validate(): void }>;
    return module[kind];
  } catch {
    return undefined;
  }
}

/** Schema errors of one object (empty when valid); an object of a kind with no known schema is an error too. */
export async function schemaErrors(object: K8sObject): Promise<string[]> {
  const [group, version] = object.apiVersion.includes("/") ? object.apiVersion.split("/") : ["", object.apiVersion];
  const id = `${object.kind}/${object.metadata?.name}`;
  const errors: string[] = [];
  if (!object.metadata?.name) errors.push(`${id}: metadata.name is missing`);
  const validate = crdValidator(`${group}/${version}/${object.kind}`);
  if (validate) {
    if (!validate(object)) {
      for (const e of validate.errors ?? [])
        errors.push(`${id}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
    }
    return errors;
  }
  const Model = await builtinModel(object.apiVersion, object.kind);
  if (!Model) return [...errors, `${id}: no schema for ${object.apiVersion} ${object.kind}`];
  try {
    new Model(object).validate();
  } catch (error) {
    errors.push(`${id}: ${(error as Error).message}`);
  }
  return errors;
}

/** Does a label selector (matchLabels + matchExpressions) select these labels? */
export function selects(
  selector: {
    matchLabels?: Record<string, string>;
    matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
  },
  labels: Record<string, string> = {},
): boolean {
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpressions = (selector.matchExpressions ?? []).every((e) => {
    const value = labels[e.key];
    switch (e.operator) {
      case "In":
        return value !== undefined && (e.values ?? []).includes(value);
      case "NotIn":
        return value === undefined || !(e.values ?? []).includes(value);
      case "Exists":
        return value !== undefined;
      case "DoesNotExist":
        return value === undefined;
      default:
        throw new Error(`unknown selector operator ${e.operator}`);
    }
  });
  return byLabels && byExpressions;
}
