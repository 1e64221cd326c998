/**
 * Every version the pipeline pins, in one place. Bump them here (see README.md, "Bumping the pinned versions");
 * `ci/test/versions.test.ts` checks that they stay consistent with `.nvmrc`, `dagger.json` and the workflow.
 *
 * The Dagger engine version is not repeated here: `dagger.json`'s `engineVersion` is its single source, and
 * the workflow's `dagger-for-github` `version` must equal it (checked by the tests).
 */

/** Node image for lint, type-check and tests, and the `NODE_IMAGE` build argument of the Dockerfile. Major = `.nvmrc`. */
export const NODE_IMAGE = "node:24.21.0-bookworm-slim";

/** Official PostgreSQL image the tests run against; compose uses the same tag (major 17 everywhere). */
export const POSTGRES_IMAGE = "postgres:17.11-bookworm";

/** Trivy, pinned by tag and by the digest of its multi-arch index (the 0.69.4 tag was once hijacked upstream). */
export const TRIVY_VERSION = "0.74.0";
export const TRIVY_IMAGE = `aquasec/trivy:${TRIVY_VERSION}@sha256:62b1e65e8869bc4b4c6aa4fa2b21595256c7c2f6018a9d9ad61caf87187c1969`;

/** Platforms `publish` builds, scans and pushes as one multi-platform image. */
export const PUBLISH_PLATFORMS = ["linux/amd64", "linux/arm64"];

// ---- Kubernetes manifests (k8s/, issue 13) ------------------------------------------------------------------

/**
 * kustomize, which renders k8s/overlays/* in the pipeline: the upstream image, by tag and by digest (the same
 * digest is pinned by several public repositories; check it with `crane digest registry.k8s.io/kustomize/kustomize:v5.8.1`).
 */
export const KUSTOMIZE_VERSION = "v5.8.1";
export const KUSTOMIZE_IMAGE = `registry.k8s.io/kustomize/kustomize:${KUSTOMIZE_VERSION}@sha256:899fcd3bc898160e62bcaf82932b0cb29ba38d16272353db2e7acbba82129429`;

// ---- Supply chain (issue 14) ------------------------------------------------------------------------------

/**
 * cosign (Sigstore), which signs and attests the published digest and verifies it, pinned by tag and by the
 * digest of its multi-arch index. 2.5.0 is the first release whose `verify-attestation --new-bundle-format`
 * reads Sigstore bundles stored as OCI referrers, the form GitHub's artifact attestations take in a registry.
 */
export const COSIGN_VERSION = "v2.5.0";
export const COSIGN_IMAGE = `ghcr.io/sigstore/cosign/cosign:${COSIGN_VERSION}@sha256:e82eb6d42ccb6bc048d8d9e5e598e4d5178e1af6c00e54e02c9b0569c5f3ec11`;
