// Generated from the `schema` crate by `cargo xtask gen-types`. Do not edit.

/** Limits of wire format v1; ingest rejects what exceeds them. */
export const MAX_BODY_BYTES = 1048576;
export const MAX_EVENTS_PER_BATCH = 500;
export const MAX_EVENT_BYTES = 32768;
export const MAX_NAME_LEN = 64;
export const MAX_ID_LEN = 128;
export const MAX_STRING_LEN = 2048;
export const MAX_META_DEPTH = 4;
export const MAX_META_KEYS = 64;
export const MAX_ENTITIES = 50;

/** A JSON value allowed inside `event_meta`. */
export type MetaValue = string | number | boolean | null | MetaValue[] | { [key: string]: MetaValue };

/** A tradeable entity (or other object) an interaction concerns, such as a ticker. */
export interface RelatedEntity {
  /** lower_snake_case, e.g. `ticker`. */
  type: string;
  id: string;
}

export interface ChannelMeta {
  session_id: string;
  /** The customer's own non-PII user identifier; pseudonymised on arrival. */
  client_ref?: string | null;
  /** The tracker's per-browser visitor id. */
  anonymous_id?: string | null;
}

/** One event as it travels to `POST /v1/events`. */
export interface WireEvent {
  client_key: string;
  /** The idempotency key; the tracker makes a UUID. */
  event_id: string;
  /** RFC 3339, set when `track()` is called. */
  created_at: string;
  /** lower_snake_case */
  event_type: string;
  /** lower_snake_case */
  action: string;
  event_meta?: { [key: string]: MetaValue } | null;
  related_entities?: RelatedEntity[] | null;
  channel_meta: ChannelMeta;
}

/** The body of `POST /v1/events`. */
export interface Batch {
  /** RFC 3339, set at send; lets ingest correct the device's clock skew. */
  sent_at?: string | null;
  events: WireEvent[];
}

/** One event ingest refused, with the rule it broke. */
export interface RejectedEvent {
  index: number;
  event_id: string | null;
  error: string;
  message: string;
}

/** Ingest's answer to a stored batch: sent only after the events are durable. */
export interface IngestResponse {
  accepted: number;
  duplicates: number;
  rejected: RejectedEvent[];
}
