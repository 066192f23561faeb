/**
 * Web Vitals: LCP, INP, CLS, FCP and TTFB, measured by Google's `web-vitals` package, as one
 * `page.vitals` event per page view, sent when the page is hidden or the SPA route changes.
 * Times are whole milliseconds (`lcp_ms`…), CLS a score (`cls`), each with its rating
 * (`good`, `needs-improvement`, `poor`). A browser records what it measures: Firefox and
 * Safari have no layout shifts (no `cls`). After an SPA route change (`soft_navigation:
 * true`), the paint metrics do not apply; the event carries the layout shift since the route
 * change and INP when an interaction during the view set it.
 *
 * ```ts
 * import { vitals } from "@personafin/capture/plugins/vitals";
 * init({ clientKey, endpoint, plugins: [vitals()] });
 * ```
 */
import { onCLS, onFCP, onINP, onLCP, onTTFB, type Metric } from "web-vitals";
import type { Plugin } from "../plugin.js";
import { watchViews } from "./view.js";

export function vitals(): Plugin {
  return {
    name: "vitals",
    start(tracker) {
      let measured = new Map<string, Metric>();
      let soft = false;
      let sent = false;
      let active = true;
      /** The page's layout shift score so far, and where the current view's started. */
      let cls = 0;
      let clsBase = 0;
      const report = (m: Metric) => {
        if (!active) return;
        if (m.name === "CLS") cls = m.value;
        measured.set(m.name, m);
      };
      const all = { reportAllChanges: true };
      onCLS(report, all);
      onINP(report, all);
      onLCP(report, all);
      onFCP(report, all);
      onTTFB(report, all);
      const ended = (path: string, how: "hidden" | "route") => {
        if (!sent) {
          const meta: { [key: string]: string | number | boolean } = { path };
          for (const m of measured.values()) {
            if (m.name === "CLS") continue;
            const key = m.name.toLowerCase();
            meta[key + "_ms"] = Math.round(m.value);
            meta[key + "_rating"] = m.rating;
          }
          const shift = Math.round((cls - clsBase) * 10000) / 10000;
          const clsRating = measured.get("CLS")?.rating;
          if (clsRating !== undefined && (!soft || shift > 0)) {
            meta.cls = shift;
            // A soft view's share of the score has no rating of its own.
            if (!soft) meta.cls_rating = clsRating;
          }
          if (soft) meta.soft_navigation = true;
          if (Object.keys(meta).length > (soft ? 2 : 1)) {
            tracker.track("page", "vitals", { eventMeta: meta });
          }
          sent = true;
        }
        if (how === "route") {
          measured = new Map();
          clsBase = cls;
          soft = true;
          sent = false;
        }
      };
      const unwatch = watchViews(ended);
      // web-vitals' observers cannot be removed; they go quiet instead.
      return () => {
        active = false;
        unwatch();
      };
    },
  };
}
