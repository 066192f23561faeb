//! The datasets engine, as `docs/datasets.md` defines it (its worked numbers are tested on
//! the fixtures in `schema/fixtures/datasets/`): trending and popular entities, content and
//! searches; per-user entity preferences; recommendation engagement; and the recommender
//! that closes the loop.
//!
//! Pure: no I/O, no clock of its own (every call takes the time), so the same code serves
//! live ingest, `ingest replay` and the tests. Each event costs O(1) amortised; consensus
//! lists are materialised into JSON documents ([`Engine::materialise`]) that the query API
//! serves verbatim, while personal and engagement answers are computed on read from bounded
//! state.
//!
//! ```
//! use ingest::datasets::{Engine, Input, Params};
//! let mut engine = Engine::new(Params::default());
//! let t = 1_736_164_800_000; // 2025-01-06T12:00:00Z
//! let event = Input::new("e1", t, "u1", "s1", "instrument", "viewed")
//!     .with_entity("ticker", "aapl");
//! engine.ingest(&event, t);
//! assert_eq!(engine.preference_score("u1", "ticker", "AAPL", t), 1.0);
//! ```
//!
//! Layout: `params` (defaults, weight table, `datasets.toml`), `decay` (order-independent
//! decayed sums), `trending`, `preferences`, `engagement`, `recommend`, `query` (parsing
//! and answering the API's requests).

mod decay;
mod engagement;
mod params;
mod preferences;
mod query;
mod recommend;
mod snapshot;
mod trending;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};

use schema::Timestamp;
use serde_json::{Map, Value, json};

pub use engagement::{Feedback, ITEM_SORTS, wilson};
pub use params::{Params, ParamsError};
pub use query::{
    AS_OF, Endpoint, Parameter, Query, QueryError, ROUTES, Route, Shape, Target, User,
    feedback_page, percent_decode,
};
pub use snapshot::SnapshotError;
pub use trending::{Mode, normalise_query};

use params::{DAY_MS, HOUR_MS};

/// An entity key: ids of tickers are upper-cased, as `docs/datasets.md` §1 keys them.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct EntityKey {
    pub kind: String,
    pub id: String,
}

impl EntityKey {
    pub fn new(kind: &str, id: &str) -> EntityKey {
        let id = if kind == "ticker" {
            id.to_uppercase()
        } else {
            id.to_owned()
        };
        EntityKey {
            kind: kind.to_owned(),
            id,
        }
    }

    fn to_json(&self) -> Value {
        json!({"type": self.kind, "id": self.id})
    }
}

/// What the engine sees of an event once it is valid and anonymised (`docs/datasets.md` §1).
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub event_id: String,
    /// Event time (ms), corrected for device clock skew.
    pub ts: i64,
    /// Pseudonym of `client_ref`, or of the session for anonymous events.
    pub user_id: String,
    pub session_id: String,
    pub event_type: String,
    pub action: String,
    pub entities: Vec<EntityKey>,
    pub content_id: Option<String>,
    /// `impression_id`, or `fxcid` for content.
    pub impression_id: Option<String>,
    pub request_id: Option<String>,
    pub recommender: Option<String>,
    pub surface: Option<String>,
    pub position: Option<u32>,
    pub query: Option<String>,
}

impl Input {
    pub fn new(
        event_id: &str,
        ts: i64,
        user_id: &str,
        session_id: &str,
        event_type: &str,
        action: &str,
    ) -> Input {
        Input {
            event_id: event_id.to_owned(),
            ts,
            user_id: user_id.to_owned(),
            session_id: session_id.to_owned(),
            event_type: event_type.to_owned(),
            action: action.to_owned(),
            entities: Vec::new(),
            content_id: None,
            impression_id: None,
            request_id: None,
            recommender: None,
            surface: None,
            position: None,
            query: None,
        }
    }

    pub fn with_entity(mut self, kind: &str, id: &str) -> Input {
        self.entities.push(EntityKey::new(kind, id));
        self
    }

