// `cargo xtask bench tracker`: what a page pays for each tracker, measured in one run of
// headless Chromium, side by side — ours (the optimised wasm package), the peers from npm, and
// a minimal hand-written fetch tracker.
//
// For each tracker: an esbuild bundle (minified) of an entry that starts it the way its docs
// say, and everything the page then loads, gzip -9; `track()` main-thread cost as the median,
// over 60 samples of 50 calls, of the synchronous µs per call; and the amortised main-thread
// µs per event (Chrome's TaskDuration over 1000 events, including batching and sending,
// divided by 1000). Every tracker sends to the same local sink, which answers 200.
//
// Usage: node bench/tracker/run.mjs <report.md>
import { createServer } from "node:http";
import { readFile, mkdir, writeFile, copyFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import { dirname, join, extname } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const out = join(root, "target/bench/tracker");
const report = process.argv[2] ?? join(root, "target/bench/tracker.md");
/** `node run.mjs <report> personafin minimal` measures just those. */
const only = process.argv.slice(3);

const CALLS_PER_SAMPLE = 50;
const SAMPLES = 60;
const AMORTISED_EVENTS = 1000;

// Each entry defines `window.benchReady` (a promise) and `window.benchTrack(i)`. `SINK` is
// replaced by the sink's origin at bundle time.
const ENTRIES = {
  personafin: {
    label: "Personafin Capture (this repo)",
    code: `
      import { init, track } from ${JSON.stringify(join(root, "js-wrapper/dist/index.js"))};
      window.benchReady = init({ clientKey: "pk_bench", endpoint: SINK + "/v1/events", autocapture: false });
      window.benchTrack = (i) => track("instrument", "viewed", { relatedEntities: [{ type: "ticker", id: "AAPL" }], eventMeta: { position: i } });`,
    // Where the package's `new URL("../pkg/…", import.meta.url)` finds it beside the bundle.
    assets: [["pkg/personafin_tracker_bg.wasm", join(root, "js-wrapper/pkg/personafin_tracker_bg.wasm")]],
  },
  snowplow: {
    label: "@snowplow/browser-tracker",
    code: `
      import { newTracker, trackSelfDescribingEvent } from "@snowplow/browser-tracker";
      newTracker("sp", SINK, { appId: "bench", eventMethod: "post" });
      window.benchReady = Promise.resolve();
      window.benchTrack = (i) => trackSelfDescribingEvent({ event: { schema: "iglu:com.example/instrument_viewed/jsonschema/1-0-0", data: { ticker: "AAPL", position: i } } });`,
  },
  segment: {
    label: "@segment/analytics-next",
    code: `
      import { AnalyticsBrowser } from "@segment/analytics-next";
      const host = SINK.replace(/^https?:\\/\\//, "") + "/v1";
      const analytics = AnalyticsBrowser.load({ writeKey: "bench", cdnSettings: { integrations: { "Segment.io": { apiKey: "bench", apiHost: host, protocol: "http" } } } });
      window.benchReady = analytics.then(() => undefined);
      window.benchTrack = (i) => analytics.track("Instrument Viewed", { ticker: "AAPL", position: i });`,
  },
  posthog: {
    label: "posthog-js",
    code: `
      import posthog from "posthog-js";
      posthog.init("phc_bench", { api_host: SINK, autocapture: false, capture_pageview: false, capture_pageleave: false,
        disable_session_recording: true, disable_surveys: true, advanced_disable_flags: true, persistence: "localStorage" });
      window.benchReady = Promise.resolve();
      window.benchTrack = (i) => posthog.capture("instrument viewed", { ticker: "AAPL", position: i });`,
  },
  rudderstack: {
    label: "@rudderstack/analytics-js",
    code: `
      import { RudderAnalytics } from "@rudderstack/analytics-js";
      const analytics = new RudderAnalytics();
      window.benchReady = new Promise((ready) => {
        analytics.load("bench", SINK, { configUrl: SINK, plugins: [], onLoaded: () => ready(),
          getSourceConfig: () => ({ source: { id: "bench", name: "bench", workspaceId: "bench", enabled: true, config: {}, destinations: [] } }) });
      });
      window.benchTrack = (i) => analytics.track("Instrument Viewed", { ticker: "AAPL", position: i });`,
  },
  minimal: {
    label: "minimal hand-written fetch tracker",
    code: `
      window.benchReady = Promise.resolve();
      window.benchTrack = (i) => { fetch(SINK + "/minimal", { method: "POST",
        body: JSON.stringify({ event: "instrument_viewed", ticker: "AAPL", position: i, at: Date.now() }) }).catch(() => {}); };`,
  },
};

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };

