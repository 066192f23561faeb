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
import loadWasm, * as wasm from "../pkg/personafin_tracker.js";
import type { MetaValue, RelatedEntity } from "./wire.js";

export * from "./wire.js";

/** What `init()` takes. Unknown keys are an error that names them. */
export interface TrackerConfig {
  /** The tenant's public write key. */
  clientKey: string;
  /** Full URL of ingest's `POST /v1/events`. */
  endpoint: string;
  /** The customer's own, consistent, non-PII user identifier. */
  clientRef?: string | null;
  /** Send as soon as this many events are queued (default 20, at most 500). */
  maxEvents?: number;
  /** Largest batch body in bytes (default 60000). */
  maxBytes?: number;
  /** Send queued events at most this long after they were queued (default 1000 ms). */
  flushIntervalMs?: number;
  /** Queue bound; beyond it the oldest events are dropped (default 1000). */
  maxQueuedEvents?: number;
  /** A session ends after this many idle minutes (default 30). */
  sessionTimeoutMinutes?: number;
  /** Log each event and each response to the console. */
  debug?: boolean;
  /** Told about each batch once ingest has answered (or could not be reached). */
  onBatch?: (result: FlushResult) => void;
}

/** The optional third argument of `track()`. */
export interface TrackOptions {
  eventMeta?: { [key: string]: MetaValue };
  /** Entities as `{ type, id }` or the shorthand `"ticker:AAPL"`. */
  relatedEntities?: Array<RelatedEntity | `${string}:${string}`>;
  /** Event time in ms since the epoch; defaults to the time of the call. */
  timestamp?: number;
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
const early: Array<[string, string, TrackOptions]> = [];

/**
 * Loads the tracker and starts it. Resolves when it is ready; rejects, naming the key, when the
 * configuration is invalid. Calls to `track()` made before it resolves are kept and replayed.
 */
export function init(config: TrackerConfig, wasmSource?: WasmSource): Promise<void> {
  const load = loading ?? loadWasm(wasmSource === undefined ? undefined : { module_or_path: wasmSource });
  loading = load.then(() => {
    wasm.init(config);
    ready = true;
    for (const [eventType, action, options] of early.splice(0)) {
      wasm.track(eventType, action, options);
    }
  });
  return loading;
}

/**
 * Records one interaction. Never throws: returns false (and logs why) when the event is
 * invalid. Before `init()` has finished, the call is queued with its timestamp and returns true.
 */
export function track(eventType: string, action: string, options?: TrackOptions): boolean {
  if (ready) {
    return wasm.track(eventType, action, options);
  }
  early.push([eventType, action, { ...options, timestamp: options?.timestamp ?? Date.now() }]);
  return true;
}

/** Sends everything queued now; resolves with what happened. Never rejects. */
export async function flush(): Promise<FlushResult> {
  await loading?.catch(() => undefined);
  return ready ? ((await wasm.flush()) as FlushResult) : emptyFlush();
}

/** Sets the user identifier carried by later events; `null` clears it. */
export function identify(clientRef: string | null): void {
  if (!ready) {
    throw new Error("the tracker is not initialised: call init() first");
  }
  wasm.identify(clientRef);
}

/** The current session id, or `undefined` before the tracker is ready. */
export function sessionId(): string | undefined {
  return ready ? wasm.sessionId() : undefined;
}

/** Events not yet delivered: queued before or after load, or on their way to ingest. */
export function queuedEvents(): number {
  return early.length + (ready ? wasm.queuedEvents() : 0);
}

function emptyFlush(): FlushResult {
  return { batches: 0, accepted: 0, duplicates: 0, rejected: 0, retrying: 0, dropped: 0 };
}
