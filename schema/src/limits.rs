//! Every limit of wire format v1, in one place, so the tracker, the ingest service and the
//! generated TypeScript types agree on them.

/// Largest request body ingest reads, after any decompression.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most events one batch may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 500;
/// Largest single event, as serialised JSON.
pub const MAX_EVENT_BYTES: usize = 32 * 1024;
/// Longest `event_type`, `action`, entity `type` and `event_meta` key.
pub const MAX_NAME_LEN: usize = 64;
/// Longest identifier: `client_key`, `event_id`, `session_id`, `client_ref`, entity `id`.
pub const MAX_ID_LEN: usize = 128;
/// Longest string value inside `event_meta`.
pub const MAX_STRING_LEN: usize = 2048;
/// Deepest nesting of objects and arrays inside `event_meta` (`event_meta` itself is depth 1).
pub const MAX_META_DEPTH: usize = 4;
/// Most keys in `event_meta`, counted over every nested object.
pub const MAX_META_KEYS: usize = 64;
/// Most entries in `related_entities`.
pub const MAX_ENTITIES: usize = 50;
