/**
 * Engagement: how far down the page the visitor scrolled (`max_scroll_pct`, the share of the
 * page's height that has been on screen) and how long they were engaged (`engaged_ms`: the
 * page visible and interacted with — a scroll, a key, a pointer move or press — within the
 * last `idleMs`). One `page.engaged` per page view, sent when the page is hidden or the SPA
 * route changes; a page hidden and shown again sends what it added since (`resumed: true`),
 * so the `engaged_ms` of a page view's events add up to its whole.
 *
 * ```ts
 * import { engagement } from "@personafin/capture/plugins/engagement";
 * init({ clientKey, endpoint, plugins: [engagement()] });
 * ```
 */
import type { Plugin } from "../plugin.js";
import { watchViews } from "./view.js";

export interface EngagementOptions {
  /** A visitor who has not interacted for this long is no longer engaged (default 5000 ms). */
  idleMs?: number;
}

const ACTIVITY = ["scroll", "keydown", "pointerdown", "pointermove", "wheel", "touchstart"];

/**
 * Engaged time from moments of activity: each makes the visitor engaged until `idleMs` after
 * it; spans that overlap count once; hidden time never counts.
 */
export class EngagedTime {
  private total = 0;
  private from = 0;
  private until = 0;
  constructor(private readonly idleMs: number) {}

  /** Activity at `t` (ms). */
  active(t: number): void {
    if (t > this.until) {
      this.total += this.until - this.from;
      this.from = t;
    }
    this.until = t + this.idleMs;
  }

  /** The page was hidden at `t`: engagement stops there. */
  stop(t: number): void {
    this.until = Math.min(this.until, t);
    if (this.until < this.from) this.until = this.from;
  }

  /** Engaged ms up to `t`, and from then on counting starts from zero. */
  take(t: number): number {
    const end = Math.min(this.until, t);
    const taken = this.total + Math.max(0, end - this.from);
    this.total = 0;
    this.from = Math.max(this.from, end);
    this.until = Math.max(this.until, this.from);
    return taken;
  }
}

export function engagement(options: EngagementOptions = {}): Plugin {
  const idleMs = options.idleMs ?? 5000;
  return {
    name: "engagement",
    start(tracker) {
      const time = new EngagedTime(idleMs);
      let depth = 0;
      let resumed = false;
      const now = () => performance.now();
      const measure = () => {
        const page = document.documentElement;
        const height = Math.max(page.scrollHeight, document.body?.scrollHeight ?? 0);
        if (height > 0) depth = Math.max(depth, Math.min(100, Math.round(((scrollY + innerHeight) / height) * 100)));
      };
      const activity = (e: Event) => {
        if (document.visibilityState !== "visible") return;
        time.active(now());
        if (e.type === "scroll") measure();
      };
      const shown = () => document.visibilityState === "visible" && time.active(now());
      const ended = (path: string, how: "hidden" | "route") => {
        const t = now();
        if (how === "hidden") time.stop(t);
        measure();
        const engaged = Math.round(time.take(t));
        if (engaged > 0 || !resumed) {
          const meta: { [key: string]: string | number | boolean } = { path, engaged_ms: engaged, max_scroll_pct: depth };
          if (resumed) meta.resumed = true;
          tracker.track("page", "engaged", { eventMeta: meta });
        }
        resumed = how === "hidden";
        if (how === "route") {
          depth = 0;
          // The route change itself is the visitor's doing.
          time.active(t);
          requestAnimationFrame(measure);
        }
      };
      for (const type of ACTIVITY) addEventListener(type, activity, { capture: true, passive: true });
      document.addEventListener("visibilitychange", shown);
      if (document.visibilityState === "visible") time.active(now());
      measure();
      const unwatch = watchViews(ended);
      return () => {
        for (const type of ACTIVITY) removeEventListener(type, activity, { capture: true });
        document.removeEventListener("visibilitychange", shown);
        unwatch();
      };
    },
  };
}
