/**
 * A recording stand-in for the Dagger engine's GraphQL endpoint. NOTHING IS EXECUTED: no container, no
 * image, no command. It answers the queries the published SDK sends (`POST /query` on 127.0.0.1 with the
 * session token as Basic auth) with plausible values, records each query, and lets a test decide which
 * "commands" fail, so tests can assert what a pipeline asks the engine for and how it behaves when a step
 * fails. It also answers the engine's function-call protocol (`currentModule`, `currentFunctionCall`), which
 * is how a module function runs under `dagger call`.
 *
 * Objects are identified by IDs of the form `rec:<n>`: each ID stands for the chain of selections that
 * produced it, so a query starting at `node(id:)` is resolved back to the full chain.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Value = string | number | boolean | null | Value[] | { [key: string]: Value };

/** One step of a query: a field with its arguments (inline fragments are dropped, IDs kept as strings). */
export interface Selection {
  field: string;
  args: Record<string, Value>;
}

export type Chain = Selection[];

export interface RecordedQuery {
  /** The GraphQL document exactly as the SDK sent it. */
  query: string;
  /** The selections, with a leading `node(id:)` replaced by the chain that ID stands for. */
  chain: Chain;
  /** The last field (what the query asks for: `id`, `stdout`, `sync`, `publish`, …). */
  leaf: string;
  /** The exec failure this query was answered with, if any. */
  failed?: ExecFailure & { cmd: string[] };
}

export interface ExecFailure {
  exitCode: number;
  stdout?: string;
  stderr?: string;
}

export interface ExecAnswer {
  stdout?: string;
  stderr?: string;
}

/** The engine side of one module function call (what `dagger call <fn>` hands the module runtime). */
export interface FunctionCallSpec {
  moduleName: string;
  /** "" for the module registration run; the main object's name otherwise. */
  parentName: string;
  /** "" for the constructor. */
  name: string;
  /** JSON of the parent object's state ("null" for the constructor). */
  parent: string;
  /** Argument name → JSON value (object arguments are their ID as a JSON string). */
  args: Record<string, string>;
}

export interface ReturnedError {
  message: string;
  values: Record<string, string>;
}

export interface EngineOptions {
  /** Decides what a command "prints" or whether it "fails". Called once per exec each time a chain is evaluated. */
  onExec?: (cmd: string[], chain: Chain, engine: RecordingEngine) => ExecFailure | ExecAnswer | undefined;
  /** Answers `File.contents` (the chain ends at the file). */
  onContents?: (chain: Chain) => string | undefined | Promise<string | undefined>;
  /**
   * Evaluates a whole chain for real instead of offering its execs to `onExec` (the replay executes it on a
   * container runtime, see test/replay). Resolves with what the chain's last exec printed, or a failure;
   * rejects for anything that could not be evaluated (answered as a plain GraphQL error).
   */
  execute?: (chain: Chain, engine: RecordingEngine) => Promise<ExecAnswer | (ExecFailure & { cmd: string[] })>;
  functionCall?: FunctionCallSpec;
  /** Pre-registered IDs, e.g. the `source` directory or the `password` secret a module call receives. */
  objects?: Record<string, Chain>;
  /** Plaintext of pre-registered secrets: only ever revealed if the client asks for `plaintext` (recorded). */
  secretValues?: Record<string, string>;
}

export function isFailure(answer: ExecFailure | ExecAnswer | undefined): answer is ExecFailure {
  return answer !== undefined && typeof (answer as ExecFailure).exitCode === "number";
}

// ---------------------------------------------------------------------------------------------------------
// A parser for the subset of GraphQL the SDK emits: `{ a(k: v) { b { ... on T { c } } } }`, one selection
// per level, argument values in JSON-like syntax (strings, numbers, booleans, null, lists, input objects with
// bare keys, enum names).

interface Cursor {
  text: string;
  pos: number;
}

function skip(c: Cursor) {
  while (c.pos < c.text.length && /[\s,]/.test(c.text[c.pos] as string)) c.pos++;
}

function expect(c: Cursor, token: string) {
  skip(c);
  if (!c.text.startsWith(token, c.pos)) {
    throw new Error(`expected ${JSON.stringify(token)} at ${c.pos}: ${c.text.slice(c.pos, c.pos + 40)}`);
  }
  c.pos += token.length;
}

function peek(c: Cursor, token: string): boolean {
  skip(c);
  return c.text.startsWith(token, c.pos);
}

