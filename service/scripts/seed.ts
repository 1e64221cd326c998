import { seedLoans } from "../seeds/loans.js";
import { withDatabase } from "./db-command.js";

await withDatabase("seed", async (db) => `seeded ${await seedLoans(db)} new loan(s) of 5`);