    /// Takes the fields the datasets read from an (anonymised) `event_meta`.
    pub fn with_meta(mut self, meta: &Map<String, Value>) -> Input {
        let text = |key: &str| match meta.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        self.content_id = text("content_id");
        self.impression_id = text("impression_id").or_else(|| text("fxcid"));
        self.request_id = text("request_id");
        self.recommender = text("recommender");
        self.surface = text("surface");
        self.query = match meta.get("query") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        self.position = meta
            .get("position")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p >= 1);
        self
    }

    /// The item an impression shows: its content, else its first entity.
    fn item(&self) -> Option<String> {
        self.content_id
            .clone()
            .or_else(|| self.entities.first().map(|e| e.id.clone()))
    }
}

/// Which datasets an admitted event is too late for (past the lateness limits behind the
/// watermark).
#[derive(Debug, Clone, Copy)]
struct Late {
    personal: bool,
    consensus: bool,
}

/// An event's weight and the datasets it feeds.
#[derive(Debug, Clone, Copy)]
struct Weighed {
    weight: f64,
    feeds: params::Feeds,
    /// A recommended item viewed.
    exposure: bool,
}

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    /// More than the allowed skew ahead of the clock.
    Future,
}

/// Counters the service exposes in `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub applied: u64,
    pub duplicates: u64,
    pub future_rejected: u64,
    pub unknown_actions: u64,
    pub late_dropped_personal: u64,
    pub late_dropped_consensus: u64,
    pub late_dropped_engagement: u64,
    pub search_dropped: u64,
    /// Contributions to the entity lists of a type past `consensus.max_entity_types` (or
    /// outside `consensus.entity_types`).
    pub entity_types_refused: u64,
}

impl std::ops::AddAssign<&Counters> for Counters {
    fn add_assign(&mut self, o: &Counters) {
        let Counters {
            applied,
            duplicates,
            future_rejected,
            unknown_actions,
            late_dropped_personal,
            late_dropped_consensus,
            late_dropped_engagement,
            search_dropped,
            entity_types_refused,
        } = o;
        self.applied += applied;
        self.duplicates += duplicates;
        self.future_rejected += future_rejected;
        self.unknown_actions += unknown_actions;
        self.late_dropped_personal += late_dropped_personal;
        self.late_dropped_consensus += late_dropped_consensus;
        self.late_dropped_engagement += late_dropped_engagement;
        self.search_dropped += search_dropped;
        self.entity_types_refused += entity_types_refused;
    }
}

/// A materialised response: `key` is `"{dataset}/{mode}/{entity_type}"`. The body is JSON
/// with `items` last, and the item boundaries are kept, so a shorter `limit` is a slice of
/// the body rather than a parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub key: String,
    pub body: String,
    pub as_of: i64,
    pub etag: String,
    /// Offset just after `"items":[`, and the end offset of each item.
    items_start: usize,
    item_ends: Vec<usize>,
}

impl Document {
    fn build(key: String, head: &Value, items: &[Value], as_of: i64) -> Document {
        let head = head.to_string();
        let mut body = String::with_capacity(head.len() + items.len() * 320);
        body.push_str(head.strip_suffix('}').unwrap_or("{"));
        if body.len() > 1 {
            body.push(',');
        }
        body.push_str("\"items\":[");
        let items_start = body.len();
        let mut item_ends = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&item.to_string());
            item_ends.push(body.len());
        }
        body.push_str("]}");
        let etag = etag(&body);
        Document {
            key,
            body,
            as_of,
            etag,
            items_start,
            item_ends,
        }
    }

    /// A document read back from the store, with its stored ETag.
    pub fn parse(key: &str, body: &str, etag: &str) -> Option<Document> {
        let mut value: Value = serde_json::from_str(body).ok()?;
        let items = match value.as_object_mut()?.remove("items")? {
            Value::Array(items) => items,
            _ => return None,
        };
        let as_of = value
            .get("as_of")
            .and_then(Value::as_str)
            .and_then(|t| Timestamp::parse(t).ok())
            .map_or(0, |t| t.0);
        let mut doc = Document::build(key.to_owned(), &value, &items, as_of);
        doc.etag = etag.to_owned();
        Some(doc)
    }

    /// The body with at most `limit` items.
    pub fn cut(&self, limit: usize) -> std::borrow::Cow<'_, str> {
        if limit >= self.item_ends.len() {
            return self.body.as_str().into();
        }
        let end = match limit {
            0 => self.items_start,
            n => self.item_ends[n - 1],
        };
        format!("{}]}}", &self.body[..end]).into()
    }
}

