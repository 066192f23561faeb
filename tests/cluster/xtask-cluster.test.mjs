// `cargo xtask cluster` as a user runs it (the xtask binary, named by XTASK_BIN): it starts
// the whole topology with the demo pointed at it, takes events through its round-robin
// proxy into PostgreSQL, and stops every process it started on SIGTERM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createInterface } from "node:readline";

const bin = process.env.XTASK_BIN;

test("cargo xtask cluster runs the demo on a cluster, and stops all of it on SIGTERM", async () => {
  if (!bin) throw new Error("XTASK_BIN must name the xtask binary; run `cargo xtask test`");
  const child = spawn(bin, ["cluster", "--ingest-port", "0", "--web-port", "0"], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  child.stderr.on("data", (d) => (log += d));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  try {
    const found = await new Promise((resolve, reject) => {
      const lines = {};
      createInterface({ input: child.stdout }).on("line", (line) => {
        const m = /^\s+(open|ingest|nats|postgres|events)\s+(\S+)/.exec(line);
        if (m) lines[m[1]] = m[2].replace(/\/$/, "");
        if (line.startsWith("Ctrl-C stops it all")) resolve(lines);
      });
      exited.then(({ code, signal }) => reject(new Error(`xtask cluster exited (${code ?? signal}) before it started:\n${log}`)));
    });
    const config = await (await fetch(`${found.open}/api/config`)).json();
    assert.equal(config.endpoint, `${found.ingest}/v1/events`, "the demo sends to the proxy");
    const ids = ["c1", "c2", "c3", "c4"];
    for (const id of ids) {
      const res = await fetch(config.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          events: [{ client_key: config.clientKey, event_id: id, created_at: new Date().toISOString(), event_type: "instrument", action: "viewed", channel_meta: { session_id: "s", client_ref: "u" } }],
        }),
      });
      assert.equal(res.status, 200);
    }
    const list = () =>
      execFileSync(process.env.INGEST_BIN, ["events", "list", "--database", found.postgres, "--client-key", config.clientKey], { encoding: "utf8" })
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l).event_id);
    const deadline = Date.now() + 60_000;
    let stored = list();
    while (stored.length < ids.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      stored = list();
    }
    assert.deepEqual(stored.sort(), ids);

    child.kill("SIGTERM");
    let timer;
    const gaveUp = new Promise((resolve) => (timer = setTimeout(resolve, 60_000, { code: "still running a minute later" })));
    const { code } = await Promise.race([exited, gaveUp]);
    clearTimeout(timer);
    assert.equal(code, 0, log);
    const answers = (url) => fetch(url).then(() => true, () => false);
    assert.equal(await answers(found.ingest), false, "the proxy stopped");
    assert.equal(await answers(found.open), false, "the demo stopped");
    const natsPort = new URL(found.nats.split(",")[0]).port;
    assert.equal(await answers(`http://127.0.0.1:${natsPort}`), false, "NATS stopped");
  } finally {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // Nothing left of it.
    }
  }
});
