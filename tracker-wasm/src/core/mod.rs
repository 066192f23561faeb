//! The tracker's logic, free of the browser: configuration, event encoding, the queue,
//! batching and sessions. Time and randomness come in through [`Clock`] and [`Entropy`], so
//! all of it runs under `cargo test` natively.

mod config;
mod encode;
mod queue;
mod retry;
mod session;
mod tracker;

pub use config::{Config, ConfigError, check_keys, known_keys};
pub use encode::{EntityRef, EventInput, encode_batch, encode_event, uuid_v4};
pub use queue::Queue;
pub use retry::{Backoff, parse_retry_after};
pub use session::Session;
pub use tracker::{Delivery, Outgoing, TrackError, Tracker, classify};

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// Cryptographically random bytes, for event, session and visitor ids.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8; 16]);
}
