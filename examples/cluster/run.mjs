// The whole cluster on this machine, with the demo UI pointed at it (`cargo xtask cluster`):
// three JetStream servers, PostgreSQL, two edges behind a round-robin proxy, a sink, and the
// demo's web server. Everything lives in temporary directories and goes when it stops
// (SIGINT, SIGTERM or SIGHUP). Needs INGEST_BIN, as `cargo xtask cluster` sets it.
//
//   node examples/cluster/run.mjs --ingest-port 8787 --web-port 8080
import { createServer, connect } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCluster } from "../../tests/support/cluster.mjs";
import { startDemo } from "../demo/server.mjs";

const CLIENT_KEY = "pk_demo";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
);

/** A TCP proxy on `port` that hands each connection to the next live edge in turn. */
function roundRobin(port, edges) {
  let next = 0;
  const server = createServer((client) => {
    const live = edges.filter((e) => e.child && e.child.exitCode === null && e.child.signalCode === null);
    if (live.length === 0) return client.destroy();
    const { hostname, port: edgePort } = new URL(live[next++ % live.length].info.url);
    const upstream = connect(Number(edgePort), hostname);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close);
    upstream.on("error", close);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

const cluster = await startCluster({ edges: 2, sinks: 1 });
const dir = mkdtempSync(join(tmpdir(), "personafin-cluster-demo-"));
let stopping = false;
async function stop(signal, code = 0) {
  if (stopping) return;
  stopping = true;
  console.error(`${signal}: stopping the cluster`);
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => stop(signal));

try {
  const apiKey = cluster.addTenant(CLIENT_KEY);
  writeFileSync(join(dir, "demo-api-key"), apiKey, { mode: 0o600 });
  const proxy = await roundRobin(Number(args["ingest-port"] ?? 8787), cluster.edges);
  const ingest = `http://127.0.0.1:${proxy.address().port}`;
  const demo = await startDemo({ port: Number(args["web-port"] ?? 8080), ingest, clientKey: CLIENT_KEY, apiKey });
  const bin = process.env.INGEST_BIN;
  console.log(`
Personafin Capture, as a cluster
  open      ${demo.url}/
  ingest    ${ingest} (round-robin over the edges ${cluster.edges.map((e) => e.info.url).join(" ")})
  dashboard ${ingest}/dashboard#key=${apiKey}
  nats      ${cluster.nats.urls.join(",")} (JetStream, the stream PFC replicated 3 times)
  postgres  ${cluster.pg.url}
  events    \`${bin} events list --database ${cluster.pg.url} --client-key ${CLIENT_KEY}\`
Ctrl-C stops it all.`);
} catch (e) {
  console.error(`the cluster did not start: ${e.stack ?? e}`);
  await stop("error", 1);
}
