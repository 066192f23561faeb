// Waiting on conditions, never on time: a condition polled until it holds, and a free port.
import { createServer } from "node:net";

/**
 * Polls `f` until it returns true (throwing — a page still navigating, a server not yet up —
 * counts as not yet); fails after 15 s, naming `what` was awaited.
 */
export async function waitUntil(f, what = String(f)) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (await Promise.resolve().then(f).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A TCP port nothing listens on now. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