/// `x` rounded to 12 significant digits, for ranking: sums of the same contributions taken
/// in another order differ in the last bits, and must still tie (then the id decides).
pub(crate) fn ordinal(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(11 - x.abs().log10().floor() as i32);
    if !scale.is_finite() || scale == 0.0 {
        return x;
    }
    (x * scale).round() / scale
}

/// The engine's hash maps: foldhash, fast on short keys, seeded at random per map so that
/// keys taken from events (ids, queries) cannot be chosen to collide.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

/// A seed of foldhash's own random state (random per map, as the engine's maps are): the
/// seed guards against chosen collisions, it keeps nothing secret, and the engine reads no
/// random source or clock itself.
fn random_seed() -> u64 {
    foldhash::fast::RandomState::default().hash_one(0u8)
}

/// A document's ETag: SipHash with fixed keys, so it is the same after a restart.
fn etag(body: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

/// Event ids seen recently, by day of event time, so duplicates are no-ops.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Seen {
    ids: FastSet<u64>,
    by_day: BTreeMap<i64, Vec<u64>>,
}

/// The engine of one tenant. Its state is what a snapshot holds (see [`Engine::snapshot`]);
/// the parameters come from the configuration, and the ranked lists from the next
/// materialisation.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Engine {
    #[serde(skip)]
    params: Params,
    /// Seeds the 64-bit keys of users, event ids and dedup slots ([`Engine::key`]): random
    /// per engine, so that they cannot be chosen to collide, and kept in its snapshots, so
    /// that the keys stored there still find their users when loaded.
    seed: u64,
    /// `None` when every event arrives once: the live service's log deduplicates by id.
    seen: Option<Seen>,
    watermark: Option<i64>,
    /// The watermark at the last prune.
    pruned_at: Option<i64>,
    entities: BTreeMap<String, trending::Trends>,
    content: trending::Trends,
    searches: trending::Trends,
    preferences: preferences::Preferences,
    engagement: engagement::Engagement,
    /// The ranked lists and item quality of the last materialisation, for recommendations.
    #[serde(skip)]
    ranked: FastMap<String, Vec<(String, f64)>>,
    #[serde(skip)]
    quality: FastMap<String, f64>,
    pub counters: Counters,
}

impl Engine {
    /// An engine that applies an event id once, whatever is fed to it (replays of files).
    pub fn new(params: Params) -> Engine {
        Engine {
            params,
            seed: random_seed(),
            seen: Some(Seen::default()),
            watermark: None,
            pruned_at: None,
            entities: BTreeMap::new(),
            content: trending::Trends::default(),
            searches: trending::Trends::default(),
            preferences: preferences::Preferences::default(),
            engagement: engagement::Engagement::default(),
            ranked: FastMap::default(),
            quality: FastMap::default(),
            counters: Counters::default(),
        }
    }

