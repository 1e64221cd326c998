// test/run.ts: process-group service-light
/** The keyset cursor: round trip, and a 400 naming `cursor` for anything this API did not issue. */
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { decodeCursor, encodeCursor } from "../../../service/src/data/cursor.js";
import { HttpProblem } from "../../../service/src/errors.js";

const test = suite("data/cursor");
const ID = "0f8fad5b-d9cb-469f-a165-70867728950e";

test("a cursor round-trips the millisecond and the id", () => {
  const c = encodeCursor("2026-11-25T14:10:45.123Z", ID);
  assert.match(c, /^[A-Za-z0-9_-]+$/);
  assert.equal(decodeCursor(c), { createdAt: "2026-11-25T14:10:45.123Z", id: ID });
});

for (const [what, text] of [
  ["not base64 JSON", "!!!"],
  ["an empty array", Buffer.from("[]").toString("base64url")],
  ["a bad time", encodeCursor("yesterday", ID)],
  ["a bad id", encodeCursor("2026-11-25T14:10:45.123Z", "1; DROP TABLE loans")],
  ["a number for the id", Buffer.from(JSON.stringify(["2026-11-25T14:10:45.123Z", 7])).toString("base64url")],
] as const) {
  test(`${what} is a 400 naming the cursor`, () => {
    try {
      decodeCursor(text);
      assert.unreachable("accepted");
    } catch (err) {
      assert.ok(err instanceof HttpProblem, String(err));
      assert.is(err.status, 400);
      assert.equal(
        err.body.errors?.map((e) => e.field),
        ["cursor"],
      );
    }
  });
}

test.run();
