/**
 * The request and response schemas: JSON Schema, the single source of truth for validation (ajv, below in
 * validation.ts) and for the API description. `x-decimal` and `x-integer` are this project's keywords for
 * money-like and count-like fields that arrive as JSON numbers or numeric strings and must be exact.
 */
export const LOAN_STATUSES = ["pending", "approved", "rejected", "disbursed", "repaid", "defaulted"] as const;
export type LoanStatus = (typeof LOAN_STATUSES)[number];

export const LIMITS = {
  borrowerIdMaxLength: 128,
  amountMax: "50000",
  termMonthsMax: 600,
  pageDefault: 100,
  pageMax: 200,
  bodyBytes: 8 * 1024,
  idempotencyKeyMaxLength: 255,
} as const;

/**
 * Text a person can read: never a control character (C0, DEL, C1: `\p{Cc}`), a lone surrogate (`\p{Cs}`), a
 * line or paragraph separator, or a bidirectional control (U+061C, U+200E/F, U+202A–E, U+2066–9: they reorder
 * what a log or a terminal shows); and at least one visible character — not whitespace, not a format character
 * (`\p{Cf}`: zero-width joiners, soft hyphens), not a default-ignorable one (Hangul fillers, variation
 * selectors), not a combining mark on its own, not unassigned. Written so that matching is linear in the length.
 */
const FORBIDDEN_CHAR = "[\\p{Cc}\\p{Cs}\\p{Zl}\\p{Zp}\\u061C\\u200E\\u200F\\u202A-\\u202E\\u2066-\\u2069]";
const VISIBLE_CHAR = "[^\\p{White_Space}\\p{Cc}\\p{Cf}\\p{Cs}\\p{Cn}\\p{Z}\\p{M}\\p{Default_Ignorable_Code_Point}]";
const visibleText = `^(?![\\s\\S]*${FORBIDDEN_CHAR})[\\s\\S]*${VISIBLE_CHAR}`;

export const createLoanSchema = {
  $id: "CreateLoan",
  type: "object",
  required: ["borrower_id", "amount", "currency"],
  properties: {
    borrower_id: { type: "string", minLength: 1, maxLength: LIMITS.borrowerIdMaxLength, pattern: visibleText },
    amount: { "x-decimal": { exclusiveMinimum: "0", maximum: LIMITS.amountMax, scale: 2 } },
    currency: { type: "string", pattern: "^[A-Za-z]{3}$", description: "ISO 4217 code; stored upper-cased" },
    term_months: { "x-integer": { minimum: 1, maximum: LIMITS.termMonthsMax, nullable: true } },
    interest_rate_apr: { "x-decimal": { minimum: "0", maximum: "100", scale: 2, nullable: true } },
  },
} as const;

export const patchLoanSchema = {
  $id: "PatchLoan",
  type: "object",
  required: ["status"],
  additionalProperties: false,
  properties: { status: { type: "string", enum: [...LOAN_STATUSES] } },
} as const;

export const listQuerySchema = {
  $id: "ListLoansQuery",
  type: "object",
  additionalProperties: false,
  properties: {
    limit: { type: "integer", minimum: 1, maximum: LIMITS.pageMax, default: LIMITS.pageDefault },
    cursor: { type: "string", minLength: 1, maxLength: 200 },
    status: { type: "string", enum: [...LOAN_STATUSES] },
    borrower_id: { type: "string", minLength: 1, maxLength: LIMITS.borrowerIdMaxLength, pattern: visibleText },
  },
} as const;

export const loanSchema = {
  $id: "Loan",
  type: "object",
  required: [
    "id",
    "borrower_id",
    "amount",
    "currency",
    "status",
    "term_months",
    "interest_rate_apr",
    "created_at",
    "updated_at",
  ],
  properties: {
    id: { type: "string", format: "uuid" },
    borrower_id: { type: "string" },
    amount: { type: "string", pattern: "^\\d+\\.\\d{2}$", examples: ["12500.00"] },
    currency: { type: "string", pattern: "^[A-Z]{3}$" },
    status: { type: "string", enum: [...LOAN_STATUSES] },
    term_months: { type: ["integer", "null"] },
    interest_rate_apr: { type: ["string", "null"], pattern: "^\\d+\\.\\d{2}$" },
    created_at: {
      type: "string",
      description: "HTTP-date (IMF-fixdate, GMT)",
      examples: ["Wed, 25 Nov 2026 14:10:45 GMT"],
    },
    updated_at: { type: "string", description: "HTTP-date (IMF-fixdate, GMT)" },
  },
} as const;

export const statsSchema = {
  $id: "Stats",
  type: "object",
  required: ["total_loans", "total_amount", "avg_amount", "by_status", "by_currency"],
  properties: {
    total_loans: { type: "integer" },
    total_amount: { type: "number" },
    avg_amount: { type: "number", description: "rounded to cents" },
    by_status: { type: "object", additionalProperties: { type: "integer" } },
    by_currency: { type: "object", additionalProperties: { type: "integer" } },
  },
} as const;

export const problemSchema = {
  $id: "Problem",
  type: "object",
  required: ["type", "title", "status"],
  properties: {
    type: { type: "string" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string" },
    instance: { type: "string" },
    errors: {
      type: "array",
      items: {
        type: "object",
        required: ["field", "message"],
        properties: { field: { type: "string" }, message: { type: "string" } },
      },
    },
  },
} as const;
