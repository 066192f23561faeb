// Cluster mode from real parts (three JetStream servers, PostgreSQL, two edges, a sink):
// what the edges acknowledge reaches PostgreSQL exactly once, through redeliveries, a real
// page's retries and `kill -9` of each kind of process under load; both edges answer as
// `ingest replay` does; an erasure reaches every node; the presenter lock hands over.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { startCluster } from "../support/cluster.mjs";
import { startStatic } from "../support/static.mjs";
import { launch, openPage } from "../support/browser.mjs";

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
    // A customer's own consumer of the stream (examples/subscriber/) reads each event
    // once, anonymised, with its tenant.
    const subscriber = join(dirname(process.env.INGEST_BIN), "subscribe");
    const read = execFileSync(subscriber, [cluster.nats.urls.join(","), "warehouse", String(acked.size)], {
      encoding: "utf8",
      timeout: 60_000,
    })
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    assert.equal(new Set(read.map((r) => r.event.event_id)).size, acked.size);
    assert.ok(read.every((r) => Number.isInteger(r.tenant_id) && !JSON.stringify(r).includes("user-")));
    // Each edge says it reaches NATS and PostgreSQL, and how far its own copy of the stream is.
    for (const url of urls) {
      assert.equal((await fetch(`${url}/readyz`)).status, 200);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /^consumer_lag_messages\{consumer="datasets-[0-9a-f]{16}"\} \d+$/m);
    }
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

test("both nodes answer queries as `ingest replay` does over the same events, also after a restart", async () => {
  const cluster = await startCluster({ serveArgs: ["--test-mode", "--snapshot-every-secs", "1"] });
  const dir = mkdtempSync(join(tmpdir(), "personafin-differential-"));
  try {
    const apiKey = cluster.addTenant(CLIENT_KEY);
    const tickers = ["AAPL", "TSLA", "MSFT", "NVDA", "AMZN"];
    const events = [];
    const start = Date.now() - 3_600_000;
    for (let i = 0; i < 300; i++) {
      events.push({
        client_key: CLIENT_KEY,
        event_id: `d${i}`,
        created_at: new Date(start + i * 10_000).toISOString(),
        event_type: "instrument",
        action: i % 4 === 0 ? "traded" : "viewed",
        related_entities: [{ type: "ticker", id: tickers[(i * i) % tickers.length] }],
        channel_meta: { session_id: `s${i % 9}`, client_ref: `user-${i % 6}` },
      });
    }
    const urls = cluster.edges.map((e) => e.info.url);
    for (let n = 0; n * 50 < events.length; n++) {
      const { status, answer } = await post(urls[n % 2], { events: events.slice(n * 50, n * 50 + 50) });
      assert.equal(status, 200, answer);
    }
    const asOf = new Date(start + 300 * 10_000 + 60_000).toISOString();
    const queries = [
      `/v1/trending/entities?entity_type=ticker&mode=popular&limit=5&as_of=${asOf}`,
      `/v1/users/user-1/preferences/entities?as_of=${asOf}`,
    ];
    const file = join(dir, "events.jsonl");
    writeFileSync(file, events.map((e) => JSON.stringify(e)).join("\n") + "\n");
    const args = ["replay", file, "--as-of", asOf, "--master-secret-file", cluster.secret];
    queries.forEach((q) => args.push("--query", q));
    const expected = cluster.cli(args).split("\n").filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(expected[0].items.length > 0, "the replay ranks something");

    const answers = async (url) => {
      const out = [];
      for (const q of queries) {
        const res = await fetch(`${url}${q}`, { headers: { authorization: `Bearer ${apiKey}` } });
        out.push(res.status === 200 ? await res.json() : { status: res.status });
      }
      return out;
    };
    /** Each node's answers, once they equal the replay's (or after 60 s, for the test to fail on). */
    const converged = async () => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const all = await Promise.all(cluster.edges.map((e) => answers(e.info.url)));
        const same = all.every((a) => isDeepStrictEqual(comparable(a), comparable(expected)));
        if (same || Date.now() > deadline) return all;
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    for (const answer of await converged()) assert.deepEqual(comparable(answer), comparable(expected));
    // One node restarts from its snapshot and its store: the same answers.
    await cluster.edges[1].kill("SIGTERM");
    await cluster.edges[1].start();
    for (const answer of await converged()) assert.deepEqual(comparable(answer), comparable(expected));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await cluster.stop();
  }
});

/** Answers without what differs by design: when each was made (a replay says its `as_of`). */
function comparable(answers) {
  return answers.map(({ generated_at, ...rest }) => rest);
}