/** Serves the bundles and takes every POST, answering 200; counts what it received. */
async function startSink() {
  const received = { requests: 0, bytes: 0 };
  const server = createServer(async (req, res) => {
    const isolate = {
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
      "cross-origin-resource-policy": "same-origin",
    };
    if (req.method === "POST") {
      for await (const chunk of req) received.bytes += chunk.length;
      received.requests += 1;
      res.writeHead(200, { "content-type": "application/json", ...isolate });
      res.end('{"accepted":1,"duplicates":0,"rejected":[]}');
      return;
    }
    const path = new URL(req.url, "http://x").pathname;
    const name = path.slice(1) || "index.html";
    try {
      const body = await readFile(join(out, name));
      res.writeHead(200, { "content-type": TYPES[extname(name)] ?? "application/json", ...isolate });
      res.end(body);
    } catch {
      // Peers ask for settings and plugins; an empty JSON object stands for them all.
      res.writeHead(200, { "content-type": "application/json", ...isolate }).end("{}");
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, received, close: () => new Promise((r) => server.close(r)) };
}

async function bundle(name, entry, origin) {
  // Split as a bundler splits: what a page imports dynamically loads only when it is asked for.
  await build({
    stdin: { contents: entry.code.replaceAll("SINK", JSON.stringify(origin)), resolveDir: here, loader: "js", sourcefile: `${name}.js` },
    bundle: true,
    minify: true,
    splitting: true,
    format: "esm",
    target: "es2020",
    outdir: out,
    entryNames: name,
    chunkNames: `${name}-[hash]`,
    logLevel: "silent",
    define: { "process.env.NODE_ENV": '"production"' },
  });
  await writeFile(
    join(out, `${name}.html`),
    `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>${name}</title><script type="module" src="${name}.js"></script>`,
  );
  for (const [file, from] of entry.assets ?? []) {
    await mkdir(dirname(join(out, file)), { recursive: true });
    await copyFile(from, join(out, file));
  }
}

/** Gzip bytes of every response the page loaded (HTML excepted: it is the harness's own). */
function loadedBytes(page) {
  const loaded = new Map();
  page.on("response", async (response) => {
    const url = response.url();
    if (response.request().method() !== "GET" || url.endsWith(".html")) return;
    try {
      const body = await response.body();
      loaded.set(url, gzipSync(body, { level: 9 }).length);
    } catch {
      // A response without a body (a redirect) weighs nothing here.
    }
  });
  return loaded;
}

async function measure(browser, name, origin) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const loaded = loadedBytes(page);
  await page.goto(`${origin}/${name}.html`);
  await page.waitForFunction(() => window.benchReady !== undefined);
  await page.evaluate(() => window.benchReady);
  await page.waitForLoadState("networkidle");
  const median = await page.evaluate(
    async ([samples, calls]) => {
      const pause = (ms) => new Promise((r) => setTimeout(r, ms));
      for (let i = 0; i < 200; i++) window.benchTrack(i);
      await pause(1500);
      const perCall = [];
      for (let s = 0; s < samples; s++) {
        const t0 = performance.now();
        for (let k = 0; k < calls; k++) window.benchTrack(k);
        perCall.push(((performance.now() - t0) / calls) * 1000);
        await pause(30);
      }
      perCall.sort((a, b) => a - b);
      return perCall[Math.floor(perCall.length / 2)];
    },
    [SAMPLES, CALLS_PER_SAMPLE],
  );
  await page.waitForTimeout(3000);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const taskTime = async () => (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === "TaskDuration").value;
  const before = await taskTime();
  await page.evaluate(async (events) => {
    const pause = (ms) => new Promise((r) => setTimeout(r, ms));
    for (let i = 0; i < events; i += 50) {
      for (let k = 0; k < 50; k++) window.benchTrack(i + k);
      await pause(100);
    }
    await pause(3000);
  }, AMORTISED_EVENTS);
  const amortised = ((await taskTime()) - before) * 1e6 / AMORTISED_EVENTS;
  const bytes = [...loaded.values()].reduce((a, b) => a + b, 0);
  await page.close();
  return { name, bytes, median, amortised, errors };
}

const PLUGINS = ["errors", "vitals", "engagement", "links", "forms", "campaigns", "clicks"];

/**
 * Gzip bytes of the JS a page with our tracker and `plugins` loads (an esbuild bundle, split as
 * a bundler splits the chunk loaded only when plugins are given), the wasm excluded.
 */
async function pluginBytes(plugins) {
  const imports = plugins.map((p) => `import { ${p} } from ${JSON.stringify(join(root, `js-wrapper/dist/plugins/${p}.js`))};`);
  const list = plugins.length ? `, plugins: [${plugins.map((p) => `${p}()`).join(", ")}]` : "";
  const result = await build({
    stdin: {
      contents: `import { init } from ${JSON.stringify(join(root, "js-wrapper/dist/index.js"))};\n${imports.join("\n")}
        init({ clientKey: "pk_bench", endpoint: "https://ingest.example/v1/events"${list} });`,
      resolveDir: here,
      loader: "js",
    },
    bundle: true,
    minify: true,
    splitting: true,
    format: "esm",
    target: "es2020",
    outdir: join(out, "sizes"),
    write: false,
    logLevel: "silent",
  });
  return result.outputFiles.reduce((sum, f) => sum + gzipSync(f.contents, { level: 9 }).length, 0);
}

await mkdir(out, { recursive: true });
const core = await pluginBytes([]);
const pluginRows = [];
for (const p of PLUGINS) pluginRows.push([p, (await pluginBytes([p])) - core]);
pluginRows.push(["all seven", (await pluginBytes(PLUGINS)) - core]);
const sink = await startSink();
for (const [name, entry] of Object.entries(ENTRIES)) await bundle(name, entry, sink.origin);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
const rows = [];
try {
  for (const name of Object.keys(ENTRIES).filter((n) => only.length === 0 || only.includes(n))) {
    process.stderr.write(`measuring ${name}…\n`);
    rows.push(await measure(browser, name, sink.origin));
  }
} finally {
  await browser.close();
  await sink.close();
}

const kib = (b) => (b / 1024).toFixed(1);
const lines = [
  "# Tracker: bytes a page loads and main-thread cost of `track()`",
  "",
  `Headless Chromium (${await chromiumVersion()}), one run, every tracker sending to the same local sink.`,
  `Bytes: gzip -9 of every script and wasm the page fetched. Median: synchronous µs per \`track()\`,`,
  `median of ${SAMPLES} samples of ${CALLS_PER_SAMPLE} calls (cross-origin isolated, 5 µs timer resolution).`,
  `Amortised: Chrome's main-thread TaskDuration over ${AMORTISED_EVENTS} events in bursts of 50, including batching`,
  "and sending, per event. Targets for ours: at most 25 KiB in total, median at most 50 µs.",
  "",
  "| tracker | gzip KiB | track() median µs | amortised µs/event | page errors |",
  "|---|---:|---:|---:|---|",
  ...rows.map(
    (r) =>
      `| ${ENTRIES[r.name].label} | ${kib(r.bytes)} | ${r.median.toFixed(1)} | ${r.amortised.toFixed(1)} | ${r.errors.length ? r.errors.join("; ").slice(0, 120) : "none"} |`,
  ),
  "",
  `The sink received ${sink.received.requests} requests, ${sink.received.bytes} bytes, from all trackers together.`,
  "",
  "## What each plugin adds",
  "",
  `Gzip bytes of minified JS a page loads beyond the core's ${core} (wasm excluded), when it imports the plugin`,
  "and passes it to `init()`: the plugin, and the wrapper's code that runs plugins (loaded only then).",
  "",
  "| plugins | added gzip bytes |",
  "|---|---:|",
  ...pluginRows.map(([p, b]) => `| ${p} | ${b} |`),
  "",
];
await mkdir(dirname(report), { recursive: true });
await writeFile(report, lines.join("\n"));
process.stdout.write(lines.join("\n"));

async function chromiumVersion() {
  const b = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
  const v = b.version();
  await b.close();
  return v;
}
