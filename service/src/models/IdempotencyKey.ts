import { Model } from "objection";
import type { LoanJson } from "./Loan.js";

/**
 * A recorded `Idempotency-Key` of `POST /api/loans`: the hash of the request it came with and the response it
 * got, kept for the retention period (IDEMPOTENCY_TTL_HOURS). The one place naming `idempotency_keys`.
 */
export class IdempotencyKey extends Model {
  static override tableName = "idempotency_keys";
  static override idColumn = "key";

  declare key: string;
  declare request_hash: string;
  declare loan_id: string;
  declare response_body: LoanJson;
  declare created_at: Date;
}