function name(c: Cursor): string {
  skip(c);
  const match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(c.text.slice(c.pos));
  if (!match) throw new Error(`expected a name at ${c.pos}: ${c.text.slice(c.pos, c.pos + 40)}`);
  c.pos += match[0].length;
  return match[0];
}

function value(c: Cursor): Value {
  skip(c);
  const ch = c.text[c.pos];
  if (ch === '"') {
    let end = c.pos + 1;
    while (c.text[end] !== '"') end += c.text[end] === "\\" ? 2 : 1;
    const literal = c.text.slice(c.pos, end + 1);
    c.pos = end + 1;
    return JSON.parse(literal) as string;
  }
  if (ch === "[") {
    c.pos++;
    const items: Value[] = [];
    while (!peek(c, "]")) items.push(value(c));
    expect(c, "]");
    return items;
  }
  if (ch === "{") {
    c.pos++;
    const object: Record<string, Value> = {};
    while (!peek(c, "}")) {
      const key = name(c);
      expect(c, ":");
      object[key] = value(c);
    }
    expect(c, "}");
    return object;
  }
  const number = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(c.text.slice(c.pos));
  if (number) {
    c.pos += number[0].length;
    return Number(number[0]);
  }
  const word = name(c);
  if (word === "true") return true;
  if (word === "false") return false;
  if (word === "null") return null;
  return word; // an enum value
}

/** Parses one SDK query into its chain of selections. */
export function parseQuery(query: string): Chain {
  const c: Cursor = { text: query.trim(), pos: 0 };
  const chain: Chain = [];
  expect(c, "{");
  for (;;) {
    if (peek(c, "...")) {
      expect(c, "...");
      expect(c, "on");
      name(c);
      expect(c, "{");
      continue;
    }
    const field = name(c);
    const args: Record<string, Value> = {};
    if (peek(c, "(")) {
      expect(c, "(");
      while (!peek(c, ")")) {
        const key = name(c);
        expect(c, ":");
        args[key] = value(c);
      }
      expect(c, ")");
    }
    chain.push({ field, args });
    if (peek(c, "{")) {
      expect(c, "{");
      continue;
    }
    break;
  }
  return chain;
}

// ---------------------------------------------------------------------------------------------------------

class ExecFailed extends Error {
  constructor(
    readonly cmd: string[],
    readonly failure: ExecFailure,
  ) {
    super(`process "${cmd.join(" ")}" did not complete successfully: exit code: ${failure.exitCode}`);
  }
}

export class RecordingEngine {
  readonly token = randomBytes(16).toString("hex");
  readonly queries: RecordedQuery[] = [];
  /** What the module runtime handed back through `returnValue` (JSON), if anything. */
  returnedValue?: string;
  /** What the module runtime handed back through `returnError`, if anything. */
  returnedError?: ReturnedError;
  /** Queries whose leaf this engine has no specific answer for (answered with null). */
  readonly unhandled: string[] = [];
  /** Errors inside this stand-in itself (a bug here, not in the client). */
  readonly internalErrors: string[] = [];
  /** Requests that failed authentication. */
  unauthorized = 0;
  port = 0;

  private readonly ids = new Map<string, Chain>();
  private nextId = 1;
  private server?: Server;

