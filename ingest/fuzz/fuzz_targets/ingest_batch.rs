//! Everything ingest does to a request body: parse the batch, validate each event, anonymise
//! it (pseudonyms, URL stripping, PII scrubbing) or keep it as a failed event, then feed it to
//! the datasets engine, re-read it from its stored form, and answer the query API from it.
//! Nothing may panic, and every valid event must survive a round trip through its own JSON.
#![no_main]

use ingest::anonymise::pseudonym::Pseudonymiser;
use ingest::anonymise::{anonymise, anonymise_failed, pii, user_agent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = [7u8; 32];
    let mut pseudonyms = Pseudonymiser::new(&key);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pii::scrub(text);
        let _ = user_agent::reduce(text);
        let _ = ingest::anonymise::url::strip(text);
    }
    let Ok(batch) = schema::parse_batch(data) else { return };
    let now = 1_795_874_400_000;
    let mut engine = ingest::datasets::Engine::new(ingest::datasets::Params::default());
    let _ = batch.client_key();
    for raw in &batch.events {
        match schema::Event::from_raw(raw) {
            Ok(event) => {
                let again = schema::Event::from_value(serde_json::to_value(&event).unwrap()).unwrap();
                assert_eq!(again, event);
                let agent = user_agent::reduce("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0");
                let (stored, input) = anonymise(&mut pseudonyms, event, agent, batch.sent_at, now);
                // The engine is rebuilt from the log after a restart: it must read back the same.
                let payload = ingest::store::Payload::parse(&stored.payload).unwrap();
                assert_eq!(payload.input(), input);
                engine.ingest(&input, now);
            }
            Err(_) => {
                serde_json::from_str::<serde_json::Value>(&anonymise_failed(&mut pseudonyms, raw)).unwrap();
            }
        }
    }
    engine.prune();
    let mut answerer = ingest::replay::Answerer::new(engine, now, str::to_owned);
    for query in [
        "/v1/trending/entities?mode=trending",
        "/v1/trending/content?mode=popular",
        "/v1/trending/searches?mode=popular",
        "/v1/engagement/summary?group_by=item",
        "/v1/engagement/feedback",
        "/v1/recommendations?user=u1",
    ] {
        answerer.answer(query).unwrap();
    }
});
