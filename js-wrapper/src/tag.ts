/**
 * What both script-tag builds do once loaded: take over `window.personafin`, replay the calls
 * the snippet queued before it loaded — in order, each event with the time it was tracked —
 * and start the tracker from the script tag's `data-client-key` and `data-endpoint` unless
 * the page calls `personafin.init()` itself.
 */
import * as pf from "./index.js";
import type { Plugin, TrackOptions, TrackerConfig, WasmSource } from "./index.js";

/** A call the snippet queued: method, arguments, and when it was made. */
type Queued = [string, unknown[], number];

interface Snippet {
  q?: Queued[];
}

/** The SRI hash of `personafin.wasm`, written in by the build. */
declare const WASM_INTEGRITY: string;

/**
 * Starts the script-tag API with the wasm `wasm` (by default `personafin.wasm` beside this
 * script, fetched with its hash); `defaults` are the plugins started when the page's
 * configuration names none, and `extra` is added to `window.personafin`.
 */
export function tag(wasm?: WasmSource, defaults?: () => Plugin[], extra: object = {}): void {
  const script = document.currentScript as HTMLScriptElement | null;
  const source = wasm ?? beside(script);
  const api = {
    init: (config: TrackerConfig) => pf.init(defaults ? { plugins: defaults(), ...config } : config, source),
    track: pf.track,
    page: pf.page,
    flush: pf.flush,
    identify: pf.identify,
    reset: pf.reset,
    setConsent: pf.setConsent,
    sessionId: pf.sessionId,
    visitorId: pf.visitorId,
    queuedEvents: pf.queuedEvents,
    ...extra,
  };

  const global = window as unknown as { personafin?: Snippet & Partial<typeof api> };
  const queued = global.personafin?.q ?? [];
  global.personafin = api;

  const calls = queued.filter(([method]) => method in api);
  const explicitInit = calls.some(([method]) => method === "init");
  const clientKey = script?.dataset.clientKey;
  const endpoint = script?.dataset.endpoint;
  if (!explicitInit && clientKey && endpoint) {
    api.init({ clientKey, endpoint }).catch((e: Error) => console.error("[personafin]", e.message));
  }
  for (const [method, args, at] of calls) {
    if (method === "track") {
      const [eventType, action, options] = args as [string, string, TrackOptions | undefined];
      pf.track(eventType, action, { ...options, timestamp: options?.timestamp ?? at });
    } else if (method === "init") {
      api.init(args[0] as TrackerConfig).catch((e: Error) => console.error("[personafin]", e.message));
    } else if (typeof api[method as keyof typeof api] === "function") {
      (api[method as keyof typeof api] as (...a: unknown[]) => unknown)(...args);
    }
  }
}

/** `personafin.wasm` from where this script came, checked against the hash the build wrote in. */
function beside(script: HTMLScriptElement | null): Request {
  const url = new URL("personafin.wasm", script?.src || location.href);
  return new Request(url, { integrity: WASM_INTEGRITY });
}
