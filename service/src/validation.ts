/**
 * Request validation with ajv over the schemas in schemas.ts. Request bodies are parsed with lossless-json, so
 * a JSON number such as 12000.10000000000000000001 reaches validation as its exact text, never as a float;
 * the `x-decimal` keyword checks it exactly (decimal.js) and normalises it in place to a fixed-scale string.
 */
import { Ajv, type ErrorObject, type SchemaValidateFunction, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { Decimal } from "decimal.js";
import { isLosslessNumber, parse as parseLossless } from "lossless-json";
import { HttpProblem } from "./errors.js";
import { createLoanSchema, LIMITS, type LoanStatus, listQuerySchema, patchLoanSchema } from "./schemas.js";

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

interface DecimalRule {
  minimum?: string;
  exclusiveMinimum?: string;
  maximum?: string;
  scale: number;
  nullable?: boolean;
}
interface IntegerRule {
  minimum: number;
  maximum: number;
  nullable?: boolean;
}

const NUMERIC_STRING = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,6})?$/;

/** The exact decimal a JSON number or numeric string denotes, or null. */
function exactDecimal(value: unknown): Decimal | null {
  let text: string | undefined;
  if (isLosslessNumber(value)) text = value.value;
  else if (typeof value === "string" && NUMERIC_STRING.test(value.trim())) text = value.trim();
  else if (typeof value === "number" && Number.isFinite(value)) text = String(value);
  if (text === undefined) return null;
  try {
    const d = new Decimal(text);
    return d.isFinite() ? d : null;
  } catch {
    return null;
  }
}

type KeywordFn = SchemaValidateFunction;

function fail(fn: KeywordFn, message: string): boolean {
  fn.errors = [{ keyword: "format", message, params: {} }];
  return false;
}

const decimalKeyword: KeywordFn = function decimal(schema, data, _p, ctx) {
  const rule = schema as DecimalRule;
  if (data === null && rule.nullable) return true;
  const d = exactDecimal(data);
  const bounds = `${rule.exclusiveMinimum !== undefined ? `greater than ${rule.exclusiveMinimum}` : `at least ${rule.minimum}`} and at most ${rule.maximum}`;
  if (!d) return fail(decimalKeyword, `must be a number or a numeric string${rule.nullable ? " (or null)" : ""}`);
  if (d.decimalPlaces() > rule.scale) return fail(decimalKeyword, `must have at most ${rule.scale} decimal places`);
  if (rule.exclusiveMinimum !== undefined && d.lte(rule.exclusiveMinimum))
    return fail(decimalKeyword, `must be ${bounds}`);
  if (rule.minimum !== undefined && d.lt(rule.minimum)) return fail(decimalKeyword, `must be ${bounds}`);
  if (rule.maximum !== undefined && d.gt(rule.maximum)) return fail(decimalKeyword, `must be ${bounds}`);
  if (ctx) (ctx.parentData as Record<string, unknown>)[ctx.parentDataProperty] = d.toFixed(rule.scale);
  return true;
};

const integerKeyword: KeywordFn = function integer(schema, data, _p, ctx) {
  const rule = schema as IntegerRule;
  if (data === null && rule.nullable) return true;
  const d = exactDecimal(data);
  if (d === null || !d.isInteger())
    return fail(integerKeyword, `must be an integer${rule.nullable ? " (or null)" : ""}`);
  if (d.lt(rule.minimum) || d.gt(rule.maximum)) {
    return fail(integerKeyword, `must be between ${rule.minimum} and ${rule.maximum}`);
  }
  if (ctx) (ctx.parentData as Record<string, unknown>)[ctx.parentDataProperty] = d.toNumber();
  return true;
};

/** This project's `x-decimal` and `x-integer` keywords, on any ajv 8 instance (also the Loan model's validator). */
export function addValueKeywords(ajv: Pick<Ajv, "addKeyword">): void {
  ajv.addKeyword({
    keyword: "x-decimal",
    schemaType: "object",
    modifying: true,
    errors: true,
    validate: decimalKeyword,
  });
  ajv.addKeyword({
    keyword: "x-integer",
    schemaType: "object",
    modifying: true,
    errors: true,
    validate: integerKeyword,
  });
}

function createAjv(coerceTypes: boolean) {
  const ajv = new Ajv({ allErrors: true, coerceTypes, useDefaults: true, strict: true, strictTypes: false });
  addFormats(ajv);
  addValueKeywords(ajv);
  return ajv;
}

const bodyAjv = createAjv(false);
const queryAjv = createAjv(true);

export interface FieldError {
  field: string;
  message: string;
}

