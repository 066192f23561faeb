//! Wire format v1 of Personafin Capture, shared by the tracker and the ingest service.
//!
//! A batch is `{ "sent_at": "…", "events": [ … ] }`. [`parse_batch`] reads the envelope;
//! [`Event::from_raw`] validates each event on its own, so one bad event never costs the
//! others. Every rule is a named constant in [`limits`] and a variant of [`EventError`] or
//! [`BatchError`] that names the field and the limit.
//!
//! ```
//! let body = br#"{"events":[{"client_key":"pk_demo","event_id":"e1",
//!   "created_at":"2026-11-28T14:00:00Z","event_type":"instrument","action":"viewed",
//!   "related_entities":[{"type":"ticker","id":"AAPL"}],"channel_meta":{"session_id":"s1"}}]}"#;
//! let batch = schema::parse_batch(body).unwrap();
//! let event = schema::Event::from_raw(batch.events[0]).unwrap();
//! assert_eq!(event.related_entities[0].id, "AAPL");
//! ```
//!
//! Layout: `event` (types, parsing, validation), `error`, `limits`, `time` (RFC 3339),
//! `typescript` (the generated declarations of the npm package).
//!
//! This crate does no I/O and builds for `wasm32-unknown-unknown`.

mod error;
mod event;
pub mod limits;
mod time;
pub mod typescript;

pub use error::{BatchError, EventError, FieldError};
pub use event::{
    ChannelMeta, Entity, Event, RawBatch, check_id, check_name, parse_batch, peek_str,
};
pub use time::{Timestamp, TimestampError};
