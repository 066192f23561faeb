//! Wire-format JSON written by hand: the browser's own `JSON.stringify` serialises
//! `eventMeta`, and this writes the rest, so the wasm links no JSON library.

use schema::Timestamp;

use super::text::push_digit;

/// One `track()` call, as the core sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventInput<'a> {
    pub event_type: &'a str,
    pub action: &'a str,
    /// `eventMeta` already serialised as a JSON object by the browser.
    pub meta_json: Option<&'a str>,
    pub entities: &'a [EntityRef],
    /// Event time in ms; `None` means now. Set when replaying calls made before load.
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    pub kind: String,
    pub id: String,
}

/// The identity half of an event, filled in by the tracker.
pub(crate) struct Envelope<'a> {
    pub(crate) client_key: &'a str,
    pub(crate) event_id: &'a str,
    pub(crate) created_at: Timestamp,
    pub(crate) session_id: &'a str,
    pub(crate) client_ref: Option<&'a str>,
    pub(crate) anonymous_id: &'a str,
}

pub(crate) fn encode_event_with(env: &Envelope<'_>, input: &EventInput<'_>) -> String {
    let mut out = String::with_capacity(256 + input.meta_json.map_or(0, str::len));
    out.push_str("{\"client_key\":");
    push_str(&mut out, env.client_key);
    out.push_str(",\"event_id\":");
    push_str(&mut out, env.event_id);
    out.push_str(",\"created_at\":\"");
    env.created_at.write_rfc3339(&mut out);
    out.push_str("\",\"event_type\":");
    push_str(&mut out, input.event_type);
    out.push_str(",\"action\":");
    push_str(&mut out, input.action);
    out.push_str(",\"event_meta\":");
    out.push_str(input.meta_json.unwrap_or("{}"));
    out.push_str(",\"related_entities\":[");
    for (i, e) in input.entities.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"type\":");
        push_str(&mut out, &e.kind);
        out.push_str(",\"id\":");
        push_str(&mut out, &e.id);
        out.push('}');
    }
    out.push_str("],\"channel_meta\":{\"session_id\":");
    push_str(&mut out, env.session_id);
    if let Some(r) = env.client_ref {
        out.push_str(",\"client_ref\":");
        push_str(&mut out, r);
    }
    out.push_str(",\"anonymous_id\":");
    push_str(&mut out, env.anonymous_id);
    out.push_str("}}");
    out
}

/// Encodes one event; public for tests and tools that want the exact wire bytes.
#[allow(clippy::too_many_arguments)]
pub fn encode_event(
    client_key: &str,
    event_id: &str,
    created_at: Timestamp,
    session_id: &str,
    client_ref: Option<&str>,
    anonymous_id: &str,
    input: &EventInput<'_>,
) -> String {
    let env = Envelope {
        client_key,
        event_id,
        created_at,
        session_id,
        client_ref,
        anonymous_id,
    };
    encode_event_with(&env, input)
}

/// Wraps encoded events in a batch envelope stamped with `sent_at`.
pub fn encode_batch<'a>(sent_at: Timestamp, events: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("{\"sent_at\":\"");
    sent_at.write_rfc3339(&mut out);
    out.push_str("\",\"events\":[");
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push_str("]}");
    out
}

/// Bytes the batch envelope adds around its events.
pub(crate) const BATCH_OVERHEAD: usize =
    "{\"sent_at\":\"2026-11-28T14:00:00.123Z\",\"events\":[]}".len();

/// Formats 16 random bytes as an RFC 9562 version 4 UUID.
pub fn uuid_v4(bytes: [u8; 16]) -> String {
    uuid(bytes, 0x40)
}

/// An RFC 9562 version 7 UUID: `ms` (Unix time) in the first 48 bits, then random bits.
/// Event ids made in the same moment by many browsers sort together, so ingest's index of
/// event ids (its dedupe) takes them at its end instead of all over it.
pub fn uuid_v7(mut bytes: [u8; 16], ms: i64) -> String {
    for (i, b) in bytes[..6].iter_mut().enumerate() {
        *b = (ms >> (40 - 8 * i)) as u8;
    }
    uuid(bytes, 0x70)
}

fn uuid(mut bytes: [u8; 16], version: u8) -> String {
    bytes[6] = (bytes[6] & 0x0f) | version;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        push_digit(&mut out, b >> 4);
        push_digit(&mut out, b & 0xf);
    }
    out
}

/// Writes `s` as a JSON string literal, copying the runs between escapes whole.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "\\u00",
            _ => continue,
        };
        // `i` is at an ASCII byte, so both slices are at character boundaries.
        out.push_str(s.get(start..i).unwrap_or(""));
        out.push_str(escape);
        if escape.len() > 2 {
            push_digit(out, b >> 4);
            push_digit(out, b & 0xf);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or(""));
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let id = uuid_v4([0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        // 2026-11-28T14:00:00.123Z is 0x01A2_2274_A77B ms.
        let ms = 1_795_874_400_123;
        assert_eq!(
            uuid_v7([0xff; 16], ms),
            "01a22274-a77b-7fff-bfff-ffffffffffff"
        );
        assert!(uuid_v7([0; 16], ms) < uuid_v7([0xff; 16], ms));
        assert!(uuid_v7([0xff; 16], ms) < uuid_v7([0; 16], ms + 1));
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
        assert_eq!(serde_json_free_roundtrip(&out), "a\"b\\c\nd\u{1}é");
    }

    /// Decodes through `schema`'s validator, which parses with serde_json natively.
    fn serde_json_free_roundtrip(lit: &str) -> String {
        let ev = format!(
            r#"{{"client_key":"k","event_id":"e","created_at":"2026-01-01T00:00:00Z","event_type":"a","action":"b","event_meta":{{"s":{lit}}},"channel_meta":{{"session_id":"s"}}}}"#
        );
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(&ev).unwrap();
        let event = schema::Event::from_raw(&raw).unwrap();
        event.event_meta["s"].as_str().unwrap().to_owned()
    }

    #[test]
    fn encoded_events_and_batches_pass_ingest_validation() {
        let entities = [EntityRef {
            kind: "ticker".into(),
            id: "AAPL".into(),
        }];
        let input = EventInput {
            event_type: "instrument",
            action: "viewed",
            meta_json: Some(r#"{"page":"/stocks/AAPL","position":2}"#),
            entities: &entities,
            timestamp: None,
        };
        let ts = Timestamp::parse("2026-11-28T14:00:00.123Z").unwrap();
        let ev = encode_event(
            "pk_x",
            "id-1",
            ts,
            "sess",
            Some("user\"42\""),
            "anon",
            &input,
        );
        let body = encode_batch(Timestamp(ts.0 + 5), [ev.as_str(), ev.as_str()]);
        let batch = schema::parse_batch(body.as_bytes()).unwrap();
        assert_eq!(batch.sent_at, Some(Timestamp(ts.0 + 5)));
        let event = schema::Event::from_raw(batch.events[1]).unwrap();
        assert_eq!(event.created_at, ts);
        assert_eq!(event.channel_meta.client_ref.as_deref(), Some("user\"42\""));
        assert_eq!(event.related_entities[0].id, "AAPL");
        assert_eq!(event.event_meta["position"], 2);
        assert!(body.len() >= BATCH_OVERHEAD + 2 * ev.len());
    }
}
