import { Model } from "objection";

/**
 * The maintained aggregates behind `GET /api/stats`: a count and an exact sum per (status, currency, shard),
 * kept by a trigger in the same transaction as every write to `loans` (migration 20261125000200). Read-only
 * for the service. The one place naming `loan_stats`.
 */
export class LoanStats extends Model {
  static override tableName = "loan_stats";
  static override get idColumn() {
    return ["status", "currency", "shard"];
  }

  declare status: string;
  declare currency: string;
  declare shard: number;
  declare loan_count: string;
  declare amount_sum: string;
}
