/**
 * The standalone pipeline client: `npx tsx ci/main.ts <step> [flags]` from the repository root.
 *
 * It runs the same step functions as the Dagger module (`ci/src/pipeline.ts`) through the SDK's
 * `connection()`: inside `dagger run …` it uses that session; otherwise the SDK provisions an engine itself
 * (downloading the Dagger CLI of the SDK's version and starting it on the local container runtime).
 *
 * Exit codes: 0 success, 1 a gate or step failed, 2 usage error, 3 no Dagger engine could be reached.
 */
import { execFileSync } from "node:child_process";
import { appendFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const COMMANDS = ["test", "lint", "typecheck", "build", "scan", "sbom", "publish", "verify", "ci"] as const;
type Command = (typeof COMMANDS)[number];

const USAGE = `usage: npx tsx ci/main.ts <command> [flags]

commands:
  ci          lint + typecheck + test + build + scan, concurrently where independent; prints a summary
  test        npm test in the Node image against a throwaway PostgreSQL service bound as db
  lint        npm run lint in the Node image
  typecheck   npm run typecheck in the Node image
  build       build the Dockerfile's image (with OCI labels)
  scan        build, then gate the image with Trivy (HIGH/CRITICAL with a fix available)
  sbom        CycloneDX SBOMs of the image (Trivy) and of the npm tree, written to --output
  publish     test + scan gates, then push the scanned image (linux/amd64 + linux/arm64), sign its
              digest and attest its SBOMs with cosign; refs, digest and SBOMs written to --output
  verify      cosign verify + verify-attestation (SBOM, SLSA provenance) of --image against the
              repository's workflow identity

publish flags:
  --registry R               registry host (default: ghcr.io)
  --repository OWNER/NAME    image repository, lower-cased (default: $GITHUB_REPOSITORY)
  --tag T                    tag to push besides sha-<commit> (default: latest)
  --username U               registry user (default: $GITHUB_ACTOR)
  --output DIR               where refs.txt, image, digest and sbom/ are written (default: .publish)

sbom flags:
  --output DIR               where image.cdx.json and npm.cdx.json are written (default: sbom)

verify flags:
  --image REF@sha256:…       the image, by digest (required)
  --repository OWNER/NAME    the GitHub repository whose workflow signed (default: $GITHUB_REPOSITORY)
  --workflow PATH            the signing workflow (default: .github/workflows/ci.yml)
  --git-ref REF              the ref it ran on (default: refs/heads/main)
  --username U               registry user, for a private image (with REGISTRY_PASSWORD or GITHUB_TOKEN)

environment:
  REGISTRY_PASSWORD          registry password/token, passed to the engine as a secret reference
                             (env://REGISTRY_PASSWORD); falls back to GITHUB_TOKEN (env://GITHUB_TOKEN)
  ACTIONS_ID_TOKEN_REQUEST_TOKEN, ACTIONS_ID_TOKEN_REQUEST_URL
                             GitHub Actions' OIDC request (id-token: write): publish signs keyless
  COSIGN_KEY, COSIGN_PASSWORD
                             otherwise publish signs with this cosign key (and its password)
  GITHUB_SHA                 commit for the sha-<commit> tag and the revision label (default: git HEAD)
  GITHUB_OUTPUT              when set, publish appends image=… and digest=… to it (a step's outputs)

exit codes: 0 ok, 1 a gate or step failed, 2 usage error, 3 no Dagger engine reachable
`;

const ENGINE_HELP = `No Dagger engine could be reached, so nothing ran.
  - Install the Dagger CLI (https://docs.dagger.io/install) and a container runtime (Docker, Podman, …),
    then run this client inside a session:  dagger run npx tsx ci/main.ts <command>
  - or run the module directly:             dagger call ci --source .
  Without a session (DAGGER_SESSION_PORT/DAGGER_SESSION_TOKEN), the SDK downloads the Dagger CLI and needs
  network access and a running container runtime.`;

class UsageError extends Error {}

interface Invocation {
  command: Command;
  registry: string;
  repository?: string;
  tag: string;
  username?: string;
  output?: string;
  image?: string;
  workflow?: string;
  gitRef?: string;
}

const OPTIONS = {
  registry: { type: "string" },
  repository: { type: "string" },
  tag: { type: "string" },
  username: { type: "string" },
  output: { type: "string" },
  image: { type: "string" },
  workflow: { type: "string" },
  "git-ref": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** The flags each command accepts (besides --help). */
const COMMAND_FLAGS: Partial<Record<Command, string[]>> = {
  publish: ["registry", "repository", "tag", "username", "output"],
  sbom: ["output"],
  verify: ["image", "repository", "workflow", "git-ref", "username"],
};

function parse(argv: string[]): Invocation {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help) throw new UsageError("");
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length ? `expected one command, got: ${positionals.join(" ")}` : "missing command",
    );
  }
  const command = positionals[0] as Command;
  if (!COMMANDS.includes(command)) throw new UsageError(`unknown command: ${positionals[0]}`);
  const allowed = COMMAND_FLAGS[command] ?? [];
  const given = Object.keys(OPTIONS).filter((f) => f !== "help" && values[f as keyof typeof values] !== undefined);
  const misplaced = given.filter((f) => !allowed.includes(f));
  if (misplaced.length) {
    const owners = misplaced.map((f) =>
      Object.entries(COMMAND_FLAGS)
        .filter(([, flags]) => flags.includes(f))
        .map(([c]) => c)
        .join(" or "),
    );
    throw new UsageError(`--${misplaced.join(", --")}: only valid with ${[...new Set(owners)].join(", ")}`);
  }
  return {
    command,
    registry: values.registry ?? "ghcr.io",
    repository: values.repository,
    tag: values.tag ?? "latest",
    username: values.username,
    output: values.output,
    image: values.image,
    workflow: values.workflow,
    gitRef: values["git-ref"],
  };
}