test("an erasure through one node is gone from the other node's answers and from PostgreSQL", async () => {
  const cluster = await startCluster();
  try {
    const apiKey = cluster.addTenant(CLIENT_KEY);
    const urls = cluster.edges.map((e) => e.info.url);
    for (let n = 0; n < 4; n++) {
      const { status, answer } = await post(urls[n % 2], batch(`x${n}`, 30));
      assert.equal(status, 200, answer);
    }
    const preferences = async (url, clientRef) => {
      const res = await fetch(`${url}/v1/users/${clientRef}/preferences/entities`, {
        headers: { authorization: `Bearer ${apiKey}` },
      });
      assert.equal(res.status, 200);
      return res.json();
    };
    /** `url`'s answer for the user once `done` holds of it, or after 60 s, to fail on. */
    const until = async (url, clientRef, done) => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const answer = await preferences(url, clientRef);
        if (done(answer) || Date.now() > deadline) return answer;
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const known = await until(urls[1], "user-1", (a) => a.items.length > 0);
    assert.ok(known.items.length > 0, "the other node knows user-1");
    const pseudonym = known.user_id;
    const stored = await waitForStored(cluster, 120);
    const theirs = stored.filter((e) => e.channel_meta.user_id === pseudonym).length;
    assert.ok(theirs > 0);

    const res = await fetch(`${urls[0]}/v1/users/user-1`, { method: "DELETE", headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).events, theirs, "PostgreSQL's rows of the user were erased");
    // The node that took the erasure answered once its own copy had it.
    assert.deepEqual((await preferences(urls[0], "user-1")).items, []);
    assert.deepEqual((await until(urls[1], "user-1", (a) => a.items.length === 0)).items, []);
    const left = cluster.storedEvents(CLIENT_KEY);
    assert.equal(left.filter((e) => e.channel_meta.user_id === pseudonym).length, 0);
    assert.equal(left.length, 120 - theirs, "the other users' events stay");
    assert.ok((await preferences(urls[1], "user-2")).items.length > 0);
  } finally {
    await cluster.stop();
  }
});

test("the node that writes documents to PostgreSQL hands over when it is killed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "personafin-presenter-"));
  const config = join(dir, "datasets.toml");
  writeFileSync(config, "[consensus]\nmaterialize_every_secs = 1\n");
  const cluster = await startCluster({ serveArgs: ["--datasets-config", config] });
  try {
    cluster.addTenant(CLIENT_KEY);
    const consumerOf = (edge) => `datasets-${readFileSync(join(edge.info.dataDir, "node.id"), "utf8").trim()}`;
    /** Who wrote the documents PostgreSQL holds, once `done` holds of it (or after 60 s). */
    const writers = async (done) => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const found = cluster.sql("SELECT DISTINCT written_by FROM documents").split("\n").filter(Boolean);
        if (done(found) || Date.now() > deadline) return found;
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    let { status } = await post(cluster.edges[0].info.url, batch("m0", 20));
    assert.equal(status, 200);
    const first = await writers((w) => w.length === 1);
    assert.equal(first.length, 1, "one node writes the documents");
    const holder = cluster.edges.find((e) => consumerOf(e) === first[0]);
    assert.ok(holder, `${first[0]} is one of the edges`);
    const other = cluster.edges.find((e) => e !== holder);
    const lists = cluster.sql("SELECT count(*) FROM documents");
    assert.ok(Number(lists) > 0);

    await holder.kill("SIGKILL");
    ({ status } = await post(other.info.url, batch("m1", 20)));
    assert.equal(status, 200);
    const next = await writers((w) => w.length === 1 && w[0] === consumerOf(other));
    assert.deepEqual(next, [consumerOf(other)], "the other node took over");
    await holder.start();
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a real page's tracker retries the batches cut off after they reached an edge, and PostgreSQL has each event once", async () => {
  const cluster = await startCluster();
  const site = await startStatic();
  const browser = await launch();
  try {
    cluster.addTenant(CLIENT_KEY);
    const endpoint = `${cluster.edges[0].info.url}/v1/events`;
    const page = await openPage(browser);
    // The first two sends reach the edge, and the page sees them fail: the tracker sends the
    // same batch again, which the stream knows.
    let cut = 0;
    await page.route(`${endpoint}**`, async (route) => {
      if (route.request().method() === "POST" && cut < 2) {
        cut++;
        await route.fetch();
        return route.abort();
      }
      return route.continue();
    });
    await page.goto(`${site.url}/examples/basic/?endpoint=${encodeURIComponent(endpoint)}&clientKey=${CLIENT_KEY}`);
    await page.locator("#status").getByText("ready").waitFor();
    await page.locator('[data-ticker="AAPL"] button[data-action="view"]').click();
    await page.locator("#flush").click();
    await page.locator('[data-ticker="TSLA"] button[data-action="watch"]').click();
    await page.locator("#flush").click();
    // A retry is answered with its events as duplicates (the page logs each answer).
    await page.locator("#log li.stored", { hasText: /[1-9]\d* duplicate/ }).first().waitFor({ timeout: 60_000 });
    assert.equal(cut, 2, "two sends were cut off after reaching the edge");
    // The page view and the two clicks, each once.
    const stored = await waitForStored(cluster, 3);
    assert.deepEqual(stored.map((e) => [e.event_type, e.action]).sort(), [["instrument", "viewed"], ["page", "viewed"], ["watchlist", "added"]]);
    assert.equal(new Set(stored.map((e) => e.event_id)).size, 3);
    // The browser logs each cut-off send; nothing else went wrong on the page.
    const cutOff = page.errors.filter((e) => e.includes("net::ERR_FAILED"));
    assert.equal(cutOff.length, cut);
    assert.deepEqual(page.errors.filter((e) => !cutOff.includes(e)), []);
  } finally {
    await browser.close();
    await site.stop();
    await cluster.stop();
  }
});
