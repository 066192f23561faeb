// `cargo xtask bench cluster`: the cluster measured on this machine, everything on it (three
// JetStream servers with the stream replicated 3 times, PostgreSQL, two edges, a sink, and
// the load generator), beside one single-node ingest measured in the same run. A report,
// never a test: it writes the path given as the first argument.
//
//   INGEST_BIN=target/release/ingest node bench/cluster/run.mjs target/bench/cluster.md
import { writeFileSync, mkdirSync, readFileSync, mkdtempSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { tmpdir, cpus } from "node:os";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";

const run_ = promisify(execFile);
import { startCluster } from "../../tests/support/cluster.mjs";
import { spawnIngest } from "../../tests/support/ingest.mjs";

const CLIENT_KEY = "pk_bench";
const EVENTS_PER_BATCH = 50;
const WORKERS = 32;
const SECONDS = 10;
const TICKS = 100; // clock ticks a second, as /proc counts CPU time

let next = 0;
function batch(tag = "e", clientRef = null) {
  const events = [];
  for (let i = 0; i < EVENTS_PER_BATCH; i++) {
    const n = next++;
    events.push({
      client_key: CLIENT_KEY,
      event_id: `${tag}-${n}-${process.pid}`,
      created_at: new Date().toISOString(),
      event_type: "instrument",
      action: "viewed",
      event_meta: { page: "/stocks/AAPL?utm_source=news", position: i + 1 },
      related_entities: [{ type: "ticker", id: "AAPL" }],
      channel_meta: { session_id: `s-${n % 1000}`, client_ref: clientRef ?? `user-${n % 10_000}` },
    });
  }
  return { sent_at: new Date().toISOString(), events };
}

/** CPU seconds (user + system) the processes have used so far. */
function cpu(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks / TICKS;
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.round((sorted.length - 1) * p)] ?? NaN;
};

/** Answers 503 (retried, as the tracker does, after its Retry-After). */
let unavailable = 0;

/** Posts a batch until it is acknowledged; resolves with the time that took. */
async function post(url, body) {
  const started = performance.now();
  const text = JSON.stringify(body);
  for (;;) {
    const res = await fetch(`${url}/v1/events`, { method: "POST", headers: { "content-type": "text/plain" }, body: text });
    const answer = await res.text();
    if (res.status === 200) return performance.now() - started;
    if (res.status !== 503) throw new Error(`HTTP ${res.status}: ${answer}`);
    unavailable++;
    await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get("retry-after") ?? 1)));
  }
}

/** As many batches as `WORKERS` connections take for `SECONDS`, round-robin over `urls`. */
async function flatOut(urls) {
  const latencies = [];
  let events = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async (_, w) => {
      for (let n = w; performance.now() < deadline; n++) {
        latencies.push(await post(urls[n % urls.length], batch()));
        events += EVENTS_PER_BATCH;
      }
    }),
  );
  return { events, seconds: (performance.now() - started) / 1000, latencies };
}

