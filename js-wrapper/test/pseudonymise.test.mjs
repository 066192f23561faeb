// The JS customer-side pseudonymiser agrees with `ingest pseudonymise` byte for byte.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pseudonymise } from "../dist/pseudonymise.js";

const SECRET = "our own secret, never sent to Personafin";
const REFS = ["customer-user-42", "u1", "Jöns Ångström", "用户-7", ""];

test("matches the ingest CLI on the same inputs", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pf-secret-"));
  try {
    const file = join(dir, "secret");
    writeFileSync(file, SECRET + "\n");
    const cli = execFileSync(process.env.INGEST_BIN, ["pseudonymise", "--secret-file", file], { input: REFS.join("\n") + "\n", encoding: "utf8" })
      .split("\n")
      .filter(Boolean);
    const js = await Promise.all(REFS.map((r) => pseudonymise(SECRET, r)));
    assert.deepEqual(js, cli);
    assert.equal(new Set(js).size, REFS.length);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("is HMAC-SHA256 (RFC 4231 case 2, with a long enough key)", async () => {
  const key = new TextEncoder().encode("key".repeat(8));
  const expected = (await import("node:crypto")).createHmac("sha256", Buffer.from(key)).update("what do ya want for nothing?").digest("hex");
  assert.equal(await pseudonymise(key, "what do ya want for nothing?"), expected);
});

test("refuses a short secret", async () => {
  await assert.rejects(pseudonymise("short", "u1"), /at least 16/);
});
