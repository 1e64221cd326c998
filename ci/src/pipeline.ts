/**
 * The pipeline's steps: plain functions over the Dagger core API and the global `dag` client.
 *
 * This file is the only place where steps are defined. The Dagger module (`index.ts`, what `dagger call`
 * and `dagger check` run) and the standalone client (`../main.ts`, what `npx tsx ci/main.ts <step>` runs)
 * are thin callers of these functions, so every entry point runs one body of pipeline code.
 *
 * Nothing here reads the host: inputs arrive as `Directory` and `Secret` objects, which keeps the functions
 * usable from a module (where the engine supplies them) and from a client (where the host does).
 */
import {
  CacheSharingMode,
  type Container,
  type Directory,
  dag,
  ExecError,
  type File,
  type Platform,
  type Secret,
  type Service,
} from "@dagger.io/dagger";
import {
  cosignContainer,
  digestRef,
  IMAGE_SBOM_FILE,
  imageSbom,
  imageSbomName,
  NPM_SBOM_FILE,
  npmSbom,
  type SigningInput,
  sbomDirectory,
  signAndAttest,
  signingIdentity,
} from "./supply-chain.js";
import { KUSTOMIZE_IMAGE, NODE_IMAGE, POSTGRES_IMAGE, PUBLISH_PLATFORMS, TRIVY_IMAGE } from "./versions.js";

/**
 * What is never uploaded as `source`: dependencies, VCS data, local env files, keys and certificates, the
 * generated Dagger SDK, build and report outputs. The module uses it as the `ignore` list of every `source`
 * argument; the standalone client as the `exclude` list of the host directory. Keep it a plain array literal:
 * the SDK's introspector reads it statically.
 */
export const SOURCE_IGNORE = [
  "**/node_modules",
  ".git",
  "**/.env",
  "**/.env.*",
  "env/*.local.env",
  "env/prod.env",
  "secrets",
  "**/*.pem",
  "**/*.key",
  "nginx/certs",
  "ci/sdk",
  "**/*.sarif",
  "dist",
  ".data",
  "bench/out",
  ".tmp",
  "**/*.log",
];

/** Where the repository is mounted in the Node containers. */
export const WORKDIR = "/app";

/** Cache volume for npm's download cache (`/root/.npm`): `npm ci` reinstalls from it without the network. */
export const NPM_CACHE_VOLUME = "loan-ci-npm";

/** Cache volume for Trivy's vulnerability database, shared between runs, locked while Trivy updates it. */
export const TRIVY_CACHE_VOLUME = "loan-ci-trivy-db";
export const TRIVY_CACHE_DIR = "/root/.cache/trivy";

/**
 * The throwaway test database. Its password is a fixed, non-secret value on purpose: the server lives only
 * inside the Dagger session's network for the duration of one test run, and `dag.setSecret()` would put the
 * plaintext into the GraphQL query anyway (`setSecret(name:, plaintext:)`), so a "secret" would protect
 * nothing while busting the layer cache.
 */
export const TEST_DB = { host: "db", port: 5432, user: "postgres", password: "postgres", name: "loans_test" };
export const TEST_DATABASE_URL = `postgres://${TEST_DB.user}:${TEST_DB.password}@${TEST_DB.host}:${TEST_DB.port}/${TEST_DB.name}`;

/** The Trivy gate: HIGH and CRITICAL vulnerabilities that have a fix available fail the step. */
export const TRIVY_GATE_FLAGS = [
  "--scanners",
  "vuln",
  "--severity",
  "HIGH,CRITICAL",
  "--ignore-unfixed",
  "--exit-code",
  "1",
];

export const IMAGE_TARBALL = "/scan/image.tar";
const TRIVY_CONFIG_DIR = "/scan/config";
const TRIVY_IGNORE_FILE = `${TRIVY_CONFIG_DIR}/.trivyignore`;
const SARIF_PATH = "/tmp/trivy.sarif";

/**
 * A value that differs on every run. Set as an environment variable right before a step that must really run
 * again (the tests, the scans), it keeps the engine from answering that step from its layer cache.
 */
export function freshRunId(): string {
  return `${new Date().toISOString()}-${Math.random().toString(36).slice(2, 10)}`;
}