/** The commit being built: GITHUB_SHA in Actions, otherwise the local git HEAD (none outside a checkout). */
function currentCommit(root: string, env: NodeJS.ProcessEnv): string | undefined {
  if (env.GITHUB_SHA) return env.GITHUB_SHA;
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: root, stdio: ["ignore", "pipe", "ignore"] })
      .toString()
      .trim();
  } catch {
    return undefined;
  }
}

/**
 * Which environment variables carry the signing identity (as `SigningInput` keys → variable names): GitHub
 * Actions' OIDC request when both are set, otherwise a cosign key; none when neither is there.
 */
function signingVariables(env: NodeJS.ProcessEnv): Record<string, string> | undefined {
  if (env.ACTIONS_ID_TOKEN_REQUEST_TOKEN && env.ACTIONS_ID_TOKEN_REQUEST_URL) {
    return { oidcRequestToken: "ACTIONS_ID_TOKEN_REQUEST_TOKEN", oidcRequestUrl: "ACTIONS_ID_TOKEN_REQUEST_URL" };
  }
  if (env.COSIGN_KEY) {
    return env.COSIGN_PASSWORD
      ? { cosignKey: "COSIGN_KEY", cosignPassword: "COSIGN_PASSWORD" }
      : { cosignKey: "COSIGN_KEY" };
  }
  return undefined;
}

/** Whether an error from the SDK means there was no engine to talk to (as opposed to a failing step). */
function isEngineUnreachable(error: unknown, sdk: typeof import("@dagger.io/dagger")): boolean {
  if (
    error instanceof sdk.NotAwaitedRequestError || // what the SDK throws on ECONNREFUSED
    error instanceof sdk.InitEngineSessionBinaryError ||
    error instanceof sdk.EngineSessionError ||
    error instanceof sdk.EngineSessionConnectionTimeoutError ||
    error instanceof sdk.EngineSessionConnectParamsParseError
  ) {
    return true;
  }
  if (error instanceof Error && error.message.startsWith("failed to execute function with automatic provisioning")) {
    return true;
  }
  const cause = error instanceof Error ? (error.cause as { code?: string; errno?: string } | undefined) : undefined;
  return ["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH"].includes(String(cause?.code ?? cause?.errno));
}

