/**
 * Runs the plugins of a configuration: checks them, puts their `beforeSend` steps before the
 * page's own, starts them once the tracker is ready and stops them on the next `init()`. The
 * wrapper loads this module only when a configuration names `plugins`, so a page without any
 * does not pay for it.
 */
import type { TrackerConfig } from "./index.js";
import type { Plugin, PluginContext, TrackedEvent } from "./plugin.js";

/** What stops the plugins of the configuration in force. */
let stops: Array<() => void> = [];

/** `config.plugins`, checked: the wasm knows nothing of them. */
export function pluginsOf(config: TrackerConfig): Plugin[] {
  const plugins: unknown = config?.plugins ?? [];
  const valid = Array.isArray(plugins) && plugins.every((p) => p && typeof p === "object" && typeof p.name === "string");
  if (!valid) {
    throw new Error("invalid tracker config: `plugins` must be an array of plugins, e.g. `[errors()]`");
  }
  return plugins;
}

/**
 * The configuration the wasm gets: without `plugins`, and with the plugins' `beforeSend` steps
 * run first, in order, then the page's own, so the page can redact what a plugin adds. A
 * plugin's step that fails leaves the event as it was (and warns): a plugin's bug must not
 * cost the page its events.
 */
export function configure(config: TrackerConfig, plugins: Plugin[], context: PluginContext): unknown {
  const { plugins: _, ...rest } = config;
  const steps = plugins.filter((p) => typeof p.beforeSend === "function");
  const own = rest.beforeSend;
  if (steps.length === 0 || (own !== undefined && typeof own !== "function")) return rest;
  const beforeSend = (event: TrackedEvent): TrackedEvent | null => {
    let out: TrackedEvent | null = event;
    for (const step of steps) {
      if (out === null) break;
      const current: TrackedEvent = out;
      out = guarded<TrackedEvent | null>("plugin " + step.name, () => step.beforeSend!(current, context), current);
    }
    return out && own ? own(out) : out;
  };
  return { ...rest, beforeSend };
}

/** Stops the plugins running, then starts `plugins`. */
export function start(plugins: Plugin[], context: PluginContext): void {
  for (const stop of stops.splice(0)) guarded("stopping a plugin", stop, undefined);
  for (const plugin of plugins) {
    const stop = guarded("plugin " + plugin.name, () => plugin.start?.(context), undefined);
    if (typeof stop === "function") stops.push(stop);
  }
}

/**
 * Runs a plugin's code so that its failure is a console warning and `fallback`, never the
 * page's exception.
 */
function guarded<T>(what: string, f: () => T, fallback: T): T {
  try {
    return f();
  } catch (e) {
    console.warn("[personafin]", what + " failed:", (e as Error)?.message ?? e);
    return fallback;
  }
}
