//! `docs/datasets.md` §6.3 (the unit cases that need the whole engine, and the property
//! tests: order independence, idempotency, linearity, bounds).

use ingest::anonymise::pseudonym::{Kind, pseudonymise};
use ingest::anonymise::user_agent;
use ingest::datasets::{Engine, Input, Params};
use ingest::pipeline::Pipeline;
use ingest::replay::Answerer;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{HOUR, NOW_MS};
use crate::fixture;

fn input(id: &str, ts: i64, user: &str, event: &str) -> Input {
    let (event_type, action) = event.split_once('.').unwrap();
    Input::new(id, ts, user, &format!("{user}-s"), event_type, action)
}

fn engine_answer(engine: Engine, query: &str) -> Value {
    Answerer::new(engine, NOW_MS, str::to_owned)
        .answer(query)
        .unwrap()
}

#[test]
fn a_split_event_gives_each_entity_its_share() {
    let mut engine = Engine::new(Params::default());
    let mut e = input("e1", NOW_MS, "u1", "content.read");
    for t in ["AAPL", "MSFT", "TSLA", "NVDA"] {
        e = e.with_entity("ticker", t);
    }
    engine.ingest(&e, NOW_MS);
    for t in ["AAPL", "MSFT", "TSLA", "NVDA"] {
        assert_eq!(engine.preference_score("u1", "ticker", t, NOW_MS), 0.5);
    }
    let body = engine_answer(engine, "/v1/trending/entities?mode=popular");
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["popular_score"], 0.5, "{item}");
    }
}

#[test]
fn an_exposure_changes_no_personal_or_consensus_value() {
    let mut engine = Engine::new(Params::default());
    let meta = json!({"impression_id": "imp-x", "recommender": "r"});
    let e = input("e1", NOW_MS, "u1", "recommendation.viewed")
        .with_entity("ticker", "AAPL")
        .with_meta(meta.as_object().unwrap());
    engine.ingest(&e, NOW_MS);
    assert_eq!(engine.preference_score("u1", "ticker", "AAPL", NOW_MS), 0.0);
    let mut answerer = Answerer::new(engine, NOW_MS, str::to_owned);
    let body = answerer
        .answer("/v1/trending/entities?mode=popular")
        .unwrap();
    assert_eq!(body["items"], json!([]));
    let body = answerer.answer("/v1/engagement/summary").unwrap();
    assert_eq!(body["totals"]["impressions"], 1, "engagement does count it");
}

#[test]
fn the_24_hour_window_is_half_open() {
    for (age, counted) in [(24 * HOUR, 0), (24 * HOUR - 1_000, 1)] {
        let mut engine = Engine::new(Params::default());
        let e = input("e1", NOW_MS - age, "u1", "instrument.viewed").with_entity("ticker", "X");
        engine.ingest(&e, NOW_MS);
        let body = engine_answer(engine, "/v1/trending/entities?mode=popular");
        assert_eq!(body["items"][0]["unique_users_24h"], counted, "age {age}");
    }
}

#[test]
fn late_events_are_dropped_per_dataset_and_future_ones_refused() {
    let mut engine = Engine::new(Params::default());
    engine.ingest(
        &input("now", NOW_MS, "u1", "instrument.viewed").with_entity("ticker", "A"),
        NOW_MS,
    );
    // Two days late: too late for consensus (24 h), in time for personal (4 days).
    let late =
        input("late", NOW_MS - 48 * HOUR, "u1", "instrument.viewed").with_entity("ticker", "B");
    engine.ingest(&late, NOW_MS);
    assert_eq!(engine.counters.late_dropped_consensus, 1);
    assert_eq!(engine.counters.late_dropped_personal, 0);
    assert!(engine.preference_score("u1", "ticker", "B", NOW_MS) > 0.0);
    let future = input("future", NOW_MS + 6 * 60_000, "u1", "instrument.viewed");
    assert_eq!(
        engine.ingest(&future, NOW_MS),
        ingest::datasets::Outcome::Future
    );
    let unknown = input("odd", NOW_MS, "u1", "instrument.zoomed");
    engine.ingest(&unknown, NOW_MS);
    assert_eq!(engine.counters.unknown_actions, 1);
}

