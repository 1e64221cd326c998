/**
 * The supply chain of a published image: SBOMs, signatures, SBOM attestations, and their verification.
 *
 * Plain functions over the Dagger core API, like `pipeline.ts` (which calls them from `publish`). This file
 * imports nothing from `pipeline.ts`: the containers it works on (the Trivy container on the scanned image's
 * tarball, the Node workspace) are handed in, so there is no import cycle.
 *
 * - SBOMs (CycloneDX JSON): one of the image, by Trivy on the very tarball that was scanned; one of the npm
 *   dependency tree, by `@cyclonedx/cyclonedx-npm` from the lockfile (offline, in the Node workspace).
 * - Signing: cosign, from an image pinned by digest, signs the pushed digest (never a tag) and attaches each
 *   image SBOM to it as a CycloneDX attestation; keyless through GitHub's OIDC token, or with a key. Every
 *   credential reaches cosign as a Dagger `Secret` in an environment variable, never as an argument.
 * - Verification: `cosign verify` and `cosign verify-attestation` against the workflow identity.
 */
import { type Container, type Directory, dag, type File, type Secret } from "@dagger.io/dagger";
import { COSIGN_IMAGE } from "./versions.js";

// ---------------------------------------------------------------------------------------------------------
// SBOMs

/** Where the SBOM files are written in the containers, and the names they carry in returned directories. */
export const NPM_SBOM_FILE = "npm.cdx.json";
export const IMAGE_SBOM_FILE = "image.cdx.json";

/**
 * The npm SBOM generator's command (run in the repository root, after `npm ci`): CycloneDX 1.6 JSON of the whole
 * tree the lockfile describes (dev dependencies included and flagged `cdx:npm:package:development`), reproducible
 * (no timestamp or random serial number), validated against the CycloneDX schema by the generator before it is
 * written. The test suite runs this same command for real and validates the result independently.
 */
export const NPM_SBOM_COMMAND = [
  "npx",
  "--no",
  "--",
  "cyclonedx-npm",
  "--package-lock-only",
  "--spec-version",
  "1.6",
  "--output-format",
  "JSON",
  "--output-reproducible",
  "--mc-type",
  "application",
  "--validate",
];

/** The npm dependency tree's SBOM, generated in the Node workspace (dependencies installed, source added). */
export function npmSbom(workspace: Container): File {
  const out = `/tmp/${NPM_SBOM_FILE}`;
  return workspace.withExec([...NPM_SBOM_COMMAND, "--output-file", out]).file(out);
}

/**
 * The image's SBOM: Trivy in CycloneDX format on the image tarball mounted in `trivy` (the container the scan
 * gate uses, with its vulnerability database volume). `--format cyclonedx` lists packages only; the scan gate
 * is what judges vulnerabilities.
 */
export function imageSbom(trivy: Container, tarball: string): File {
  const out = `/tmp/${IMAGE_SBOM_FILE}`;
  return trivy.withExec(["trivy", "image", "--input", tarball, "--format", "cyclonedx", "--output", out]).file(out);
}

/** `image-linux-amd64.cdx.json` for a platform's image SBOM in a multi-platform publish. */
export function imageSbomName(platform: string): string {
  return `image-${platform.replace(/\//g, "-")}.cdx.json`;
}

// ---------------------------------------------------------------------------------------------------------
// Signing

/** The cosign binary in the pinned image (a ko-built, distroless image: no shell). */
export const COSIGN = "/ko-app/cosign";

/** The OIDC issuer of GitHub Actions' tokens, which keyless signatures from the workflow name. */
export const GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com";

/**
 * How `publish` signs. Keyless in GitHub Actions: cosign reads `ACTIONS_ID_TOKEN_REQUEST_URL` and
 * `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (sigstore/cosign pkg/cosign/env, the GitHub provider) to fetch the job's OIDC
 * token, and Fulcio certifies the workflow's identity. Elsewhere: a cosign private key (`COSIGN_KEY`, read
 * through `--key env://COSIGN_KEY`) and its password (`COSIGN_PASSWORD`).
 */
export type SigningIdentity =
  | { kind: "github-oidc"; requestToken: Secret; requestUrl: Secret }
  | { kind: "key"; key: Secret; password?: Secret };

export interface SigningInput {
  oidcRequestToken?: Secret;
  oidcRequestUrl?: Secret;
  cosignKey?: Secret;
  cosignPassword?: Secret;
}

