// A static file server for the example pages, on its own loopback port, so pages post to
// ingest cross-origin exactly as a customer's site does.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
};
const SERVED = ["examples/", "js-wrapper/", "tests/e2e/fixtures/", "target/e2e-pages/"];

/**
 * Serves the repository's example and package folders, or with `dir` everything under that
 * directory (a built app). `files` maps paths to the text served in their place: a
 * deployment's own configuration files; `headers` maps paths to response headers of their own
 * (a Content-Security-Policy). The object returned has `files` too, to change.
 */
export async function startStatic({ dir, files = {}, headers = {} } = {}) {
  const base = dir ?? root;
  const server = createServer(async (req, res) => {
    let path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^\/+/, "");
    if (path.endsWith("/") || path === "") path += "index.html";
    const own = Object.hasOwn(headers, path) ? headers[path] : {};
    if (Object.hasOwn(files, path)) {
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream", ...own }).end(files[path]);
      return;
    }
    if (path.startsWith("..") || (!dir && !SERVED.some((p) => path.startsWith(p)))) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(join(base, path));
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream", ...own }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}`, files, stop: () => new Promise((r) => server.close(r)) };
}