    /// An engine fed each event once, by a log that deduplicates by id (the store's unique
    /// `(tenant, event_id)`): it keeps no ids, so its memory follows its keys (users,
    /// entities, content, queries, impressions), not the number of events in the lateness
    /// window.
    pub fn for_deduplicated_log(params: Params) -> Engine {
        Engine {
            seen: None,
            ..Engine::new(params)
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The 64-bit key of a user, an event id or a dedup slot in this engine.
    fn key(&self, value: impl Hash) -> u64 {
        foldhash::fast::FixedState::with_seed(self.seed).hash_one(value)
    }

    /// Applies one event at clock time `now`: admitted (not from the future, not seen
    /// before), weighed, then fed to the personal datasets (preferences, engagement) and the
    /// consensus lists, each unless the event is too late for it.
    pub fn ingest(&mut self, input: &Input, now: i64) -> Outcome {
        let late = match self.admit(input, now) {
            Ok(late) => late,
            Err(refused) => return refused,
        };
        let user = self.key(&input.user_id);
        let weighed = self.weigh(input);
        if late.personal {
            self.counters.late_dropped_personal += 1;
            self.counters.late_dropped_engagement += 1;
        } else {
            self.personal(input, user, weighed);
        }
        if late.consensus {
            self.counters.late_dropped_consensus += 1;
        } else {
            self.consensus(input, user, weighed);
        }
        Outcome::Applied
    }

    /// Refuses an event from the future or seen before; otherwise counts it, moves the
    /// watermark, and says which datasets it is too late for.
    fn admit(&mut self, input: &Input, now: i64) -> Result<Late, Outcome> {
        let lateness = &self.params.lateness;
        if input.ts > now + (lateness.future_minutes * 60_000.0) as i64 {
            self.counters.future_rejected += 1;
            return Err(Outcome::Future);
        }
        let key = self.key(&input.event_id);
        if let Some(seen) = &mut self.seen {
            if !seen.ids.insert(key) {
                self.counters.duplicates += 1;
                return Err(Outcome::Duplicate);
            }
            seen.by_day
                .entry(input.ts.div_euclid(DAY_MS))
                .or_default()
                .push(key);
        }
        self.counters.applied += 1;
        let behind = self.watermark.map_or(0, |w| w - input.ts);
        let late = |hours: f64| lateness.enabled && behind > Params::hours(hours);
        let late = Late {
            personal: late(lateness.personal_hours),
            consensus: late(lateness.consensus_hours),
        };
        self.watermark = Some(self.watermark.map_or(input.ts, |w| w.max(input.ts)));
        Ok(late)
    }

    /// The event's weight and the datasets it feeds, by the weight table. An exposure (a
    /// recommended item viewed) weighs nothing: it is engagement's denominator.
    fn weigh(&mut self, input: &Input) -> Weighed {
        let exposure = input.action == "viewed" && input.impression_id.is_some();
        let (weight, feeds) = match params::lookup(&self.params, &input.event_type, &input.action) {
            Some(found) => found,
            None => {
                if !exposure {
                    self.counters.unknown_actions += 1;
                }
                (0.0, params::Feeds::default())
            }
        };
        Weighed {
            weight: if exposure { 0.0 } else { weight },
            feeds,
            exposure,
        }
    }

    /// The user's preferences (the weight shared among the event's entities) and engagement.
    fn personal(&mut self, input: &Input, user: u64, w: Weighed) {
        let p = &self.params;
        let touches = w.feeds.personal && (w.weight != 0.0 || w.feeds.watchlist.is_some());
        if touches && !w.exposure {
            let n = input.entities.len().max(1) as f64;
            for entity in &input.entities {
                self.preferences.add(
                    preferences::Touch {
                        user,
                        entity,
                        weight: w.weight / n,
                        t: input.ts,
                        watchlist: w.feeds.watchlist,
                    },
                    p,
                );
            }
        }
        self.engagement.observe(input, user, p);
    }

    /// The consensus lists: trending entities (of tracked kinds), content and searches.
    fn consensus(&mut self, input: &Input, user: u64, w: Weighed) {
        let p = &self.params;
        let bucket = input
            .ts
            .div_euclid(Params::hours(p.consensus.dedup_bucket_hours));
        // At most one contribution per (user, key, event_type, action, bucket): the latest
        // event's, whatever the arrival order, so a later event replaces an earlier one. The
        // slots live with their key, so a key evicted by its cap takes its slots along.
        let slot = self.key((bucket, user, &input.event_type, &input.action));
        // Ties within a millisecond go by a hash of the id that every engine computes
        // alike, so that engines fed the same events agree whatever their seeds.
        let id = foldhash::fast::FixedState::with_seed(0).hash_one(&input.event_id);
        let shares = input.entities.len().max(1);
        let contribution = |weight: f64, shares: usize| trending::Contribution {
            slot,
            t: input.ts,
            id,
            weight,
            shares: u32::try_from(shares).unwrap_or(u32::MAX),
            user,
        };
        let c = w.weight.max(0.0);
        let consensus = &p.consensus;
        if c > 0.0 && w.feeds.entities {
            for e in &input.entities {
                let tracked = if consensus.entity_types.is_empty() {
                    self.entities.contains_key(&e.kind)
                        || self.entities.len() < consensus.max_entity_types
                } else {
                    consensus.entity_types.contains(&e.kind)
                };
                if !tracked {
                    self.counters.entity_types_refused += 1;
                    continue;
                }
                let cap = consensus.max_entity_keys;
                let trends = self.entities.entry(e.kind.clone()).or_default();
                trends.contribute(&e.id, contribution(c, shares), p, cap);
            }
        }
        if let Some(content) = input.content_id.as_deref()
            && c > 0.0
        {
            let cap = consensus.max_content_keys;
            self.content.contribute(content, contribution(c, 1), p, cap);
        }
        if w.feeds.searches {
            match input
                .query
                .as_deref()
                .and_then(|q| normalise_query(q, p.search.max_len))
            {
                Some(q) => {
                    let cap = consensus.max_search_keys;
                    self.searches.contribute(&q, contribution(1.0, 1), p, cap);
                }
                None => self.counters.search_dropped += 1,
            }
        }
    }

    /// Forgets what can no longer change any answer: event ids and dedup buckets older than
    /// the lateness limits allow, users outside the popular window, decayed preferences,
    /// impressions past retention. Driven by the watermark, never by a query's `as_of`.
    /// Runs at most once per hour of event time: what it removes is days old.
    pub fn prune(&mut self) {
        let Some(w) = self.watermark else { return };
        let p = &self.params;
        if !p.lateness.enabled || self.pruned_at.is_some_and(|t| w - t < HOUR_MS) {
            return;
        }
        self.pruned_at = Some(w);
        let personal = w - Params::hours(p.lateness.personal_hours);
        let consensus = w - Params::hours(p.lateness.consensus_hours);
        let keep_from = personal.div_euclid(DAY_MS);
        if let Some(seen) = &mut self.seen {
            while let Some(entry) = seen.by_day.first_entry() {
                if *entry.key() >= keep_from {
                    break;
                }
                for id in entry.remove() {
                    seen.ids.remove(&id);
                }
            }
        }
        let bucket_ms = Params::hours(p.consensus.dedup_bucket_hours);
        let slots_from = consensus.div_euclid(bucket_ms) * bucket_ms;
        let slow_h = Params::hours(p.consensus.half_life_slow_hours);
        let horizon = consensus - 7 * DAY_MS;
        let prune = |trends: &mut trending::Trends| trends.prune(horizon, w, slow_h, slots_from);
        self.entities.values_mut().for_each(prune);
        // A type nothing is left of frees its place (and its lists).
        self.entities.retain(|_, trends| trends.len() > 0);
        prune(&mut self.content);
        prune(&mut self.searches);
        self.preferences.prune(w, p);
        let retention = w - i64::from(p.engagement.retention_days) * DAY_MS;
        let settled = personal - Params::hours(p.engagement.conversion_window_hours) - HOUR_MS;
        // Daily counters per recommender and surface are small: keep a year of them.
        self.engagement.prune(retention, settled, 365);
    }

    /// Removes what the engine holds of these users (every pseudonym a user had).
    pub fn erase_users(&mut self, user_ids: &[String]) {
        let users: Vec<u64> = user_ids.iter().map(|u| self.key(u.as_str())).collect();
        for user in users {
            self.preferences.remove_user(user);
            self.engagement.remove_user(user);
            for trends in self.entities.values_mut() {
                trends.remove_user(user);
            }
            self.content.remove_user(user);
            self.searches.remove_user(user);
        }
    }

    /// One user's preference for one entity at `as_of` (0 when none).
    pub fn preference_score(&self, user_id: &str, kind: &str, id: &str, as_of: i64) -> f64 {
        let key = EntityKey::new(kind, id);
        self.preferences
            .top(self.key(user_id), as_of, &self.params)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map_or(0.0, |(_, s)| s)
    }

    /// Sizes of the state, for the benchmark and `/metrics`.
    pub fn sizes(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("entity_types", self.entities.len()),
            ("entities", self.entities.values().map(|t| t.len()).sum()),
            (
                "dedup_slots",
                self.entities.values().map(|t| t.slots()).sum::<usize>()
                    + self.content.slots()
                    + self.searches.slots(),
            ),
            ("content", self.content.len()),
            ("searches", self.searches.len()),
            ("users_with_preferences", self.preferences.users()),
            ("preferences", self.preferences.entries()),
            (
                "consensus_users",
                self.entities
                    .values()
                    .chain([&self.content, &self.searches])
                    .map(|t| t.user_entries())
                    .sum(),
            ),
            ("impressions", self.engagement.len()),
            ("event_ids", self.seen.as_ref().map_or(0, |s| s.ids.len())),
        ])
    }

