//! Batches on their way to ingest: taking events off the queue as a batch stamped with
//! `sent_at`, keeping them while the batch is in flight, and settling them by ingest's answer
//! — forgotten when stored or refused for good, queued again (in front) when worth retrying,
//! with the backoff that follows a failure. The stored form of a queue, in-flight batches
//! first, is here too.

use schema::Timestamp;

use super::encode::encode_batch;
use super::{Backoff, Entropy, Queue};

/// A batch on its way; its events are kept until [`Delivery`] says what became of them.
#[derive(Debug)]
pub struct Outgoing {
    pub id: u32,
    pub body: String,
    pub count: usize,
}

/// What to do with a batch after ingest answered with `status` (0: no answer at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Stored (2xx): forget the batch.
    Delivered,
    /// Worth sending again later: network failure, timeout, 429 or 5xx.
    Retry,
    /// Refused for good (other 4xx): sending it again would be refused again.
    Drop,
}

pub fn classify(status: u16) -> Delivery {
    match status {
        200..=299 => Delivery::Delivered,
        0 | 408 | 429 | 500..=599 => Delivery::Retry,
        _ => Delivery::Drop,
    }
}

/// Largest body handed to `navigator.sendBeacon` (or a keepalive `fetch`): browsers refuse
/// more than 64 KiB of such requests in flight.
pub const BEACON_BYTES: usize = 64 * 1024;

/// The batches in flight and the backoff after failures.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    /// Batches taken for sending whose outcome is not known yet, by id.
    batches: Vec<(u32, Vec<String>)>,
    next_id: u32,
    backoff: Backoff,
    /// Set after a failed send: the delay before the next attempt.
    retry_in: Option<u64>,
}

impl InFlight {
    /// Takes up to `max_events` events and `max_bytes` bytes off `queue` as a batch sent at
    /// `now`, keeping them until the batch is settled.
    pub(super) fn take(
        &mut self,
        queue: &mut Queue,
        now: i64,
        max_events: usize,
        max_bytes: usize,
    ) -> Option<Outgoing> {
        let events = queue.take(max_events, max_bytes);
        if events.is_empty() {
            return None;
        }
        let body = encode_batch(Timestamp(now), events.iter().map(String::as_str));
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let count = events.len();
        self.batches.push((id, events));
        Some(Outgoing { id, body, count })
    }

    /// How many events batch `id` carries, while it is in flight.
    pub(super) fn count(&self, id: u32) -> Option<usize> {
        self.batches
            .iter()
            .find(|(b, _)| *b == id)
            .map(|(_, e)| e.len())
    }

    /// Events in flight, in every batch.
    pub(super) fn events(&self) -> impl Iterator<Item = &String> {
        self.batches.iter().flat_map(|(_, e)| e.iter())
    }

    pub(super) fn len(&self) -> usize {
        self.batches.iter().map(|(_, e)| e.len()).sum()
    }

    fn remove(&mut self, id: u32) -> Option<Vec<String>> {
        let i = self.batches.iter().position(|(b, _)| *b == id)?;
        Some(self.batches.swap_remove(i).1)
    }

    /// Whether the browser took beacon `id`: a taken one is forgotten, a refused one queued
    /// again, without backing off. False for a batch not in flight.
    pub(super) fn beaconed(&mut self, id: u32, taken: bool, queue: &mut Queue) -> bool {
        let Some(events) = self.remove(id) else {
            return false;
        };
        if !taken {
            queue.requeue(events);
        }
        true
    }

    /// Settles batch `id` by ingest's answer (and its `Retry-After`, in ms): what happened to
    /// it, and whether it was in flight at all.
    pub(super) fn settle(
        &mut self,
        id: u32,
        status: u16,
        retry_after_ms: Option<u64>,
        queue: &mut Queue,
        entropy: &mut impl Entropy,
    ) -> (Delivery, bool) {
        let delivery = classify(status);
        let Some(events) = self.remove(id) else {
            return (delivery, false);
        };
        match delivery {
            Delivery::Retry => {
                queue.requeue(events);
                let mut bytes = [0u8; 16];
                entropy.fill(&mut bytes);
                let jitter =
                    f64::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
                        / 4_294_967_296.0;
                self.retry_in = Some(self.backoff.fail(retry_after_ms, jitter));
            }
            Delivery::Delivered => {
                self.backoff.succeed();
                self.retry_in = None;
            }
            Delivery::Drop => {}
        }
        (delivery, true)
    }

    /// The delay before the next attempt, while backing off after a failure.
    pub(super) fn retry_in(&self) -> Option<u64> {
        self.retry_in
    }
}

/// Stored queues hold one encoded event per line: encoded JSON never contains a raw newline.
pub fn encode_queue<'a>(events: impl Iterator<Item = &'a String>) -> String {
    let mut out = String::new();
    for e in events {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(e);
    }
    out
}

/// Reads a stored queue, skipping lines that are not an encoded event (a truncated write).
pub fn decode_queue(record: &str) -> Vec<String> {
    super::pieces(record, b'\n')
        .filter(|l| l.starts_with("{") && l.ends_with("}"))
        .map(str::to_owned)
        .collect()
}
