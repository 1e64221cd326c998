/**
 * Executes recorded Dagger chains (what the pipeline asked the recording engine for, IDs expanded) on this
 * machine's container runtime: Docker (Debian's docker.io) for containers, services and execs, buildah for
 * `dockerBuild`. It interprets only the part of the Dagger core API the pipeline uses; any other field or
 * argument fails the evaluation with `Unsupported`, so a new API use can never be skipped silently.
 * Something this machine cannot run (an image without a local stand-in, such as Trivy's; a platform other
 * than the host's) stops the evaluation with `NotRunnable`: reported as NOT RUN, never as passed.
 *
 * Semantics, mirroring the engine:
 * - `host.directory(path, exclude, include)` uploads the files under `path` that the patterns let through.
 *   Dagger matches them like .dockerignore (moby's patternmatcher): relative to the directory, anchored at
 *   its root, `**` for any depth, a matched directory takes its contents with it. Here: the `ignore` package
 *   with every pattern anchored (`/` prepended), which gives that behaviour for patterns without `!`.
 * - Containers are immutable values: each step yields a new image (docker create/cp/commit for files,
 *   docker run + commit for an exec). Evaluations of the same chain prefix are shared within one replay, as
 *   the engine shares them within a session (lint, typecheck and test run `npm ci` once).
 * - `withExec` runs its argument list as given (`--entrypoint` = first argument: the image's entrypoint is
 *   ignored, as withExec does by default), with the chain's env, workdir and cache volumes.
 * - A service binding starts the service container (with the image's entrypoint when `useEntrypoint`) on a
 *   network of its own under the alias, waits until its exposed ports accept connections, runs the exec,
 *   then removes the service and the network.
 * - Cache volumes are Docker volumes `loan-replay-cache-<key>` (they persist between replays, as an engine's
 *   do between sessions; `sharing` is not emulated).
 *
 * Stand-in differences added by the runner, never by the chain: execs get the host's CA bundle mounted and
 * NODE_EXTRA_CA_CERTS pointing at it, and image builds get it as the `npm_ca` build secret (this machine
 * reaches npm through a TLS-intercepting proxy); build arguments naming a pinned image get the stand-in's tag.
 */
import { spawn } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import ignore from "ignore";
import type { Chain, ExecAnswer, ExecFailure, Selection, Value } from "../../ci/test/support/recording-engine.js";
import { run } from "../nginx/support.js";

/** A field or argument this interpreter does not implement. */
export class Unsupported extends Error {
  override name = "Unsupported";
}

/** Something these machines cannot run (no image, no emulation). */
export class NotRunnable extends Error {
  override name = "NotRunnable";
}

/** A failed command in a container. */
export class ExecFailed extends Error {
  override name = "ExecFailed";
  constructor(
    readonly cmd: string[],
    readonly exitCode: number,
    readonly stdout: string,
    readonly stderr: string,
    readonly seconds: number,
  ) {
    super(`process "${cmd.join(" ")}" did not complete successfully: exit code: ${exitCode}`);
  }
}

/** A failed image build (the builder's output is in the message). */
export class BuildFailed extends Error {
  override name = "BuildFailed";
  constructor(
    message: string,
    readonly seconds: number,
  ) {
    super(message);
  }
}

/**
 * The API subset interpreted here: field → the arguments it may carry. Anything else fails loudly. (`file`
 * with `contents`, `stdout` and `sync` are the leaves; `directory` is the root `directory()` or
 * `host.directory(…)`.)
 */
export const INTERPRETED: Record<string, string[]> = {
  container: [],
  from: ["address"],
  withEnvVariable: ["name", "value"],
  withMountedCache: ["path", "cache", "sharing"],
  cacheVolume: ["key"],
  withWorkdir: ["path"],
  withDirectory: ["path", "source", "include", "exclude"],
  directory: ["path", "include", "exclude"],
  host: [],
  file: ["path"],
  withExec: ["args"],
  withServiceBinding: ["alias", "service"],
  withExposedPort: ["port"],
  asService: ["useEntrypoint", "args"],
  dockerBuild: ["buildArgs", "platform"],
  withLabel: ["name", "value"],
  asTarball: [],
  withMountedFile: ["path", "source"],
  withMountedDirectory: ["path", "source"],
};

const SHARING = ["SHARED", "LOCKED", "PRIVATE"];

type Expanded = { $id: string; chain: Chain };

