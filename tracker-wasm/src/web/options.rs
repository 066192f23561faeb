use js_sys::{Array, JSON, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::{EntityRef, EventInput};

/// A `track()` call read out of JS values.
pub(crate) struct TrackCall {
    pub(crate) event_type: String,
    pub(crate) action: String,
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

const OPTION_KEYS: [&str; 3] = ["eventMeta", "relatedEntities", "timestamp"];

/// Reads `track(eventType, action, { eventMeta, relatedEntities, timestamp })`; every error
/// names the argument or option at fault.
pub(crate) fn read_event(
    event_type: JsValue,
    action: JsValue,
    options: JsValue,
) -> Result<TrackCall, String> {
    let event_type = event_type
        .as_string()
        .ok_or("`eventType` must be a string")?;
    let action = action.as_string().ok_or("`action` must be a string")?;
    let mut call = TrackCall {
        event_type,
        action,
        meta_json: None,
        entities: Vec::new(),
        timestamp: None,
    };
    if options.is_undefined() || options.is_null() {
        return Ok(call);
    }
    if !options.is_object() {
        return Err("the options of `track()` must be an object".into());
    }
    for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !OPTION_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "unknown option `{key}`; expected one of eventMeta, relatedEntities, timestamp"
            ));
        }
    }
    let get = |k: &str| Reflect::get(&options, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    let meta = get("eventMeta");
    if !meta.is_undefined() && !meta.is_null() {
        if !meta.is_object() || Array::is_array(&meta) {
            return Err("`eventMeta` must be a plain object".into());
        }
        let json = JSON::stringify(&meta)
            .map_err(|_| "`eventMeta` cannot be serialised to JSON (is it cyclic?)")?;
        call.meta_json = json.as_string();
    }
    let entities = get("relatedEntities");
    if !entities.is_undefined() && !entities.is_null() {
        if !Array::is_array(&entities) {
            return Err("`relatedEntities` must be an array".into());
        }
        for item in Array::from(&entities).iter() {
            call.entities.push(read_entity(&item)?);
        }
    }
    let timestamp = get("timestamp");
    if !timestamp.is_undefined() && !timestamp.is_null() {
        match timestamp.as_f64() {
            Some(ms) if ms.is_finite() && ms >= 0.0 => call.timestamp = Some(ms as i64),
            _ => return Err("`timestamp` must be milliseconds since the epoch".into()),
        }
    }
    Ok(call)
}

/// An entity is `{ type, id }` or the shorthand `"type:id"` (as in `data-pf-entities`).
fn read_entity(item: &JsValue) -> Result<EntityRef, String> {
    if let Some(s) = item.as_string() {
        return match s.split_once(':') {
            Some((kind, id)) => Ok(EntityRef {
                kind: kind.to_owned(),
                id: id.to_owned(),
            }),
            None => Err(format!(
                "entity `{s}` must be written `type:id`, e.g. `ticker:AAPL`"
            )),
        };
    }
    let field = |k: &str| {
        Reflect::get(item, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_string())
    };
    match (field("type"), field("id")) {
        (Some(kind), Some(id)) => Ok(EntityRef { kind, id }),
        _ => Err(
            "each of `relatedEntities` must be `{ type, id }` with string values, or `\"type:id\"`"
                .into(),
        ),
    }
}
