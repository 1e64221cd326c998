import { migrateLatest } from "../src/db.js";
import { withDatabase } from "./db-command.js";

await withDatabase("migrate", async (db) => {
  const applied = await migrateLatest(db);
  return applied.length ? `applied ${applied.length} migration(s): ${applied.join(", ")}` : "already up to date";
});
