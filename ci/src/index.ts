/**
 * The loan service's pipeline: lint, type-check, tests against a throwaway PostgreSQL, the Dockerfile's
 * image, a Trivy gate on it, and publishing the image that passed.
 *
 * Start with `dagger call ci --source .`. The gates (test, lint, typecheck, scan) are also checks:
 * `dagger check` runs them all in parallel. Every step is defined in `pipeline.ts`; the functions below are
 * thin wrappers, and their docstrings are the CLI help.
 */
import {
  argument,
  type Container,
  check,
  type Directory,
  type File,
  func,
  object,
  type Secret,
} from "@dagger.io/dagger";
import * as pipeline from "./pipeline.js";
import { SOURCE_IGNORE } from "./pipeline.js";
import * as supplyChain from "./supply-chain.js";

@object()
export class LoanCi {
  /**
   * Run the project's tests (npm test) in the Node image against a throwaway PostgreSQL service bound as db,
   * with DATABASE_URL pointing at it. Never served from cache.
   */
  @func({ cache: "never" })
  @check()
  async test(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
  ): Promise<string> {
    return pipeline.test(source);
  }

  /**
   * Run the project's linter (npm run lint) in the Node image.
   */
  @func()
  @check()
  async lint(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
  ): Promise<string> {
    return pipeline.lint(source);
  }

  /**
   * Run the project's type-check (npm run typecheck) in the Node image.
   */
  @func()
  @check()
  async typecheck(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
  ): Promise<string> {
    return pipeline.typecheck(source);
  }

  /**
   * Build the runtime image from the repository's Dockerfile, with OCI labels (source, revision, version,
   * created). Chain it, e.g. `export --path image.tar`.
   */
  @func()
  async build(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
    /** The git commit the image is built from, recorded as its revision label. */
    commit = "",
  ): Promise<Container> {
    return pipeline.build(source, { commit });
  }

  /**
   * Scan the built image's tarball with the pinned Trivy; fails on HIGH or CRITICAL vulnerabilities that
   * have a fix available. Honours .trivyignore. Returns Trivy's report.
   */
  @func({ cache: "session" })
  @check()
  async scan(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
  ): Promise<string> {
    return pipeline.scanImage(await pipeline.build(source), source);
  }

  /**
   * Trivy's SARIF report of the built image (all severities, never fails), e.g.
   * `dagger call sarif --source . export --path trivy.sarif`.
   */
  @func({ cache: "session" })
  async sarif(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
  ): Promise<File> {
    return pipeline.sarifReport(await pipeline.build(source), source);
  }

  /**
   * Run the test and scan gates (and generate the SBOMs), then push the image that was scanned, for linux/amd64
   * and linux/arm64, tagged with tag and sha-<commit> when the commit is given; then sign the pushed digest with
   * cosign and attest each image SBOM on it (a failed signature fails publish). Returns a directory: refs.txt
   * (the published refs with digests), image, digest, and sbom/ (the CycloneDX SBOMs), e.g.
   * `dagger call publish … export --path .publish`. Never served from cache.
   */
  @func({ cache: "never" })
  async publish(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
    /** The registry host, e.g. ghcr.io. */
    registry: string,
    /** The image repository, OWNER/NAME; lower-cased before use. */
    repository: string,
    /** The tag to publish, e.g. latest. */
    tag: string,
    /** The registry user name. */
    username: string,
    /** The registry password or token, e.g. env://GITHUB_TOKEN. */
    password: Secret,
    /** The git commit being published: adds the tag sha-<commit> and the revision label. */
    commit = "",
    /** Keyless signing in GitHub Actions: env://ACTIONS_ID_TOKEN_REQUEST_TOKEN (needs id-token: write). */
    oidcRequestToken?: Secret,
    /** Keyless signing in GitHub Actions: env://ACTIONS_ID_TOKEN_REQUEST_URL. */
    oidcRequestUrl?: Secret,
    /** Signing with a key instead (other CI systems): a cosign private key, e.g. env://COSIGN_KEY. */
    cosignKey?: Secret,
    /** The cosign key's password, e.g. env://COSIGN_PASSWORD. */
    cosignPassword?: Secret,
  ): Promise<Directory> {
    const result = await pipeline.publish(source, {
      registry,
      repository,
      tag,
      username,
      password,
      commit,
      signing: { oidcRequestToken, oidcRequestUrl, cosignKey, cosignPassword },
    });
    return result.files;
  }