/**
 * The Node container of the project's Node major with the dependencies installed (`npm ci`) *before* the
 * source is added, so that a change to the source alone reuses the installed layer; npm's download cache
 * lives in a cache volume.
 */
export function nodeWorkspace(source: Directory): Container {
  const manifests = dag.directory().withDirectory(".", source, { include: ["package.json", "package-lock.json"] });
  return dag
    .container()
    .from(NODE_IMAGE)
    .withEnvVariable("CI", "true")
    .withEnvVariable("NPM_CONFIG_UPDATE_NOTIFIER", "false")
    .withMountedCache("/root/.npm", dag.cacheVolume(NPM_CACHE_VOLUME))
    .withWorkdir(WORKDIR)
    .withDirectory(WORKDIR, manifests)
    .withExec(["npm", "ci", "--no-audit", "--no-fund"])
    .withDirectory(WORKDIR, source);
}

/** The official PostgreSQL image as a service; its entrypoint initialises the database. Tuned for tests. */
export function postgresService(): Service {
  return dag
    .container()
    .from(POSTGRES_IMAGE)
    .withEnvVariable("POSTGRES_USER", TEST_DB.user)
    .withEnvVariable("POSTGRES_PASSWORD", TEST_DB.password)
    .withEnvVariable("POSTGRES_DB", TEST_DB.name)
    .withExposedPort(TEST_DB.port)
    .asService({
      useEntrypoint: true,
      args: [
        "postgres",
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
      ],
    });
}

/** The test step as a container: PostgreSQL bound as `db`, `DATABASE_URL` pointing at it, then `npm test`. */
export function testContainer(source: Directory, runId: string = freshRunId()): Container {
  return nodeWorkspace(source)
    .withServiceBinding(TEST_DB.host, postgresService())
    .withEnvVariable("DATABASE_URL", TEST_DATABASE_URL)
    .withEnvVariable("CACHEBUSTER", runId)
    .withExec(["npm", "test"]);
}

/** Runs the project's test command against the PostgreSQL service; returns its output. */
export async function test(source: Directory, runId: string = freshRunId()): Promise<string> {
  return testContainer(source, runId).stdout();
}

/** Runs the project's lint command (`npm run lint`); returns its output. */
export async function lint(source: Directory): Promise<string> {
  return nodeWorkspace(source).withExec(["npm", "run", "lint"]).stdout();
}

/** Runs the project's type-check command (`npm run typecheck`); returns its output. */
export async function typecheck(source: Directory): Promise<string> {
  return nodeWorkspace(source).withExec(["npm", "run", "typecheck"]).stdout();
}

/** What the OCI labels of the image say about where it comes from. Empty values are left out. */
export interface ImageMeta {
  commit?: string;
  version?: string;
  created?: string;
  sourceUrl?: string;
}

/** Reads the version (and the repository URL, if declared) from the source's `package.json`. */
export async function imageMeta(
  source: Directory,
  known: { commit?: string; sourceUrl?: string } = {},
): Promise<ImageMeta> {
  const pkg = JSON.parse(await source.file("package.json").contents()) as {
    version?: string;
    repository?: string | { url?: string };
  };
  const declared = typeof pkg.repository === "string" ? pkg.repository : pkg.repository?.url;
  return {
    commit: known.commit || undefined,
    version: pkg.version,
    created: new Date().toISOString(),
    sourceUrl: known.sourceUrl || declared?.replace(/^git\+/, "").replace(/\.git$/, "") || undefined,
  };
}

/**
 * Builds the project's Dockerfile (at the repository root) with `NODE_IMAGE` set to the pinned Node image,
 * then adds the OCI labels. Lazy: nothing runs until the container is used.
 */
export function buildImage(source: Directory, meta: ImageMeta = {}, platform?: Platform): Container {
  let image = source.dockerBuild({
    buildArgs: [{ name: "NODE_IMAGE", value: NODE_IMAGE }],
    ...(platform ? { platform } : {}),
  });
  const labels: Array<[string, string | undefined]> = [
    ["org.opencontainers.image.source", meta.sourceUrl],
    ["org.opencontainers.image.revision", meta.commit],
    ["org.opencontainers.image.version", meta.version],
    ["org.opencontainers.image.created", meta.created],
  ];
  for (const [name, value] of labels) {
    if (value) image = image.withLabel(name, value);
  }
  return image;
}

