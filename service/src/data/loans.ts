/**
 * Statements on `loans`, each written with the Loan model's query builder (bound to the given knex) and built
 * once when the store is created: the list (one statement per combination of filters, each walking an index
 * in its order, never OFFSET), lookup by id, insert, and the status transitions.
 */
import type { Knex } from "knex";
import { HttpProblem } from "../errors.js";
import { LOAN_INPUT_COLUMNS, Loan, type LoanJson } from "../models/Loan.js";
import { illegalTransitionDetail, sourcesOf } from "../models/transitions.js";
import { LOAN_STATUSES, type LoanStatus } from "../schemas.js";
import type { CreateLoanInput, ListQuery } from "../validation.js";
import { decodeCursor, encodeCursor } from "./cursor.js";
import { intParam, param, prepare, runPrepared, type Statement } from "./prepared.js";

type PageRow = LoanJson & { cursor_at: string };

export interface LoanPage {
  loans: LoanJson[];
  /** The cursor of the next page, when there is one. */
  next?: string;
}

export class LoanStore {
  /** `loans_page_{s,b,c combination}`: status filter, borrower filter, cursor. */
  private readonly pages = new Map<string, Statement>();
  private readonly byId: Statement<"id">;
  private readonly statusById: Statement<"id">;
  private readonly insertOne: Statement;
  private readonly transitions = new Map<LoanStatus, Statement<"id">>();

  constructor(private readonly db: Knex) {
    const loans = Loan.bindKnex(db);
    const columns = Loan.apiColumns(db);

    for (const status of [false, true]) {
      for (const borrower of [false, true]) {
        for (const cursor of [false, true]) {
          const shape = `${status ? "s" : ""}${borrower ? "b" : ""}${cursor ? "c" : ""}`;
          const q = loans.query().select([...columns, Loan.cursorColumn(db)]);
          if (status) q.where(Loan.column("status"), param("status"));
          if (borrower) q.where(Loan.column("borrower_id"), param("borrower_id"));
          if (cursor) {
            q.where(
              db.raw("(??, ??) < (?::timestamptz, ?::uuid)", [
                Loan.column("created_at"),
                Loan.column("id"),
                param("cursor_at"),
                param("cursor_id"),
              ]),
            );
          }
          q.orderBy([
            { column: Loan.column("created_at"), order: "desc" },
            { column: Loan.column("id"), order: "desc" },
          ]).limit(intParam("limit"));
          this.pages.set(shape, prepare(`loans_page_${shape || "all"}`, q));
        }
      }
    }

    this.byId = prepare("loan_by_id", loans.query().select(columns).where(Loan.column("id"), param("id")));
    this.statusById = prepare(
      "loan_status_by_id",
      loans.query().select(Loan.column("status")).where(Loan.column("id"), param("id")),
    );
    // Built from a model instance holding placeholders, so no validation runs here; `insert()` validates the
    // real values with the model's schema before they are bound.
    const placeholders = Object.fromEntries(LOAN_INPUT_COLUMNS.map((c) => [c, param(c)]));
    this.insertOne = prepare(
      "loan_insert",
      loans
        .query()
        .insert(loans.fromJson(placeholders, { skipValidation: true }))
        .returning(columns as string[]),
    );
    // One statement per target status: the check and the write are one UPDATE … WHERE status IN (sources).
    for (const to of LOAN_STATUSES) {
      const from = sourcesOf(to);
      if (from.length === 0) continue;
      this.transitions.set(
        to,
        prepare(
          `loan_transition_to_${to}`,
          loans
            .query()
            .patch({ status: to, updated_at: db.raw("now()") } as unknown as Partial<Loan>)
            .where(Loan.column("id"), param("id"))
            .whereIn(Loan.column("status"), from)
            .returning(columns as string[]),
        ),
      );
    }
  }

  /** A page of loans, newest first, and the cursor of the next page. */
  async list(q: ListQuery): Promise<LoanPage> {
    const cursor = q.cursor ? decodeCursor(q.cursor) : undefined;
    const shape = `${q.status ? "s" : ""}${q.borrower_id ? "b" : ""}${cursor ? "c" : ""}`;
    const rows = await runPrepared<PageRow>(this.db, this.pages.get(shape) as Statement, {
      status: q.status,
      borrower_id: q.borrower_id,
      cursor_at: cursor?.createdAt,
      cursor_id: cursor?.id,
      limit: q.limit + 1,
    });
    const page = rows.slice(0, q.limit);
    const last = page[page.length - 1];
    const next = rows.length > q.limit && last ? encodeCursor(last.cursor_at, last.id) : undefined;
    return { loans: page.map(({ cursor_at: _, ...loan }) => loan), next };
  }

  async get(id: string): Promise<LoanJson | undefined> {
    const [loan] = await runPrepared<LoanJson>(this.db, this.byId, { id });
    return loan;
  }

  /**
   * Inserts a loan (status `pending`), after the model's schema has checked the values. `executor` is the
   * knex instance or a transaction to run in.
   */
  async insert(input: CreateLoanInput, executor: Knex = this.db): Promise<LoanJson> {
    const loan = Loan.fromJson({ ...input });
    const [row] = await runPrepared<LoanJson>(executor, this.insertOne, loan as unknown as Record<string, unknown>);
    if (!row) throw new Error("INSERT … RETURNING returned no row");
    return row;
  }

  /**
   * Moves a loan to `to` if the transition is allowed from its current status. Of two concurrent transitions,
   * the second re-reads the row after the first commits, finds its source status gone and updates nothing, so
   * exactly one wins. 404 when there is no such loan, 409 when its status does not allow `to`.
   */
  async transition(id: string, to: LoanStatus): Promise<LoanJson> {
    const statement = this.transitions.get(to);
    if (statement) {
      const [loan] = await runPrepared<LoanJson>(this.db, statement, { id });
      if (loan) return loan;
    }
    const [current] = await runPrepared<{ status: LoanStatus }>(this.db, this.statusById, { id });
    if (!current) throw HttpProblem.notFound(`No loan with id ${id}.`);
    throw new HttpProblem(409, illegalTransitionDetail(current.status, to), {
      type: "/problems/illegal-transition",
      title: "Illegal status transition",
      current_status: current.status,
    });
  }

  /** The statements, for tests and for the bench's statement counts. */
  statements(): Statement[] {
    return [...this.pages.values(), this.byId, this.statusById, this.insertOne, ...this.transitions.values()];
  }
}
