/**
 * Errors: uncaught errors and unhandled promise rejections become `error.raised`, with the
 * message, where it was raised (the script's path, origin and query stripped), line, column
 * and the top stack frames. The same error raised again in a page is counted, not recorded
 * again: the counts go out as `error.repeated` when the page view ends. At most `maxPerPage`
 * distinct errors are recorded per page load; the number of those beyond goes out as
 * `error.suppressed`.
 *
 * ```ts
 * import { errors } from "@personafin/capture/plugins/errors";
 * init({ clientKey, endpoint, plugins: [errors({ maxPerPage: 20 })] });
 * ```
 */
import type { Plugin } from "../plugin.js";
import { cut, pathOf, watchViews } from "./view.js";

export interface ErrorsOptions {
  /** Distinct errors recorded per page load (default 10). */
  maxPerPage?: number;
  /** Stack frames kept, from the top (default 5). */
  frames?: number;
}

const MESSAGE_CHARS = 500;
const FRAME_CHARS = 300;

interface Raised {
  meta: { [key: string]: string | number };
  repeats: number;
}

export function errors(options: ErrorsOptions = {}): Plugin {
  const cap = options.maxPerPage ?? 10;
  const depth = options.frames ?? 5;
  return {
    name: "errors",
    start(tracker) {
      const seen = new Map<string, Raised>();
      let suppressed = 0;
      const raised = (kind: string, message: string, source: string, line: number, column: number, stack: string) => {
        const meta = {
          kind,
          message: cut(message, MESSAGE_CHARS),
          source: pathOf(source),
          line: line | 0,
          column: column | 0,
        };
        const key = JSON.stringify(meta);
        const known = seen.get(key);
        if (known) {
          known.repeats += 1;
        } else if (seen.size >= cap) {
          suppressed += 1;
        } else {
          seen.set(key, { meta, repeats: 0 });
          tracker.track("error", "raised", { eventMeta: { ...meta, stack: frames(stack, depth) } });
        }
      };
      const onError = (e: Event) => {
        // Resources that fail to load also fire `error`, but not as an ErrorEvent on window.
        if (!(e instanceof ErrorEvent)) return;
        const error = e.error as { stack?: unknown } | null;
        raised("error", e.message || String(e.error), e.filename, e.lineno, e.colno, stackOf(error));
      };
      const onRejection = (e: PromiseRejectionEvent) => {
        const reason = e.reason as { message?: unknown; stack?: unknown } | null;
        const message = typeof reason?.message === "string" ? reason.message : safeString(reason);
        const stack = stackOf(reason);
        const [source, line, column] = topFrame(stack);
        raised("unhandledrejection", message, source, line, column, stack);
      };
      const ended = () => {
        for (const { meta, repeats } of seen.values()) {
          if (repeats > 0) tracker.track("error", "repeated", { eventMeta: { ...meta, count: repeats } });
        }
        for (const r of seen.values()) r.repeats = 0;
        if (suppressed > 0) tracker.track("error", "suppressed", { eventMeta: { count: suppressed } });
        suppressed = 0;
      };
      window.addEventListener("error", onError);
      window.addEventListener("unhandledrejection", onRejection);
      const unwatch = watchViews(ended);
      return () => {
        window.removeEventListener("error", onError);
        window.removeEventListener("unhandledrejection", onRejection);
        unwatch();
      };
    },
  };
}

const stackOf = (error: { stack?: unknown } | null | undefined): string =>
  error && typeof error.stack === "string" ? error.stack : "";

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    return "unhandled rejection";
  }
}

/** URLs in a stack line, as paths: `https://host/app.js?v=3:10:5` → `/app.js:10:5`. */
const URL_IN_STACK = /\b[a-z][a-z0-9+.-]*:\/\/[^\s/)]*([^\s?#)]*)(?:[?#][^\s:)]*)?/gi;

/** The top `depth` frames of a stack (Chromium's and Firefox's formats), origins stripped. */
export function frames(stack: string, depth: number): string[] {
  return stack
    .split("\n")
    .map((l) => l.trim())
    // Chromium starts with the message; its frames start with "at ". Firefox has only frames.
    .filter((l) => l.startsWith("at ") || l.includes("@"))
    .slice(0, depth)
    .map((l) => cut(l.replace(URL_IN_STACK, "$1"), FRAME_CHARS));
}

/** Where the top frame of a stack points: `[url, line, column]`. */
export function topFrame(stack: string): [string, number, number] {
  const m = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s)]*?):(\d+):(\d+)/i.exec(stack);
  return m ? [m[1], +m[2], +m[3]] : ["", 0, 0];
}
