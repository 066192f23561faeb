//! `init()`'s and `track()`'s arguments, as `host.js` flattens them into strings.

use wasm_bindgen::JsValue;

use super::host::{self, FIELD, GROUP, ITEM, RECORD};
use crate::core::{Config, ConfigError, EntityRef, EventInput, Value, parse_int};

/// Reads `init()`'s argument; the error names the key at fault. The page's callbacks are
/// taken only from a configuration that is valid.
pub(crate) fn read_config(config: &JsValue) -> Result<Config, ConfigError> {
    let flat = host::options(config).ok_or_else(|| ConfigError("expected an object".into()))?;
    let mut pairs = Vec::new();
    for entry in flat.split(GROUP).filter(|e| !e.is_empty()) {
        let (key, value) = entry.split_once(FIELD).unwrap_or((entry, "a"));
        let value = value_of(value);
        if matches!(key, "onBatch" | "onError")
            && !matches!(value, Value::Other(FUNCTION) | Value::Absent)
        {
            return Err(ConfigError(["`", key, "` must be a function"].concat()));
        }
        pairs.push((key.to_owned(), value));
    }
    let parsed = Config::parse(&pairs)?;
    host::use_callbacks(config);
    Ok(parsed)
}

const FUNCTION: &str = "a function";

/// One value as `host.js` tags it: `s` string, `n` whole number (0.5 for any other number),
/// `b1`/`b0`, `l` list (items separated by \x1c), `f` function, `o` object, `a` absent.
fn value_of(tagged: &str) -> Value {
    let rest = tagged.get(1..).unwrap_or("");
    match tagged.as_bytes().first() {
        Some(b's') => Value::Str(rest.to_owned()),
        Some(b'n') => Value::Num(parse_int(rest).map_or(0.5, |n| n as f64)),
        Some(b'b') => Value::Bool(rest == "1"),
        Some(b'l') if rest.is_empty() => Value::List(Vec::new()),
        Some(b'l') => Value::List(rest.split(ITEM).map(value_of).collect()),
        Some(b'f') => Value::Other(FUNCTION),
        Some(b'o') => Value::Other("an object"),
        _ => Value::Absent,
    }
}

/// A `track()` call read out of JS values.
pub(crate) struct TrackCall {
    event_type: String,
    action: String,
    meta_json: Option<String>,
    entities: Vec<EntityRef>,
    timestamp: Option<i64>,
}

impl TrackCall {
    pub(crate) fn input(&self) -> EventInput<'_> {
        EventInput {
            event_type: &self.event_type,
            action: &self.action,
            meta_json: self.meta_json.as_deref(),
            entities: &self.entities,
            timestamp: self.timestamp,
        }
    }
}

/// Reads `host.readEvent`'s line, `type\x1faction\x1fmeta\x1fts\x1fentities`, or its error
/// (`!` and what is wrong, naming the argument or option).
pub(crate) fn read_event(line: &str) -> Result<TrackCall, String> {
    if let Some(error) = line.strip_prefix('!') {
        return Err(error.to_owned());
    }
    let mut fields = line.split(FIELD);
    let mut next = || fields.next().unwrap_or("");
    let (event_type, action, meta, ts, entities) = (next(), next(), next(), next(), next());
    let entities = entities
        .split(RECORD)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (kind, id) = e.split_once(ITEM).unwrap_or((e, ""));
            EntityRef {
                kind: kind.to_owned(),
                id: id.to_owned(),
            }
        })
        .collect();
    Ok(TrackCall {
        event_type: event_type.to_owned(),
        action: action.to_owned(),
        meta_json: (!meta.is_empty()).then(|| meta.to_owned()),
        entities,
        timestamp: parse_int(ts),
    })
}