#[test]
fn engines_agree_on_which_of_two_events_of_one_millisecond_holds_a_slot() {
    // Two views by one user in one millisecond share a dedup slot of ticker A; one splits its
    // weight with B. Whichever holds the slot, every engine (each with its own hash seed, as
    // each replica has) must pick the same.
    let events = [
        input("tie-1", NOW_MS, "u1", "instrument.viewed").with_entity("ticker", "A"),
        input("tie-2", NOW_MS, "u1", "instrument.viewed")
            .with_entity("ticker", "A")
            .with_entity("ticker", "B"),
    ];
    let score = || {
        let mut engine = Engine::new(Params::default());
        for e in &events {
            engine.ingest(e, NOW_MS);
        }
        let body = engine_answer(engine, "/v1/trending/entities?mode=popular");
        body["items"][0]["popular_score"].clone()
    };
    let first = score();
    for _ in 0..20 {
        assert_eq!(score(), first);
    }
}

// ---- §6.3: property tests ----

/// The fixture's events as the engine sees them, pseudonymised under a fixed key.
pub(super) fn inputs(name: &str) -> Vec<Input> {
    let mut pipeline = Pipeline::new(&[9u8; 32], user_agent::reduce(""), NOW_MS);
    fixture(&format!("datasets/{name}"))
        .lines()
        .map(|line| {
            let raw: &serde_json::value::RawValue = serde_json::from_str(line).unwrap();
            let event = schema::Event::from_raw(raw).unwrap();
            pipeline.anonymise(event, None).input
        })
        .collect()
}

fn no_lateness() -> Params {
    let mut params = Params::default();
    params.lateness.enabled = false;
    params
}

const PROPERTY_QUERIES: [&str; 12] = [
    "/v1/users/u1/preferences/entities?include_negative=true",
    "/v1/users/u4/preferences/entities",
    "/v1/trending/entities?mode=trending",
    "/v1/trending/entities?mode=popular",
    "/v1/trending/content?mode=popular",
    "/v1/trending/searches?mode=trending",
    "/v1/trending/searches?mode=popular",
    "/v1/engagement/summary?group_by=recommender",
    "/v1/engagement/summary?group_by=item",
    "/v1/engagement/items?recommender=similar_stocks",
    "/v1/engagement/click-positions",
    "/v1/engagement/impressions/imp-5",
];

fn responses(events: &[Input], params: Params) -> Vec<Value> {
    let mut engine = Engine::new(params);
    for e in events {
        engine.ingest(e, NOW_MS);
    }
    answers(engine)
}

/// The property queries' answers from `engine`.
fn answers(engine: Engine) -> Vec<Value> {
    let key = [9u8; 32];
    let mut answerer = Answerer::new(engine, NOW_MS, move |c| {
        pseudonymise(&key, Kind::ClientRef, c)
    });
    PROPERTY_QUERIES
        .iter()
        .filter_map(|q| answerer.answer(q).ok())
        .collect()
}

