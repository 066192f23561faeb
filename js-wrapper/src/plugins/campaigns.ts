/**
 * Campaigns: the session's first page view carries where the visitor came from —
 * `event_meta.campaign` with the URL's `utm_*` parameters and ad click ids (`gclid`, `fbclid`,
 * `msclkid`…), and `referrer_host` when the referrer is another site. A later page view of the
 * same session carries nothing more (the session is the tracker's: 30 minutes idle, shared by
 * the site's tabs). Which session was tagged is remembered in `localStorage` only where the
 * tracker itself keeps things there (consent granted, `storage: 'localStorage'`); otherwise
 * for the page's life, so a reload may tag its page view again.
 *
 * ```ts
 * import { campaigns } from "@personafin/capture/plugins/campaigns";
 * init({ clientKey, endpoint, plugins: [campaigns()] });
 * ```
 */
import type { Plugin, TrackedEvent } from "../plugin.js";
import { cut } from "./view.js";

export const CAMPAIGN_PARAMS = [
  "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id",
  "gclid", "gbraid", "wbraid", "dclid", "fbclid", "msclkid", "ttclid", "twclid", "li_fat_id",
  "yclid", "epik",
];

/** The campaign parameters of a URL's query, `{}` for none. */
export function campaignOf(search: string): { [key: string]: string } {
  const params = new URLSearchParams(search);
  const campaign: { [key: string]: string } = {};
  for (const key of CAMPAIGN_PARAMS) {
    const value = params.get(key);
    if (value) campaign[key] = cut(value, 256);
  }
  return campaign;
}

/** The referrer's host, when it is another site's. */
export function referrerHost(referrer: string, pageHost: string): string | undefined {
  try {
    const host = new URL(referrer).host;
    return host && host !== pageHost ? host : undefined;
  } catch {
    return undefined;
  }
}

const TAGGED = "pf_campaign_session";

export function campaigns(): Plugin {
  /**
   * The session whose first page view was tagged: in `localStorage` where the tracker keeps
   * its own state there (so reloads and tabs share it), else for this page only.
   */
  let memory: string | undefined;
  const stored = (): string | undefined => {
    try {
      return localStorage.getItem(TAGGED) ?? undefined;
    } catch {
      return undefined;
    }
  };
  return {
    name: "campaigns",
    beforeSend(event: TrackedEvent, tracker) {
      if (event.eventType !== "page" || event.action !== "viewed") return event;
      const session = tracker.sessionId();
      const local = tracker.storesLocally();
      if (!session || session === memory || (local && stored() === session)) return event;
      memory = session;
      if (local) {
        try {
          localStorage.setItem(TAGGED, session);
        } catch {
          // Storage full or blocked: this page remembers.
        }
      }
      const campaign = campaignOf(location.search);
      const host = referrerHost(document.referrer, location.host);
      const meta = { ...event.eventMeta };
      if (Object.keys(campaign).length > 0) meta.campaign = campaign;
      if (host) meta.referrer_host = host;
      return { ...event, eventMeta: meta };
    },
  };
}
