/**
 * When a page view ends, for plugins that report once per page view: the page is hidden (the
 * tab is left, the browser minimised, the page unloaded) or an SPA's route changes. Listeners
 * run in the capture phase on `window`, before the tracker's own, so an event recorded here
 * goes out with the beacon the tracker sends as the page is hidden.
 */

/** How a page view ended: `hidden` may come again when the page is shown and hidden anew. */
export type Ending = "hidden" | "route";

/**
 * Calls `ended(path, how)` whenever the page view with `path` ends for now; returns what stops
 * listening. A route change is a new URL (`pushState`, `replaceState`, `popstate`,
 * `hashchange`), as the tracker's page views count them.
 */
export function watchViews(ended: (path: string, how: Ending) => void): () => void {
  let href = location.href;
  let path = location.pathname;
  let active = true;
  const hidden = () => active && document.visibilityState === "hidden" && ended(path, "hidden");
  const left = () => active && ended(path, "hidden");
  const routed = () => {
    if (!active || location.href === href) return;
    const before = path;
    href = location.href;
    path = location.pathname;
    ended(before, "route");
  };
  window.addEventListener("visibilitychange", hidden, true);
  window.addEventListener("pagehide", left, true);
  window.addEventListener("popstate", routed, true);
  window.addEventListener("hashchange", routed, true);
  for (const name of ["pushState", "replaceState"] as const) {
    const original = history[name];
    history[name] = function (this: History, ...args: Parameters<History["pushState"]>) {
      const result = original.apply(this, args);
      // Inside the page's own call: nothing here may throw into it.
      try {
        routed();
      } catch {
        // A plugin's failure is never the page's.
      }
      return result;
    };
  }
  return () => {
    active = false;
    window.removeEventListener("visibilitychange", hidden, true);
    window.removeEventListener("pagehide", left, true);
    window.removeEventListener("popstate", routed, true);
    window.removeEventListener("hashchange", routed, true);
  };
}

/** A URL as it may be recorded: no origin, no query, no fragment (they may carry tokens). */
export function pathOf(url: string): string {
  try {
    return new URL(url, location.href).pathname;
  } catch {
    return "";
  }
}

/** At most `n` characters of `s`. */
export const cut = (s: string, n: number): string => (s.length > n ? s.slice(0, n) : s);