    /// Computes every consensus list at `as_of` as the API will serve it (the entity types
    /// seen, content, searches; trending and popular), and refreshes what recommendations
    /// read. `now` is the generation time written into each document.
    pub fn materialise(&mut self, as_of: i64, now: i64) -> Vec<Document> {
        let p = &self.params;
        let c = &p.consensus;
        let mut docs = Vec::new();
        let mut ranked = FastMap::default();
        let datasets: Vec<(&str, &str, &trending::Trends, [usize; 2])> = self
            .entities
            .iter()
            .map(|(kind, t)| {
                (
                    "entities",
                    kind.as_str(),
                    t,
                    [c.min_users_trending, c.min_users_popular_entities],
                )
            })
            .chain([
                (
                    "content",
                    "all",
                    &self.content,
                    [c.min_users_trending, c.min_users_popular_content],
                ),
                (
                    "searches",
                    "all",
                    &self.searches,
                    [c.min_users_trending, c.min_users_popular_searches],
                ),
            ])
            .collect();
        for (dataset, kind, trends, min_users) in datasets {
            for (mode, min) in [Mode::Trending, Mode::Popular].into_iter().zip(min_users) {
                let list = trending::rank(trends.stats(as_of, p), mode, min, as_of, p);
                let key = format!("{dataset}/{}/{kind}", mode.name());
                let items: Vec<Value> = list
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let subject = match dataset {
                            "entities" => ("entity", json!({"type": kind, "id": s.key})),
                            "content" => ("content_id", json!(s.key)),
                            _ => ("query", json!(s.key)),
                        };
                        trending::item(i + 1, s, subject)
                    })
                    .collect();
                ranked.insert(
                    key.clone(),
                    list.iter()
                        .map(|s| {
                            let score = if mode == Mode::Trending { s.z } else { s.slow };
                            (s.key.to_owned(), score)
                        })
                        .collect(),
                );
                let head = self.list_head(dataset, mode, min, as_of, now);
                docs.push(Document::build(key, &head, &items, as_of));
            }
        }
        self.ranked = ranked;
        self.quality = self.engagement.item_quality(p);
        docs
    }

    /// An empty list, for an entity type nothing has been seen of yet.
    pub fn empty_list(&self, key: &str, as_of: i64, now: i64) -> Option<Document> {
        let mut parts = key.split('/');
        let dataset = parts.next()?;
        let mode = Mode::parse(parts.next()?)?;
        let c = &self.params.consensus;
        let min = match (mode, dataset) {
            (Mode::Trending, _) => c.min_users_trending,
            (Mode::Popular, "entities") => c.min_users_popular_entities,
            (Mode::Popular, "content") => c.min_users_popular_content,
            (Mode::Popular, _) => c.min_users_popular_searches,
        };
        let head = self.list_head(dataset, mode, min, as_of, now);
        Some(Document::build(key.to_owned(), &head, &[], as_of))
    }

    /// A list's response without its items.
    fn list_head(
        &self,
        dataset: &str,
        mode: Mode,
        min_users: usize,
        as_of: i64,
        now: i64,
    ) -> Value {
        let c = &self.params.consensus;
        json!({
            "dataset": dataset,
            "mode": mode.name(),
            "as_of": Timestamp(as_of),
            "generated_at": Timestamp(now),
            "params": {
                "half_life_fast_h": c.half_life_fast_hours,
                "half_life_slow_h": c.half_life_slow_hours,
                "r0": c.rate_prior_r0,
                "z_min": c.z_min,
                "min_users": min_users,
            },
        })
    }

    /// Feedback records due at `as_of` (see [`engagement`]).
    pub fn finalise(&mut self, as_of: i64) -> Vec<Feedback> {
        let params = &self.params;
        self.engagement.finalise(as_of, params)
    }

    /// Tells the engine which labels were exported already, by an earlier run:
    /// `(impression_id, clicked, converted)`. Those impressions are offered again only once
    /// their labels change.
    pub fn exported(&mut self, labels: impl IntoIterator<Item = (String, bool, bool)>) {
        self.engagement.exported(labels);
    }

    /// Offers these impressions' feedback again at the next [`Engine::finalise`]: the
    /// records it returned were not stored.
    pub fn offer_again<'a>(&mut self, impression_ids: impl IntoIterator<Item = &'a str>) {
        self.engagement.offer_again(impression_ids);
    }
}