  constructor(private readonly options: EngineOptions = {}) {
    for (const [id, chain] of Object.entries(options.objects ?? {})) this.ids.set(id, chain);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        this.internalErrors.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
        res.destroy();
      });
    });
    // The SDK keeps its HTTP connection alive while it works (e.g. seconds of introspection between two
    // queries): never close an idle connection under it, as Node's default 5 s keep-alive timeout would.
    this.server.keepAliveTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      this.server?.once("error", reject);
      this.server?.listen(0, "127.0.0.1", () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Environment variables that point the SDK at this engine. */
  sessionEnv(): Record<string, string> {
    return { DAGGER_SESSION_PORT: String(this.port), DAGGER_SESSION_TOKEN: this.token };
  }

  /** The chain an ID stands for, with the IDs in its arguments expanded too (for assertions and printing). */
  expand(value: Value): Value {
    if (typeof value === "string" && this.ids.has(value)) {
      return { $id: value, chain: this.expandChain(this.ids.get(value) as Chain) as unknown as Value };
    }
    if (Array.isArray(value)) return value.map((v) => this.expand(v));
    if (value && typeof value === "object") {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.expand(v)]));
    }
    return value;
  }

  expandChain(chain: Chain): Chain {
    return chain.map((s) => ({ field: s.field, args: this.expand(s.args) as Record<string, Value> }));
  }

  /** The chain an ID stands for. */
  chainOf(id: string): Chain | undefined {
    return this.ids.get(id);
  }

  private newId(chain: Chain): string {
    const id = `rec:${this.nextId++}`;
    this.ids.set(id, chain);
    return id;
  }

  private resolve(raw: Chain): Chain {
    const [first, ...rest] = raw;
    if (first?.field === "node" && typeof first.args.id === "string") {
      const base = this.ids.get(first.args.id);
      if (!base) throw new Error(`unknown ID ${first.args.id}`);
      return [...base, ...rest];
    }
    return raw;
  }

  /**
   * "Evaluates" a chain: every withExec in it is offered to `onExec`, in order. Returns the last answer. With
   * an `execute` option, the chain (its IDs expanded) is handed to it instead.
   */
  private async evaluate(chain: Chain): Promise<ExecAnswer> {
    if (this.options.execute) {
      const answer = await this.options.execute(this.expandChain(chain), this);
      if (isFailure(answer)) throw new ExecFailed((answer as { cmd: string[] }).cmd, answer);
      return answer;
    }
    let last: ExecAnswer = {};
    chain.forEach((step, i) => {
      if (step.field !== "withExec") return;
      const cmd = (step.args.args as string[]) ?? [];
      const answer = this.options.onExec?.(cmd, chain.slice(0, i + 1), this);
      if (isFailure(answer)) throw new ExecFailed(cmd, answer);
      last = answer ?? { stdout: `(recorded, not executed) ${cmd.join(" ")}\n` };
    });
    return last;
  }

  private async answer(chain: Chain, leaf: Selection): Promise<unknown> {
    const object = chain.slice(0, -1);
    const last = object[object.length - 1];
    const call = this.options.functionCall;
    switch (leaf.field) {
      case "id":
        return this.newId(object);
      case "sync":
        await this.evaluate(object);
        return this.newId(object);
      case "stdout":
        return (await this.evaluate(object)).stdout ?? "";
      case "stderr":
        return (await this.evaluate(object)).stderr ?? "";
      case "combinedOutput": {
        const out = await this.evaluate(object);
        return `${out.stdout ?? ""}${out.stderr ?? ""}`;
      }
      case "publish": {
        await this.evaluate(object);
        const address = String(leaf.args.address);
        // The digest depends on what is pushed (the image and its platform variants), not on the tag.
        // Object IDs are left out: the engine's IDs derive from content, this stand-in's are counters, and a client
        // may turn the same containers into IDs again for each push.
        const pushed = JSON.stringify(
          [this.expandChain(object), this.expand(leaf.args.platformVariants ?? [])],
          (key, v) => (key === "$id" ? undefined : v),
        );
        const digest = createHash("sha256").update(pushed).digest("hex");
        // As the engine answers (core/container.go Publish: reference.WithDigest keeps the tag).
        return `${address}@sha256:${digest}`;
      }
      case "export":
        await this.evaluate(object);
        return String(leaf.args.path);
      case "contents": {
        const answer = await this.options.onContents?.(this.options.execute ? this.expandChain(object) : object);
        if (answer !== undefined) return answer;
        break;
      }
      case "plaintext":
        // A client asking for a secret's value is what tests look for; answer it so the leak is visible.
        return Object.values(this.options.secretValues ?? {})[0] ?? "plaintext";
      case "name":
        if (object.length === 1 && object[0]?.field === "currentModule") return call?.moduleName ?? "";
        if (object.length === 1 && object[0]?.field === "currentFunctionCall") return call?.name ?? "";
        if (last?.field === "__functionCallArg") return String(last.args.name);
        break;
      case "value":
        if (last?.field === "__functionCallArg") return call?.args[String(last.args.name)] ?? "null";
        break;
      case "parentName":
        return call?.parentName ?? "";
      case "parent":
        return call?.parent ?? "null";
      case "returnValue":
        this.returnedValue = String(leaf.args.value);
        return null;
      case "returnError": {
        const errorChain = this.ids.get(String(leaf.args.error)) ?? [];
        const message = String(errorChain.find((s) => s.field === "error")?.args.message ?? "");
        const values: Record<string, string> = {};
        for (const s of errorChain) if (s.field === "withValue") values[String(s.args.name)] = String(s.args.value);
        this.returnedError = { message, values };
        return null;
      }
    }
    this.unhandled.push(`${object.map((s) => s.field).join(".")}.${leaf.field}`);
    return null;
  }

  private async respond(raw: Chain, chain: Chain): Promise<unknown> {
    const leaf = chain[chain.length - 1] as Selection;
    // `inputArgs { id }` is the one list the protocol uses: one FunctionCallArgValue per argument.
    if (leaf.field === "id" && chain[chain.length - 2]?.field === "inputArgs") {
      const args = Object.keys(this.options.functionCall?.args ?? {});
      return args.map((argName) => ({ id: this.newId([{ field: "__functionCallArg", args: { name: argName } }]) }));
    }
    const value = await this.answer(chain, leaf);
    // Rebuild the nesting of the query: one key per field (inline fragments add no level).
    return raw.reduceRight<unknown>(
      (inner, s, i) => (i === raw.length - 1 ? { [s.field]: value } : { [s.field]: inner }),
      null,
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const body = await new Promise<string>((resolve) => {
      let data = "";
      req.on("data", (chunk: Buffer) => {
        data += chunk.toString();
      });
      req.on("end", () => resolve(data));
    });
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(payload));
    };
    const expected = `Basic ${Buffer.from(`${this.token}:`).toString("base64")}`;
    if (req.method !== "POST" || req.url !== "/query" || req.headers.authorization !== expected) {
      this.unauthorized++;
      send(401, { errors: [{ message: "unauthorized" }] });
      return;
    }
    const { query } = JSON.parse(body) as { query: string };
    const raw = parseQuery(query);
    const chain = this.resolve(raw);
    const record: RecordedQuery = { query: query.trim(), chain, leaf: chain[chain.length - 1]?.field ?? "" };
    this.queries.push(record);
    try {
      const data = await this.respond(raw, chain);
      // `inputArgs` answers replace the innermost object: rebuild that nesting by hand.
      if (Array.isArray(data)) {
        send(200, { data: { currentFunctionCall: { inputArgs: data } } });
        return;
      }
      send(200, { data });
    } catch (error) {
      if (error instanceof ExecFailed) {
        record.failed = { ...error.failure, cmd: error.cmd };
        send(200, {
          data: null,
          errors: [
            {
              message: error.message,
              path: raw.map((s) => s.field),
              extensions: {
                _type: "EXEC_ERROR",
                cmd: error.cmd,
                exitCode: error.failure.exitCode,
                stdout: error.failure.stdout ?? "",
                stderr: error.failure.stderr ?? "",
              },
            },
          ],
        });
        return;
      }
      send(200, { data: null, errors: [{ message: error instanceof Error ? error.message : String(error) }] });
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Questions tests ask about what was recorded.

  /** Every query whose evaluated chain contains the command `cmd` (matched on its exact argument list). */
  queriesRunning(cmd: string[]): RecordedQuery[] {
    const wanted = JSON.stringify(cmd);
    return this.queries.filter(
      (q) =>
        ["stdout", "sync", "stderr", "combinedOutput", "publish", "export"].includes(q.leaf) &&
        q.chain.some((s) => s.field === "withExec" && JSON.stringify(s.args.args) === wanted),
    );
  }

  /** Every query that publishes an image. */
  publishQueries(): RecordedQuery[] {
    return this.queries.filter((q) => q.leaf === "publish");
  }

  /** All the text the client sent, for checking that a value never appeared in any query. */
  allQueryText(): string {
    return this.queries.map((q) => q.query).join("\n");
  }
}

/** Renders a chain as one readable line (IDs expanded), for test messages and the README's excerpts. */
export function renderChain(chain: Chain): string {
  const render = (v: Value): string => {
    if (v && typeof v === "object" && !Array.isArray(v) && "$id" in v) {
      return `<${renderChain((v as unknown as { chain: Chain }).chain)}>`;
    }
    if (Array.isArray(v)) return `[${v.map(render).join(", ")}]`;
    if (v && typeof v === "object") {
      return `{${Object.entries(v)
        .map(([k, x]) => `${k}: ${render(x)}`)
        .join(", ")}}`;
    }
    return JSON.stringify(v);
  };
  return chain
    .map(
      (s) =>
        `${s.field}${
          Object.keys(s.args).length
            ? `(${Object.entries(s.args)
                .map(([k, v]) => `${k}: ${render(v)}`)
                .join(", ")})`
            : ""
        }`,
    )
    .join(".");
}