/** Where the client writes: the process's streams, or a test's buffers. */
export interface Io {
  stdout: Pick<NodeJS.WritableStream, "write">;
  stderr: Pick<NodeJS.WritableStream, "write">;
}

/**
 * Runs one command and resolves with the exit code. `env` supplies the CI variables (GITHUB_SHA, …); the SDK
 * itself reads its session variables (DAGGER_SESSION_PORT/TOKEN) from `process.env`.
 */
export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: Io = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let invocation: Invocation;
  try {
    invocation = parse(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      if (error.message) io.stderr.write(`error: ${error.message}\n\n`);
      io.stderr.write(USAGE);
      return error.message ? 2 : 0;
    }
    throw error;
  }

  const root = fileURLToPath(new URL("..", import.meta.url));
  const commit = currentCommit(root, env);
  let publishInput:
    | { repository: string; username: string; passwordVar: string; signingVars: Record<string, string> }
    | undefined;
  if (invocation.command === "publish") {
    const repository = invocation.repository ?? env.GITHUB_REPOSITORY;
    const username = invocation.username ?? env.GITHUB_ACTOR;
    const passwordVar = env.REGISTRY_PASSWORD ? "REGISTRY_PASSWORD" : env.GITHUB_TOKEN ? "GITHUB_TOKEN" : undefined;
    const signingVars = signingVariables(env);
    const missing = [
      repository ? "" : "--repository (or GITHUB_REPOSITORY)",
      username ? "" : "--username (or GITHUB_ACTOR)",
      passwordVar ? "" : "REGISTRY_PASSWORD (or GITHUB_TOKEN) in the environment",
      signingVars
        ? ""
        : "a signing identity: ACTIONS_ID_TOKEN_REQUEST_TOKEN and ACTIONS_ID_TOKEN_REQUEST_URL (GitHub Actions), or COSIGN_KEY",
    ].filter(Boolean);
    if (missing.length || !repository || !username || !passwordVar || !signingVars) {
      io.stderr.write(`error: publish needs ${missing.join(", ")}\n\n${USAGE}`);
      return 2;
    }
    publishInput = { repository, username, passwordVar, signingVars };
  }
  let verifyInput: { image: string; repository: string; passwordVar?: string } | undefined;
  if (invocation.command === "verify") {
    const repository = invocation.repository ?? env.GITHUB_REPOSITORY;
    if (!invocation.image || !repository) {
      const missing = [invocation.image ? "" : "--image", repository ? "" : "--repository (or GITHUB_REPOSITORY)"];
      io.stderr.write(`error: verify needs ${missing.filter(Boolean).join(", ")}\n\n${USAGE}`);
      return 2;
    }
    const passwordVar = env.REGISTRY_PASSWORD ? "REGISTRY_PASSWORD" : env.GITHUB_TOKEN ? "GITHUB_TOKEN" : undefined;
    verifyInput = { image: invocation.image, repository, passwordVar: invocation.username ? passwordVar : undefined };
  }

  // Loaded only now, so that usage errors answer instantly.
  const sdk = await import("@dagger.io/dagger");
  const pipeline = await import("./src/pipeline.js");
  const supplyChain = await import("./src/supply-chain.js");
  const out = (text: string) => io.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
  if (publishInput) {
    try {
      pipeline.publishTarget({ ...invocation, repository: publishInput.repository, commit });
    } catch (error) {
      io.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
      return 2;
    }
  }

  let code = 0;
  try {
    await sdk.connection(
      async () => {
        const source = sdk.dag.host().directory(root, { exclude: pipeline.SOURCE_IGNORE });
        try {
          switch (invocation.command) {
            case "test":
              out(await pipeline.test(source));
              break;
            case "lint":
              out(await pipeline.lint(source));
              break;
            case "typecheck":
              out(await pipeline.typecheck(source));
              break;
            case "build": {
              const image = await (await pipeline.build(source, { commit })).sync();
              out(`build: image built (${await image.platform()}); not exported, see \`dagger call build --help\``);
              break;
            }
            case "scan":
              out(await pipeline.scanImage(await pipeline.build(source, { commit }), source));
              break;
            case "sbom": {
              const target = resolve(invocation.output ?? "sbom");
              await (await pipeline.sboms(source)).export(target);
              out(`sbom: image.cdx.json and npm.cdx.json written to ${target}`);
              break;
            }
            case "verify": {
              const input = verifyInput as NonNullable<typeof verifyInput>;
              const credentials =
                invocation.username && input.passwordVar
                  ? { username: invocation.username, password: sdk.dag.secret(`env://${input.passwordVar}`) }
                  : undefined;
              out(
                await supplyChain.verify(input.image, {
                  repository: input.repository,
                  workflow: invocation.workflow,
                  gitRef: invocation.gitRef,
                  credentials,
                  runId: pipeline.freshRunId(),
                }),
              );
              break;
            }
            case "ci":
              out((await pipeline.ci(source)).summary);
              break;
            case "publish": {
              const input = publishInput as NonNullable<typeof publishInput>;
              // A reference, resolved by the engine session from its environment: the value is never read here.
              const password = sdk.dag.secret(`env://${input.passwordVar}`);
              // The signing identity likewise: references to the variables, resolved by the engine.
              const signing = Object.fromEntries(
                Object.entries(input.signingVars).map(([name, variable]) => [
                  name,
                  sdk.dag.secret(`env://${variable}`),
                ]),
              );
              const result = await pipeline.publish(source, {
                registry: invocation.registry,
                repository: input.repository,
                tag: invocation.tag,
                username: input.username,
                password,
                commit,
                signing,
              });
              for (const ref of result.refs) out(`published ${ref}`);
              for (const line of result.signed) out(line);
              const target = resolve(invocation.output ?? ".publish");
              await result.files.export(target);
              out(`refs, digest and SBOMs written to ${target}`);
              if (env.GITHUB_OUTPUT) {
                const [image, digest] = result.digestRef.split("@");
                appendFileSync(env.GITHUB_OUTPUT, `image=${image}\ndigest=${digest}\n`);
              }
              break;
            }
          }
        } catch (error) {
          if (isEngineUnreachable(error, sdk)) throw error;
          // `ci` fails with its summary followed by each failing step's output; other steps with their output.
          const detail =
            invocation.command === "ci" && error instanceof Error ? error.message : pipeline.failureOutput(error);
          io.stderr.write(`\n${invocation.command} failed:\n${detail}\n`);
          code = 1;
        }
      },
      { LogOutput: io.stderr as Writable },
    );
  } catch (error) {
    if (isEngineUnreachable(error, sdk)) {
      const detail =
        error instanceof sdk.NotAwaitedRequestError && env.DAGGER_SESSION_PORT
          ? `nothing answers on 127.0.0.1:${env.DAGGER_SESSION_PORT} (DAGGER_SESSION_PORT)`
          : error instanceof Error
            ? error.message.split("\n")[0]
            : String(error);
      io.stderr.write(`${ENGINE_HELP}\n  (cause: ${detail})\n`);
      return 3;
    }
    io.stderr.write(`\n${invocation.command} failed:\n${pipeline.failureOutput(error)}\n`);
    return 1;
  }
  return code;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // When the SDK fails to start an engine session it also rejects a promise nobody awaits
  // (EngineSessionError); main() has already reported the failure, so keep that from crashing the process.
  process.on("unhandledRejection", (reason) => {
    if (reason instanceof Error && reason.name === "EngineSessionError") return;
    process.stderr.write(`${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
    process.exitCode = 1;
  });
  process.exitCode = await main(process.argv.slice(2));
}
