// The demo's web server: serves the trading UI (and the other examples), and answers
// `/api/*` by asking ingest's query API with the tenant's secret key — which therefore never
// reaches the browser, as in any real deployment. `cargo xtask demo` starts it; so do the
// end-to-end tests.
//
//   node examples/demo/server.mjs --port 8080 --ingest http://127.0.0.1:8787 \
//     --client-key pk_demo --api-key-file .data/demo/demo-api-key
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
  ".svg": "image/svg+xml",
};
const SERVED = ["examples/", "js-wrapper/"];
/** The signed-in user of the demo: the UI sends it as `clientRef`, the proxy asks for it. */
export const DEMO_USER = "demo-trader-1";

/**
 * Starts the demo server. `ingest` is ingest's base URL; `apiKey` the tenant's secret key.
 * Resolves with `{ url, stop }`.
 */
export async function startDemo({ port = 0, host = "127.0.0.1", ingest, clientKey, apiKey, user = DEMO_USER }) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://x");
    try {
      if (url.pathname === "/api/config") {
        return json(res, 200, { endpoint: `${ingest}/v1/events`, clientKey, clientRef: user, dashboard: `${ingest}/dashboard` });
      }
      if (url.pathname === "/api/recommendations") {
        return proxy(res, "/v1/recommendations", { user, ...pick(url, ["kind", "surface", "limit", "entity_type"]) });
      }
      if (url.pathname === "/api/trending") {
        return proxy(res, "/v1/trending/entities", pick(url, ["mode", "limit", "entity_type"]));
      }
      return await file(res, url.pathname);
    } catch (e) {
      return json(res, 502, { error: "bad_gateway", message: `ingest did not answer: ${e.message}` });
    }
  });

  async function proxy(res, path, params) {
    if (!apiKey) {
      return json(res, 503, { error: "no_api_key", message: "the demo server was started without the tenant's secret API key" });
    }
    const target = new URL(path, ingest);
    for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
    const answer = await fetch(target, { headers: { authorization: `Bearer ${apiKey}` } });
    res.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json", "cache-control": "no-store" });
    res.end(Buffer.from(await answer.arrayBuffer()));
  }

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const address = server.address();
  return { url: `http://${address.address}:${address.port}`, stop: () => new Promise((r) => server.close(r)) };
}

function pick(url, keys) {
  return Object.fromEntries(keys.filter((k) => url.searchParams.has(k)).map((k) => [k, url.searchParams.get(k)]));
}

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

/** The UI is a single page: its routes (`/`, `/instrument/AAPL`) all get its HTML. */
async function file(res, pathname) {
  let path = normalize(decodeURIComponent(pathname)).replace(/^\/+/, "");
  if (path === "" || path.startsWith("instrument/") || path === "news") path = "examples/demo/index.html";
  if (path.endsWith("/")) path += "index.html";
  if (path.startsWith("..") || !SERVED.some((p) => path.startsWith(p))) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found");
    return;
  }
  try {
    const body = await readFile(join(root, path));
    res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found");
  }
}

// Run as a program: `node examples/demo/server.mjs --port … --ingest … --client-key … --api-key-file …`.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = Object.fromEntries(
    process.argv.slice(2).reduce((pairs, arg, i, all) => (arg.startsWith("--") ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []),
  );
  for (const required of ["ingest", "client-key"]) {
    if (!args[required]) {
      console.error(`missing --${required}`);
      process.exit(2);
    }
  }
  // Without the key the UI works and records; only its datasets panels stay empty.
  const apiKey = args["api-key-file"] ? (await readFile(args["api-key-file"], "utf8").catch(() => "")).trim() : "";
  if (!apiKey) console.error("no secret API key: recommendations and trending are off");
  const demo = await startDemo({ port: Number(args.port ?? 8080), ingest: args.ingest, clientKey: args["client-key"], apiKey });
  console.log(`demo listening on ${demo.url}`);
}
