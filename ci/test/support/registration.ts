/**
 * Reads back what the module runtime registered with the (recording) engine: the SDK's `Register` builds the
 * module's type definitions through GraphQL (`module`, `typeDef.withObject`, `function`, `withArg`,
 * `withCachePolicy`, `withCheck`, …) and returns the module's ID. Following that ID through the recorded
 * chains gives the same information the engine uses for `dagger functions` and `dagger check -l`.
 */
import type { Chain, RecordingEngine, Value } from "./recording-engine.js";

export interface RegisteredArg {
  name: string;
  type: string;
  description: string;
  defaultValue?: string;
  defaultPath?: string;
  ignore?: string[];
}

export interface RegisteredFunction {
  name: string;
  returnType: string;
  description: string;
  cache: string;
  check: boolean;
  args: RegisteredArg[];
}

export interface Registration {
  objectName: string;
  hasConstructor: boolean;
  functions: RegisteredFunction[];
}

function chainOf(engine: RecordingEngine, id: Value | undefined): Chain {
  const chain = typeof id === "string" ? engine.chainOf(id) : undefined;
  if (!chain) throw new Error(`no recorded object for ID ${JSON.stringify(id)}`);
  return chain;
}

const KINDS: Record<string, string> = {
  STRING: "String",
  INTEGER: "Int",
  BOOLEAN: "Boolean",
  FLOAT: "Float",
  VOID: "Void",
};

/** Renders a type definition chain in GraphQL notation (`String!`, `[String!]!`, `Directory`). */
export function typeName(engine: RecordingEngine, chain: Chain): string {
  let base = "?";
  let optional = false;
  for (const step of chain) {
    if (step.field === "withKind") {
      const kind = String(step.args.kind).replace(/_KIND$/, "");
      base = KINDS[kind] ?? kind;
    }
    if (step.field === "withObject") base = String(step.args.name);
    if (step.field === "withListOf") base = `[${typeName(engine, chainOf(engine, step.args.elementType))}]`;
    if (step.field === "withOptional") optional = step.args.optional === true;
  }
  return optional ? base : `${base}!`;
}

/** The SDK introspector's view of a type (`DaggerModule` JSON shape). */
interface IntrospectedType {
  kind: string;
  name?: string;
  typeDef?: IntrospectedType;
}

function introspectedTypeName(type: IntrospectedType): string {
  const kind = type.kind.replace(/_KIND$/, "");
  if (kind === "OBJECT") return String(type.name);
  if (kind === "LIST") return `[${introspectedTypeName(type.typeDef as IntrospectedType)}!]`;
  return KINDS[kind] ?? kind;
}

/** What the SDK's `Register` sends for a `@func({ cache })` option (sdk: module/entrypoint/register.js). */
const CACHE_POLICIES: Record<string, string> = { never: "Never", session: "PerSession" };

/**
 * The same listing, straight from the SDK's introspector result (`scan()` of the module's files): the
 * `DaggerModule`'s main object, its methods, their `cache` option, `isCheck`, and arguments.
 */
export function fromIntrospection(daggerModule: {
  objects: Record<
    string,
    {
      _constructor?: unknown;
      methods: Record<
        string,
        {
          name: string;
          alias?: string;
          description: string;
          cache?: string;
          isCheck: boolean;
          returnType: IntrospectedType;
          arguments: Record<
            string,
            {
              name: string;
              description: string;
              type: IntrospectedType;
              isOptional: boolean;
              defaultValue?: unknown;
              defaultPath?: string;
              ignore?: string[];
            }
          >;
        }
      >;
    }
  >;
}): { hasConstructor: boolean; functions: RegisteredFunction[] } {
  const main = daggerModule.objects.LoanCi;
  if (!main) throw new Error("the introspector found no LoanCi object");
  return {
    hasConstructor: main._constructor !== undefined,
    functions: Object.values(main.methods).map((m) => ({
      name: m.alias ?? m.name,
      returnType: `${introspectedTypeName(m.returnType)}!`,
      description: m.description,
      cache: m.cache === undefined ? "Default" : (CACHE_POLICIES[m.cache] ?? m.cache),
      check: m.isCheck,
      args: Object.values(m.arguments).map((a) => {
        const arg: RegisteredArg = {
          name: a.name,
          type: `${introspectedTypeName(a.type)}${a.isOptional ? "" : "!"}`,
          description: a.description,
        };
        if (a.defaultValue !== undefined) arg.defaultValue = JSON.stringify(a.defaultValue);
        if (a.defaultPath !== undefined) arg.defaultPath = a.defaultPath;
        if (a.ignore) arg.ignore = a.ignore;
        return arg;
      }),
    })),
  };
}

