// Cluster mode from real parts (three JetStream servers, PostgreSQL, two edges, a sink):
// what the edges acknowledge reaches PostgreSQL exactly once, through redeliveries and
// through `kill -9` of each kind of process under load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startCluster } from "../support/cluster.mjs";

const CLIENT_KEY = "pk_cluster";

function batch(tag, size) {
  const events = [];
  for (let i = 0; i < size; i++) {
    events.push({
      client_key: CLIENT_KEY,
      event_id: `${tag}-e${i}`,
      created_at: new Date().toISOString(),
      event_type: "instrument",
      action: "viewed",
      related_entities: [{ type: "ticker", id: "AAPL" }],
      channel_meta: { session_id: `s-${tag}`, client_ref: `user-${i % 7}` },
    });
  }
  return { sent_at: new Date().toISOString(), events };
}

async function post(url, body) {
  const res = await fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, answer: res.status === 200 ? await res.json() : await res.text() };
}

/** Waits until PostgreSQL holds at least `count` of the tenant's events, or `ms` pass. */
async function waitForStored(cluster, count, ms = 60_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const stored = cluster.storedEvents(CLIENT_KEY);
    if (stored.length >= count || Date.now() > deadline) return stored;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Each acknowledged id stored, and nothing stored twice. */
function assertExactlyOnce(stored, acked) {
  const ids = stored.map((e) => e.event_id);
  const unique = new Set(ids);
  assert.equal(ids.length - unique.size, 0, "events stored twice");
  const missing = [...acked].filter((id) => !unique.has(id));
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged events missing from PostgreSQL`);
}

test("events posted through both edges, batches redelivered, are in PostgreSQL exactly once", async () => {
  const cluster = await startCluster();
  try {
    cluster.addTenant(CLIENT_KEY);
    const acked = new Set();
    const urls = cluster.edges.map((e) => e.info.url);
    for (let n = 0; n < 40; n++) {
      const body = batch(`b${n}`, 25);
      const { status, answer } = await post(urls[n % 2], body);
      assert.equal(status, 200, JSON.stringify(answer));
      assert.equal(answer.accepted, 25);
      body.events.forEach((e) => acked.add(e.event_id));
      if (n % 5 === 0) {
        // The same batch again, through the other edge: the stream knows every event.
        const again = await post(urls[(n + 1) % 2], body);
        assert.equal(again.status, 200);
        assert.deepEqual([again.answer.accepted, again.answer.duplicates], [0, 25]);
      }
    }
    const stored = await waitForStored(cluster, acked.size);
    assert.equal(stored.length, acked.size);
    assertExactlyOnce(stored, acked);
    // What PostgreSQL holds is anonymised: no client_ref in it.
    assert.ok(stored.every((e) => !JSON.stringify(e).includes("user-")), "a client_ref reached PostgreSQL");
    assert.ok(stored.every((e) => typeof e.channel_meta.user_id === "string"));
  } finally {
    await cluster.stop();
  }
});

test("kill -9 of a NATS server, an edge, and the sink under load loses no acknowledged event and stores none twice", async () => {
  const ROUNDS = 6;
  const WORKERS = 4;
  const cluster = await startCluster({ ackWaitSecs: 2 });
  try {
    cluster.addTenant(CLIENT_KEY);
    const acked = new Set();
    const counts = [];
    for (let round = 0; round < ROUNDS; round++) {
      const kind = ["nats", "edge", "sink"][round % 3];
      const victim =
        kind === "nats" ? cluster.nats.servers[round % 3] : kind === "edge" ? cluster.edges[round % 2] : cluster.sinks[0];
      let ackedThisRound = 0;
      let retries = 0;
      let stopping = false;
      const liveEdges = () => cluster.edges.filter((e) => e.child.exitCode === null && e.child.signalCode === null);
      const worker = async (w) => {
        for (let n = 0; !stopping; n++) {
          const body = batch(`r${round}-w${w}-b${n}`, 20);
          // As the tracker does: the same batch again until it is acknowledged, through
          // whichever edge is up.
          for (let attempt = 0; ; attempt++) {
            const edges = liveEdges();
            const edge = edges[(n + attempt) % edges.length];
            let res;
            try {
              res = await post(edge.info.url, body);
            } catch {
              res = { status: 0 };
            }
            if (res.status === 200) break;
            assert.ok([0, 503].includes(res.status), `HTTP ${res.status}: ${res.answer}`);
            retries++;
            await new Promise((r) => setTimeout(r, 200));
          }
          body.events.forEach((e) => acked.add(e.event_id));
          ackedThisRound++;
        }
      };
      const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
      const until = async (n) => {
        while (ackedThisRound < n) await new Promise((r) => setTimeout(r, 20));
      };
      // The kill lands at a different point of the load each round.
      await until(10 + round * 5);
      await victim.kill("SIGKILL");
      const atKill = ackedThisRound;
      await until(atKill + 10);
      await victim.start();
      await until(ackedThisRound + 10);
      stopping = true;
      await Promise.all(workers);
      counts.push(`${kind}: ${ackedThisRound} batches acknowledged, ${retries} retried`);
    }
    const stored = await waitForStored(cluster, acked.size, 120_000);
    console.log(`fault rounds: ${counts.join("; ")}; ${acked.size} events acknowledged, ${stored.length} stored`);
    assertExactlyOnce(stored, acked);
    assert.equal(stored.length, acked.size, "only acknowledged events were sent, each stored once");
  } finally {
    await cluster.stop();
  }
});
