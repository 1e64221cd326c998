/**
 * The opaque keyset cursor of `GET /api/loans`: the last row's `created_at` (ISO, exact to the millisecond)
 * and id, as base64url JSON. A cursor this API did not issue is a 400 naming the `cursor` parameter.
 */
import { HttpProblem } from "../errors.js";

export interface Cursor {
  /** `Date#toISOString` form. */
  createdAt: string;
  id: string;
}

export function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString("base64url");
}

export function decodeCursor(text: string): Cursor {
  try {
    const [ts, id] = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as [unknown, unknown];
    if (typeof ts !== "string" || Number.isNaN(new Date(ts).getTime())) throw new Error("bad time");
    if (typeof id !== "string" || !/^[0-9a-f-]{36}$/.test(id)) throw new Error("bad id");
    return { createdAt: new Date(ts).toISOString(), id };
  } catch {
    throw HttpProblem.validation([{ field: "cursor", message: "is not a cursor this API issued" }], "query");
  }
}