const fmt = (n, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const report = [];
const cores = cpus().length;

// One single node, measured first, as `bench ingest` does but through this load generator.
{
  const dataDir = mkdtempSync(join(tmpdir(), "personafin-bench-single-"));
  execFileSync(process.env.INGEST_BIN, ["tenant", "add", "--data-dir", dataDir, "--client-key", CLIENT_KEY], { stdio: "ignore" });
  const unlimited = ["--rate-limit", "1e9", "--rate-burst", "1e9", "--source-rate-limit", "1e9", "--source-rate-burst", "1e9", "--source-byte-rate-limit", "1e12"];
  const { child, url } = await spawnIngest(dataDir, unlimited);
  const before = cpu([child.pid]);
  const run = await flatOut([url]);
  const used = cpu([child.pid]) - before;
  report.push(
    `## Single node (SQLite, fsync before each answer), the same load\n\n| events/s | answer p50 | answer p99 | CPU µs/event |\n|---:|---:|---:|---:|\n| ${fmt(run.events / run.seconds)} | ${fmt(percentile(run.latencies, 0.5), 1)} ms | ${fmt(percentile(run.latencies, 0.99), 1)} ms | ${fmt((used * 1e6) / run.events, 1)} |\n`,
  );
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
  rmSync(dataDir, { recursive: true, force: true });
}

const cluster = await startCluster({ edges: 2, sinks: 1, ackWaitSecs: 30 });
try {
  const apiKey = cluster.addTenant(CLIENT_KEY);
  const urls = cluster.edges.map((e) => e.info.url);
  const roles = {
    "edge (2)": () => cluster.edges.map((e) => e.child.pid),
    sink: () => cluster.sinks.map((s) => s.child.pid),
    "NATS (3)": () => cluster.nats.servers.map((s) => s.child.pid),
    PostgreSQL: () => cluster.pg.pids(),
  };
  const count = () => Number(cluster.sql(`SELECT count(*) FROM events`));

  // 1. Flat out: what the edges acknowledge, and how fast it reaches PostgreSQL.
  const before = Object.fromEntries(Object.entries(roles).map(([r, pids]) => [r, cpu(pids())]));
  const started = performance.now();
  const run = await flatOut(urls);
  while (count() < run.events) await new Promise((r) => setTimeout(r, 100));
  const drained = (performance.now() - started) / 1000;
  const used = Object.fromEntries(Object.entries(roles).map(([r, pids]) => [r, cpu(pids()) - before[r]]));
  const edgeRate = run.events / run.seconds;
  const flatOutUnavailable = unavailable;
  const bytes = Number(
    cluster.sql("SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'events'::regclass"),
  );
  report.push(
    `## Cluster, flat out (${WORKERS} connections, round-robin over both edges)\n\n| acknowledged by the edges | in PostgreSQL (end to end) | answer p50 | answer p99 |\n|---:|---:|---:|---:|\n| ${fmt(edgeRate)} events/s | ${fmt(run.events / drained)} events/s (${fmt(run.events)} events, all in after ${fmt(drained, 1)} s) | ${fmt(percentile(run.latencies, 0.5), 1)} ms | ${fmt(percentile(run.latencies, 0.99), 1)} ms |\n\n${flatOutUnavailable} answers were 503 (the stream slower than its 5 s acknowledgement wait), each batch sent again after its Retry-After; the latencies include those waits.\n\nCPU per event, by role (µs of CPU time per event acknowledged; the edges include each node's own copy of the stream for its datasets):\n\n| role | CPU µs/event | events/s one 2-core machine of this role alone would take |\n|---|---:|---:|\n` +
      Object.entries(used)
        .map(([role, seconds]) => {
          const micros = (seconds * 1e6) / run.events;
          return `| ${role} | ${fmt(micros, 1)} | ${fmt((2 * 1e6) / micros)} |`;
        })
        .join("\n") +
      `\n\nPostgreSQL holds ${fmt(bytes / run.events)} bytes an event in \`events\` (its partitions and indexes).\n`,
  );

  // 2. Half that rate, paced: how long an acknowledged event takes to reach PostgreSQL and a
  //    node's query answers. About four batches a second carry a user of its own, and a
  //    poller looks for it meanwhile (every 20 ms: one query for the sample events not yet in
  //    PostgreSQL, one query API call per sample user not yet in the other node's answers).
  // The edges' own copies first catch up with the flat-out run, so that what follows
  // measures half the rate, not that backlog.
  const lagOf = async (url) => {
    const metrics = await (await fetch(`${url}/metrics`)).text();
    return Number(/^consumer_lag_messages\{[^}]*\} (\d+)$/m.exec(metrics)?.[1] ?? NaN);
  };
  const caughtUp = performance.now();
  while ((await Promise.all(urls.map(lagOf))).some((lag) => lag !== 0)) await new Promise((r) => setTimeout(r, 100));
  const backlogSeconds = (performance.now() - caughtUp) / 1000;
  const sql = async (query) => (await run_(`psql`, [cluster.pg.url, "-Atc", query])).stdout.trim();
  const target = run.events / drained / 2;
  const interval = (EVENTS_PER_BATCH / target) * 1000;
  const samples = [];
  const toPg = [];
  const toDatasets = [];
  const inPg = new Set();
  const inDatasets = new Set();
  let sending = true;
  const poller = (async () => {
    const deadline = performance.now() + SECONDS * 1000 + 120_000;
    while ((sending || inPg.size < samples.length || inDatasets.size < samples.length) && performance.now() < deadline) {
      const round = performance.now();
      const waiting = samples.filter((s) => !inPg.has(s));
      if (waiting.length > 0) {
        const ids = waiting.map((s) => `'${s.eventId}'`).join(",");
        const found = new Set((await sql(`SELECT event_id FROM events WHERE event_id IN (${ids})`)).split("\n"));
        for (const s of waiting.filter((s) => found.has(s.eventId))) {
          inPg.add(s);
          toPg.push(round - s.answered);
        }
      }
      await Promise.all(
        samples
          .filter((s) => !inDatasets.has(s))
          .map(async (s) => {
            const res = await fetch(`${s.node}/v1/users/${s.clientRef}/preferences/entities`, { headers: { authorization: `Bearer ${apiKey}` } });
            if ((await res.json()).items?.length > 0) {
              inDatasets.add(s);
              toDatasets.push(round - s.answered);
            }
          }),
      );
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const paced = performance.now();
  let sent = 0;
  const inflight = [];
  const everyNth = Math.max(1, Math.round(250 / interval));
  const pacedLatencies = [];
  for (let n = 0; performance.now() - paced < SECONDS * 1000; n++) {
    const wait = paced + n * interval - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const sample = n % everyNth === 0;
    const clientRef = sample ? `lag-${n}` : null;
    const body = batch(sample ? `lag${n}` : "p", clientRef);
    inflight.push(
      post(urls[n % urls.length], body).then((latency) => {
        pacedLatencies.push(latency);
        if (sample) samples.push({ clientRef, eventId: body.events[0].event_id, answered: performance.now(), node: urls[(n + 1) % urls.length] });
      }),
    );
    sent += EVENTS_PER_BATCH;
  }
  await Promise.all(inflight);
  sending = false;
  await poller;
  report.push(
    `## Cluster at half the end-to-end rate (${fmt(target)} events/s offered, paced)\n\nLag from the edge's answer (${samples.length} sample events, polled every 20 ms or so):\n\n| to the PostgreSQL row | p50 | p99 |\n|---|---:|---:|\n| PostgreSQL | ${fmt(percentile(toPg, 0.5))} ms | ${fmt(percentile(toPg, 0.99))} ms |\n| the other node's query answer | ${fmt(percentile(toDatasets, 0.5))} ms | ${fmt(percentile(toDatasets, 0.99))} ms |\n\nThe edges' own copies of the stream took ${fmt(backlogSeconds, 1)} s more than the sink to catch up with the flat-out run before this one began. The edges' answers meanwhile: p50 ${fmt(percentile(pacedLatencies, 0.5), 1)} ms, p99 ${fmt(percentile(pacedLatencies, 0.99), 1)} ms; ${fmt(sent)} events sent.\n`,
  );
} finally {
  await cluster.stop();
}

const out = process.argv[2];
const text = `# cluster benchmark\n\n${cores} cores, everything on this one machine: three nats-server (JetStream, file storage, the stream replicated 3 times), PostgreSQL, two edges, one sink, and the load generator (Node, ${WORKERS} keep-alive connections, batches of ${EVENTS_PER_BATCH} events). ${SECONDS} s per run.\n\n${report.join("\n")}`;
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, text);
console.log(text);
