/**
 * What a plugin is: opt-in capture that records through the tracker's own `track()`, so its
 * events are validated, queued, consented and delivered like the page's. Each plugin is its
 * own module, `@personafin/capture/plugins/<name>`, and is passed to `init({ plugins: [...] })`.
 */
import type { MetaValue, RelatedEntity } from "./wire.js";

/** An event as `beforeSend` sees it, and as it must return it. */
export interface TrackedEvent {
  eventType: string;
  action: string;
  eventMeta: { [key: string]: MetaValue };
  relatedEntities: RelatedEntity[];
  /** When it was tracked, in ms since the epoch. */
  timestamp: number;
}

/** What a plugin is given when the tracker starts it. */
export interface PluginContext {
  /** The tracker's `track()`: false when the event is invalid or the visitor refused tracking. */
  track(
    eventType: string,
    action: string,
    options?: { eventMeta?: { [key: string]: MetaValue }; relatedEntities?: Array<RelatedEntity | `${string}:${string}`>; timestamp?: number },
  ): boolean;
  /** The current session id. */
  sessionId(): string | undefined;
  /**
   * Whether the tracker keeps things in `localStorage` now (consent granted, no Do Not Track
   * refusal, `storage: 'localStorage'`): a plugin keeps what it remembers there only then.
   */
  storesLocally(): boolean;
}

export interface Plugin {
  /** Its name, in warnings about it. */
  readonly name: string;
  /**
   * Sees each event before the page's own `beforeSend` does, to add to it; runs from the
   * tracker's first page view on, before `start`.
   */
  beforeSend?(event: TrackedEvent, tracker: PluginContext): TrackedEvent | null;
  /** Starts capturing once the tracker is ready; returns what stops it (on a later `init()`). */
  start?(tracker: PluginContext): (() => void) | void;
}
