// Durability under `kill -9`: over several rounds, ingest is killed in the middle of a load,
// restarted on the same data directory, and every event it acknowledged must be there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnIngest, ingestCli } from "../support/ingest.mjs";

const ROUNDS = 6;
const WORKERS = 4;
const BATCH = 50;
const CLIENT_KEY = "pk_crash";
// The load comes from one address as fast as it can: past the per-source limits by design.
const UNLIMITED = ["--source-rate-limit", "1e9", "--source-rate-burst", "1e9", "--source-byte-rate-limit", "1e12"];

function batch(round, worker, n) {
  const events = [];
  for (let i = 0; i < BATCH; i++) {
    events.push({
      client_key: CLIENT_KEY,
      event_id: `r${round}-w${worker}-b${n}-e${i}`,
      created_at: new Date().toISOString(),
      event_type: "instrument",
      action: "viewed",
      related_entities: [{ type: "ticker", id: "AAPL" }],
      channel_meta: { session_id: `s-${worker}`, client_ref: `user-${worker}` },
    });
  }
  return { sent_at: new Date().toISOString(), events };
}

test("no acknowledged event is lost to kill -9", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "personafin-crash-"));
  try {
    ingestCli(["tenant", "add", "--data-dir", dataDir, "--client-key", CLIENT_KEY]);
    const acked = new Set();
    for (let round = 0; round < ROUNDS; round++) {
      const { child, url } = await spawnIngest(dataDir, UNLIMITED);
      const exited = new Promise((resolve) => child.once("exit", resolve));
      let killed = false;
      let ackedThisRound = 0;
      // Kill once this round has had a number of acknowledgements that varies by round, so
      // the kill lands at different points of the group-commit cycle.
      const killAfter = 10 + round * 7;
      const workers = Array.from({ length: WORKERS }, async (_, worker) => {
        for (let n = 0; !killed; n++) {
          const body = batch(round, worker, n);
          let res;
          try {
            res = await fetch(`${url}/v1/events`, { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify(body) });
          } catch {
            return; // the server is gone: this batch was never acknowledged
          }
          if (res.status !== 200) throw new Error(`round ${round}: HTTP ${res.status} ${await res.text()}`);
          const answer = await res.json();
          assert.equal(answer.accepted, BATCH);
          body.events.forEach((e) => acked.add(e.event_id));
          if (++ackedThisRound >= killAfter && !killed) {
            killed = true;
            child.kill("SIGKILL");
          }
        }
      });
      await Promise.all(workers);
      await exited;
      assert.ok(ackedThisRound >= killAfter, `round ${round} acknowledged only ${ackedThisRound} batches`);
    }
    // Restart once more (recovery replays the WAL) and read everything back.
    const { child } = await spawnIngest(dataDir, UNLIMITED);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
    const stored = new Set(
      ingestCli(["events", "list", "--data-dir", dataDir, "--client-key", CLIENT_KEY, "--limit", "1000000"])
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l).event_id),
    );
    const lost = [...acked].filter((id) => !stored.has(id));
    assert.equal(lost.length, 0, `${lost.length} acknowledged events lost, e.g. ${lost.slice(0, 3)}`);
    assert.ok(acked.size >= ROUNDS * 10 * BATCH);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