function sub(value: Value | undefined, what: string): Chain {
  if (value && typeof value === "object" && !Array.isArray(value) && "$id" in value) {
    return (value as unknown as Expanded).chain;
  }
  throw new Unsupported(`${what}: expected an object ID, got ${JSON.stringify(value)}`);
}

const str = (value: Value | undefined, what: string): string => {
  if (typeof value !== "string") throw new Unsupported(`${what}: expected a string, got ${JSON.stringify(value)}`);
  return value;
};

const strings = (value: Value | undefined, what: string): string[] => {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new Unsupported(`${what}: expected a list of strings, got ${JSON.stringify(value)}`);
  }
  return value as string[];
};

/** Fails with `Unsupported` on the first field or argument (at any depth) outside INTERPRETED. */
export function validate(chain: Chain, where = "chain"): void {
  for (const step of chain) {
    const allowed = INTERPRETED[step.field];
    if (!allowed) throw new Unsupported(`${where}: the replay does not interpret ${step.field}()`);
    for (const [key, value] of Object.entries(step.args)) {
      if (!allowed.includes(key)) {
        throw new Unsupported(`${where}: the replay does not interpret ${step.field}(${key}:)`);
      }
      if (step.field === "withMountedCache" && key === "sharing" && !SHARING.includes(String(value))) {
        throw new Unsupported(`${where}: withMountedCache(sharing: ${String(value)})`);
      }
      const nested = (v: Value) => {
        if (v && typeof v === "object" && !Array.isArray(v) && "$id" in v) {
          validate((v as unknown as Expanded).chain, `${where} > ${step.field}(${key}:)`);
        } else if (Array.isArray(v)) v.forEach(nested);
        else if (v && typeof v === "object") Object.values(v).forEach(nested);
      };
      nested(value);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Directories on the host side.

/** Copies `src` to `dest` with what exclude/include (dockerignore semantics, see the header) let through. */
export function copyFiltered(src: string, dest: string, options: { include?: string[]; exclude?: string[] } = {}) {
  const anchored = (patterns: string[]) => patterns.map((p) => (p.startsWith("/") ? p : `/${p}`));
  const excluded = ignore().add(anchored(options.exclude ?? []));
  const included = options.include?.length ? ignore().add(anchored(options.include)) : undefined;
  const walk = (rel: string, inIncluded: boolean) => {
    const from = rel ? join(src, rel) : src;
    const stat = lstatSync(from);
    const isDir = stat.isDirectory();
    if (rel && excluded.ignores(isDir ? `${rel}/` : rel)) return;
    const selected = inIncluded || !included || (rel !== "" && included.ignores(isDir ? `${rel}/` : rel));
    const to = rel ? join(dest, rel) : dest;
    if (isDir) {
      for (const name of readdirSync(from).sort()) walk(rel ? posix.join(rel, name) : name, selected);
      if (selected) {
        mkdirSync(to, { recursive: true });
        chmodSync(to, stat.mode & 0o7777);
      }
      return;
    }
    if (!selected) return;
    mkdirSync(dirname(to), { recursive: true });
    if (stat.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
    else if (stat.isFile()) {
      copyFileSync(from, to);
      chmodSync(to, stat.mode & 0o7777);
    }
  };
  mkdirSync(dest, { recursive: true });
  walk("", false);
}

// ---------------------------------------------------------------------------------------------------------

interface ContainerState {
  /** Docker image (or, after dockerBuild, buildah image until it is handed to Docker). */
  image?: string;
  /**
   * After an exec: commits the exited container into an image, once, when a later step needs it (a chain
   * that ends with the exec, as each step's does, never pays for committing it).
   */
  commit?: () => Promise<string>;
  builder: "docker" | "buildah";
  env: Array<[string, string]>;
  workdir?: string;
  caches: Array<{ path: string; volume: string }>;
  binds: Array<{ path: string; host: string }>;
  services: Array<{ alias: string; chain: Chain }>;
  ports: number[];
  labels: Array<[string, string]>;
  stdout: string;
  stderr: string;
  /** How long the step that produced this state ran (its own exec or build, not what it waited for). */
  seconds: number;
}

export interface Evaluation {
  chain: Chain;
  outcome: "PASS" | "FAIL" | "NOT RUN";
  /** From the request to the answer, including waits for shared work and for a free slot. */
  seconds: number;
  /** How long its own last exec or build ran. */
  ownSeconds: number;
  stdout: string;
  stderr: string;
  exitCode?: number;
  /** Why it failed or did not run (not for a failed exec: see exitCode/stdout/stderr). */
  reason?: string;
  /** The Docker image the chain evaluated to (e.g. the built, labelled image). */
  image?: string;
}

export interface ReplayOptions {
  /** Pinned image reference → local stand-in tag (Docker, and buildah for build bases). */
  images: Record<string, string>;
  /** The host's CA bundle, handed to execs and image builds (see the header). */
  caFile?: string;
  /** The platform builds run for; any other is not runnable here. */
  hostPlatform?: string;
  /** Where progress lines go (default: nowhere). */
  log?: (line: string) => void;
  /** How many execs and builds run at once (default 1; the replay passes REPLAY_JOBS, default 1: with two, a timing-sensitive service test failed in the container while the image built beside it on a loaded 2-core machine). */
  jobs?: number;
}

/**
 * The identity of a chain for sharing work: its fields and arguments with the IDs left out (two queries name
 * the same directory by different IDs; what the ID stands for is expanded next to it).
 */
export function chainKey(chain: Chain): string {
  return JSON.stringify(chain, (key, value) => (key === "$id" ? undefined : value));
}

let counter = 0;
const uniq = (what: string) => `loan-replay-${what}-${process.pid}-${++counter}`;

/** Runs docker with separate stdout/stderr, never rejecting on a non-zero exit. */
function dockerRun(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("docker", args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

async function waitForPort(host: string, port: number, timeoutMs: number, alive: () => Promise<string | undefined>) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
      socket.setTimeout(1000, () => {
        socket.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    const dead = await alive();
    if (dead !== undefined) throw new Error(`the service exited before port ${port} opened:\n${dead}`);
    await sleep(200);
  }
  throw new Error(`port ${port} of the service did not open within ${timeoutMs / 1000} s`);
}

export class Replayer {
  readonly evaluations: Evaluation[] = [];
  /** Substitutions the runner made, for the report (e.g. a build argument naming a pinned image). */
  readonly substitutions = new Set<string>();
  /** Every exec run, in the order they started, and every service started (alias, image). */
  readonly execLog: string[][] = [];
  readonly serviceLog: Array<{ alias: string; image: string; args: string[] }> = [];
  private readonly work = mkdtempSync(join(tmpdir(), "loan-replay-"));
  private readonly dirs = new Map<string, Promise<string>>();
  private readonly containers = new Map<string, Promise<ContainerState>>();
  private readonly images = new Set<string>();
  private readonly exited: string[] = [];
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly options: ReplayOptions) {}

  /** Runs `job` when a slot is free (execs and builds only; see ReplayOptions.jobs). */
  private async slot<T>(job: () => Promise<T>): Promise<T> {
    if (this.active >= (this.options.jobs ?? 1)) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await job();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  private log(line: string) {
    this.options.log?.(line);
  }

  /** For the recording engine's `execute`: evaluates a chain for `stdout` / `sync`. */
  execute = async (chain: Chain): Promise<ExecAnswer | (ExecFailure & { cmd: string[] })> => {
    const started = Date.now();
    const record = (e: Omit<Evaluation, "chain" | "seconds">) => {
      this.evaluations.push({ chain, seconds: (Date.now() - started) / 1000, ...e });
    };
    try {
      validate(chain);
      const state = await this.container(chain);
      const image = await this.finish(state);
      record({ outcome: "PASS", stdout: state.stdout, stderr: state.stderr, image, ownSeconds: state.seconds });
      return { stdout: state.stdout, stderr: state.stderr };
    } catch (error) {
      if (error instanceof ExecFailed) {
        record({
          outcome: "FAIL",
          stdout: error.stdout,
          stderr: error.stderr,
          exitCode: error.exitCode,
          ownSeconds: error.seconds,
        });
        return { cmd: error.cmd, exitCode: error.exitCode, stdout: error.stdout, stderr: error.stderr };
      }
      const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      const ownSeconds = error instanceof BuildFailed ? error.seconds : 0;
      record({
        outcome: error instanceof NotRunnable ? "NOT RUN" : "FAIL",
        stdout: "",
        stderr: "",
        reason,
        ownSeconds,
      });
      throw error;
    }
  };

  /** For the recording engine's `onContents`: `….file(path).contents`. */
  contents = async (chain: Chain): Promise<string> => {
    validate(chain);
    const last = chain[chain.length - 1];
    if (last?.field !== "file") throw new Unsupported(`contents of ${last?.field ?? "nothing"}()`);
    const dir = await this.directory(chain.slice(0, -1));
    return readFileSync(join(dir, str(last.args.path, "file(path:)")), "utf8");
  };

  /** Removes the images and temporary files this replay made (cache volumes stay, as an engine's do). */
  async cleanup(): Promise<void> {
    if (this.exited.length) {
      await run("docker", ["rm", "--force", "--volumes", ...this.exited], { allowFailure: true, timeoutMs: 300_000 });
    }
    const images = [...this.images];
    const built = images.filter((i) => i.startsWith("localhost/loan-replay/build:"));
    if (images.length) await run("docker", ["rmi", "--force", ...images], { allowFailure: true, timeoutMs: 300_000 });
    if (built.length) await run("buildah", ["rmi", "--force", ...built], { allowFailure: true, timeoutMs: 300_000 });
    rmSync(this.work, { recursive: true, force: true });
  }

  // -------------------------------------------------------------------------------------------------------

  private directory(chain: Chain): Promise<string> {
    const key = chainKey(chain);
    let found = this.dirs.get(key);
    if (!found) {
      found = this.evalDirectory(chain);
      this.dirs.set(key, found);
    }
    return found;
  }

  private async evalDirectory(chain: Chain): Promise<string> {
    const last = chain[chain.length - 1] as Selection;
    const out = mkdtempSync(join(this.work, "dir-"));
    // An empty directory, as `directory()` is: its root is 0755 (mkdtemp makes it 0700).
    chmodSync(out, 0o755);
    if (chain.length === 1 && last.field === "directory" && Object.keys(last.args).length === 0) return out;
    if (chain.length === 2 && chain[0]?.field === "host" && last.field === "directory") {
      const path = str(last.args.path, "host.directory(path:)");
      if (!existsSync(path)) throw new Error(`host.directory: ${path} does not exist`);
      copyFiltered(path, out, {
        exclude: strings(last.args.exclude, "exclude"),
        include: strings(last.args.include, "include"),
      });
      return out;
    }
    if (chain.length >= 2 && last.field === "withDirectory") {
      const base = await this.directory(chain.slice(0, -1));
      const source = await this.directory(sub(last.args.source, "withDirectory(source:)"));
      copyFiltered(base, out);
      copyFiltered(source, join(out, str(last.args.path, "withDirectory(path:)")), {
        exclude: strings(last.args.exclude, "exclude"),
        include: strings(last.args.include, "include"),
      });
      return out;
    }
    throw new Unsupported(`a directory from ${chain.map((s) => s.field).join(".")}`);
  }

  private container(chain: Chain): Promise<ContainerState> {
    const key = chainKey(chain);
    let found = this.containers.get(key);
    if (!found) {
      found = this.evalContainer(chain);
      this.containers.set(key, found);
    }
    return found;
  }

  private async evalContainer(chain: Chain): Promise<ContainerState> {
    const last = chain[chain.length - 1] as Selection;
    if (chain.length === 1 && last.field === "container") {
      return {
        builder: "docker",
        env: [],
        caches: [],
        binds: [],
        services: [],
        ports: [],
        labels: [],
        stdout: "",
        stderr: "",
        seconds: 0,
      };
    }
    if (last.field === "dockerBuild") return this.dockerBuild(chain.slice(0, -1), last);
    if (chain.length < 2) throw new Unsupported(`a container from ${last.field}()`);
    const prev = await this.container(chain.slice(0, -1));
    const next: ContainerState = {
      ...prev,
      env: [...prev.env],
      caches: [...prev.caches],
      binds: [...prev.binds],
      services: [...prev.services],
      ports: [...prev.ports],
      labels: [...prev.labels],
    };
    const a = last.args;
    const inContainer = (path: string) => (path.startsWith("/") ? path : posix.join(prev.workdir ?? "/", path));
    const needsDocker = () => {
      if (!prev.image && !prev.commit) throw new Unsupported(`${last.field}() before from()`);
      if (prev.builder !== "docker") {
        throw new Unsupported(`${last.field}() on a dockerBuild result (only withLabel is interpreted there)`);
      }
    };
    switch (last.field) {
      case "from": {
        const address = str(a.address, "from(address:)");
        const local = this.options.images[address];
        if (!local) throw new NotRunnable(`image ${address}: no local stand-in, and no image can be pulled here`);
        next.image = local;
        next.commit = undefined;
        return next;
      }
      case "withEnvVariable": {
        const name = str(a.name, "withEnvVariable(name:)");
        next.env = [...next.env.filter(([n]) => n !== name), [name, str(a.value, "withEnvVariable(value:)")]];
        return next;
      }
      case "withWorkdir":
        next.workdir = inContainer(str(a.path, "withWorkdir(path:)"));
        return next;
      case "withMountedCache": {
        const cache = sub(a.cache, "withMountedCache(cache:)");
        if (cache.length !== 1 || cache[0]?.field !== "cacheVolume")
          throw new Unsupported("a cache that is not cacheVolume()");
        const key = str(cache[0].args.key, "cacheVolume(key:)");
        const path = inContainer(str(a.path, "withMountedCache(path:)"));
        next.caches = [
          ...next.caches.filter((c) => c.path !== path),
          { path, volume: `loan-replay-cache-${key.replace(/[^A-Za-z0-9_.-]/g, "_")}` },
        ];
        return next;
      }
      case "withExposedPort":
        next.ports = [...next.ports, Number(a.port)];
        return next;
      case "withServiceBinding":
        next.services = [
          ...next.services.filter((s) => s.alias !== a.alias),
          { alias: str(a.alias, "withServiceBinding(alias:)"), chain: sub(a.service, "withServiceBinding(service:)") },
        ];
        return next;
      case "withLabel":
        next.labels = [...next.labels, [str(a.name, "withLabel(name:)"), str(a.value, "withLabel(value:)")]];
        return next;
      case "withDirectory": {
        needsDocker();
        const dir = await this.directory(sub(a.source, "withDirectory(source:)"));
        const filtered = mkdtempSync(join(this.work, "dir-"));
        copyFiltered(dir, filtered, { exclude: strings(a.exclude, "exclude"), include: strings(a.include, "include") });
        next.commit = undefined;
        next.image = await this.addFiles(
          await this.imageOf(prev),
          filtered,
          inContainer(str(a.path, "withDirectory(path:)")),
        );
        return next;
      }
      case "withMountedDirectory": {
        needsDocker();
        const dir = await this.directory(sub(a.source, "withMountedDirectory(source:)"));
        next.binds = [...next.binds, { path: inContainer(str(a.path, "withMountedDirectory(path:)")), host: dir }];
        return next;
      }
      case "withMountedFile": {
        needsDocker();
        const file = await this.file(sub(a.source, "withMountedFile(source:)"));
        next.binds = [...next.binds, { path: inContainer(str(a.path, "withMountedFile(path:)")), host: file }];
        return next;
      }
      case "withExec":
        needsDocker();
        return this.exec(next, strings(a.args, "withExec(args:)"));
    }
    throw new Unsupported(`${last.field}() on a container`);
  }

  /** A file value: `….asTarball()` (docker save) or `directory….file(path)`. */
  private async file(chain: Chain): Promise<string> {
    const last = chain[chain.length - 1] as Selection;
    if (last.field === "asTarball") {
      const state = await this.container(chain.slice(0, -1));
      const image = (await this.finish(state)) ?? (await this.imageOf(state));
      const out = join(mkdtempSync(join(this.work, "tar-")), "image.tar");
      await run("docker", ["save", "--output", out, image], { timeoutMs: 600_000 });
      return out;
    }
    if (last.field === "file") {
      return join(await this.directory(chain.slice(0, -1)), str(last.args.path, "file(path:)"));
    }
    throw new Unsupported(`a file from ${last.field}()`);
  }

  /** docker create + cp + commit: the image with `dir`'s contents at `path`. */
  private async addFiles(image: string, dir: string, path: string): Promise<string> {
    const name = uniq("cp");
    await run("docker", ["create", "--name", name, "--entrypoint", "/bin/true", image]);
    try {
      // `docker cp DIR/. ctr:PATH` creates PATH if missing and copies the contents, owned by root.
      await run("docker", ["cp", `${dir}/.`, `${name}:${path}`], { timeoutMs: 300_000 });
      const { stdout } = await run("docker", ["commit", name], { timeoutMs: 300_000 });
      const id = stdout.trim();
      this.images.add(id);
      return id;
    } finally {
      await run("docker", ["rm", "--force", name], { allowFailure: true });
    }
  }

  private containerArgs(state: ContainerState): string[] {
    const args: string[] = [];
    if (state.workdir) args.push("--workdir", state.workdir);
    for (const [name, value] of state.env) args.push("--env", `${name}=${value}`);
    for (const c of state.caches) args.push("--volume", `${c.volume}:${c.path}`);
    for (const b of state.binds) args.push("--volume", `${b.host}:${b.path}:ro`);
    return args;
  }

  /** The state's image, committing a finished exec's container first if need be. */
  private async imageOf(state: ContainerState): Promise<string> {
    if (state.image) return state.image;
    if (state.commit) return state.commit();
    throw new Unsupported("a container without an image (no from())");
  }

  private async exec(state: ContainerState, cmd: string[]): Promise<ContainerState> {
    if (cmd.length === 0) throw new Unsupported("withExec(args: [])");
    const name = uniq("exec");
    const extra: string[] = [];
    if (this.options.caFile) {
      extra.push("--volume", `${this.options.caFile}:/run/loan-replay/ca.pem:ro`);
      extra.push("--env", "NODE_EXTRA_CA_CERTS=/run/loan-replay/ca.pem");
    }
    const network = state.services.length ? uniq("net") : undefined;
    const services: string[] = [];
    try {
      if (network) {
        await run("docker", ["network", "create", network]);
        extra.push("--network", network);
        for (const s of state.services) services.push(await this.startService(s.alias, s.chain, network));
      }
      this.log(`exec ${cmd.join(" ")}`);
      this.execLog.push(cmd);
      const image = await this.imageOf(state);
      let started = Date.now();
      const result = await this.slot(() => {
        started = Date.now(); // the exec's own time, not the wait for a slot
        return dockerRun([
          "run",
          "--name",
          name,
          ...this.containerArgs(state),
          ...extra,
          "--entrypoint",
          cmd[0] as string,
          image,
          ...cmd.slice(1),
        ]);
      });
      const seconds = (Date.now() - started) / 1000;
      this.log(`exec ${cmd.join(" ")}: exit ${result.code} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      if (result.code !== 0) throw new ExecFailed(cmd, result.code, result.stdout, result.stderr, seconds);
      let committed: Promise<string> | undefined;
      const commit = () => {
        committed ??= run("docker", ["commit", name], { timeoutMs: 300_000 }).then(({ stdout }) => {
          this.images.add(stdout.trim());
          return stdout.trim();
        });
        return committed;
      };
      this.exited.push(name);
      return { ...state, image: undefined, commit, stdout: result.stdout, stderr: result.stderr, seconds };
    } catch (error) {
      await run("docker", ["rm", "--force", "--volumes", name], { allowFailure: true });
      throw error;
    } finally {
      for (const s of services) await run("docker", ["rm", "--force", "--volumes", s], { allowFailure: true });
      if (network) await run("docker", ["network", "rm", network], { allowFailure: true });
    }
  }

  /** Starts a service container on `network` under `alias`; resolves when its exposed ports accept connections. */
  private async startService(alias: string, chain: Chain, network: string): Promise<string> {
    const last = chain[chain.length - 1];
    if (last?.field !== "asService") throw new Unsupported(`a service from ${last?.field ?? "nothing"}()`);
    const state = await this.container(chain.slice(0, -1));
    if (state.builder !== "docker") throw new Unsupported("a service from a dockerBuild result");
    const image = await this.imageOf(state);
    const args = strings(last.args.args, "asService(args:)");
    const useEntrypoint = last.args.useEntrypoint === true;
    if (!args.length) throw new Unsupported("asService() without args (the default command is not interpreted)");
    const name = uniq(`svc-${alias}`);
    const run1 = [
      "run",
      "--detach",
      "--name",
      name,
      "--network",
      network,
      "--network-alias",
      alias,
      ...this.containerArgs(state),
    ];
    if (useEntrypoint) run1.push(image, ...args);
    else run1.push("--entrypoint", args[0] as string, image, ...args.slice(1));
    this.log(`service ${alias}: ${args.join(" ")}`);
    this.serviceLog.push({ alias, image, args });
    await run("docker", run1);
    const { stdout } = await run("docker", [
      "inspect",
      "--format",
      `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`,
      name,
    ]);
    const ip = stdout.trim();
    const dead = async () => {
      const r = await run("docker", ["inspect", "--format", "{{.State.Running}}", name], { allowFailure: true });
      if (r.stdout.trim() === "true") return undefined;
      const logs = await run("docker", ["logs", name], { allowFailure: true });
      return `${logs.stdout}${logs.stderr}`.split("\n").slice(-30).join("\n");
    };
    try {
      for (const port of state.ports) await waitForPort(ip, port, 120_000, dead);
    } catch (error) {
      await run("docker", ["rm", "--force", "--volumes", name], { allowFailure: true });
      throw error;
    }
    return name;
  }

  private async dockerBuild(dirChain: Chain, step: Selection): Promise<ContainerState> {
    const context = await this.directory(dirChain);
    const platform = step.args.platform === undefined ? undefined : str(step.args.platform, "dockerBuild(platform:)");
    const host = this.options.hostPlatform ?? "linux/amd64";
    if (platform && platform !== host) {
      throw new NotRunnable(`dockerBuild(platform: ${platform}): only ${host} can be built here (no emulation)`);
    }
    const buildArgs = (step.args.buildArgs ?? []) as Value[];
    if (!Array.isArray(buildArgs)) throw new Unsupported("dockerBuild(buildArgs:) is not a list");
    const args = ["bud", "--format", "docker", "--isolation", "chroot", "--pull=never", "--no-cache"];
    for (const arg of buildArgs) {
      const { name, value, ...rest } = (arg ?? {}) as Record<string, Value>;
      if (Object.keys(rest).length) throw new Unsupported(`dockerBuild build argument fields ${Object.keys(rest)}`);
      const wanted = str(value, "buildArgs value");
      const local = this.options.images[wanted];
      if (local) this.substitutions.add(`build argument ${String(name)}=${wanted} → ${local} (stand-in)`);
      args.push("--build-arg", `${str(name, "buildArgs name")}=${local ?? wanted}`);
    }
    if (platform) args.push("--platform", platform);
    if (this.options.caFile) args.push("--secret", `id=npm_ca,src=${this.options.caFile}`);
    const tag = `localhost/loan-replay/build:${process.pid}-${++counter}`;
    args.push("--file", join(context, "Dockerfile"), "--tag", tag, context);
    this.log(`dockerBuild: buildah ${args.join(" ")}`);
    let started = Date.now();
    const result = await this.slot(() => {
      started = Date.now();
      return run("buildah", args, { allowFailure: true, timeoutMs: 1_800_000 });
    });
    const seconds = (Date.now() - started) / 1000;
    this.log(`dockerBuild: buildah exit ${result.code} after ${seconds.toFixed(1)} s`);
    if (result.code !== 0) {
      const output = `${result.stdout}${result.stderr}`.trimEnd().split("\n").slice(-150).join("\n");
      throw new BuildFailed(`the image build failed (buildah exit ${result.code}):\n${output}`, seconds);
    }
    this.images.add(tag);
    return {
      image: tag,
      builder: "buildah",
      env: [],
      caches: [],
      binds: [],
      services: [],
      ports: [],
      labels: [],
      stdout: "",
      stderr: "",
      seconds,
    };
  }

  /**
   * Applies pending labels to a built image and hands it to Docker; returns the Docker image (undefined for
   * a container whose last exec was not committed: nothing needs it as an image).
   */
  private async finish(state: ContainerState): Promise<string | undefined> {
    if (state.builder === "docker") {
      if (state.labels.length) throw new Unsupported("withLabel() on a from() container");
      return state.image;
    }
    if (!state.image) throw new Unsupported("a built container without an image");
    const tag = `localhost/loan-replay/build:${process.pid}-${++counter}`;
    const ctr = (await run("buildah", ["from", "--pull=never", state.image])).stdout.trim();
    try {
      const labels = state.labels.flatMap(([name, value]) => ["--label", `${name}=${value}`]);
      if (labels.length) await run("buildah", ["config", ...labels, ctr]);
      await run("buildah", ["commit", "--quiet", "--format", "docker", ctr, tag], { timeoutMs: 300_000 });
    } finally {
      await run("buildah", ["rm", ctr], { allowFailure: true });
    }
    this.images.add(tag);
    await run("buildah", ["push", "--quiet", tag, `docker-daemon:${tag}`], { timeoutMs: 600_000 });
    return tag;
  }
}
