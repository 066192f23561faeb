// A whole cluster on loopback, from real parts: three `nats-server`s in a JetStream cluster,
// a throwaway PostgreSQL (run as the `postgres` user when the tests run as root: it refuses
// root), edges (`ingest serve --bus … --database …`) and sinks (`ingest sink`). Every process
// can be killed with SIGKILL and started again on the same ports and directories. With
// CLUSTER_LOG set, every process's output is copied to stderr, prefixed with its program.
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";

import { freePort } from "./wait.mjs";

export { freePort };

const bin = process.env.INGEST_BIN;
const NATS = ["/usr/sbin/nats-server", "/usr/bin/nats-server"].find(existsSync);
const asRoot = process.getuid() === 0;

/**
 * Spawns `command` and resolves once a line of its output matches `ready` (the match), or
 * rejects when it exits first or 60 s pass. Output is drained after, so the child never
 * blocks on a full pipe.
 */
function spawnUntil(command, args, ready, { stream = "stderr", env } = {}) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: env ?? process.env });
  const tail = [];
  const found = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} not ready in 60 s:\n${tail.join("\n")}`)), 60_000);
    for (const name of ["stdout", "stderr"]) {
      createInterface({ input: child[name] }).on("line", (line) => {
        tail.push(line);
        if (process.env.CLUSTER_LOG) console.error(`[${command.split("/").pop()}] ${line}`);
        if (tail.length > 40) tail.shift();
        const m = name === stream ? ready.exec(line) : null;
        if (m) {
          clearTimeout(timer);
          resolve(m);
        }
      });
    }
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code ?? signal}) before it was ready:\n${tail.join("\n")}`));
    });
  });
  return { child, found };
}

/** A process this harness started, to kill (-9) and start again. */
class Proc {
  constructor(name, start) {
    this.name = name;
    this.startFn = start;
    this.child = null;
  }
  async start() {
    const { child, info } = await this.startFn();
    this.child = child;
    this.info = info;
    this.exited = new Promise((resolve) => child.once("exit", resolve));
    return this;
  }
  async kill(signal = "SIGKILL") {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
    await this.exited;
  }
}

/** Three JetStream servers in one cluster; `urls` lists their client addresses. */
export async function startNats(count = 3) {
  const dir = mkdtempSync(join(tmpdir(), "personafin-nats-"));
  const ports = [];
  for (let i = 0; i < count; i++) ports.push({ client: await freePort(), route: await freePort() });
  const servers = ports.map((p, i) => {
    const config = join(dir, `n${i}.conf`);
    const routes = ports.filter((_, j) => j !== i).map((q) => `nats-route://127.0.0.1:${q.route}`);
    writeFileSync(
      config,
      `server_name: n${i}
listen: 127.0.0.1:${p.client}
jetstream { store_dir: "${join(dir, `n${i}`)}" }
cluster {
  name: pfc
  listen: 127.0.0.1:${p.route}
  routes: [${routes.join(", ")}]
}
`,
    );
    return new Proc(`nats n${i}`, async () => {
      const { child, found } = spawnUntil(NATS, ["-c", config], /Server is ready/);
      await found;
      return { child };
    });
  });
  await Promise.all(servers.map((s) => s.start()));
  return {
    servers,
    urls: ports.map((p) => `nats://127.0.0.1:${p.client}`),
    async stop() {
      await Promise.all(servers.map((s) => s.kill("SIGTERM")));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The directory of PostgreSQL's programs (Debian's packages). */
function postgresBin() {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b));
  for (const v of versions.reverse()) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(`${dir}/postgres`)) return dir;
  }
  throw new Error("PostgreSQL is not installed (`cargo xtask test` installs it)");
}

/** A command line as the postgres user when this runs as root. */
function asPostgres(program, args) {
  return asRoot ? ["runuser", ["-u", "postgres", "--", program, ...args]] : [program, args];
}