function fieldErrors(errors: ErrorObject[] | null | undefined, where: string): FieldError[] {
  const out: FieldError[] = [];
  for (const e of errors ?? []) {
    let field = e.instancePath.replace(/^\//, "").replace(/\//g, ".");
    let message = e.message ?? "is invalid";
    if (e.keyword === "required") field = String(e.params.missingProperty);
    if (e.keyword === "required") message = "is required";
    if (e.keyword === "additionalProperties") {
      field = String(e.params.additionalProperty);
      message = where === "query" ? "is not a supported query parameter" : "is not a field that can be changed";
    }
    if (e.keyword === "enum") message = `must be one of: ${(e.params.allowedValues as string[]).join(", ")}`;
    if (e.keyword === "pattern" && field === "currency") message = "must be exactly 3 ASCII letters";
    if (e.keyword === "pattern" && field === "borrower_id") message = "must be printable text, not blank";
    if (!field) field = where;
    // One reason per field: the first ajv reports is the most basic one.
    if (!out.some((o) => o.field === field)) out.push({ field, message });
  }
  return out;
}

function validator<T>(validate: ValidateFunction, where: string) {
  return (data: unknown): T => {
    if (!validate(data)) {
      const errors = fieldErrors(validate.errors, where);
      throw HttpProblem.validation(errors, where);
    }
    return data as T;
  };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The charset a JSON body may declare: UTF-8 only (RFC 8259 §8.1). Anything else is a 415 rather than bytes
 * decoded as the wrong text. Returns the problem, or undefined when the Content-Type is acceptable.
 */
export function charsetProblem(contentType: string | undefined): HttpProblem | undefined {
  const match = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType ?? "");
  if (!match) return undefined;
  const charset = (match[1] ?? "").toLowerCase();
  if (charset === "utf-8" || charset === "utf8") return undefined;
  return new HttpProblem(
    415,
    `The request body must be UTF-8; charset "${charset.slice(0, 40)}" is not accepted (send Content-Type: application/json; charset=utf-8).`,
    { type: "/problems/unsupported-charset", title: "Unsupported Media Type" },
  );
}

/** Parses a JSON request body without ever turning a number into a float. */
export function parseJsonBody(raw: Buffer | undefined): Record<string, unknown> {
  let text = "";
  try {
    // Strict: invalid UTF-8 is refused, never stored as U+FFFD.
    text = raw && raw.length > 0 ? utf8.decode(raw) : "";
  } catch {
    throw HttpProblem.badRequest("The request body is not valid UTF-8.");
  }
  if (text.trim() === "") throw HttpProblem.badRequest("The request body is empty: send a JSON object.");
  let value: unknown;
  try {
    value = parseLossless(text);
  } catch (err) {
    throw HttpProblem.badRequest(`The request body is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || isLosslessNumber(value)) {
    throw HttpProblem.badRequest("The request body must be a JSON object.");
  }
  return value as Record<string, unknown>;
}

export interface CreateLoanInput {
  borrower_id: string;
  amount: string;
  currency: string;
  term_months: number | null;
  interest_rate_apr: string | null;
}

const validateCreate = validator<Record<string, unknown>>(bodyAjv.compile(createLoanSchema), "body");
const validatePatch = validator<{ status: LoanStatus }>(bodyAjv.compile(patchLoanSchema), "body");
const validateQuery = validator<ListQuery>(queryAjv.compile(listQuerySchema), "query");

export function validateCreateLoan(body: Record<string, unknown>): CreateLoanInput {
  // Only the known fields are validated and kept: unknown keys are ignored, as the original API does.
  const known: Record<string, unknown> = {};
  for (const key of Object.keys(createLoanSchema.properties)) {
    if (Object.hasOwn(body, key)) known[key] = body[key];
  }
  const v = validateCreate(known);
  return {
    borrower_id: v.borrower_id as string,
    amount: v.amount as string,
    currency: (v.currency as string).toUpperCase(),
    term_months: (v.term_months as number | null | undefined) ?? null,
    interest_rate_apr: (v.interest_rate_apr as string | null | undefined) ?? null,
  };
}

export function validatePatchLoan(body: Record<string, unknown>): { status: LoanStatus } {
  return validatePatch(body);
}

export interface ListQuery {
  limit: number;
  cursor?: string;
  status?: LoanStatus;
  borrower_id?: string;
}

const DECIMAL_DIGITS = /^[0-9]{1,9}$/;

export function validateListQuery(query: Record<string, unknown>): ListQuery {
  // Type coercion would read `1e309`, `Infinity`, `0x10`, `+5` or ` 5` as numbers: a page size is decimal digits.
  const limit = query.limit;
  if (limit !== undefined && !(typeof limit === "string" && DECIMAL_DIGITS.test(limit))) {
    const message = `must be an integer from 1 to ${LIMITS.pageMax}, written in decimal digits`;
    throw HttpProblem.validation([{ field: "limit", message }], "query");
  }
  return validateQuery({ ...query });
}

const UUID_HEX = /^[0-9a-f]{32}$/;

/**
 * A loan id in any of the forms Python's uuid.UUID() accepts and the original API therefore accepted:
 * hyphenated, 32 hex digits, braces, `urn:uuid:`, any case. Returns the canonical lower-case form or null.
 */
export function parseUuid(input: string): string | null {
  if (input.length > 64) return null;
  let s = input.trim().toLowerCase();
  if (s.startsWith("urn:uuid:")) s = s.slice(9);
  if (s.startsWith("{") && s.endsWith("}")) s = s.slice(1, -1);
  const hex = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/.test(s) ? s.replace(/-/g, "") : "";
  if (!UUID_HEX.test(hex)) return null;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export const IDEMPOTENCY_KEY = new RegExp(`^[\\x21-\\x7E]{1,${LIMITS.idempotencyKeyMaxLength}}$`);
