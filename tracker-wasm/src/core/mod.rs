//! The tracker's logic, free of the browser: configuration, validation and event encoding,
//! the queue, batches in flight and retries (`delivery`), sessions and identity, consent. Time and randomness come
//! in through [`Clock`] and [`Entropy`], so all of it runs under `cargo test` natively.

mod config;
mod delivery;
mod encode;
mod queue;
mod retry;
mod session;
mod text;
mod tracker;

pub use config::{Autocapture, Config, ConfigError, Consent, Storage};
pub use delivery::{BEACON_BYTES, Delivery, Outgoing, classify, decode_queue, encode_queue};
pub use encode::{EntityRef, EventInput, encode_batch, encode_event, uuid_v4, uuid_v7};
pub use queue::Queue;
pub use retry::{Backoff, parse_retry_after};
pub use session::{Identity, Session};
pub use text::{cut, fields, parse_int, pieces, push_int};
pub use tracker::{TrackError, Tracker};

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// Cryptographically random bytes, for event, session and visitor ids.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8; 16]);
}
