/**
 * Data access for loans: listing with a keyset cursor, lookup, idempotent creation, status transitions and
 * the maintained statistics. Every statement is a single round trip where the semantics allow it.
 */
import { createHash } from "node:crypto";
import type { Knex } from "knex";
import { HttpProblem } from "./errors.js";
import { Loan, type LoanJson, toLoanJson } from "./models/Loan.js";
import { type LoanStatus, TRANSITIONS } from "./schemas.js";
import type { CreateLoanInput, ListQuery } from "./validation.js";

// ---------------------------------------------------------------- listing

interface Cursor {
  createdAt: Date;
  id: string;
}

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify([c.createdAt.toISOString(), c.id])).toString("base64url");
}

export function decodeCursor(text: string): Cursor {
  try {
    const [ts, id] = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as [unknown, unknown];
    const createdAt = new Date(String(ts));
    if (typeof ts !== "string" || Number.isNaN(createdAt.getTime())) throw new Error("bad time");
    if (typeof id !== "string" || !/^[0-9a-f-]{36}$/.test(id)) throw new Error("bad id");
    return { createdAt, id };
  } catch {
    throw HttpProblem.validation([{ field: "cursor", message: "is not a cursor this API issued" }], "query");
  }
}

export async function listLoans(q: ListQuery): Promise<{ loans: LoanJson[]; next?: string }> {
  const query = Loan.query()
    .orderBy([
      { column: "created_at", order: "desc" },
      { column: "id", order: "desc" },
    ])
    .limit(q.limit + 1);
  if (q.status) query.where("status", q.status);
  if (q.borrower_id) query.where("borrower_id", q.borrower_id);
  if (q.cursor) {
    const c = decodeCursor(q.cursor);
    query.whereRaw("(created_at, id) < (?, ?)", [c.createdAt, c.id]);
  }
  const rows = await query;
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  const next = rows.length > q.limit && last ? encodeCursor({ createdAt: last.created_at, id: last.id }) : undefined;
  return { loans: page.map(toLoanJson), next };
}

export async function getLoan(id: string): Promise<LoanJson | undefined> {
  const loan = await Loan.query().findById(id);
  return loan ? toLoanJson(loan) : undefined;
}

// ---------------------------------------------------------------- creation

export interface CreateResult {
  loan: LoanJson;
  replayed: boolean;
}

function requestHash(input: CreateLoanInput): string {
  const canonical = JSON.stringify([
    input.borrower_id,
    input.amount,
    input.currency,
    input.term_months,
    input.interest_rate_apr,
  ]);
  return createHash("sha256").update(canonical).digest("hex");
}

class KeyTaken extends Error {}

async function replay(db: Knex, key: string, hash: string): Promise<CreateResult | undefined> {
  const row = await db("idempotency_keys").where({ key }).first("request_hash", "response_body");
  if (!row) return undefined;
  if (row.request_hash !== hash) {
    throw new HttpProblem(422, "This Idempotency-Key was already used with a different request body.", {
      type: "/problems/idempotency-key-reused",
      title: "Idempotency-Key reused",
    });
  }
  return { loan: row.response_body as LoanJson, replayed: true };
}

/**
 * Creates a loan. With an Idempotency-Key, the key is recorded in the same transaction as the loan: a
 * concurrent request with the same key blocks on the key's unique index until the first commits, then finds
 * the key taken, rolls its own insert back and answers with the first response. Exactly one loan is created.
 */