/// Equal JSON, numbers within a relative 1e-9 (sums in another order round differently).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn both_fixtures() -> Vec<Input> {
    let mut all = inputs("fixture_a.jsonl");
    all.extend(inputs("fixture_b.jsonl"));
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_order_gives_the_same_responses(seed in any::<u64>()) {
        let events = both_fixtures();
        let mut shuffled = events.clone();
        shuffle(&mut shuffled, seed);
        let expected = responses(&events, no_lateness());
        let got = responses(&shuffled, no_lateness());
        prop_assert_eq!(expected.len(), PROPERTY_QUERIES.len());
        for (e, g) in expected.iter().zip(&got) {
            prop_assert!(same(e, g), "{} != {}", e, g);
        }
    }

    #[test]
    fn a_redelivered_event_changes_nothing(pick in any::<prop::sample::Index>()) {
        let events = both_fixtures();
        let mut again = events.clone();
        again.push(pick.get(&events).clone());
        prop_assert_eq!(responses(&events, Params::default()), responses(&again, Params::default()));
    }

    #[test]
    fn a_snapshot_taken_anywhere_gives_the_same_responses(split in any::<prop::sample::Index>()) {
        let events = both_fixtures();
        let before = &events[..split.index(events.len() + 1)];
        let mut engine = Engine::new(Params::default());
        for e in before {
            engine.ingest(e, NOW_MS);
        }
        let snapshot = engine.snapshot(7).unwrap();
        let (mut restored, through) = Engine::restore(Params::default(), &snapshot).unwrap();
        prop_assert_eq!(through, 7);
        // All of them again: those before the snapshot stay duplicates (the ids seen are in
        // it too), the rest apply.
        for e in &events {
            restored.ingest(e, NOW_MS);
        }
        let expected = responses(&events, Params::default());
        let got = answers(restored);
        prop_assert_eq!(got.len(), PROPERTY_QUERIES.len());
        for (e, g) in expected.iter().zip(&got) {
            prop_assert!(same(e, g), "{} != {}", e, g);
        }
    }

    #[test]
    fn scaling_every_weight_scales_scores_and_keeps_rankings(c in 0.1f64..10.0) {
        let events = both_fixtures();
        let mut scaled = Params::default();
        for (name, w) in Params::default_weights() {
            scaled.weights.insert(name.to_owned(), w * c);
        }
        let base = responses(&events, Params::default());
        let times = responses(&events, scaled);
        for (query, (b, t)) in PROPERTY_QUERIES.iter().zip(base.iter().zip(&times)) {
            if !(query.contains("preferences") || query.contains("entities?mode=popular")
                || query.contains("content")) {
                continue;
            }
            let (b, t) = (b["items"].as_array().unwrap(), t["items"].as_array().unwrap());
            prop_assert_eq!(b.len(), t.len(), "{}", query);
            for (x, y) in b.iter().zip(t) {
                prop_assert_eq!(&x["entity"], &y["entity"], "{}", query);
                prop_assert_eq!(&x["content_id"], &y["content_id"], "{}", query);
                for field in ["score", "hot_score", "popular_score"] {
                    if let (Some(x), Some(y)) = (x[field].as_f64(), y[field].as_f64()) {
                        prop_assert!((x * c - y).abs() <= 1e-9 * y.abs().max(1.0), "{} {}: {} × {} ≠ {}", query, field, x, c, y);
                    }
                }
            }
        }
    }

    #[test]
    fn engagement_rates_stay_within_bounds(events in prop::collection::vec(engagement_event(), 1..60)) {
        let mut engine = Engine::new(no_lateness());
        for e in &events {
            engine.ingest(e, NOW_MS + 48 * HOUR);
        }
        let mut answerer = Answerer::new(engine, NOW_MS + 48 * HOUR, str::to_owned);
        for query in ["/v1/engagement/summary?group_by=item", "/v1/engagement/summary?group_by=recommender"] {
            let body = answerer.answer(query).unwrap();
            let mut rows = body["rows"].as_array().unwrap().clone();
            rows.push(body["totals"].clone());
            for row in rows {
                let f = |k: &str| row[k].as_f64();
                for k in ["ctr", "cvr", "post_click_cvr", "list_ctr"] {
                    if let Some(v) = f(k) { prop_assert!((0.0..=1.0).contains(&v), "{} {}", k, row); }
                }
                prop_assert!(f("clicked_impressions").unwrap() <= f("impressions").unwrap());
                prop_assert!(f("converted_impressions").unwrap() <= f("impressions").unwrap());
                if let (Some(lb), Some(ctr)) = (f("ctr_lower_bound"), f("ctr")) {
                    prop_assert!(lb <= ctr + 1e-12, "{}", row);
                }
            }
        }
    }
}

