/**
 * Migrations are listed here explicitly (not discovered on disk) so that the same code runs under tsx
 * from source and as compiled JavaScript in the image, with no knex CLI and no loader flags.
 */
import type { Knex } from "knex";
import * as createLoans from "../migrations/20261125000000_create_loans.js";
import * as createIdempotencyKeys from "../migrations/20261125000100_create_idempotency_keys.js";
import * as createLoanStats from "../migrations/20261125000200_create_loan_stats.js";

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

const migrations: Record<string, Migration> = {
  "20261125000000_create_loans": createLoans,
  "20261125000100_create_idempotency_keys": createIdempotencyKeys,
  "20261125000200_create_loan_stats": createLoanStats,
};

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(migrations).sort(),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const migration = migrations[name];
    if (!migration) throw new Error(`unknown migration ${name}`);
    return migration;
  },
};