/** Builds the image for the engine's platform with labels read from the source. */
export async function build(
  source: Directory,
  known: { commit?: string; sourceUrl?: string } = {},
): Promise<Container> {
  return buildImage(source, await imageMeta(source, known));
}

/**
 * Pinned Trivy with the image's tarball mounted (the image is never pushed to be scanned), the
 * vulnerability database in a locked cache volume, and the source's `.trivyignore` (if any) in place.
 */
export function trivyOn(image: Container, source: Directory, runId: string): Container {
  const config = dag.directory().withDirectory(".", source, { include: [".trivyignore"] });
  return dag
    .container()
    .from(TRIVY_IMAGE)
    .withMountedCache(TRIVY_CACHE_DIR, dag.cacheVolume(TRIVY_CACHE_VOLUME), { sharing: CacheSharingMode.Locked })
    .withEnvVariable("TRIVY_CACHE_DIR", TRIVY_CACHE_DIR)
    .withEnvVariable("TRIVY_NO_PROGRESS", "true")
    .withMountedDirectory(TRIVY_CONFIG_DIR, config)
    .withMountedFile(IMAGE_TARBALL, image.asTarball())
    .withWorkdir(TRIVY_CONFIG_DIR)
    .withEnvVariable("CACHEBUSTER", runId);
}

/** The scan gate as a container: fails (exit code 1) on HIGH/CRITICAL vulnerabilities with a fix available. */
export function scanContainer(image: Container, source: Directory, runId: string = freshRunId()): Container {
  return trivyOn(image, source, runId).withExec([
    "trivy",
    "image",
    "--input",
    IMAGE_TARBALL,
    "--ignorefile",
    TRIVY_IGNORE_FILE,
    ...TRIVY_GATE_FLAGS,
    "--format",
    "table",
  ]);
}

/** Runs the scan gate on an image; returns Trivy's table. */
export async function scanImage(image: Container, source: Directory, runId: string = freshRunId()): Promise<string> {
  return scanContainer(image, source, runId).stdout();
}

/** A SARIF report of every vulnerability Trivy finds in the image (all severities; it never fails the step). */
export function sarifReport(image: Container, source: Directory, runId: string = freshRunId()): File {
  return trivyOn(image, source, runId)
    .withExec([
      "trivy",
      "image",
      "--input",
      IMAGE_TARBALL,
      "--ignorefile",
      TRIVY_IGNORE_FILE,
      "--scanners",
      "vuln",
      "--exit-code",
      "0",
      "--format",
      "sarif",
      "--output",
      SARIF_PATH,
    ])
    .file(SARIF_PATH);
}

/**
 * The SBOMs of a build: `image.cdx.json` (Trivy on the built image's tarball, as the scan reads it) and
 * `npm.cdx.json` (the npm dependency tree from the lockfile). Returns them in one directory.
 */
export async function sboms(source: Directory, runId: string = freshRunId()): Promise<Directory> {
  const image = await build(source);
  return sbomDirectory([
    { name: IMAGE_SBOM_FILE, file: imageSbom(trivyOn(image, source, runId), IMAGE_TARBALL) },
    { name: NPM_SBOM_FILE, file: npmSbom(nodeWorkspace(source)) },
  ]);
}

export interface PublishOptions {
  registry: string;
  repository: string;
  tag: string;
  username: string;
  password: Secret;
  commit?: string;
  /** How the pushed digest is signed: the GitHub OIDC request token and URL, or a cosign key (see supply-chain.ts). */
  signing?: SigningInput;
}

export interface PublishTarget {
  /** `registry/repository`, repository lower-cased. */
  image: string;
  registry: string;
  repository: string;
  commit?: string;
  tags: string[];
}

const REPOSITORY_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const COMMIT_RE = /^[0-9a-f]{7,40}$/;

/**
 * Validates the publish inputs and works out the image and its tags: `tag`, plus `sha-<commit>` when the
 * commit is known. OCI repositories must be lower-case, so `Owner/Repo` becomes `owner/repo`.
 */