/** Picks the signing identity from what was given; throws (before any gate runs) when there is none or two. */
export function signingIdentity(input: SigningInput = {}): SigningIdentity {
  const oidc = input.oidcRequestToken !== undefined || input.oidcRequestUrl !== undefined;
  const key = input.cosignKey !== undefined;
  if (oidc && key) throw new Error("publish signs with either the GitHub OIDC token or a cosign key, not both");
  if (oidc) {
    if (!input.oidcRequestToken || !input.oidcRequestUrl) {
      throw new Error("keyless signing needs both the OIDC request token and the OIDC request URL");
    }
    return { kind: "github-oidc", requestToken: input.oidcRequestToken, requestUrl: input.oidcRequestUrl };
  }
  if (key) return { kind: "key", key: input.cosignKey as Secret, password: input.cosignPassword };
  if (input.cosignPassword) throw new Error("a cosign password was given without a cosign key");
  throw new Error(
    "publish signs what it pushes and needs a signing identity: in GitHub Actions the OIDC request token and URL " +
      "(--oidc-request-token env://ACTIONS_ID_TOKEN_REQUEST_TOKEN --oidc-request-url env://ACTIONS_ID_TOKEN_REQUEST_URL), " +
      "elsewhere a cosign key (--cosign-key env://COSIGN_KEY --cosign-password env://COSIGN_PASSWORD)",
  );
}

export interface RegistryCredentials {
  username: string;
  password: Secret;
}

/**
 * The pinned cosign with registry credentials and the signing identity, all as environment variables. cosign
 * binds every flag to `COSIGN_<FLAG>` (cmd/cosign/cli/options/root.go, BindViper), so `--registry-username` and
 * `--registry-password` come from `COSIGN_REGISTRY_USERNAME` and the secret `COSIGN_REGISTRY_PASSWORD`.
 */
export function cosignContainer(
  options: { credentials?: RegistryCredentials; identity?: SigningIdentity; runId?: string } = {},
): Container {
  let cosign = dag.container().from(COSIGN_IMAGE).withEnvVariable("COSIGN_YES", "true");
  if (options.credentials) {
    cosign = cosign
      .withEnvVariable("COSIGN_REGISTRY_USERNAME", options.credentials.username)
      .withSecretVariable("COSIGN_REGISTRY_PASSWORD", options.credentials.password);
  }
  const identity = options.identity;
  if (identity?.kind === "github-oidc") {
    cosign = cosign
      .withSecretVariable("ACTIONS_ID_TOKEN_REQUEST_TOKEN", identity.requestToken)
      .withSecretVariable("ACTIONS_ID_TOKEN_REQUEST_URL", identity.requestUrl);
  } else if (identity?.kind === "key") {
    cosign = cosign.withSecretVariable("COSIGN_KEY", identity.key);
    // An unencrypted key needs an empty password rather than a prompt nobody can answer.
    cosign = identity.password
      ? cosign.withSecretVariable("COSIGN_PASSWORD", identity.password)
      : cosign.withEnvVariable("COSIGN_PASSWORD", "");
  }
  // Signing is never answered from the layer cache: each publish signs again.
  return options.runId ? cosign.withEnvVariable("CACHEBUSTER", options.runId) : cosign;
}

function keyFlags(identity: SigningIdentity): string[] {
  return identity.kind === "key" ? ["--key", "env://COSIGN_KEY"] : [];
}

const DIGEST_REF_RE = /^([^@\s]+)@(sha256:[0-9a-f]{64})$/;

/**
 * The digest reference of a published ref: `registry/repo:tag@sha256:…` → `registry/repo@sha256:…`. What is
 * signed is the digest, never a tag (a tag can be moved to another image after signing).
 */
export function digestRef(ref: string): string {
  const match = DIGEST_REF_RE.exec(ref.trim());
  if (!match) throw new Error(`not a reference with a sha256 digest: ${JSON.stringify(ref)}`);
  const name = match[1] as string;
  // Drop a tag (a colon after the last slash), keep a registry port (a colon before it).
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  return `${colon > slash ? name.slice(0, colon) : name}@${match[2]}`;
}

/** `cosign sign` of a digest reference. */
export function signCommand(identity: SigningIdentity, ref: string): string[] {
  return [COSIGN, "sign", "--yes", ...keyFlags(identity), ref];
}

/** `cosign attest` of a CycloneDX predicate (an SBOM) on a digest reference. */
export function attestCommand(identity: SigningIdentity, ref: string, predicate: string): string[] {
  return [COSIGN, "attest", "--yes", "--type", "cyclonedx", "--predicate", predicate, ...keyFlags(identity), ref];
}

