/**
 * `GET /api/stats` from the trigger-maintained aggregates (LoanStats): a few rows whatever the table size,
 * exact under concurrency. One statement, written with the model's query builder and built once.
 */
import type { Knex } from "knex";
import { LoanStats } from "../models/LoanStats.js";
import { prepare, runPrepared, type Statement } from "./prepared.js";

export interface Stats {
  total_loans: number;
  total_amount: number;
  avg_amount: number;
  by_status: Record<string, number>;
  by_currency: Record<string, number>;
}

type StatsRow = Record<"status" | "currency" | "gs" | "gc" | "n" | "total" | "avg", string | number | null>;

/** The rows of the GROUPING SETS query, shaped as the API's stats object (exact arithmetic done in SQL). */
export function shapeStats(rows: readonly StatsRow[]): Stats {
  const stats: Stats = { total_loans: 0, total_amount: 0, avg_amount: 0, by_status: {}, by_currency: {} };
  for (const r of rows) {
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

export class StatsStore {
  private readonly totals: Statement;

  constructor(private readonly db: Knex) {
    this.totals = prepare(
      "loan_stats_totals",
      LoanStats.bindKnex(db)
        .query()
        .select(
          "status",
          "currency",
          db.raw("GROUPING(status) AS gs"),
          db.raw("GROUPING(currency) AS gc"),
          db.raw("sum(loan_count)::bigint AS n"),
          db.raw("coalesce(sum(amount_sum), 0) AS total"),
          db.raw("coalesce(round(sum(amount_sum) / nullif(sum(loan_count), 0), 2), 0) AS avg"),
        )
        .groupByRaw("GROUPING SETS ((status), (currency), ())"),
    );
  }

  async get(): Promise<Stats> {
    return shapeStats(await runPrepared<StatsRow>(this.db, this.totals));
  }
}