export function publishTarget(options: Omit<PublishOptions, "password" | "username">): PublishTarget {
  const registry = options.registry.trim().replace(/\/+$/, "").toLowerCase();
  const repository = options.repository
    .trim()
    .replace(/^\/+|\/+$/g, "")
    .toLowerCase();
  const commit = options.commit?.trim().toLowerCase() || undefined;
  if (!registry || /[\s/]/.test(registry)) throw new Error(`invalid registry ${JSON.stringify(options.registry)}`);
  if (!REPOSITORY_RE.test(repository)) {
    throw new Error(`invalid repository ${JSON.stringify(options.repository)}: expected OWNER/NAME`);
  }
  if (!TAG_RE.test(options.tag)) throw new Error(`invalid tag ${JSON.stringify(options.tag)}`);
  if (commit !== undefined && !COMMIT_RE.test(commit)) {
    throw new Error(`invalid commit ${JSON.stringify(options.commit)}: expected a hexadecimal git SHA`);
  }
  const tags = [options.tag];
  if (commit) tags.push(`sha-${commit}`);
  return { image: `${registry}/${repository}`, registry, repository, commit, tags: [...new Set(tags)] };
}

/** What `publish` returns. */
export interface PublishResult {
  /** The published refs, one per tag, each with the digest: `registry/repo:tag@sha256:…`. */
  refs: string[];
  /** The digest reference that was signed and attested: `registry/repo@sha256:…` (one image, every tag). */
  digestRef: string;
  /** What was signed and attested, one line per step. */
  signed: string[];
  /**
   * `refs.txt`, `image` (registry/repo), `digest` (sha256:…), and `sbom/`: `npm.cdx.json` and one
   * `image-<os>-<arch>.cdx.json` per platform (the SBOMs attested on the digest).
   */
  files: Directory;
  /** The per-platform containers that were scanned and pushed. */
  variants: Container[];
  /** The run's ID (the cache buster of its tests, scans and signatures). */
  runId: string;
}

/**
 * Builds the image for every platform of `PUBLISH_PLATFORMS`, runs the gates in this same call (the tests,
 * and Trivy on each platform's image) while the SBOMs are generated (Trivy on those same tarballs, and the npm
 * tree), and only when all of that succeeded pushes those very containers — the ones that were scanned — as one
 * multi-platform image under every tag. Then signs the pushed digest (never a tag) and attests each image SBOM
 * on it; a failure there fails `publish`.
 */
export async function publish(source: Directory, options: PublishOptions): Promise<PublishResult> {
  return publishScanned(source, options);
}

/**
 * `publish`, with optional extra gates that must pass, with the others, before any push. Its result also hands
 * back the per-platform containers that were scanned and pushed (so a caller can derive more from the very
 * same images) and the run's ID.
 */
export async function publishScanned(
  source: Directory,
  options: PublishOptions,
  extraGates: Array<() => Promise<unknown>> = [],
): Promise<PublishResult> {
  const target = publishTarget(options);
  // Before anything runs: nothing may be pushed that cannot then be signed.
  const identity = signingIdentity(options.signing);
  const runId = freshRunId();
  const sourceUrl = target.registry === "ghcr.io" ? `https://github.com/${target.repository}` : undefined;
  const meta = await imageMeta(source, { commit: target.commit, sourceUrl });
  const variants = PUBLISH_PLATFORMS.map((platform) => buildImage(source, meta, platform as Platform));
  const sbomFiles = [
    ...variants.map((image, i) => ({
      name: imageSbomName(PUBLISH_PLATFORMS[i] as string),
      file: imageSbom(trivyOn(image, source, runId), IMAGE_TARBALL),
    })),
  ];
  const npm = { name: NPM_SBOM_FILE, file: npmSbom(nodeWorkspace(source)) };

  // The gates, and the SBOMs the signature step attests. Any failure rejects here, before a single publish
  // request exists.
  await Promise.all([
    test(source, runId),
    ...variants.map((image) => scanImage(image, source, runId)),
    ...[...sbomFiles, npm].map(({ file }) => file.sync()),
    ...extraGates.map((gate) => gate()),
  ]);

  const publisher = dag.container().withRegistryAuth(target.image, options.username, options.password);
  const refs: string[] = [];
  for (const tag of target.tags) {
    // A fresh array each time: the SDK replaces the objects of an array argument with their IDs in place.
    refs.push(await publisher.publish(`${target.image}:${tag}`, { platformVariants: [...variants] }));
  }

  // Every tag names the same pushed image; sign that digest, once.
  const digests = [...new Set(refs.map(digestRef))];
  if (digests.length !== 1) throw new Error(`the tags were pushed with different digests: ${refs.join(", ")}`);
  const signed = digests[0] as string;
  const cosign = cosignContainer({
    credentials: { username: options.username, password: options.password },
    identity,
    runId,
  });
  const done = await signAndAttest(cosign, identity, signed, sbomFiles);

  const files = sbomDirectory(
    [...sbomFiles, npm].map(({ name, file }) => ({ name: `sbom/${name}`, file })),
    dag
      .directory()
      .withNewFile("refs.txt", `${refs.join("\n")}\n`)
      .withNewFile("image", `${target.image}\n`)
      .withNewFile("digest", `${signed.split("@")[1]}\n`),
  );
  return { refs, digestRef: signed, signed: done, files, variants, runId };
}