/**
 * Signs `ref` (a digest reference) and attests each SBOM on it, in this order, each step awaited: the first
 * failure rejects (and so fails `publish`). Returns what was done, one line per step.
 */
export async function signAndAttest(
  cosign: Container,
  identity: SigningIdentity,
  ref: string,
  sboms: Array<{ name: string; file: File }>,
): Promise<string[]> {
  digestRef(ref); // throws on anything but a digest reference
  if (ref !== digestRef(ref)) throw new Error(`refusing to sign a tag: ${ref}`);
  await cosign.withExec(signCommand(identity, ref)).sync();
  const done = [`signed ${ref}`];
  for (const { name, file } of sboms) {
    const predicate = `/predicates/${name}`;
    await cosign
      .withMountedFile(predicate, file)
      .withExec(attestCommand(identity, ref, predicate))
      .sync();
    done.push(`attested ${name} (CycloneDX) on ${ref}`);
  }
  return done;
}

// ---------------------------------------------------------------------------------------------------------
// Verification

export interface VerifyOptions {
  /** The GitHub repository whose workflow signed, OWNER/NAME. */
  repository: string;
  /** The workflow file that signed, relative to the repository root. */
  workflow?: string;
  /** The git ref the workflow ran on. */
  gitRef?: string;
  /** Registry credentials, for private images. */
  credentials?: RegistryCredentials;
  runId?: string;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The certificate identity of the workflow (the Fulcio certificate's SAN is the workflow's
 * `job_workflow_ref`): `^https://github\.com/OWNER/NAME/\.github/workflows/ci\.yml@refs/heads/main$`.
 */
export function workflowIdentity(
  repository: string,
  workflow = ".github/workflows/ci.yml",
  gitRef = "refs/heads/main",
) {
  const repo = repository.trim().replace(/^\/+|\/+$/g, "");
  if (!/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/.test(repo)) {
    throw new Error(`invalid repository ${JSON.stringify(repository)}: expected OWNER/NAME`);
  }
  return `^${escapeRegExp(`https://github.com/${repo}/${workflow.replace(/^\/+/, "")}@${gitRef}`)}$`;
}

/** The three checks `verify` runs, in order, each failing on any mismatch. */
export function verifyCommands(ref: string, identity: string): Record<"signature" | "sbom" | "provenance", string[]> {
  const who = ["--certificate-identity-regexp", identity, "--certificate-oidc-issuer", GITHUB_OIDC_ISSUER];
  return {
    signature: [COSIGN, "verify", ...who, ref],
    sbom: [COSIGN, "verify-attestation", "--type", "cyclonedx", ...who, ref],
    // GitHub's attest action stores a Sigstore bundle as an OCI referrer of the digest (cosign's bundle spec).
    provenance: [COSIGN, "verify-attestation", "--new-bundle-format", "--type", "slsaprovenance1", ...who, ref],
  };
}

/**
 * Verifies a published image: its signature, its CycloneDX SBOM attestation and its SLSA build provenance, all
 * against the identity of the repository's workflow. `image` must be a digest reference. Rejects on the first
 * check that fails; resolves with a summary.
 */
export async function verify(image: string, options: VerifyOptions): Promise<string> {
  const ref = image.trim();
  if (!DIGEST_REF_RE.test(ref) || digestRef(ref) !== ref) {
    throw new Error(
      `verify needs a digest reference, REGISTRY/REPOSITORY@sha256:<64 hex> (without a tag), got ${JSON.stringify(image)}`,
    );
  }
  const identity = workflowIdentity(options.repository, options.workflow, options.gitRef);
  const cosign = cosignContainer({ credentials: options.credentials, runId: options.runId });
  const commands = verifyCommands(ref, identity);
  const lines = [`verified ${ref}`, `  identity ${identity}`, `  issuer   ${GITHUB_OIDC_ISSUER}`];
  for (const [check, cmd] of Object.entries(commands)) {
    await cosign.withExec(cmd).stdout();
    lines.push(`  PASS ${check}: ${cmd.slice(1, cmd.indexOf("--certificate-identity-regexp")).join(" ")}`);
  }
  return lines.join("\n");
}

/** The directory `sbom` and `publish` return SBOMs in. */
export function sbomDirectory(
  files: Array<{ name: string; file: File }>,
  base: Directory = dag.directory(),
): Directory {
  return files.reduce((dir, { name, file }) => dir.withFile(name, file), base);
}
