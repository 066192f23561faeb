//! Everything ingest does to a request body: parse the batch, then the pipeline — validate each
//! event, anonymise it (pseudonyms, URL stripping, PII scrubbing) or keep it as a failed event —
//! then feed it to the datasets engine, re-read it from its stored form, and answer the query
//! API from it. Nothing may panic, and every valid event must survive a round trip through its
//! own JSON.
#![no_main]

use ingest::anonymise::{pii, user_agent};
use ingest::pipeline::{Pipeline, Processed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = pii::scrub(text);
        let _ = user_agent::reduce(text);
        let _ = ingest::anonymise::url::strip(text);
    }
    let Ok(batch) = schema::parse_batch(data) else { return };
    for raw in &batch.events {
        if let Ok(event) = schema::Event::from_raw(raw) {
            let again = schema::Event::from_value(serde_json::to_value(&event).unwrap()).unwrap();
            assert_eq!(again, event);
        }
    }
    let Ok(client_key) = batch.client_key() else { return };
    let now = 1_795_874_400_000;
    let agent = user_agent::reduce("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0");
    let Processed { write, rejected } =
        Pipeline::new(&[7u8; 32], agent, now).batch(1, &client_key, batch.sent_at, &batch.events);
    assert_eq!(write.events.len() + rejected.len(), batch.events.len());
    assert_eq!(write.failed.len(), rejected.len());
    for failed in &write.failed {
        serde_json::from_str::<serde_json::Value>(&failed.payload).unwrap();
    }
    let mut engine = ingest::datasets::Engine::new(ingest::datasets::Params::default());
    for (stored, input) in write.events.iter().zip(&write.inputs) {
        // The engine is rebuilt from the log after a restart: it must read back the same.
        let payload = ingest::store::Payload::parse(&stored.payload).unwrap();
        assert_eq!(&payload.input(), input);
        engine.ingest(input, now);
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