export type StepStatus = "PASS" | "FAIL" | "SKIP";

export interface StepResult {
  name: string;
  status: StepStatus;
  seconds: number;
  output: string;
  error?: unknown;
}

/** The last lines of a step's output, for summaries and error messages. */
export function tail(text: string, lines = 40): string {
  const all = text.trimEnd().split("\n");
  return all.length <= lines
    ? all.join("\n")
    : [`… (${all.length - lines} earlier lines)`, ...all.slice(-lines)].join("\n");
}

/** The output of a failed step: for a failed command, what it printed and its exit code. */
export function failureOutput(error: unknown): string {
  if (error instanceof ExecError) {
    const parts = [`command: ${error.cmd.join(" ")}`, `exit code: ${error.exitCode}`];
    if (error.stdout.trim()) parts.push(`stdout:\n${tail(error.stdout)}`);
    if (error.stderr.trim()) parts.push(`stderr:\n${tail(error.stderr)}`);
    return parts.join("\n");
  }
  return error instanceof Error ? error.message : String(error);
}

async function timed(name: string, run: () => Promise<string>): Promise<StepResult> {
  const started = Date.now();
  try {
    const output = await run();
    return { name, status: "PASS", seconds: (Date.now() - started) / 1000, output };
  } catch (error) {
    return { name, status: "FAIL", seconds: (Date.now() - started) / 1000, output: failureOutput(error), error };
  }
}

/** A readable summary of step results, one line per step. */
export function summarize(results: StepResult[]): string {
  const failed = results.filter((r) => r.status === "FAIL").map((r) => r.name);
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = results.map((r) => {
    const note =
      r.status === "FAIL" && r.error instanceof ExecError
        ? `  exit code ${r.error.exitCode}`
        : r.status === "SKIP"
          ? `  ${r.output}`
          : "";
    return `  ${r.status}  ${r.name.padEnd(width)}  ${r.seconds.toFixed(1).padStart(6)} s${note}`;
  });
  const verdict = failed.length ? `FAILED: ${failed.join(", ")}` : "all gates passed";
  return ["loan-ci pipeline summary", ...lines, `result: ${verdict}`].join("\n");
}

/** The error `ci` fails with: the summary, then the output of each failing step. */
export function ciFailure(results: StepResult[]): Error {
  const failures = results.filter((r) => r.status === "FAIL");
  const details = failures.map((r) => `--- ${r.name} failed ---\n${r.output}`);
  const message = [summarize(results), ...details].join("\n\n");
  const first = failures[0]?.error;
  if (first instanceof ExecError) {
    // Keep the failed command's details (cmd, exit code, stdout, stderr) attached for the engine.
    return new ExecError(message, {
      cmd: first.cmd,
      exitCode: first.exitCode,
      stdout: first.stdout,
      stderr: first.stderr,
      extensions: first.extensions,
    });
  }
  return new Error(message);
}

