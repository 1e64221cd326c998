/**
 * `Idempotency-Key` on `POST /api/loans`: a retry with the same key and body returns the first response and
 * creates nothing; the same key with another body is a 422. The key is recorded in the same transaction as the
 * loan: a concurrent request with the same key blocks on the key's unique index until the first commits, then
 * finds the key taken, rolls its own insert back and answers with the first response. Exactly one loan is
 * created. Statements written with the IdempotencyKey model's query builder, built once.
 */
import { createHash } from "node:crypto";
import type { Knex } from "knex";
import { HttpProblem } from "../errors.js";
import { IdempotencyKey } from "../models/IdempotencyKey.js";
import type { LoanJson } from "../models/Loan.js";
import type { CreateLoanInput } from "../validation.js";
import type { LoanStore } from "./loans.js";
import { param, prepare, runPrepared, type Statement } from "./prepared.js";

export interface CreateResult {
  loan: LoanJson;
  /** True when this is the first request's response, returned again. */
  replayed: boolean;
}

/** The request a key was first used with: the validated fields, canonical and hashed. */
export function requestHash(input: CreateLoanInput): string {
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

export class IdempotentCreation {
  private readonly find: Statement<"key">;
  private readonly record: Statement<"key" | "request_hash" | "loan_id" | "response_body">;

  constructor(
    private readonly db: Knex,
    private readonly loans: LoanStore,
  ) {
    const keys = IdempotencyKey.bindKnex(db);
    this.find = prepare(
      "idempotency_key_find",
      keys.query().select("request_hash", "response_body").where("key", param("key")),
    );
    const placeholders = { key: param("key"), request_hash: param("request_hash"), loan_id: param("loan_id") };
    this.record = prepare(
      "idempotency_key_insert",
      keys
        .query()
        .insert(keys.fromJson({ ...placeholders, response_body: param("response_body") }, { skipValidation: true }))
        .onConflict("key")
        .ignore()
        .returning("key"),
    );
  }

  /** Creates a loan; with a key, at most once per key. */
  async create(input: CreateLoanInput, key?: string): Promise<CreateResult> {
    if (!key) return { loan: await this.loans.insert(input), replayed: false };
    const hash = requestHash(input);
    const earlier = await this.replay(key, hash);
    if (earlier) return earlier;
    try {
      return await this.db.transaction(async (trx) => {
        const loan = await this.loans.insert(input, trx);
        const stored = await runPrepared(trx, this.record, {
          key,
          request_hash: hash,
          loan_id: loan.id,
          response_body: JSON.stringify(loan),
        });
        if (stored.length === 0) throw new KeyTaken();
        return { loan, replayed: false };
      });
    } catch (err) {
      if (!(err instanceof KeyTaken)) throw err;
      const first = await this.replay(key, hash);
      if (!first) throw new HttpProblem(409, "A request with this Idempotency-Key is still being processed.");
      return first;
    }
  }

  private async replay(key: string, hash: string): Promise<CreateResult | undefined> {
    const [row] = await runPrepared<{ request_hash: string; response_body: LoanJson }>(this.db, this.find, { key });
    if (!row) return undefined;
    if (row.request_hash !== hash) {
      throw new HttpProblem(422, "This Idempotency-Key was already used with a different request body.", {
        type: "/problems/idempotency-key-reused",
        title: "Idempotency-Key reused",
      });
    }
    return { loan: row.response_body, replayed: true };
  }
}

/** Forgets keys older than the retention period (at least 24 h). Hourly, off the request path: not prepared. */
export async function purgeIdempotencyKeys(db: Knex, ttlHours: number): Promise<number> {
  return IdempotencyKey.bindKnex(db)
    .query()
    .where("created_at", "<", db.raw("now() - make_interval(hours => ?)", [ttlHours]))
    .delete();
}
