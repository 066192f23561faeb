use schema::Timestamp;
use schema::limits::{MAX_ENTITIES, MAX_EVENT_BYTES, MAX_EVENTS_PER_BATCH};

use super::config::{Consent, Storage};
use super::delivery::{BEACON_BYTES, Delivery, InFlight, Outgoing, decode_queue, encode_queue};
use super::encode::{BATCH_OVERHEAD, Envelope, EventInput, encode_event_with, uuid_v4, uuid_v7};
use super::session::{Identity, Session};
use super::{Clock, Config, Entropy, Queue, push_int};

/// Why `track()` did not queue an event. The browser glue reports it; it never throws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackError {
    /// The call itself is wrong; the message names the argument at fault.
    Invalid(String),
    /// The visitor refused tracking (consent denied, Do Not Track, Global Privacy Control):
    /// nothing is recorded, on purpose.
    NotRecorded,
}

impl TrackError {
    /// What went wrong, in words (without `core::fmt`, for the wasm).
    pub fn message(self) -> String {
        match self {
            TrackError::Invalid(m) => m,
            TrackError::NotRecorded => "tracking is off: consent denied or Do Not Track".into(),
        }
    }
}

impl std::fmt::Display for TrackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.clone().message())
    }
}

/// The capture state of one page: identity, session, consent and queue.
pub struct Tracker<C, E> {
    config: Config,
    clock: C,
    entropy: E,
    queue: Queue,
    identity: Identity,
    in_flight: InFlight,
    consent: Consent,
    /// The browser asks not to be tracked (and `respectDoNotTrack` is on): overrides consent.
    do_not_track: bool,
    /// The persisted queue is out of date.
    queue_changed: bool,
    identity_changed: bool,
}

