/**
 * Personafin Capture for the browser: a thin TypeScript layer over the tracker compiled from
 * Rust to WebAssembly. It loads the wasm once, and queues calls made before it has loaded,
 * replaying them in order with their original timestamps.
 *
 * ```ts
 * import { init, track } from "@personafin/capture";
 * init({ clientKey: "pk_live_…", endpoint: "https://ingest.example.com/v1/events", clientRef: "user-42" });
 * track("instrument", "viewed", { relatedEntities: [{ type: "ticker", id: "AAPL" }] });
 * ```
 */
import * as wasm from "../pkg/personafin_tracker.js";
import type { Plugin, PluginContext, TrackedEvent } from "./plugin.js";
import type { MetaValue, RelatedEntity } from "./wire.js";

export * from "./wire.js";
export type { Plugin, PluginContext, TrackedEvent } from "./plugin.js";

/** What `init()` takes. Unknown keys are an error that names them. */
export interface TrackerConfig {
  /** The tenant's public write key. */
  clientKey: string;
  /** Full URL of ingest's `POST /v1/events`. */
  endpoint: string;
  /** The customer's own, consistent, non-PII user identifier. */
  clientRef?: string | null;
  /**
   * Where the visitor id, the session and the queue live between page loads (default
   * `'localStorage'`). `'cookie'` keeps visitor id and session in a first-party cookie and the
   * queue in memory; `'memory'` writes nothing to the device.
   */
  storage?: "localStorage" | "cookie" | "memory";
  /** A session ends after this many idle minutes (default 30). */
  sessionTimeoutMinutes?: number;
  /** Send as soon as this many events are queued (default 100, at most 500). */
  maxEvents?: number;
  /** Largest batch body in bytes (default 60000). */
  maxBytes?: number;
  /** Send queued events at most this long after they were queued (default 1000 ms). */
  flushIntervalMs?: number;
  /** Queue bound; beyond it the oldest events are dropped and reported (default 1000). */
  maxQueuedEvents?: number;
  /** Log each event and each response to the console. */
  debug?: boolean;
  /** Record nothing when the browser sends Do Not Track or Global Privacy Control (default false). */
  respectDoNotTrack?: boolean;
  /**
   * `'granted'` (default) records and sends; `'pending'` keeps events in memory until
   * `setConsent('granted')` sends them with their original timestamps; `'denied'` records nothing.
   */
  consent?: Consent;
  /** What is recorded without code: `false` turns all of it off. */
  autocapture?: boolean | AutocaptureSwitches;
  /**
   * On a host page: origins of embedded iframe components (e.g. `"https://widgets.example.com"`)
   * that may ask for this visitor's session and user id, so their events join this session.
   */
  iframeOrigins?: string[];
  /**
   * In an iframe component: origins of the host pages whose session and user id it takes.
   * Events are held (at most 1.5 s) until the host answers; messages from other origins are ignored.
   */
  hostOrigins?: string[];
  /** Told about each batch once ingest has answered (or could not be reached). */
  onBatch?: (result: FlushResult) => void;
  /** Told about what the page cannot see from a return value: refused batches, queue overflow, bad attributes. */
  onError?: (error: TrackerError) => void;
  /**
   * Sees each event before it is queued (the page's own and what autocapture and plugins
   * record) and returns it, changed or not, or `null` to drop it: for redaction, filtering and
   * sampling. What it returns is validated again; when it throws or returns an invalid event,
   * the event is dropped and `onError` told (`before_send_failed`).
   */
  beforeSend?: (event: TrackedEvent) => TrackedEvent | null;
  /** Opt-in capture, from `@personafin/capture/plugins/<name>`; started once the tracker is ready. */
  plugins?: Plugin[];
}

export type Consent = "granted" | "pending" | "denied";

/** Autocapture switches, each on by default. */
export interface AutocaptureSwitches {
  /** `page.viewed` on load and on SPA route changes (pushState, replaceState, popstate, hashchange). */
  pageViews?: boolean;
  /** Clicks on elements with `data-pf-event="type.action"`, `data-pf-entities` and `data-pf-meta-*`. */
  dataAttributes?: boolean;
  /** `viewed` (half visible for a second) and `clicked` for `data-pf-impression-id` / `data-pf-fxcid` elements. */
  impressions?: boolean;
}

/** What `onError` receives. */
export interface TrackerError {
  code: "refused" | "queue_full" | "invalid_event" | "invalid_attribute" | "before_send_failed" | "unsupported";
  message: string;
  /** How many events it concerns. */
  events: number;
  /** The HTTP status, for `refused`. */
  status?: number;
}