export function decodeRegistration(engine: RecordingEngine): Registration {
  if (!engine.returnedValue) throw new Error("the module registered nothing (no returnValue)");
  const moduleChain = chainOf(engine, JSON.parse(engine.returnedValue) as string);
  const objectStep = moduleChain.find((s) => s.field === "withObject");
  const typeDef = chainOf(engine, objectStep?.args.object);
  const functions = typeDef
    .filter((s) => s.field === "withFunction")
    .map((s) => {
      const fn = chainOf(engine, s.args.function);
      const head = fn[0];
      const policy = fn.find((x) => x.field === "withCachePolicy");
      return {
        name: String(head?.args.name),
        returnType: typeName(engine, chainOf(engine, head?.args.returnType)),
        description: String(fn.find((x) => x.field === "withDescription")?.args.description ?? ""),
        cache: policy ? String(policy.args.policy) : "(default)",
        check: fn.some((x) => x.field === "withCheck"),
        args: fn
          .filter((x) => x.field === "withArg")
          .map((x) => {
            const arg: RegisteredArg = {
              name: String(x.args.name),
              type: typeName(engine, chainOf(engine, x.args.typeDef)),
              description: String(x.args.description ?? ""),
            };
            if (x.args.defaultValue !== undefined) arg.defaultValue = String(x.args.defaultValue);
            if (x.args.defaultPath !== undefined) arg.defaultPath = String(x.args.defaultPath);
            if (Array.isArray(x.args.ignore)) arg.ignore = x.args.ignore.map(String);
            return arg;
          }),
      };
    });
  return {
    objectName: String(typeDef.find((s) => s.field === "withObject")?.args.name),
    hasConstructor: typeDef.some((s) => s.field === "withConstructor"),
    functions,
  };
}

const kebab = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/**
 * The function listing: what `dagger functions` shows, plus each function's arguments, defaults, cache
 * policy and whether it is a check (`dagger check -l`). Functions sorted by name; the `ignore` list of
 * contextual directories is printed once at the end.
 */
export function renderListing(functions: RegisteredFunction[]): string {
  const lines: string[] = [];
  const ignores = new Set<string>();
  for (const fn of [...functions].sort((a, b) => a.name.localeCompare(b.name))) {
    const flags = [`cache: ${fn.cache}`, fn.check ? "check" : ""].filter(Boolean).join(", ");
    lines.push(`${kebab(fn.name)} -> ${fn.returnType}  (${flags})`);
    for (const arg of fn.args) {
      const notes: string[] = [];
      if (arg.defaultPath !== undefined) notes.push(`default path ${JSON.stringify(arg.defaultPath)}`);
      if (arg.defaultValue !== undefined) notes.push(`default ${arg.defaultValue}`);
      if (arg.ignore) {
        notes.push("ignore: see below");
        ignores.add(JSON.stringify(arg.ignore));
      }
      // An argument with a default (a value, or a path in the context directory) is optional to callers:
      // the engine marks contextual arguments optional itself (dagger/dagger core/schema/module.go).
      const type =
        arg.defaultPath !== undefined || arg.defaultValue !== undefined ? arg.type.replace(/!$/, "") : arg.type;
      lines.push(`    --${kebab(arg.name)} ${type}${notes.length ? `  (${notes.join(", ")})` : ""}`);
    }
  }
  for (const list of ignores) lines.push(`ignore: ${list}`);
  return lines.join("\n");
}