fn engagement_event() -> impl Strategy<Value = Input> {
    (
        0u32..1_000_000,
        0i64..(40 * 60),
        0usize..3,
        0usize..6,
        prop::sample::select(vec![
            "recommendation.viewed",
            "recommendation.clicked",
            "watchlist.added",
            "trade.order_placed",
        ]),
        any::<bool>(),
        1u32..5,
    )
        .prop_map(|(id, minutes, user, imp, event, with_id, position)| {
            let users = ["v1", "v2", "v3"];
            let items = ["AAPL", "MSFT", "NVDA"];
            let mut meta = serde_json::Map::new();
            if with_id {
                meta.insert("impression_id".into(), json!(format!("imp-{imp}")));
                meta.insert("request_id".into(), json!(format!("r-{}", imp / 2)));
                meta.insert(
                    "recommender".into(),
                    json!(if imp % 2 == 0 { "a" } else { "b" }),
                );
                meta.insert("position".into(), json!(position));
            }
            input(
                &format!("g{id}"),
                NOW_MS + minutes * 60_000,
                users[user],
                event,
            )
            .with_entity("ticker", items[imp % 3])
            .with_meta(&meta)
        })
}

/// Fisher–Yates with a small deterministic generator, so a failing seed reproduces.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

#[test]
fn a_document_cuts_to_a_limit_and_reads_back_from_its_stored_form() {
    let mut engine = Engine::new(Params::default());
    for e in inputs("fixture_a.jsonl") {
        engine.ingest(&e, NOW_MS);
    }
    let docs = engine.materialise(NOW_MS, NOW_MS);
    let doc = docs
        .iter()
        .find(|d| d.key == "entities/popular/ticker")
        .unwrap();
    let full: Value = serde_json::from_str(&doc.body).unwrap();
    assert_eq!(full["items"].as_array().unwrap().len(), 4);
    for limit in 0..6 {
        let cut: Value = serde_json::from_str(&doc.cut(limit)).unwrap();
        let items = cut["items"].as_array().unwrap();
        assert_eq!(items.len(), limit.min(4));
        assert_eq!(items[..], full["items"].as_array().unwrap()[..limit.min(4)]);
        assert_eq!(cut["params"], full["params"]);
    }
    let stored = ingest::datasets::Document::parse(&doc.key, &doc.body, &doc.etag).unwrap();
    assert_eq!(stored.body, doc.body);
    assert_eq!(stored.cut(2), doc.cut(2));
    assert_eq!(stored.as_of, NOW_MS);
}

#[test]
fn pruning_forgets_only_what_no_answer_reads() {
    let mut events = inputs("fixture_a.jsonl");
    events.extend(inputs("fixture_b.jsonl"));
    events.sort_by_key(|e| e.ts);
    let mut engine = Engine::new(Params::default());
    for e in &events {
        engine.ingest(e, NOW_MS);
    }
    // Ten days on, one more event moves the watermark past every lateness limit.
    let later = NOW_MS + 240 * HOUR;
    engine.ingest(
        &Input::new("late", later, "u9", "u9-s", "instrument", "viewed")
            .with_entity("ticker", "ZZ"),
        later,
    );
    let key = [9u8; 32];
    let queries = [
        "/v1/users/u1/preferences/entities",
        "/v1/users/u4/preferences/entities",
        "/v1/trending/entities?mode=popular",
        "/v1/trending/searches?mode=popular",
        "/v1/engagement/summary?from=2025-01-06&to=2025-01-06",
    ];
    let answers = |engine: Engine| {
        let mut a = Answerer::new(engine, later, move |c| {
            pseudonymise(&key, Kind::ClientRef, c)
        });
        let bodies: Vec<Value> = queries.iter().map(|q| a.answer(q).unwrap()).collect();
        (bodies, a)
    };
    let (before, answerer) = answers(engine);
    let mut engine = answerer.into_engine();
    let ids_before = engine.sizes()["event_ids"];
    engine.prune();
    assert!(
        engine.sizes()["event_ids"] < ids_before,
        "{:?}",
        engine.sizes()
    );
    let (after, _) = answers(engine);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
}