export async function createLoan(db: Knex, input: CreateLoanInput, key?: string): Promise<CreateResult> {
  if (!key) {
    const loan = await Loan.query()
      .insert({ ...input, status: "pending" })
      .returning("*");
    return { loan: toLoanJson(loan), replayed: false };
  }
  const hash = requestHash(input);
  const earlier = await replay(db, key, hash);
  if (earlier) return earlier;
  try {
    return await db.transaction(async (trx) => {
      const loan = await Loan.query(trx)
        .insert({ ...input, status: "pending" })
        .returning("*");
      const json = toLoanJson(loan);
      const stored = await trx.raw(
        `INSERT INTO idempotency_keys (key, request_hash, loan_id, response_body)
         VALUES (?, ?, ?, ?::jsonb) ON CONFLICT (key) DO NOTHING RETURNING key`,
        [key, hash, loan.id, JSON.stringify(json)],
      );
      if (stored.rows.length === 0) throw new KeyTaken();
      return { loan: json, replayed: false };
    });
  } catch (err) {
    if (!(err instanceof KeyTaken)) throw err;
    const first = await replay(db, key, hash);
    if (!first) throw new HttpProblem(409, "A request with this Idempotency-Key is still being processed.");
    return first;
  }
}

/** Forgets keys older than the retention period (at least 24 h). */
export async function purgeIdempotencyKeys(db: Knex, ttlHours: number): Promise<number> {
  return db("idempotency_keys")
    .where("created_at", "<", db.raw("now() - make_interval(hours => ?)", [ttlHours]))
    .delete();
}

// ---------------------------------------------------------------- lifecycle

/**
 * Moves a loan to `to` if the transition is allowed from its current status. The check and the write are one
 * UPDATE … WHERE status IN (allowed sources): of two concurrent transitions, the second re-reads the row after
 * the first commits, finds its source status gone and updates nothing, so exactly one wins.
 */
export async function transitionLoan(id: string, to: LoanStatus): Promise<LoanJson> {
  const from = (Object.keys(TRANSITIONS) as LoanStatus[]).filter((s) => TRANSITIONS[s].includes(to));
  const updated =
    from.length === 0
      ? []
      : await Loan.query()
          .patch({ status: to, updated_at: Loan.raw("now()") } as unknown as Partial<Loan>)
          .where("id", id)
          .whereIn("status", from)
          .returning("*");
  const loan = (updated as Loan[])[0];
  if (loan) return toLoanJson(loan);
  const current = await Loan.query().findById(id).select("status");
  if (!current) throw HttpProblem.notFound(`No loan with id ${id}.`);
  const allowed = TRANSITIONS[current.status];
  throw new HttpProblem(
    409,
    `A ${current.status} loan cannot become ${to}; allowed next: ${allowed.length ? allowed.join(", ") : "none (final)"}.`,
    { type: "/problems/illegal-transition", title: "Illegal status transition", current_status: current.status },
  );
}

// ---------------------------------------------------------------- statistics

export interface Stats {
  total_loans: number;
  total_amount: number;
  avg_amount: number;
  by_status: Record<string, number>;
  by_currency: Record<string, number>;
}

/** Reads the trigger-maintained aggregates: a few rows whatever the table size, exact under concurrency. */
export async function getStats(db: Knex): Promise<Stats> {
  const { rows } = await db.raw(`
    SELECT status, currency, GROUPING(status) AS gs, GROUPING(currency) AS gc,
           sum(loan_count)::bigint AS n, coalesce(sum(amount_sum), 0) AS total,
           coalesce(round(sum(amount_sum) / nullif(sum(loan_count), 0), 2), 0) AS avg
    FROM loan_stats
    GROUP BY GROUPING SETS ((status), (currency), ())
  `);
  const stats: Stats = { total_loans: 0, total_amount: 0, avg_amount: 0, by_status: {}, by_currency: {} };
  for (const r of rows as Array<Record<string, string | number | null>>) {
    const n = Number(r.n ?? 0);
    if (Number(r.gs) === 1 && Number(r.gc) === 1) {
      stats.total_loans = n;
      // The JSON numbers the original API returns; exact decimal arithmetic happened in PostgreSQL.
      stats.total_amount = Number(r.total);
      stats.avg_amount = Number(r.avg);
    } else if (n > 0 && Number(r.gs) === 0) stats.by_status[String(r.status)] = n;
    else if (n > 0 && Number(r.gc) === 0) stats.by_currency[String(r.currency)] = n;
  }
  return stats;
}
