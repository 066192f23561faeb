// `cargo xtask demo` as a user runs it (the xtask binary, named by XTASK_BIN), stopped the way
// `kill`, a service manager or a closed terminal stops it: a signal to the demo alone, not
// Ctrl-C to its whole process group. Its ingest and its web server must stop with it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const bin = process.env.XTASK_BIN;

/**
 * Starts the demo on free ports over a fresh store; resolves once it has printed where the UI
 * and ingest listen, or rejects with what it printed if it exits first.
 */
async function startDemo() {
  if (!bin) throw new Error("XTASK_BIN must name the xtask binary; run `cargo xtask test`");
  const dataDir = mkdtempSync(join(tmpdir(), "personafin-demo-"));
  // In a process group of its own, so that whatever it leaves behind can be stopped after.
  const child = spawn(bin, ["demo", "--ingest-port", "0", "--web-port", "0", "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  child.stderr.on("data", (d) => (log += d));
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const urls = await new Promise((resolve, reject) => {
    const found = {};
    createInterface({ input: child.stdout }).on("line", (line) => {
      const m = /^\s+(open|ingest)\s+(http:\/\/[^\s/]+)/.exec(line);
      if (m) found[m[1]] = m[2];
      if (found.open && found.ingest) resolve(found);
    });
    exited.then(({ code, signal }) => reject(new Error(`the demo exited (${code ?? signal}) before it started:\n${log}`)));
  });
  return { child, exited, urls, dataDir, log: () => log };
}

/** Whether anything answers HTTP at `url`. */
const answers = (url) =>
  fetch(url).then(
    () => true,
    () => false,
  );

for (const signal of ["SIGTERM", "SIGHUP"]) {
  test(`the demo stops ingest and its web server on ${signal}`, async () => {
    const demo = await startDemo();
    try {
      const ingest = `${demo.urls.ingest}/healthz`;
      const web = `${demo.urls.open}/`;
      assert.ok(await answers(ingest), "ingest answers while the demo runs");
      assert.ok(await answers(web), "the web server answers while the demo runs");
      demo.child.kill(signal);
      // A demo that caught the signal and did not stop would hang the suite: a minute is
      // ample for two children to be killed and waited for, on any machine.
      let timer;
      const gaveUp = new Promise((resolve) => {
        timer = setTimeout(resolve, 60_000, { code: "still running a minute later" });
      });
      const { code } = await Promise.race([demo.exited, gaveUp]);
      clearTimeout(timer);
      assert.equal(code, 0, `the demo stops cleanly on ${signal}:\n${demo.log()}`);
      assert.match(demo.log(), new RegExp(`${signal}: stopping the demo`));
      // The demo waits for its children before it exits, so their ports are closed by now.
      assert.equal(await answers(ingest), false, "ingest stopped with the demo");
      assert.equal(await answers(web), false, "the web server stopped with the demo");
    } finally {
      // The demo's whole process group: children it failed to stop would hold its pipes open.
      try {
        process.kill(-demo.child.pid, "SIGKILL");
      } catch {
        // Nothing left in it: the demo and its children are gone.
      }
      rmSync(demo.dataDir, { recursive: true, force: true });
    }
  });
}