#[test]
fn a_million_random_entity_types_and_ids_keep_the_engine_and_its_documents_bounded() {
    let mut params = Params::default();
    params.consensus.max_entity_keys = 1_000;
    params.consensus.max_content_keys = 1_000;
    let mut engine = Engine::new(params.clone());
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..1_000_000_u64 {
        // An hour of events, from a few hundred users, naming ids never seen before (as a
        // hostile page can): half of a type never seen before, half of forty types.
        let ts = NOW_MS - HOUR + (i as i64 * HOUR) / 1_000_000;
        let user = format!("u{}", random() % 300);
        let kind = match i % 2 {
            0 => format!("type-{:x}", random()),
            _ => format!("type-{}", random() % 40),
        };
        let mut e = input(&format!("e{i}"), ts, &user, "instrument.viewed")
            .with_entity(&kind, &format!("{:x}", random()));
        e.content_id = Some(format!("c-{:x}", random()));
        engine.ingest(&e, NOW_MS);
    }
    let sizes = engine.sizes();
    let c = &params.consensus;
    assert_eq!(sizes["entity_types"], c.max_entity_types, "{sizes:?}");
    // The first 32 types seen are kept, about half of them from the forty: those fill up
    // to their cap, and stay within it.
    let most = c.max_entity_types * c.max_entity_keys;
    assert!(
        sizes["entities"] <= most && sizes["entities"] > 8 * c.max_entity_keys,
        "{sizes:?}"
    );
    // A dedup slot lives with its key: evicted keys take theirs along.
    let keys = sizes["entities"] + sizes["content"] + sizes["searches"];
    assert!(sizes["dedup_slots"] <= keys, "{sizes:?}");
    assert!(engine.counters.entity_types_refused > 500_000);
    assert!(sizes["content"] <= c.max_content_keys, "{sizes:?}");
    // Two lists per type, and content's and searches' two each.
    let documents = engine.materialise(NOW_MS, NOW_MS);
    assert_eq!(documents.len(), 2 * c.max_entity_types + 4);

    // Once nothing of a type is left (its sums decayed away), the type frees its place.
    let quarter_later = NOW_MS + 90 * 24 * HOUR;
    let e = input("late", quarter_later, "u1", "instrument.viewed").with_entity("ticker", "AAPL");
    engine.ingest(&e, quarter_later);
    engine.prune();
    assert_eq!(engine.sizes()["entity_types"], 0, "{:?}", engine.sizes());
    let e = input("later", quarter_later, "u2", "instrument.viewed").with_entity("ticker", "AAPL");
    engine.ingest(&e, quarter_later);
    assert_eq!(engine.sizes()["entity_types"], 1, "{:?}", engine.sizes());
}

#[test]
fn an_allowlist_keeps_the_entity_types_it_names() {
    let mut params = Params::default();
    params.consensus.entity_types = vec!["ticker".into()];
    let mut engine = Engine::new(params);
    for (i, kind) in ["ticker", "sector", "ticker"].iter().enumerate() {
        let e = input(
            &format!("e{i}"),
            NOW_MS,
            &format!("u{i}"),
            "instrument.viewed",
        )
        .with_entity(kind, "X");
        engine.ingest(&e, NOW_MS);
    }
    assert_eq!(engine.sizes()["entity_types"], 1);
    assert_eq!(engine.counters.entity_types_refused, 1);
}
