/**
 * Named prepared statements built from query builders. A statement is built ONCE (at start-up) from a model's
 * query builder with `param()` placeholders where request values go; knex's `toSQL().toNative()` gives its text
 * with `$n` placeholders, and `values()` lays a request's parameters out in that order. Per request, no query
 * builder or model runs: PostgreSQL parses and plans each statement once per connection (node-postgres prepares
 * a name once per connection), which the bench measured at about 330 µs less service CPU per get-by-id than
 * Objection's `findById` (bench/RESULTS.md).
 */
import type { Knex } from "knex";
import type { QueryResultRow } from "pg";

const TEXT_PARAM = "\u0000param:";
const intParams = new Map<number, string>();

/** A placeholder for the request value `name` (any type but a query's LIMIT: see `intParam`). */
export function param(name: string): string {
  return `${TEXT_PARAM}${name}`;
}

/** A placeholder where knex insists on an integer (LIMIT): a reserved number that stands for `name`. */
export function intParam(name: string): number {
  for (const [n, existing] of intParams) if (existing === name) return n;
  const n = 2_000_000_000 + intParams.size;
  intParams.set(n, name);
  return n;
}

function paramName(binding: unknown): string | undefined {
  if (typeof binding === "string" && binding.startsWith(TEXT_PARAM)) return binding.slice(TEXT_PARAM.length);
  if (typeof binding === "number") return intParams.get(binding);
  return undefined;
}

export interface Statement<P extends string = string> {
  /** Unique per text: node-postgres prepares a name once per connection and rejects another text under it. */
  readonly name: string;
  readonly text: string;
  /** The named parameters, in the order of their first `$n`. */
  readonly params: readonly P[];
  /** The statement's values for a request: parameters by name, constants as built. */
  values(params: Readonly<Record<P, unknown>>): unknown[];
}

/** Anything with knex's `toSQL()`, or an Objection query builder (`toKnexQuery()`). */
type Buildable = { toKnexQuery(): Knex.QueryBuilder } | { toSQL(): Knex.Sql };

/** Builds the named statement `name` from a query builder whose request values are `param()` placeholders. */
export function prepare<P extends string = string>(name: string, query: Buildable): Statement<P> {
  const sql = ("toKnexQuery" in query ? query.toKnexQuery() : query).toSQL().toNative();
  const slots = (sql.bindings as unknown[]).map((b) => ({ param: paramName(b) as P | undefined, constant: b }));
  const params = [...new Set(slots.flatMap((s) => (s.param === undefined ? [] : [s.param])))];
  return {
    name,
    text: sql.sql,
    params,
    values(values) {
      return slots.map((s) => {
        if (s.param === undefined) return s.constant;
        const v = values[s.param];
        return v === undefined ? null : v;
      });
    },
  };
}

interface PgConnection {
  query<R extends QueryResultRow>(q: { name: string; text: string; values: unknown[] }): Promise<{ rows: R[] }>;
}

/**
 * Runs a named prepared statement on a connection from knex's pool (or on a transaction's own connection:
 * a knex transaction's client hands out that connection and its release is a no-op). Acquisition is bounded
 * by the pool's acquire timeout, the statement by the connection's statement and query timeouts (db.ts).
 */
export async function runPrepared<R extends QueryResultRow, P extends string = string>(
  db: Knex,
  statement: Statement<P>,
  params: Readonly<Record<P, unknown>> = {} as Record<P, unknown>,
): Promise<R[]> {
  const client = db.client as Knex.Client;
  const connection = (await client.acquireConnection()) as PgConnection;
  try {
    const { rows } = await connection.query<R>({
      name: statement.name,
      text: statement.text,
      values: statement.values(params),
    });
    return rows;
  } finally {
    // The one place a connection goes back to the pool.
    await client.releaseConnection(connection);
  }
}
