/**
 * The data layer, built once per knex instance at start-up (every statement prepared from the models then):
 * loans (list, get, insert, transition), idempotent creation, statistics.
 */
import type { Knex } from "knex";
import { IdempotentCreation } from "./idempotency.js";
import { LoanStore } from "./loans.js";
import { StatsStore } from "./stats.js";

export interface DataLayer {
  loans: LoanStore;
  creation: IdempotentCreation;
  stats: StatsStore;
}

export function createDataLayer(db: Knex): DataLayer {
  const loans = new LoanStore(db);
  return { loans, creation: new IdempotentCreation(db, loans), stats: new StatsStore(db) };
}