/**
 * The whole CI run: lint, type-check, tests and build + scan, the independent ones concurrently. Resolves
 * with a summary when every gate passes; rejects with the summary and the failing steps' output otherwise.
 */
export async function ci(source: Directory): Promise<{ summary: string; results: StepResult[] }> {
  const runId = freshRunId();
  const buildThenScan = async (): Promise<StepResult[]> => {
    let image: Container | undefined;
    const built = await timed("build", async () => {
      image = await (await build(source)).sync();
      return "image built";
    });
    if (!image) return [built, { name: "scan", status: "SKIP", seconds: 0, output: "skipped: the build failed" }];
    const scanned = await timed("scan", () => scanImage(image as Container, source, runId));
    return [built, scanned];
  };
  const [lintResult, typecheckResult, testResult, imageResults] = await Promise.all([
    timed("lint", () => lint(source)),
    timed("typecheck", () => typecheck(source)),
    timed("test", () => test(source, runId)),
    buildThenScan(),
  ]);
  const results = [lintResult, typecheckResult, testResult, ...imageResults];
  if (results.some((r) => r.status !== "PASS")) throw ciFailure(results);
  return { summary: summarize(results), results };
}

// =============================================================================================================
// Kubernetes manifests (k8s/, issue 13): render an overlay with the digest `publish` returned, the manifest
// checks, and `release` (gates once, push, then SARIF and manifests from that same pushed image).
// =============================================================================================================

/** The kustomize overlays under k8s/overlays. */
export const K8S_OVERLAYS = ["staging", "prod"];

/** The image name every overlay gives the service (`images[].newName`); a release render replaces it. */
export const K8S_OVERLAY_IMAGE = "registry.example.com/acme/loan-service";

/** The migration Job of the base; a release render names it after the image digest (one Job per release). */
export const K8S_MIGRATE_JOB = "loan-migrate";

/** An image reference the manifest check renders as a sample release (not an image that exists). */
export const K8S_SAMPLE_RELEASE_IMAGE = `ghcr.io/example/loan-service:sha-0123456@sha256:${"ab".repeat(32)}`;