  /**
   * CycloneDX SBOMs of the build: image.cdx.json (Trivy on the built image's tarball) and npm.cdx.json (the npm
   * dependency tree from the lockfile), e.g. `dagger call sbom --source . export --path sbom`.
   */
  @func({ cache: "session" })
  async sbom(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
  ): Promise<Directory> {
    return pipeline.sboms(source);
  }

  /**
   * Verify a published image with cosign: its signature, its CycloneDX SBOM attestation and its SLSA build
   * provenance, each against the identity of the repository's GitHub workflow (issuer
   * token.actions.githubusercontent.com). Fails on any mismatch. Never served from cache.
   */
  @func({ cache: "never" })
  async verify(
    /** The image by digest, REGISTRY/OWNER/NAME@sha256:<digest> (a tag is refused). */
    image: string,
    /** The GitHub repository whose workflow published it, OWNER/NAME. */
    repository: string,
    /** The workflow file that signed. */
    workflow = ".github/workflows/ci.yml",
    /** The git ref that workflow ran on. */
    gitRef = "refs/heads/main",
    /** A registry user name, for a private image. */
    username = "",
    /** The registry password or token, for a private image, e.g. env://GITHUB_TOKEN. */
    password?: Secret,
  ): Promise<string> {
    const credentials = username && password ? { username, password } : undefined;
    return supplyChain.verify(image, { repository, workflow, gitRef, credentials, runId: pipeline.freshRunId() });
  }

  /**
   * What CI runs on every change: lint, typecheck, test, build and scan, concurrently where independent.
   * Returns a summary; fails when any gate fails, with the failing steps' output. Never served from cache.
   */
  @func({ cache: "never" })
  async ci(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
  ): Promise<string> {
    return (await pipeline.ci(source)).summary;
  }

  // ---- Kubernetes manifests and release (k8s/, issue 13) ----------------------------------------------------

  /**
   * Render a Kubernetes overlay (k8s/overlays/<overlay>) with the pinned kustomize, for the published image ref
   * (registry/repository[:tag]@sha256:..., as publish returns it): the service runs that digest, the migration
   * Job is named after it. E.g. `dagger call render --overlay prod --image <ref> export --path prod.yaml`.
   */
  @func()
  async render(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
    /** The overlay: staging or prod. */
    overlay: string,
    /** The published image reference with its digest, e.g. ghcr.io/org/loan-service:latest@sha256:... */
    image: string,
  ): Promise<File> {
    return pipeline.renderManifests(source, overlay, image);
  }

  /**
   * Check the Kubernetes manifests: every overlay rendered by the pinned kustomize, then validated against the
   * pinned Kubernetes schemas and the CRDs' own, and the policy tests (probes, non-root, limits, digests, PDB,
   * HPA, NetworkPolicy, settings equal to env/*.env).
   */
  @func()
  @check()
  async manifests(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
  ): Promise<string> {
    return pipeline.manifestChecks(source);
  }

  /**
   * Release: lint, typecheck, test and the Trivy gate on each platform's image, then publish, sign and attest
   * that image (as publish does), then Trivy's SARIF report of it and every overlay rendered with the digest just
   * pushed. Returns a directory: published.txt, refs.txt, image, digest, sbom/, trivy.sarif,
   * manifests/<overlay>.yaml. Never served from cache.
   */
  @func({ cache: "never" })
  async release(
    /** The repository root; defaults to the module's context directory. */
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE }) source: Directory,
    /** The registry host, e.g. ghcr.io. */
    registry: string,
    /** The image repository, OWNER/NAME; lower-cased before use. */
    repository: string,
    /** The tag to publish, e.g. latest. */
    tag: string,
    /** The registry user name. */
    username: string,
    /** The registry password or token, e.g. env://GITHUB_TOKEN. */
    password: Secret,
    /** The git commit being published: adds the tag sha-<commit> and the revision label. */
    commit = "",
    /** Keyless signing in GitHub Actions: env://ACTIONS_ID_TOKEN_REQUEST_TOKEN (needs id-token: write). */
    oidcRequestToken?: Secret,
    /** Keyless signing in GitHub Actions: env://ACTIONS_ID_TOKEN_REQUEST_URL. */
    oidcRequestUrl?: Secret,
    /** Signing with a key instead (other CI systems): a cosign private key, e.g. env://COSIGN_KEY. */
    cosignKey?: Secret,
    /** The cosign key's password, e.g. env://COSIGN_PASSWORD. */
    cosignPassword?: Secret,
  ): Promise<Directory> {
    return pipeline.release(source, {
      registry,
      repository,
      tag,
      username,
      password,
      commit,
      signing: { oidcRequestToken, oidcRequestUrl, cosignKey, cosignPassword },
    });
  }
}
