use schema::Timestamp;
use schema::limits::MAX_EVENT_BYTES;

use super::encode::{
    BATCH_OVERHEAD, Envelope, EventInput, encode_batch, encode_event_with, uuid_v4,
};
use super::{Backoff, Clock, Config, Entropy, Queue, Session};

/// Why `track()` did not queue an event. The browser glue reports it; it never throws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackError(pub String);

impl std::fmt::Display for TrackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A batch on its way: the body to send and the events it holds, to put back on failure.
#[derive(Debug)]
pub struct Outgoing {
    pub body: String,
    pub events: Vec<String>,
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

/// The capture state of one page: identity, session and queue.
pub struct Tracker<C, E> {
    config: Config,
    clock: C,
    entropy: E,
    queue: Queue,
    session: Session,
    anonymous_id: String,
    /// Events taken for sending whose outcome is not known yet.
    in_flight: usize,
    backoff: Backoff,
    /// Set after a failed send: the delay before the next attempt.
    retry_in: Option<u64>,
}

impl<C: Clock, E: Entropy> Tracker<C, E> {
    pub fn new(config: Config, clock: C, mut entropy: E) -> Tracker<C, E> {
        let now = clock.now_ms();
        let session = Session::new(new_id(&mut entropy), now);
        let anonymous_id = new_id(&mut entropy);
        let queue = Queue::new(config.max_queued_events as usize);
        Tracker {
            config,
            clock,
            entropy,
            queue,
            session,
            anonymous_id,
            in_flight: 0,
            backoff: Backoff::default(),
            retry_in: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn session_id(&self) -> &str {
        &self.session.id
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Events not yet delivered: queued, or sent and waiting for ingest's answer.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.in_flight
    }

    /// Validates, encodes and queues one event. Returns true when a batch is full and should
    /// be sent now rather than when the flush timer fires.
    pub fn track(&mut self, input: &EventInput<'_>) -> Result<bool, TrackError> {
        let err = |e: schema::EventError| TrackError(e.to_string());
        schema::check_name(input.event_type, "eventType").map_err(err)?;
        schema::check_name(input.action, "action").map_err(err)?;
        if input.entities.len() > schema::limits::MAX_ENTITIES {
            return Err(err(schema::EventError::TooManyEntities {
                count: input.entities.len(),
                limit: schema::limits::MAX_ENTITIES,
            }));
        }
        for e in input.entities {
            schema::check_name(&e.kind, "relatedEntities[].type").map_err(err)?;
            schema::check_id(&e.id, "relatedEntities[].id").map_err(err)?;
        }
        let now = self.clock.now_ms();
        let timeout = i64::from(self.config.session_timeout_minutes) * 60_000;
        if self.session.touch(now, timeout) {
            let id = new_id(&mut self.entropy);
            self.session.restart(id, now);
        }
        let event_id = new_id(&mut self.entropy);
        let env = Envelope {
            client_key: &self.config.client_key,
            event_id: &event_id,
            created_at: Timestamp(input.timestamp.unwrap_or(now)),
            session_id: &self.session.id,
            client_ref: self.config.client_ref.as_deref(),
            anonymous_id: &self.anonymous_id,
        };
        let encoded = encode_event_with(&env, input);
        if encoded.len() > MAX_EVENT_BYTES {
            return Err(err(schema::EventError::TooLarge {
                size: encoded.len(),
                limit: MAX_EVENT_BYTES,
            }));
        }
        self.queue.push(encoded);
        Ok(self.queue.len() >= self.config.max_events as usize && !self.backing_off())
    }

    /// Sets (or with `None` clears) the customer's user id carried by later events.
    pub fn set_client_ref(&mut self, client_ref: Option<String>) -> Result<(), TrackError> {
        if let Some(r) = &client_ref {
            schema::check_id(r, "clientRef").map_err(|e| TrackError(e.to_string()))?;
        }
        self.config.client_ref = client_ref;
        Ok(())
    }

    /// The next batch to send, stamped with `sent_at` now, or `None` when nothing is queued.
    pub fn next_batch(&mut self) -> Option<Outgoing> {
        let max_bytes = self.config.max_bytes as usize - BATCH_OVERHEAD;
        let events = self.queue.take(self.config.max_events as usize, max_bytes);
        if events.is_empty() {
            return None;
        }
        let body = encode_batch(
            Timestamp(self.clock.now_ms()),
            events.iter().map(String::as_str),
        );
        self.in_flight += events.len();
        Some(Outgoing { body, events })
    }

    /// Settles a batch by ingest's answer (and its `Retry-After`, in ms); returns what
    /// happened to it.
    pub fn settle(
        &mut self,
        batch: Outgoing,
        status: u16,
        retry_after_ms: Option<u64>,
    ) -> Delivery {
        let delivery = classify(status);
        self.in_flight = self.in_flight.saturating_sub(batch.events.len());
        match delivery {
            Delivery::Retry => {
                self.queue.requeue(batch.events);
                let mut bytes = [0u8; 16];
                self.entropy.fill(&mut bytes);
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
        delivery
    }

    /// How long to wait before the next send: the backoff after a failure, else the flush
    /// interval.
    pub fn next_send_in_ms(&self) -> u64 {
        self.retry_in
            .unwrap_or(u64::from(self.config.flush_interval_ms))
    }

    /// True while backing off after a failure: a full batch then waits for the retry timer
    /// instead of going out at once.
    pub fn backing_off(&self) -> bool {
        self.retry_in.is_some()
    }
}

fn new_id(entropy: &mut impl Entropy) -> String {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    uuid_v4(bytes)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;
    use crate::core::EntityRef;
    use crate::core::config::test_config;

    #[derive(Clone, Default)]
    struct ManualClock(Rc<Cell<i64>>);
    impl Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.get()
        }
    }
    struct Counter(u8);
    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8; 16]) {
            self.0 += 1;
            *buf = [self.0; 16];
        }
    }