const K8S_DIR = "/work/k8s";
const K8S_OUT = "/work/out";
const PLACEHOLDER_DIGEST = `sha256:${"0".repeat(64)}`;
const IMAGE_BY_DIGEST_RE =
  /^(?<name>[a-z0-9][^\s@]*?)(?::(?<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?@(?<digest>sha256:[0-9a-f]{64})$/;

/**
 * Splits a published reference (`registry/repository:tag@sha256:…`, as `publish` returns it) into the image name
 * and its digest. The tag is dropped: what is deployed is named by its digest alone. Rejects a reference
 * without a digest, and the overlays' all-zero placeholder.
 */
export function imageByDigest(ref: string): { name: string; digest: string; ref: string } {
  const match = IMAGE_BY_DIGEST_RE.exec(ref.trim());
  const name = match?.groups?.name;
  const digest = match?.groups?.digest;
  if (!name || !digest) {
    throw new Error(`expected an image reference with a digest (name@sha256:<64 hex>), got ${JSON.stringify(ref)}`);
  }
  if (digest === PLACEHOLDER_DIGEST) throw new Error("the all-zero digest is the overlays' placeholder, not an image");
  return { name, digest, ref: `${name}@${digest}` };
}

function checkOverlay(overlay: string): void {
  if (!K8S_OVERLAYS.includes(overlay)) {
    throw new Error(`unknown overlay ${JSON.stringify(overlay)}: expected one of ${K8S_OVERLAYS.join(", ")}`);
  }
}

/** The migration Job's name for a release: `loan-migrate-<first 12 hex of the digest>`. */
export function releaseJobName(digest: string): string {
  return `${K8S_MIGRATE_JOB}-${digest.replace(/^sha256:/, "").slice(0, 12)}`;
}

/**
 * The kustomization of one release (written as JSON, which kustomize reads as YAML): the overlay as it is, with
 * the service's image replaced by the published one, by digest, and the migration Job named after that digest.
 * It lives in k8s/release/<overlay>/ so that the overlay is `../../overlays/<overlay>`.
 */
export function releaseKustomization(overlay: string, ref: string): string {
  checkOverlay(overlay);
  const image = imageByDigest(ref);
  const kustomization = {
    apiVersion: "kustomize.config.k8s.io/v1beta1",
    kind: "Kustomization",
    resources: [`../../overlays/${overlay}`],
    images: [{ name: K8S_OVERLAY_IMAGE, newName: image.name, digest: image.digest }],
    patches: [
      {
        target: { kind: "Job", name: K8S_MIGRATE_JOB },
        patch: JSON.stringify([{ op: "replace", path: "/metadata/name", value: releaseJobName(image.digest) }]),
      },
    ],
  };
  return `${JSON.stringify(kustomization, null, 2)}\n`;
}

/**
 * kustomize (the pinned image) over the source's k8s/ directory: renders the overlay as committed, or, given a
 * published reference, that overlay as a release of exactly that image. The YAML is at `/work/out/<overlay>.yaml`.
 */
export function renderContainer(source: Directory, overlay: string, ref?: string): Container {
  checkOverlay(overlay);
  let container = dag.container().from(KUSTOMIZE_IMAGE).withDirectory(K8S_DIR, source.directory("k8s"));
  let dir = `${K8S_DIR}/overlays/${overlay}`;
  if (ref) {
    dir = `${K8S_DIR}/release/${overlay}`;
    container = container.withNewFile(`${dir}/kustomization.yaml`, releaseKustomization(overlay, ref));
  }
  return (
    container
      .withWorkdir(K8S_DIR)
      // An empty output directory from the API: the image needs no shell or mkdir for it.
      .withDirectory(K8S_OUT, dag.directory())
      .withExec(["kustomize", "build", dir, "--output", `${K8S_OUT}/${overlay}.yaml`])
  );
}

/** The rendered manifests of an overlay for the published image `ref` (what `kubectl apply -f` takes). */
export function renderManifests(source: Directory, overlay: string, ref: string): File {
  return renderContainer(source, overlay, ref).file(`${K8S_OUT}/${overlay}.yaml`);
}

/**
 * The manifest checks: every overlay rendered by the pinned kustomize, as committed and as a sample release,
 * then the repository's manifest tests (schemas of the pinned Kubernetes version and of the CRDs, the policy
 * tests, the settings agreeing with env/*.env) over those files, in the Node workspace.
 */
export async function manifestChecks(source: Directory): Promise<string> {
  let rendered = dag.directory();
  for (const overlay of K8S_OVERLAYS) {
    rendered = rendered
      .withFile(`${overlay}.yaml`, renderContainer(source, overlay).file(`${K8S_OUT}/${overlay}.yaml`))
      .withFile(`${overlay}.release.yaml`, renderManifests(source, overlay, K8S_SAMPLE_RELEASE_IMAGE));
  }
  return nodeWorkspace(source)
    .withDirectory("/rendered", rendered)
    .withEnvVariable("K8S_RENDERED_DIR", "/rendered")
    .withExec(["npm", "run", "test:k8s"])
    .stdout();
}

/**
 * The release of a change, one image build per platform for everything: lint, type-check, tests and the Trivy
 * gate on each platform's image; only when all pass, the push, signature and SBOM attestations (as `publish`);
 * then, from that same image, Trivy's SARIF report and every overlay rendered with the digest the push returned.
 * Returns a directory: `published.txt` (the refs), what `publish` returns (`refs.txt`, `image`, `digest`,
 * `sbom/`), `trivy.sarif`, `manifests/<overlay>.yaml`.
 */
export async function release(source: Directory, options: PublishOptions): Promise<Directory> {
  const { refs, variants, runId, files } = await publishScanned(source, options, [
    () => lint(source),
    () => typecheck(source),
  ]);
  const [ref] = refs;
  if (!ref) throw new Error("publish returned no reference");
  let out = files.withNewFile("published.txt", `${refs.join("\n")}\n`);
  const [scanned] = variants;
  if (scanned) out = out.withFile("trivy.sarif", sarifReport(scanned, source, runId));
  for (const overlay of K8S_OVERLAYS) {
    out = out.withFile(`manifests/${overlay}.yaml`, renderManifests(source, overlay, ref));
  }
  return out;
}