impl<C: Clock, E: Entropy> Tracker<C, E> {
    /// A tracker for one page. `stored` is the identity an earlier page left in storage: its
    /// visitor id is kept, and its session too unless it has expired.
    pub fn new(
        config: Config,
        clock: C,
        mut entropy: E,
        stored: Option<&str>,
        do_not_track: bool,
    ) -> Tracker<C, E> {
        let now = clock.now_ms();
        let mut identity = stored
            .and_then(Identity::decode)
            .unwrap_or_else(|| Identity {
                visitor_id: new_id(&mut entropy),
                session: Session::new(new_id(&mut entropy), now),
                client_ref: None,
            });
        if config.client_ref.is_some() {
            identity.client_ref = config.client_ref.clone();
        }
        let queue = Queue::new(config.max_queued_events as usize);
        let consent = config.consent;
        Tracker {
            config,
            clock,
            entropy,
            queue,
            identity,
            in_flight: InFlight::default(),
            consent,
            do_not_track,
            queue_changed: false,
            identity_changed: true,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn session_id(&self) -> &str {
        &self.identity.session.id
    }

    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Events not yet delivered: queued, or sent and waiting for ingest's answer.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// How many events batch `id` carries, while it is in flight.
    pub fn in_flight_count(&self, id: u32) -> Option<usize> {
        self.in_flight.count(id)
    }

    /// The consent in force: `Denied` under Do Not Track whatever the page says.
    pub fn consent(&self) -> Consent {
        if self.do_not_track {
            Consent::Denied
        } else {
            self.consent
        }
    }

    /// Whether identity and queue may be written to the device: only with consent, and never
    /// for `storage: 'memory'`. The queue needs `localStorage`; a cookie holds only identity.
    pub fn persists(&self) -> (bool, bool) {
        let allowed = self.consent() == Consent::Granted;
        let storage = self.config.storage;
        (
            allowed && storage != Storage::Memory,
            allowed && storage == Storage::LocalStorage,
        )
    }

    /// True when the session would end with the next event, so the glue should look at
    /// what other tabs stored first (see [`Tracker::merge_identity`]).
    pub fn session_expired(&self) -> bool {
        self.identity
            .session
            .expired(self.clock.now_ms(), self.session_timeout_ms())
    }

    fn session_timeout_ms(&self) -> i64 {
        i64::from(self.config.session_timeout_minutes) * 60_000
    }

    /// Takes another tab's newer identity: its session if that was active more recently (so
    /// tabs share one session), and its visitor id after a `reset()` there.
    pub fn merge_identity(&mut self, stored: &str) {
        let Some(theirs) = Identity::decode(stored) else {
            return;
        };
        if theirs.session.last_activity_ms > self.identity.session.last_activity_ms {
            self.identity.session = theirs.session;
            self.identity.visitor_id = theirs.visitor_id;
            if self.config.client_ref.is_none() {
                self.identity.client_ref = theirs.client_ref;
            }
        }
    }

    /// Validates, encodes and queues one event. Returns true when a batch is full and should
    /// be sent now rather than when the flush timer fires.
    pub fn track(&mut self, input: &EventInput<'_>) -> Result<bool, TrackError> {
        let invalid = |e: schema::FieldError| TrackError::Invalid(e.message());
        schema::check_name(input.event_type, "eventType").map_err(invalid)?;
        schema::check_name(input.action, "action").map_err(invalid)?;
        if input.entities.len() > MAX_ENTITIES {
            return Err(over_limit(
                "`relatedEntities` has ",
                input.entities.len(),
                " entries",
                MAX_ENTITIES,
            ));
        }
        for e in input.entities {
            schema::check_name(&e.kind, "relatedEntities[].type").map_err(invalid)?;
            schema::check_id(&e.id, "relatedEntities[].id").map_err(invalid)?;
        }
        if self.consent() == Consent::Denied {
            return Err(TrackError::NotRecorded);
        }
        let now = self.clock.now_ms();
        let timeout = self.session_timeout_ms();
        if self.identity.session.touch(now, timeout) {
            let id = new_id(&mut self.entropy);
            self.identity.session.restart(id, now);
        }
        self.identity_changed = true;
        let event_id = uuid_v7(random_bytes(&mut self.entropy), now);
        let env = Envelope {
            client_key: &self.config.client_key,
            event_id: &event_id,
            created_at: Timestamp(input.timestamp.unwrap_or(now)),
            session_id: &self.identity.session.id,
            client_ref: self.identity.client_ref.as_deref(),
            anonymous_id: &self.identity.visitor_id,
        };
        let encoded = encode_event_with(&env, input);
        if encoded.len() > MAX_EVENT_BYTES {
            return Err(over_limit(
                "the event is ",
                encoded.len(),
                " bytes encoded",
                MAX_EVENT_BYTES,
            ));
        }
        self.queue.push(encoded);
        self.queue_changed = true;
        Ok(self.queue.len() >= self.config.max_events as usize && self.can_send_now())
    }

    /// Sets (or with `None` clears) the customer's user id carried by later events.
    pub fn set_client_ref(&mut self, client_ref: Option<String>) -> Result<(), TrackError> {
        if let Some(r) = &client_ref {
            schema::check_id(r, "clientRef").map_err(|e| TrackError::Invalid(e.message()))?;
        }
        self.config.client_ref.clone_from(&client_ref);
        self.identity.client_ref = client_ref;
        self.identity_changed = true;
        Ok(())
    }

    /// Forgets who is browsing, for a logout: a new visitor id, a new session, no user id.
    /// Events already queued keep the identity they were recorded with.
    pub fn reset(&mut self) {
        let now = self.clock.now_ms();
        self.identity = Identity {
            visitor_id: new_id(&mut self.entropy),
            session: Session::new(new_id(&mut self.entropy), now),
            client_ref: None,
        };
        self.config.client_ref = None;
        self.identity_changed = true;
    }

    /// Takes the visitor, session and user id of the host page this tracker is embedded in
    /// (an iframe component), so its events join the host's session.
    pub fn adopt_host(
        &mut self,
        visitor_id: &str,
        session_id: &str,
        client_ref: Option<&str>,
    ) -> Result<(), TrackError> {
        let invalid = |e: schema::FieldError| TrackError::Invalid(e.message());
        schema::check_id(visitor_id, "visitorId").map_err(invalid)?;
        schema::check_id(session_id, "sessionId").map_err(invalid)?;
        if let Some(r) = client_ref {
            schema::check_id(r, "clientRef").map_err(invalid)?;
        }
        self.identity = Identity {
            visitor_id: visitor_id.to_owned(),
            session: Session::new(session_id.to_owned(), self.clock.now_ms()),
            client_ref: client_ref.map(str::to_owned),
        };
        self.config.client_ref = self.identity.client_ref.clone();
        self.identity_changed = true;
        Ok(())
    }

    /// Changes consent; returns how many unsent events a denial discarded. Under Do Not Track
    /// nothing changes.
    pub fn set_consent(&mut self, consent: Consent) -> usize {
        self.consent = consent;
        self.identity_changed = true;
        if self.consent() != Consent::Denied {
            return 0;
        }
        let dropped = self.queue.len();
        self.queue.clear();
        self.queue_changed = true;
        dropped
    }

    /// Puts events another tab left behind (see `web::tabs`) in front of this tab's queue,
    /// oldest first; returns how many were taken.
    pub fn adopt(&mut self, record: &str) -> usize {
        let events = decode_queue(record);
        let n = events.len();
        if n > 0 && self.consent() != Consent::Denied {
            self.queue.requeue(events);
            self.queue_changed = true;
        }
        n
    }

    /// The queue as stored: in-flight batches first (their fate is unknown until ingest
    /// answers), then queued events, one per line. `None` when it has not changed since the
    /// last call.
    pub fn take_queue_record(&mut self) -> Option<String> {
        if !std::mem::take(&mut self.queue_changed) {
            return None;
        }
        Some(encode_queue(
            self.in_flight.events().chain(self.queue.iter()),
        ))
    }

    /// The identity line to store, when it changed since the last call. A cookie rides along
    /// on every request to the site for months, so it never holds the user's `client_ref`:
    /// with cookie storage that stays in memory, and each page passes it to `init()` again.
    pub fn take_identity_record(&mut self) -> Option<String> {
        let with_client_ref = self.config.storage != Storage::Cookie;
        std::mem::take(&mut self.identity_changed).then(|| self.identity.encode(with_client_ref))
    }

    /// The next batch to send, stamped with `sent_at` now, or `None` when nothing is queued
    /// or sending is not allowed (consent pending or refused).
    pub fn next_batch(&mut self) -> Option<Outgoing> {
        let max_bytes = self.config.max_bytes as usize - BATCH_OVERHEAD;
        self.take_batch(self.config.max_events as usize, max_bytes)
    }

    fn take_batch(&mut self, max_events: usize, max_bytes: usize) -> Option<Outgoing> {
        if self.consent() != Consent::Granted {
            return None;
        }
        let now = self.clock.now_ms();
        self.in_flight
            .take(&mut self.queue, now, max_events, max_bytes)
    }

    /// Everything queued, as batches of at most [`BEACON_BYTES`] for the page's last moments
    /// (`pagehide`, or the tab going to the background). Report each with
    /// [`Tracker::beaconed`].
    pub fn beacon_batches(&mut self) -> Vec<Outgoing> {
        let mut out = Vec::new();
        while let Some(b) = self.take_batch(MAX_EVENTS_PER_BATCH, BEACON_BYTES - BATCH_OVERHEAD) {
            out.push(b);
        }
        out
    }

    /// Whether the browser took a beacon. A beacon's answer is never seen, so a taken one is
    /// forgotten (ingest deduplicates by `event_id` if it also arrives some other way) and a
    /// refused one is queued again, without backing off.
    pub fn beaconed(&mut self, id: u32, taken: bool) {
        if self.in_flight.beaconed(id, taken, &mut self.queue) {
            self.queue_changed = true;
        }
    }

    /// Settles batch `id` by ingest's answer (and its `Retry-After`, in ms); returns what
    /// happened to it.
    pub fn settle(&mut self, id: u32, status: u16, retry_after_ms: Option<u64>) -> Delivery {
        let (delivery, settled) = self.in_flight.settle(
            id,
            status,
            retry_after_ms,
            &mut self.queue,
            &mut self.entropy,
        );
        self.queue_changed |= settled;
        delivery
    }

    /// How long to wait before the next send: the backoff after a failure, else the flush
    /// interval.
    pub fn next_send_in_ms(&self) -> u64 {
        self.in_flight
            .retry_in()
            .unwrap_or(u64::from(self.config.flush_interval_ms))
    }

    /// True while backing off after a failure: a full batch then waits for the retry timer
    /// instead of going out at once.
    pub fn backing_off(&self) -> bool {
        self.in_flight.retry_in().is_some()
    }

    /// Whether a full batch may go out at once.
    fn can_send_now(&self) -> bool {
        !self.backing_off() && self.consent() == Consent::Granted
    }
}

/// `what`, `n`, `unit`, ", over the limit of ", `limit`: without `core::fmt`.
fn over_limit(what: &str, n: usize, unit: &str, limit: usize) -> TrackError {
    let mut message = String::from(what);
    push_int(&mut message, n as i64);
    message.push_str(unit);
    message.push_str(", over the limit of ");
    push_int(&mut message, limit as i64);
    TrackError::Invalid(message)
}

fn random_bytes(entropy: &mut impl Entropy) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    bytes
}

fn new_id(entropy: &mut impl Entropy) -> String {
    uuid_v4(random_bytes(entropy))
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
        (
            Tracker::new(config, clock.clone(), Counter(0), None, false),
            clock,
        )
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
    fn a_cookie_never_holds_the_client_ref() {
        for (storage, kept) in [(Storage::LocalStorage, true), (Storage::Cookie, false)] {
            let mut config = test_config();
            config.storage = storage;
            config.client_ref = Some("user-42".into());
            let (mut t, _) = tracker(config);
            let record = t.take_identity_record().unwrap();
            assert_eq!(record.ends_with(" user-42"), kept, "{storage:?}: {record}");
            // The events still carry it: it is kept in memory.
            t.track(&EventInput {
                event_type: "page",
                action: "viewed",
                meta_json: None,
                entities: &[],
                timestamp: None,
            })
            .unwrap();
            let batch = t.next_batch().unwrap();
            let ids: Vec<_> = events_of(&batch)
                .into_iter()
                .map(|e| e.channel_meta.client_ref)
                .collect();
            assert_eq!(ids, [Some("user-42".to_owned())]);
        }
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
        // Version 7 ids: the time they were made, then random bits.
        for (e, ms) in events.iter().zip([T0, T0 + 10]) {
            assert_eq!(
                e.event_id,
                uuid_v7([0; 16], ms)[..15].to_owned() + &e.event_id[15..]
            );
            assert_eq!(&e.event_id[14..15], "7");
        }
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
            assert!(e.to_string().contains(field), "{e} does not name {field}");
        }
        let big = format!("{{\"note\":\"{}\"}}", "x".repeat(MAX_EVENT_BYTES));
        let input = EventInput {
            event_type: "a",
            action: "b",
            meta_json: Some(&big),
            entities: &[],
            timestamp: None,
        };
        assert!(t.track(&input).unwrap_err().to_string().contains("32768"));
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
            assert_eq!(
                t.settle(batch.id, status, None),
                expected,
                "status {status}"
            );
            assert_eq!(t.queue().len(), left);
            assert_eq!(t.pending(), left);
        }
        t.track(&input).unwrap();
        let batch = t.next_batch().unwrap();
        assert_eq!(t.settle(batch.id, 200, None), Delivery::Delivered);
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
            sizes.push(batch.count);
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
        assert_eq!(t.settle(batch.id, 429, Some(30_000)), Delivery::Retry);
        assert!(t.next_send_in_ms() >= 30_000, "Retry-After is a floor");
        assert_eq!(
            t.track(&input),
            Ok(false),
            "while backing off, full batches wait for the timer"
        );
        let batch = t.next_batch().unwrap();
        assert_eq!(t.settle(batch.id, 0, None), Delivery::Retry);
        assert!(
            t.next_send_in_ms() <= 2_000,
            "second failure: jittered under a 2 s ceiling"
        );
        let batch = t.next_batch().unwrap();
        assert_eq!(t.settle(batch.id, 200, None), Delivery::Delivered);
        assert_eq!(t.next_send_in_ms(), 1_000, "back to the flush interval");
        assert!(!t.backing_off());
    }

    fn plain() -> EventInput<'static> {
        EventInput {
            event_type: "page",
            action: "viewed",
            meta_json: None,
            entities: &[],
            timestamp: None,
        }
    }

    #[test]
    fn pending_consent_holds_events_in_memory_and_grant_sends_them_as_recorded() {
        let mut config = test_config();
        config.consent = Consent::Pending;
        let (mut t, clock) = tracker(config);
        assert_eq!(t.track(&plain()), Ok(false));
        assert_eq!(t.persists(), (false, false), "nothing on the device yet");
        assert!(t.next_batch().is_none(), "nothing sent while pending");
        clock.0.set(T0 + 60_000);
        assert_eq!(t.set_consent(Consent::Granted), 0);
        assert_eq!(t.persists(), (true, true));
        let batch = t.next_batch().unwrap();
        assert_eq!(
            events_of(&batch)[0].created_at,
            Timestamp(T0),
            "original time"
        );
    }

    #[test]
    fn denied_consent_and_do_not_track_record_nothing() {
        let (mut t, _) = tracker(test_config());
        t.track(&plain()).unwrap();
        t.track(&plain()).unwrap();
        assert_eq!(
            t.set_consent(Consent::Denied),
            2,
            "unsent events are discarded"
        );
        assert_eq!(t.track(&plain()), Err(TrackError::NotRecorded));
        let wrong = t.track(&EventInput {
            event_type: "Bad",
            ..plain()
        });
        assert!(
            wrong.unwrap_err().to_string().contains("eventType"),
            "a wrong call is still reported as wrong"
        );
        assert!(t.next_batch().is_none());
        assert_eq!(t.persists(), (false, false));
        assert_eq!(
            t.take_queue_record().as_deref(),
            Some(""),
            "stored queue emptied"
        );

        let clock = ManualClock::default();
        let mut dnt = Tracker::new(test_config(), clock, Counter(0), None, true);
        assert_eq!(dnt.set_consent(Consent::Granted), 0);
        assert_eq!(
            dnt.consent(),
            Consent::Denied,
            "Do Not Track wins over consent"
        );
        assert_eq!(dnt.track(&plain()), Err(TrackError::NotRecorded));
    }

    #[test]
    fn a_reload_keeps_visitor_and_live_session_and_the_queue_including_in_flight() {
        let (mut t, clock) = tracker(test_config());
        for _ in 0..3 {
            t.track(&plain()).unwrap();
        }
        let identity = t.take_identity_record().unwrap();
        assert!(t.take_identity_record().is_none(), "unchanged since");
        let sent = t.next_batch().unwrap();
        assert_eq!(sent.count, 3);
        let record = t.take_queue_record().unwrap();
        assert_eq!(decode_queue(&record).len(), 3, "in-flight events are kept");

        clock.0.set(T0 + 10 * 60_000);
        let mut reloaded = Tracker::new(
            test_config(),
            clock.clone(),
            Counter(50),
            Some(&identity),
            false,
        );
        assert_eq!(reloaded.session_id(), t.session_id());
        assert_eq!(reloaded.identity().visitor_id, t.identity().visitor_id);
        assert_eq!(reloaded.adopt(&record), 3);
        let batch = reloaded.next_batch().unwrap();
        let before: Vec<_> = events_of(&batch)
            .iter()
            .map(|e| e.event_id.clone())
            .collect();
        let after: Vec<_> = decode_queue(&record)
            .iter()
            .map(|l| {
                let raw: Box<serde_json::value::RawValue> = serde_json::from_str(l).unwrap();
                schema::Event::from_raw(&raw).unwrap().event_id
            })
            .collect();
        assert_eq!(before, after, "same events, same ids, same order");

        clock.0.set(T0 + 40 * 60_000);
        let late = Tracker::new(test_config(), clock, Counter(90), Some(&identity), false);
        assert!(
            late.session_expired(),
            "30 idle minutes end the stored session"
        );
        assert_eq!(late.identity().visitor_id, t.identity().visitor_id);
    }

    #[test]
    fn tabs_share_the_most_recent_session_and_reset_starts_over() {
        let (mut a, clock) = tracker(test_config());
        let mut b = Tracker::new(test_config(), clock.clone(), Counter(100), None, false);
        clock.0.set(T0 + 5_000);
        a.track(&plain()).unwrap();
        b.merge_identity(&a.identity().encode(true));
        assert_eq!(b.session_id(), a.session_id());
        assert_eq!(b.identity().visitor_id, a.identity().visitor_id);
        let older = b.identity().encode(true);
        a.merge_identity(&older);
        assert_eq!(a.session_id(), b.session_id(), "not older: unchanged");

        a.set_client_ref(Some("user-1".into())).unwrap();
        let (visitor, session) = (a.identity().visitor_id.clone(), a.session_id().to_owned());
        a.reset();
        assert_ne!(a.identity().visitor_id, visitor);
        assert_ne!(a.session_id(), session);
        assert_eq!(a.identity().client_ref, None);
    }

    #[test]
    fn beacons_take_everything_queued_in_chunks_and_refused_ones_come_back() {
        let (mut t, _) = tracker(test_config());
        let meta = format!("{{\"note\":\"{}\"}}", "x".repeat(20_000));
        let input = EventInput {
            meta_json: Some(&meta),
            ..plain()
        };
        for _ in 0..7 {
            t.track(&input).unwrap();
        }
        let in_flight = t.next_batch().unwrap();
        let beacons = t.beacon_batches();
        assert!(beacons.iter().all(|b| b.body.len() <= BEACON_BYTES));
        assert_eq!(
            beacons.iter().map(|b| b.count).sum::<usize>(),
            7 - in_flight.count
        );
        assert!(beacons.len() >= 2);
        t.beaconed(beacons[0].id, true);
        t.beaconed(beacons[1].id, false);
        assert_eq!(t.queue().len(), beacons[1].count, "refused beacon requeued");
        assert!(
            !t.backing_off(),
            "a refused beacon is no failure to back off from"
        );
        let record = t.take_queue_record().unwrap();
        assert_eq!(
            decode_queue(&record).len(),
            in_flight.count + beacons[1..].iter().map(|b| b.count).sum::<usize>(),
            "what a beacon took is no longer stored"
        );
    }

    #[test]
    fn an_iframe_takes_its_hosts_identity_and_refuses_a_malformed_one() {
        let (mut t, _) = tracker(test_config());
        t.adopt_host("host-visitor", "host-session", Some("user-9"))
            .unwrap();
        t.track(&plain()).unwrap();
        let event = &events_of(&t.next_batch().unwrap())[0];
        assert_eq!(event.channel_meta.session_id, "host-session");
        assert_eq!(event.channel_meta.client_ref.as_deref(), Some("user-9"));
        let e = t.adopt_host("v", "has space", None).unwrap_err();
        assert!(e.to_string().contains("sessionId"), "{e}");
        assert_eq!(t.session_id(), "host-session", "unchanged by a bad message");
    }
}