/** A throwaway PostgreSQL; `url` connects to it. */
export async function startPostgres() {
  const pgBin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), "personafin-pg-"));
  if (asRoot) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, uid, -1);
  }
  const data = join(dir, "data");
  const [initdb, initArgs] = asPostgres(`${pgBin}/initdb`, ["-A", "trust", "-U", "postgres", "--no-sync", "-D", data]);
  const made = spawnSync(initdb, initArgs, { encoding: "utf8" });
  if (made.status !== 0) throw new Error(`initdb failed: ${made.stderr}`);
  const port = await freePort();
  const server = new Proc("postgres", async () => {
    const [command, args] = asPostgres(`${pgBin}/postgres`, ["-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1"]);
    const { child, found } = spawnUntil(command, args, /database system is ready to accept connections/);
    await found;
    return { child };
  });
  await server.start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    server,
    /** The server's processes: the postmaster and every backend and worker it started. */
    pids() {
      const postmaster = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      const children = readdirSync("/proc")
        .filter((d) => /^\d+$/.test(d))
        .filter((d) => {
          try {
            // The parent's pid is the 4th field, after the command in parentheses.
            return Number(readFileSync(`/proc/${d}/stat`, "utf8").split(") ")[1].split(" ")[1]) === postmaster;
          } catch {
            return false;
          }
        })
        .map(Number);
      return [postmaster, ...children];
    },
    async stop() {
      // The server's own process (the child may be runuser): SIGQUIT stops it at once.
      const pid = readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0];
      try {
        process.kill(Number(pid), "SIGQUIT");
      } catch {}
      await server.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// The load comes from one address as fast as it can: past the per-source limits by design.
const UNLIMITED = ["--source-rate-limit", "1e9", "--source-rate-burst", "1e9", "--source-byte-rate-limit", "1e12", "--rate-limit", "1e9", "--rate-burst", "1e9"];

/**
 * The whole topology: NATS (3, the stream replicated 3 times), PostgreSQL, `edges` edges
 * and `sinks` sinks, sharing one master secret; `addTenant` registers a tenant in the
 * database.
 */
export async function startCluster({ edges = 2, sinks = 1, ackWaitSecs = 2, serveArgs = [] } = {}) {
  if (!bin) throw new Error("INGEST_BIN must name the ingest binary; run `cargo xtask test`");
  const dir = mkdtempSync(join(tmpdir(), "personafin-cluster-"));
  const secret = join(dir, "master.key");
  writeFileSync(secret, randomBytes(32), { mode: 0o600 });
  const [nats, pg] = await Promise.all([startNats(3), startPostgres()]);
  const bus = nats.urls.join(",");
  const clusterArgs = ["--bus", bus, "--database", pg.url, "--bus-replicas", "3"];
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" };
  const edgeProcs = Array.from({ length: edges }, (_, i) => {
    const dataDir = join(dir, `edge${i}`);
    return new Proc(`edge ${i}`, async () => {
      const { child, found } = spawnUntil(
        bin,
        ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--master-secret-file", secret, ...clusterArgs, ...UNLIMITED, ...serveArgs],
        /^ingest listening on (http:\/\/\S+)$/,
        { stream: "stdout", env },
      );
      const m = await found;
      return { child, info: { url: m[1], dataDir } };
    });
  });
  const sinkProcs = Array.from({ length: sinks }, (_, i) =>
    new Proc(`sink ${i}`, async () => {
      const { child, found } = spawnUntil(
        bin,
        ["sink", ...clusterArgs, "--ack-wait-secs", String(ackWaitSecs)],
        /^ingest sink storing/,
        { stream: "stdout", env },
      );
      await found;
      return { child };
    }),
  );
  // The first edge creates the stream; the others find it.
  await edgeProcs[0].start();
  await Promise.all([...edgeProcs.slice(1), ...sinkProcs].map((p) => p.start()));
  return {
    nats,
    pg,
    edges: edgeProcs,
    sinks: sinkProcs,
    secret,
    /** Registers a tenant in the database; returns its secret API key. */
    addTenant(clientKey) {
      return execFileSync(bin, ["tenant", "add", "--database", pg.url, "--master-secret-file", secret, "--client-key", clientKey], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      }).trim();
    },
    /** Runs SQL in the cluster's database; returns psql's unaligned rows. */
    sql(query) {
      return execFileSync("psql", [pg.url, "-Atc", query], { encoding: "utf8" }).trim();
    },
    /** Runs an ingest command; returns its stdout. */
    cli(args) {
      return execFileSync(bin, args, { encoding: "utf8", maxBuffer: 1 << 30 });
    },
    /** The tenant's events in PostgreSQL, oldest first. */
    storedEvents(clientKey) {
      const out = execFileSync(bin, ["events", "list", "--database", pg.url, "--client-key", clientKey, "--limit", "10000000"], {
        encoding: "utf8",
        maxBuffer: 1 << 30,
      });
      return out.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    },
    async stop() {
      await Promise.all([...edgeProcs, ...sinkProcs].map((p) => p.kill("SIGTERM")));
      await Promise.all([nats.stop(), pg.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
