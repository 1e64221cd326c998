/**
 * The loan lifecycle, a domain rule beside the model: pending → approved | rejected; approved → disbursed;
 * disbursed → repaid | defaulted. Every other status is final.
 */
import { LOAN_STATUSES, type LoanStatus } from "../schemas.js";

export const TRANSITIONS: Readonly<Record<LoanStatus, readonly LoanStatus[]>> = {
  pending: ["approved", "rejected"],
  approved: ["disbursed"],
  rejected: [],
  disbursed: ["repaid", "defaulted"],
  repaid: [],
  defaulted: [],
};

/** The statuses a loan may be in to move to `to` (empty: nothing moves there, e.g. `pending`). */
export function sourcesOf(to: LoanStatus): LoanStatus[] {
  return LOAN_STATUSES.filter((from) => TRANSITIONS[from].includes(to));
}

/** Why `from` cannot become `to`, for the 409 answer. */
export function illegalTransitionDetail(from: LoanStatus, to: LoanStatus): string {
  const allowed = TRANSITIONS[from];
  return `A ${from} loan cannot become ${to}; allowed next: ${allowed.length ? allowed.join(", ") : "none (final)"}.`;
}
