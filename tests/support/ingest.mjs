// Starts the real ingest binary (named by INGEST_BIN, built by `cargo xtask test`) on a free
// loopback port with a fresh data directory, and reads back what it stored.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const bin = process.env.INGEST_BIN;

export async function startIngest({ tenants = [], serveArgs = [] } = {}) {
  if (!bin) throw new Error("INGEST_BIN must name the ingest binary; run `cargo xtask test`");
  const dataDir = mkdtempSync(join(tmpdir(), "personafin-ingest-"));
  const keys = {};
  for (const { clientKey, origins = [] } of tenants) {
    const args = ["tenant", "add", "--data-dir", dataDir, "--client-key", clientKey];
    for (const o of origins) args.push("--origin", o);
    keys[clientKey] = execFileSync(bin, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  }
  const { child, url } = await spawnIngest(dataDir, serveArgs);
  return {
    url,
    endpoint: `${url}/v1/events`,
    dataDir,
    apiKeys: keys,
    /** The tenant's stored (anonymised) events, oldest first. */
    events(clientKey) {
      return lines(["events", "list", "--data-dir", dataDir, "--client-key", clientKey, "--limit", "100000"]);
    },
    /**
     * The tenant's stored events that match `predicate`, once there are at least `count` of
     * them — or, after 15 s, however many there are, for the test to fail on.
     */
    async waitForEvents(clientKey, count, predicate = () => true) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const events = this.events(clientKey).filter(predicate);
        if (events.length >= count || Date.now() > deadline) return events;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    /** The tenant's rejected events, with their reasons. */
    failedEvents(clientKey) {
      return lines(["events", "list", "--failed", "--data-dir", dataDir, "--client-key", clientKey, "--limit", "100000"]);
    },
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Starts `ingest serve` on a free port over `dataDir`; resolves once it listens. */
export async function spawnIngest(dataDir, extraArgs = []) {
  const child = spawn(bin, ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...extraArgs], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
  });
  const url = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (line) => {
      const m = /^ingest listening on (http:\/\/\S+)$/.exec(line);
      m ? resolve(m[1]) : reject(new Error(`unexpected first line from ingest: ${line}`));
    });
    child.once("exit", (code) => reject(new Error(`ingest exited with ${code}`)));
  });
  return { child, url };
}

/** Runs an ingest subcommand over a data dir and returns its stdout. */
export function ingestCli(args, input) {
  return execFileSync(bin, args, { encoding: "utf8", input, maxBuffer: 1 << 30 });
}

function lines(args) {
  const out = execFileSync(bin, args, { encoding: "utf8", maxBuffer: 1 << 30 });
  return out.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/**
 * An ingest that is down: every request gets a 503, so a page sending to it keeps its events
 * for a retry. Unlike a route that aborts a page's requests, this holds for every request the
 * page makes, also a keepalive one still on its way after the page has closed, which the
 * browser no longer routes through the page.
 */
export async function startDown() {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(503, { "access-control-allow-origin": "*", "content-type": "application/json" });
    res.end('{"error":"store_unavailable","message":"down for the test"}');
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    endpoint: `${url}/v1/events`,
    stop: () => new Promise((r) => server.close(r)),
  };
}