    const T0: i64 = 1_795_874_400_000;

    fn tracker(config: Config) -> (Tracker<ManualClock, Counter>, ManualClock) {
        let clock = ManualClock::default();
        clock.0.set(T0);
        (Tracker::new(config, clock.clone(), Counter(0)), clock)
    }

    fn viewed(ticker: &str) -> (Vec<EntityRef>, &'static str) {
        (
            vec![EntityRef {
                kind: "ticker".into(),
                id: ticker.into(),
            }],
            "viewed",
        )
    }

    fn events_of(batch: &Outgoing) -> Vec<schema::Event> {
        let parsed = schema::parse_batch(batch.body.as_bytes()).unwrap();
        parsed
            .events
            .iter()
            .map(|raw| schema::Event::from_raw(raw).unwrap())
            .collect()
    }

    #[test]
    fn batches_fill_by_count_and_carry_identity() {
        let mut config = test_config();
        config.max_events = 2;
        config.client_ref = Some("user-42".into());
        let (mut t, clock) = tracker(config);
        let (entities, action) = viewed("AAPL");
        let input = EventInput {
            event_type: "instrument",
            action,
            meta_json: None,
            entities: &entities,
            timestamp: None,
        };
        assert_eq!(t.track(&input), Ok(false));
        clock.0.set(T0 + 10);
        assert_eq!(t.track(&input), Ok(true), "second event fills the batch");
        clock.0.set(T0 + 20);
        let batch = t.next_batch().unwrap();
        let events = events_of(&batch);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].created_at, Timestamp(T0));
        assert_eq!(events[1].created_at, Timestamp(T0 + 10));
        assert_ne!(events[0].event_id, events[1].event_id);
        assert_eq!(
            events[0].channel_meta.session_id,
            events[1].channel_meta.session_id
        );
        assert_eq!(
            events[0].channel_meta.client_ref.as_deref(),
            Some("user-42")
        );
        assert_eq!(
            schema::parse_batch(batch.body.as_bytes()).unwrap().sent_at,
            Some(Timestamp(T0 + 20))
        );
        assert!(t.next_batch().is_none());
    }

    #[test]
    fn session_rotates_after_idle_timeout_only() {
        let (mut t, clock) = tracker(test_config());
        let input = EventInput {
            event_type: "page",
            action: "viewed",
            meta_json: None,
            entities: &[],
            timestamp: None,
        };
        t.track(&input).unwrap();
        let first = t.session_id().to_owned();
        clock.0.set(T0 + 29 * 60_000);
        t.track(&input).unwrap();
        assert_eq!(t.session_id(), first, "29 idle minutes keep the session");
        clock.0.set(T0 + 59 * 60_000);
        t.track(&input).unwrap();
        assert_ne!(t.session_id(), first, "30 idle minutes end it");
    }

    #[test]
    fn invalid_calls_are_refused_with_the_field_named() {
        let (mut t, _) = tracker(test_config());
        let cases: [(&str, &str, Vec<EntityRef>, &str); 4] = [
            ("Instrument", "viewed", vec![], "eventType"),
            ("instrument", "", vec![], "action"),
            (
                "instrument",
                "viewed",
                vec![EntityRef {
                    kind: "ticker".into(),
                    id: String::new(),
                }],
                "relatedEntities[].id",
            ),
            (
                "instrument",
                "viewed",
                vec![EntityRef {
                    kind: "Ticker".into(),
                    id: "A".into(),
                }],
                "relatedEntities[].type",
            ),
        ];
        for (event_type, action, entities, field) in cases {
            let input = EventInput {
                event_type,
                action,
                meta_json: None,
                entities: &entities,
                timestamp: None,
            };
            let e = t.track(&input).unwrap_err();
            assert!(e.0.contains(field), "{e} does not name {field}");
        }
        let big = format!("{{\"note\":\"{}\"}}", "x".repeat(MAX_EVENT_BYTES));
        let input = EventInput {
            event_type: "a",
            action: "b",
            meta_json: Some(&big),
            entities: &[],
            timestamp: None,
        };
        assert!(t.track(&input).unwrap_err().0.contains("32768"));
        assert!(t.queue().is_empty(), "nothing invalid was queued");
    }

    #[test]
    fn failed_batches_are_retried_or_dropped_by_status() {
        let (mut t, _) = tracker(test_config());
        let input = EventInput {
            event_type: "a",
            action: "b",
            meta_json: None,
            entities: &[],
            timestamp: Some(T0 - 5000),
        };
        t.track(&input).unwrap();
        for (status, expected, left) in [
            (0, Delivery::Retry, 1),
            (503, Delivery::Retry, 1),
            (429, Delivery::Retry, 1),
            (400, Delivery::Drop, 0),
        ] {
            let batch = t.next_batch().unwrap();
            assert_eq!(
                events_of(&batch)[0].created_at,
                Timestamp(T0 - 5000),
                "original time kept"
            );
            assert_eq!(t.pending(), 1, "in flight counts as pending");
            assert_eq!(t.settle(batch, status, None), expected, "status {status}");
            assert_eq!(t.queue().len(), left);
            assert_eq!(t.pending(), left);
        }
        t.track(&input).unwrap();
        let batch = t.next_batch().unwrap();
        assert_eq!(t.settle(batch, 200, None), Delivery::Delivered);
        assert!(t.queue().is_empty());
    }

    #[test]
    fn batches_respect_max_bytes() {
        let mut config = test_config();
        config.max_bytes = 40_000;
        let (mut t, _) = tracker(config);
        let meta = format!("{{\"note\":\"{}\"}}", "x".repeat(15_000));
        let input = EventInput {
            event_type: "a",
            action: "b",
            meta_json: Some(&meta),
            entities: &[],
            timestamp: None,
        };
        for _ in 0..5 {
            t.track(&input).unwrap();
        }
        let mut sizes = Vec::new();
        while let Some(batch) = t.next_batch() {
            assert!(batch.body.len() <= 40_000, "{} bytes", batch.body.len());
            sizes.push(batch.events.len());
        }
        assert_eq!(sizes, [2, 2, 1]);
    }

    #[test]
    fn failures_back_off_honouring_retry_after_and_success_resets() {
        let mut config = crate::core::config::test_config();
        config.max_events = 1;
        let (mut t, _) = tracker(config);
        let input = EventInput {
            event_type: "a",
            action: "b",
            meta_json: None,
            entities: &[],
            timestamp: None,
        };
        assert_eq!(t.track(&input), Ok(true), "a full batch goes at once");
        let batch = t.next_batch().unwrap();
        assert_eq!(t.settle(batch, 429, Some(30_000)), Delivery::Retry);
        assert!(t.next_send_in_ms() >= 30_000, "Retry-After is a floor");
        assert_eq!(
            t.track(&input),
            Ok(false),
            "while backing off, full batches wait for the timer"
        );
        let batch = t.next_batch().unwrap();
        assert_eq!(t.settle(batch, 0, None), Delivery::Retry);
        assert!(
            t.next_send_in_ms() <= 2_000,
            "second failure: jittered under a 2 s ceiling"
        );
        let batch = t.next_batch().unwrap();
        assert_eq!(t.settle(batch, 200, None), Delivery::Delivered);
        assert_eq!(t.next_send_in_ms(), 1_000, "back to the flush interval");
        assert!(!t.backing_off());
    }
}
