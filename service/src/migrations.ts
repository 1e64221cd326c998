/**
 * Migrations are discovered in service/migrations (`YYYYMMDDHHMMSS_name.ts`, or `.js` once compiled into
 * dist/migrations): a new file is picked up with no list to edit. The same code runs under tsx from source and
 * as compiled JavaScript in the image, with no knex CLI and no loader flags; a name is the file's name without
 * its extension, so a database migrated from source and one migrated by the image agree.
 */
import { readdirSync } from "node:fs";
import type { Knex } from "knex";

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/** service/migrations beside service/src, and dist/migrations beside dist/src. */
export const MIGRATIONS_DIR = new URL("../migrations/", import.meta.url);

const MIGRATION_FILE = /^(\d{14}_[a-z0-9_]+)\.(ts|js|mjs)$/;

/** The migration files of a directory, by name (without extension), in the order they apply. */
export function discoverMigrations(dir: URL = MIGRATIONS_DIR): Map<string, URL> {
  const found = new Map<string, URL>();
  for (const file of readdirSync(dir).sort()) {
    if (file.endsWith(".d.ts")) continue;
    const match = MIGRATION_FILE.exec(file);
    if (!match) continue;
    const name = match[1] as string;
    if (found.has(name)) throw new Error(`two files for migration ${name} in ${dir.pathname}`);
    found.set(name, new URL(file, dir));
  }
  return found;
}

export function migrationSourceFor(dir: URL = MIGRATIONS_DIR): Knex.MigrationSource<string> {
  let files: Map<string, URL> | undefined;
  const list = () => {
    files ??= discoverMigrations(dir);
    return files;
  };
  return {
    getMigrations: async () => [...list().keys()],
    getMigrationName: (name) => name,
    getMigration: async (name) => {
      const url = list().get(name);
      if (!url) throw new Error(`unknown migration ${name}`);
      const migration = (await import(url.href)) as Migration;
      if (typeof migration.up !== "function" || typeof migration.down !== "function") {
        throw new Error(`migration ${name} must export up() and down()`);
      }
      return migration;
    },
  };
}

export const migrationSource = migrationSourceFor();