/** The optional third argument of `track()`. */
export interface TrackOptions {
  eventMeta?: { [key: string]: MetaValue };
  /** Entities as `{ type, id }` or the shorthand `"ticker:AAPL"`. */
  relatedEntities?: Array<RelatedEntity | `${string}:${string}`>;
  /** Event time in ms since the epoch; defaults to the time of the call. */
  timestamp?: number;
  /** The impression this event converts (written to `event_meta.impression_id`). */
  impressionId?: string;
  /** The content impression this event converts (written to `event_meta.fxcid`). */
  fxcid?: string;
}

/** What one batch, or all the batches of a `flush()`, came to. */
export interface FlushResult {
  batches: number;
  /** Stored by ingest (it answers only after the events are durable). */
  accepted: number;
  /** Already stored earlier (a retry); not stored twice. */
  duplicates: number;
  /** Refused by ingest's validation, and kept there as failed events. */
  rejected: number;
  /** Could not be delivered now; queued again for a later attempt. */
  retrying: number;
  /** Refused for good (a 4xx other than 429). */
  dropped: number;
}

/** Where the wasm module comes from; by default it is fetched beside this package's JS. */
export type WasmSource = string | URL | Request | Response | BufferSource | WebAssembly.Module;

let loading: Promise<void> | undefined;
let ready = false;
/** Calls made before the tracker loaded, replayed in order once it has. */
const early: Array<() => void> = [];
/** How many of `early` are events. */
let earlyEvents = 0;
/** What runs the plugins, loaded once a configuration has some. */
let host: typeof import("./plugin-host.js") | undefined;
/** WebAssembly cannot run on this page: the tracker is off and every call does nothing. */
let unsupported = false;

/** Why the tracker cannot run on this page (no WebAssembly, or a policy forbidding it). */
class Unsupported extends Error {}

/**
 * Loads the tracker and starts it. Resolves when it is ready; rejects, naming the key, when the
 * configuration is invalid. Calls made before it resolves are kept and replayed in order, events
 * with the time they were tracked. Where WebAssembly cannot run (no WebAssembly, or a
 * Content-Security-Policy without `'wasm-unsafe-eval'`), it resolves all the same, warns once,
 * tells `onError` (`unsupported`), and every call does nothing (`track()` returns false).
 */
export function init(config: TrackerConfig, wasmSource?: WasmSource): Promise<void> {
  if (unsupported) {
    tellUnsupported(config, "WebAssembly cannot run on this page");
    return Promise.resolve();
  }
  const load = loading ?? loadWasm(wasmSource);
  loading = load.then(
    async () => {
      // Pages without plugins never load the code that runs them.
      if (config?.plugins !== undefined) host ??= await import("./plugin-host.js");
      const plugins = host?.pluginsOf(config) ?? [];
      refused(wasm.init(host ? host.configure(config, plugins, context) : config), "invalid tracker config: ");
      ready = true;
      earlyEvents = 0;
      for (const call of early.splice(0)) {
        // One bad early call (an invalid `identify()` id) must not cost the ones after it.
        try {
          call();
        } catch (e) {
          console.warn("[personafin]", (e as Error).message);
        }
      }
      host?.start(plugins, context);
    },
    (e: Error) => {
      if (!(e instanceof Unsupported)) throw e;
      // The page goes on as if there were no tracker: resolved, one warning, and `onError`.
      unsupported = true;
      early.length = 0;
      earlyEvents = 0;
      console.warn("[personafin]", e.message + ": the tracker is off, and its calls do nothing");
      tellUnsupported(config, e.message);
    },
  );
  return loading;
}

/** What a plugin records through: the same validated path as the page's calls. */
const context: PluginContext = {
  track: (eventType, action, options) => track(eventType, action, options),
  sessionId: () => wasm.call(Call.SessionId),
  storesLocally: () => wasm.call(Call.StoresLocally) !== undefined,
};

function tellUnsupported(config: TrackerConfig, message: string): void {
  try {
    config?.onError?.({ code: "unsupported", message, events: 0 });
  } catch {
    // The page's callback failing is the page's affair.
  }
}

/** The wasm's `call()` numbers (see `tracker-wasm/src/lib.rs`). */
const enum Call {
  Page,
  Identify,
  Reset,
  SetConsent,
  SessionId,
  VisitorId,
  QueuedEvents,
  StoresLocally,
}

