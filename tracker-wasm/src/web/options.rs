//! `init()`'s and `track()`'s arguments, as `host.js` flattens them into strings.

use wasm_bindgen::JsValue;

use super::host::{self, ITEM, RECORD, fields};
use crate::core::{Config, ConfigError, EntityRef, EventInput, cut, parse_int, pieces};

/// Reads `init()`'s argument; the error names the key at fault. (`host.js` keeps its
/// callbacks, and uses them once [`super::init`] opens the configuration.)
pub(crate) fn read_config(config: &JsValue) -> Result<Config, ConfigError> {
    let flat = host::options(config).ok_or_else(|| ConfigError("expected an object".into()))?;
    Config::parse(&flat)
}

/// A `track()` call read out of JS values.
pub(crate) struct TrackCall {
    event_type: String,
    action: String,
    meta_json: Option<String>,
    entities: Vec<EntityRef>,
    /// When it was tracked, if the call said; else the time it is recorded.
    pub(crate) timestamp: Option<i64>,
    /// The page's `beforeSend` made it: what is wrong with it is `beforeSend`'s failure.
    pub(crate) screened: bool,
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

/// Reads `host.readEvent`'s line, `type\x1faction\x1fmeta\x1fts\x1fentities` (after `~` when
/// `beforeSend` returned it), or its error (`!` and what is wrong, naming the argument or
/// option).
pub(crate) fn read_event(line: &str) -> Result<TrackCall, String> {
    if let Some(error) = line.strip_prefix(crate::protocol::INVALID) {
        return Err(error.to_owned());
    }
    let screened = line.strip_prefix(crate::protocol::SCREENED);
    let line = screened.unwrap_or(line);
    let [event_type, action, meta, ts, entities] = fields(line);
    let entities = pieces(entities, RECORD)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (kind, id) = cut(e, ITEM).unwrap_or((e, ""));
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
        screened: screened.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings `host.js` writes (its Node tests check it writes these).
    #[test]
    fn reads_what_host_js_writes() {
        let call = read_event(
            "instrument\x1fviewed\x1f{\"position\":2}\x1f1795874400123\x1fticker\x1cAAPL\x1esector\x1ctech",
        )
        .unwrap();
        let input = call.input();
        assert_eq!((input.event_type, input.action), ("instrument", "viewed"));
        assert_eq!(input.meta_json, Some("{\"position\":2}"));
        assert_eq!(input.timestamp, Some(1_795_874_400_123));
        let ids: Vec<_> = input.entities.iter().map(|e| (&*e.kind, &*e.id)).collect();
        assert_eq!(ids, [("ticker", "AAPL"), ("sector", "tech")]);
        let bare = read_event("page\x1fviewed\x1f\x1f\x1f").unwrap();
        assert_eq!(bare.input().meta_json, None);
        assert_eq!(bare.input().timestamp, None);
        assert!(bare.input().entities.is_empty());
        assert!(!bare.screened);
        let screened = read_event("~page\x1fviewed\x1f\x1f\x1f").unwrap();
        assert!(screened.screened);
        assert_eq!(screened.input().event_type, "page");
        assert_eq!(
            read_event("!`action` must be a string").err().as_deref(),
            Some("`action` must be a string")
        );
    }
}
