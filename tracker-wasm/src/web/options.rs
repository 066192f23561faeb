use js_sys::{Array, Function, JSON, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::{Config, ConfigError, EntityRef, EventInput, Value};

/// `init()`'s options: the configuration, and the page's callbacks.
pub(crate) struct Options {
    pub(crate) config: Config,
    pub(crate) on_batch: Option<Function>,
    pub(crate) on_error: Option<Function>,
}

/// Reads `init()`'s argument; the error names the key at fault.
pub(crate) fn read_config(config: &JsValue) -> Result<Options, ConfigError> {
    if !config.is_object() {
        return Err(ConfigError("expected an object".into()));
    }
    let mut pairs = Vec::new();
    for (key, value) in entries(config) {
        if key == "autocapture" && value.is_object() {
            for (sub, v) in entries(&value) {
                pairs.push((["autocapture.", &sub].concat(), value_of(&v)));
            }
        } else {
            pairs.push((key, value_of(&value)));
        }
    }
    Ok(Options {
        config: Config::parse(&pairs)?,
        on_batch: callback(config, "onBatch")?,
        on_error: callback(config, "onError")?,
    })
}

fn entries(object: &JsValue) -> Vec<(String, JsValue)> {
    Object::keys(object.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| {
            let v = Reflect::get(object, &k).ok()?;
            Some((k.as_string()?, v))
        })
        .collect()
}

fn value_of(v: &JsValue) -> Value {
    if v.is_undefined() || v.is_null() {
        Value::Absent
    } else if let Some(s) = v.as_string() {
        Value::Str(s)
    } else if let Some(n) = v.as_f64() {
        Value::Num(n)
    } else if let Some(b) = v.as_bool() {
        Value::Bool(b)
    } else if v.is_function() {
        Value::Other("a function")
    } else if Array::is_array(v) {
        Value::List(Array::from(v).iter().map(|item| value_of(&item)).collect())
    } else {
        Value::Other("an object")
    }
}

fn callback(config: &JsValue, key: &str) -> Result<Option<Function>, ConfigError> {
    match Reflect::get(config, &JsValue::from_str(key)) {
        Ok(f) if f.is_function() => Ok(Some(f.unchecked_into())),
        Ok(v) if v.is_undefined() || v.is_null() => Ok(None),
        _ => Err(ConfigError(["`", key, "` must be a function"].concat())),
    }
}

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

const OPTION_KEYS: [&str; 5] = [
    "eventMeta",
    "relatedEntities",
    "timestamp",
    "impressionId",
    "fxcid",
];

/// Reads `track(eventType, action, { eventMeta, relatedEntities, timestamp, impressionId,
/// fxcid })`; every error names the argument or option at fault. `impressionId` and `fxcid`
/// (what a conversion carries) go into `event_meta` as `impression_id` and `fxcid`.
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
                "unknown option `{key}`; expected one of {}",
                OPTION_KEYS.join(", ")
            ));
        }
    }
    let get = |k: &str| Reflect::get(&options, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    let mut meta = get("eventMeta");
    let present = |v: &JsValue| !v.is_undefined() && !v.is_null();
    if present(&meta) && (!meta.is_object() || Array::is_array(&meta)) {
        return Err("`eventMeta` must be a plain object".into());
    }
    for (option, key) in [("impressionId", "impression_id"), ("fxcid", "fxcid")] {
        let id = get(option);
        if !present(&id) {
            continue;
        }
        if id.as_string().is_none_or(|s| s.is_empty()) {
            return Err(format!("`{option}` must be a non-empty string"));
        }
        let copy = Object::assign(&Object::new(), meta.unchecked_ref::<Object>());
        let _ = Reflect::set(&copy, &key.into(), &id);
        meta = copy.into();
    }
    if present(&meta) {
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