/** The wasm answers a refused call with its reason, which the page gets as an exception. */
function refused(reason: string | undefined, what = ""): void {
  if (reason !== undefined) throw new Error(what + reason);
}

/**
 * Compiles the wasm (by default the file beside this package's JS, which bundlers pick up from
 * the `new URL(…, import.meta.url)` below) and instantiates it with its glue. Streaming
 * compilation needs the `application/wasm` type; from a server that sends another, the bytes
 * are compiled instead.
 */
async function loadWasm(source?: WasmSource): Promise<void> {
  if (typeof WebAssembly !== "object") throw new Unsupported("this browser has no WebAssembly");
  try {
    wasm.initSync({ module: await compile(source) });
  } catch (e) {
    // A Content-Security-Policy without 'wasm-unsafe-eval' refuses to compile or instantiate.
    if (e instanceof WebAssembly.CompileError || e instanceof WebAssembly.LinkError || e instanceof EvalError) {
      throw new Unsupported("WebAssembly cannot run on this page (" + e.message + ")");
    }
    throw e;
  }
}

async function compile(source?: WasmSource): Promise<WebAssembly.Module> {
  let module: WebAssembly.Module;
  if (source instanceof WebAssembly.Module) {
    module = source;
  } else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    module = await WebAssembly.compile(source);
  } else {
    const response =
      source instanceof Response
        ? source
        : await fetch(source ?? new URL("../pkg/personafin_tracker_bg.wasm", import.meta.url));
    if (!response.ok) {
      throw new Error(`could not load the tracker: HTTP ${response.status} for ${response.url}`);
    }
    module = await WebAssembly.compileStreaming(response.clone()).catch(() =>
      response.arrayBuffer().then((bytes) => WebAssembly.compile(bytes)),
    );
  }
  return module;
}

/** Runs `call` now if the tracker is ready, else once it is (never, where it cannot run). */
function whenReady(call: () => void): void {
  if (ready) {
    call();
  } else if (!unsupported) {
    early.push(call);
  }
}

/**
 * Records one interaction. Never throws: returns false (and logs why) when the event is
 * invalid, the visitor refused tracking or the tracker cannot run on this page. Before `init()`
 * has finished, the call is kept with its timestamp and returns true.
 */
export function track(eventType: string, action: string, options?: TrackOptions): boolean {
  if (ready) {
    return wasm.track(eventType, action, options);
  }
  if (unsupported) return false;
  const timed = { ...options, timestamp: options?.timestamp ?? Date.now() };
  early.push(() => wasm.track(eventType, action, timed));
  earlyEvents += 1;
  return true;
}

/** Records a page view now; route changes are recorded by themselves unless `autocapture.pageViews` is off. */
export function page(): void {
  whenReady(() => wasm.call(Call.Page));
}

/** Sends everything queued now; resolves with what happened. Never rejects. */
export async function flush(): Promise<FlushResult> {
  await loading?.catch(() => undefined);
  return ready ? ((await wasm.flush()) as FlushResult) : emptyFlush();
}

/**
 * Sets the user identifier carried by later events; `null` clears it. Throws on an invalid id
 * (before the tracker is ready, the call waits and the error goes to the console instead).
 */
export function identify(clientRef: string | null): void {
  whenReady(() => refused(wasm.call(Call.Identify, clientRef)));
}

/** Forgets who is browsing, for a logout: a new visitor id and session, no user id. */
export function reset(): void {
  whenReady(() => refused(wasm.call(Call.Reset)));
}

/** Records the visitor's choice; see `TrackerConfig.consent`. */
export function setConsent(consent: Consent): void {
  whenReady(() => refused(wasm.call(Call.SetConsent, consent)));
}

/** The current session id, or `undefined` before the tracker is ready. */
export function sessionId(): string | undefined {
  return ready ? wasm.call(Call.SessionId) : undefined;
}

/** The anonymous visitor id, or `undefined` before the tracker is ready. */
export function visitorId(): string | undefined {
  return ready ? wasm.call(Call.VisitorId) : undefined;
}

/** Events not yet delivered: queued before or after load, or on their way to ingest. */
export function queuedEvents(): number {
  return earlyEvents + (ready ? Number(wasm.call(Call.QueuedEvents)) : 0);
}

function emptyFlush(): FlushResult {
  return { batches: 0, accepted: 0, duplicates: 0, rejected: 0, retrying: 0, dropped: 0 };
}
