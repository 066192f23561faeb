//! Events and batches: parsing and validation in one pass, so that a value of type [`Event`]
//! is always valid.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{BatchError, EventError, FieldError};
use crate::limits::*;
use crate::time::Timestamp;

/// One validated interaction, as the tracker sent it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub client_key: String,
    pub event_id: String,
    pub created_at: Timestamp,
    pub event_type: String,
    pub action: String,
    pub event_meta: Map<String, Value>,
    pub related_entities: Vec<Entity>,
    pub channel_meta: ChannelMeta,
}

/// A tradeable entity (or other object) an interaction concerns, such as `ticker:AAPL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    // Fields in alphabetical order, as ingest's log writes every object's keys.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelMeta {
    pub session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ref: Option<String>,
    /// The tracker's per-browser visitor id, for events before `client_ref` is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
}

/// A batch whose envelope is valid; its events are still raw, so that each can be accepted or
/// rejected on its own.
#[derive(Debug)]
pub struct RawBatch<'a> {
    pub sent_at: Option<Timestamp>,
    pub events: Vec<&'a RawValue>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(default)]
    sent_at: Option<&'a str>,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

/// Reads a batch body `{ "sent_at": "…", "events": [ … ] }`.
pub fn parse_batch(body: &[u8]) -> Result<RawBatch<'_>, BatchError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BatchError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| BatchError::Malformed {
            reason: e.to_string(),
        })?;
    if envelope.events.is_empty() {
        return Err(BatchError::NoEvents);
    }
    if envelope.events.len() > MAX_EVENTS_PER_BATCH {
        return Err(BatchError::TooManyEvents {
            count: envelope.events.len(),
            limit: MAX_EVENTS_PER_BATCH,
        });
    }
    let sent_at = envelope
        .sent_at
        .map(Timestamp::parse)
        .transpose()
        .map_err(|e| BatchError::InvalidSentAt {
            reason: e.to_string(),
        })?;
    Ok(RawBatch {
        sent_at,
        events: envelope.events,
    })
}

impl RawBatch<'_> {
    /// The batch's tenant: the `client_key` of its first event that has one.
    pub fn client_key(&self) -> Result<String, BatchError> {
        self.events
            .iter()
            .find_map(|raw| peek_str(raw, "client_key"))
            .ok_or(BatchError::NoClientKey)
    }
}

/// A string field of a raw event, whether or not the event is valid; for reporting which
/// event was rejected.
pub fn peek_str(raw: &RawValue, field: &str) -> Option<String> {
    let value: Value = serde_json::from_str(raw.get()).ok()?;
    value.get(field)?.as_str().map(str::to_owned)
}

impl Event {
    /// Parses and validates one event of a batch.
    pub fn from_raw(raw: &RawValue) -> Result<Event, EventError> {
        let size = raw.get().len();
        if size > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge {
                size,
                limit: MAX_EVENT_BYTES,
            });
        }
        // Most events are well-formed: read them straight into their fields. Only one that is
        // not is read again as a `Value`, for an error that names its problem.
        if let Ok(Obj(shape)) = serde_json::from_str::<Obj<Shape>>(raw.get()) {
            return shape.validate();
        }
        let value: Value = serde_json::from_str(raw.get()).map_err(|_| EventError::NotAnObject)?;
        Event::from_value(value)
    }

    /// Validates an event already parsed as JSON (its size is not checked here).
    pub fn from_value(value: Value) -> Result<Event, EventError> {
        let Value::Object(mut obj) = value else {
            return Err(EventError::NotAnObject);
        };
        const FIELDS: [&str; 8] = [
            "client_key",
            "event_id",
            "created_at",
            "event_type",
            "action",
            "event_meta",
            "related_entities",
            "channel_meta",
        ];
        reject_unknown(&obj, &FIELDS, None)?;
        let client_key = id(&mut obj, "client_key", None)?;
        let event_id = id(&mut obj, "event_id", None)?;
        let created_at = take_str(&mut obj, "created_at", None)?;
        let created_at =
            Timestamp::parse(&created_at).map_err(|e| EventError::InvalidTimestamp {
                field: "created_at".into(),
                reason: e.to_string(),
            })?;
        let event_type = name(take_str(&mut obj, "event_type", None)?, "event_type")?;
        let action = name(take_str(&mut obj, "action", None)?, "action")?;
        let event_meta = match obj.remove("event_meta") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(meta)) => {
                check_meta(&meta)?;
                meta
            }
            Some(_) => return Err(wrong_type(At::Field("event_meta"), "an object")),
        };
        let related_entities = match obj.remove("related_entities") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => entities(items)?,
            Some(_) => return Err(wrong_type(At::Field("related_entities"), "an array")),
        };
        let channel_meta = match obj.remove("channel_meta") {
            None => {
                return Err(EventError::Missing {
                    field: "channel_meta".into(),
                });
            }
            Some(Value::Object(cm)) => channel_meta(cm)?,
            Some(_) => return Err(wrong_type(At::Field("channel_meta"), "an object")),
        };
        Ok(Event {
            client_key,
            event_id,
            created_at,
            event_type,
            action,
            event_meta,
            related_entities,
            channel_meta,
        })
    }
}

/// A well-formed event: every field there and of its type, no other. Deserialising into it
/// fails where [`Event::from_value`] would find a missing or unknown field or a wrong type;
/// where it succeeds, [`Shape::validate`] applies `from_value`'s rules in `from_value`'s order,
/// so both paths give the same answer (a test compares them).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Shape<'a> {
    client_key: String,
    event_id: String,
    #[serde(borrow)]
    created_at: std::borrow::Cow<'a, str>,
    event_type: String,
    action: String,
    #[serde(default)]
    event_meta: Option<Map<String, Value>>,
    #[serde(default)]
    related_entities: Option<Vec<Obj<EntityShape>>>,
    channel_meta: Obj<ChannelShape>,
}

/// A struct read from a JSON object only: serde's derived structs also take an array, by
/// position, where `from_value` wants an object.
struct Obj<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Fields(std::marker::PhantomData)).map(Obj)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityShape {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelShape {
    session_id: String,
    #[serde(default)]
    client_ref: Option<String>,
    #[serde(default)]
    anonymous_id: Option<String>,
}

impl Shape<'_> {
    fn validate(self) -> Result<Event, EventError> {
        check_id(&self.client_key, "client_key")?;
        check_id(&self.event_id, "event_id")?;
        let created_at =
            Timestamp::parse(&self.created_at).map_err(|e| EventError::InvalidTimestamp {
                field: "created_at".into(),
                reason: e.to_string(),
            })?;
        check_name(&self.event_type, "event_type")?;
        check_name(&self.action, "action")?;
        let event_meta = self.event_meta.unwrap_or_default();
        check_meta(&event_meta)?;
        let items = self.related_entities.unwrap_or_default();
        if items.len() > MAX_ENTITIES {
            return Err(EventError::TooManyEntities {
                count: items.len(),
                limit: MAX_ENTITIES,
            });
        }
        let list = At::Field("related_entities");
        let mut related_entities = Vec::with_capacity(items.len());
        for (i, Obj(EntityShape { kind, id })) in items.into_iter().enumerate() {
            let at = At::Index(&list, i);
            check_name(&kind, "type").map_err(|e| e.at(At::Key(&at, "type").to_string()))?;
            check_id(&id, "id").map_err(|e| e.at(At::Key(&at, "id").to_string()))?;
            related_entities.push(Entity { id, kind });
        }
        let Obj(cm) = self.channel_meta;
        check_id(&cm.session_id, "channel_meta.session_id")?;
        if let Some(r) = &cm.client_ref {
            check_id(r, "channel_meta.client_ref")?;
        }
        if let Some(a) = &cm.anonymous_id {
            check_id(a, "channel_meta.anonymous_id")?;
        }
        Ok(Event {
            client_key: self.client_key,
            event_id: self.event_id,
            created_at,
            event_type: self.event_type,
            action: self.action,
            event_meta,
            related_entities,
            channel_meta: ChannelMeta {
                session_id: cm.session_id,
                client_ref: cm.client_ref,
                anonymous_id: cm.anonymous_id,
            },
        })
    }
}

/// Where a value sits in an event, such as `related_entities[2].id`: written out only when
/// an error names it, so a valid event costs no string for it.
#[derive(Clone, Copy)]
enum At<'a> {
    Field(&'a str),
    Key(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Field(name) => f.write_str(name),
            At::Key(parent, key) => write!(f, "{parent}.{key}"),
            At::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// `field` of the object at `parent`, or of the event itself.
fn child<'a>(parent: Option<&'a At<'a>>, field: &'a str) -> At<'a> {
    match parent {
        None => At::Field(field),
        Some(p) => At::Key(p, field),
    }
}

fn wrong_type(at: At<'_>, expected: &'static str) -> EventError {
    EventError::WrongType {
        field: at.to_string(),
        expected,
    }
}

fn reject_unknown(
    obj: &Map<String, Value>,
    known: &[&str],
    parent: Option<&At<'_>>,
) -> Result<(), EventError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(EventError::UnknownField {
            field: child(parent, k).to_string(),
        }),
        None => Ok(()),
    }
}

fn take_str(
    obj: &mut Map<String, Value>,
    field: &str,
    parent: Option<&At<'_>>,
) -> Result<String, EventError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Err(EventError::Missing {
            field: child(parent, field).to_string(),
        }),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(wrong_type(child(parent, field), "a string")),
    }
}

fn id(
    obj: &mut Map<String, Value>,
    field: &str,
    parent: Option<&At<'_>>,
) -> Result<String, EventError> {
    let s = take_str(obj, field, parent)?;
    check_id(&s, field).map_err(|e| e.at(child(parent, field).to_string()))?;
    Ok(s)
}

fn name(s: String, field: &str) -> Result<String, EventError> {
    check_name(&s, field)?;
    Ok(s)
}

/// Characters (code points) in `s`, counted as the bytes that start one: the same number as
/// `chars().count()`, in a fraction of the code the browser tracker has to carry.
fn char_count(s: &str) -> usize {
    s.bytes().filter(|b| (*b as i8) >= -0x40).count()
}

/// Checks an identifier: 1 to [`MAX_ID_LEN`] characters, no whitespace or control characters.
pub fn check_id(s: &str, field: &str) -> Result<(), FieldError> {
    let len = char_count(s);
    if len == 0 {
        return Err(FieldError::Empty {
            field: field.into(),
        });
    }
    if len > MAX_ID_LEN {
        return Err(FieldError::TooLong {
            field: field.into(),
            len,
            limit: MAX_ID_LEN,
        });
    }
    if s.chars().any(blank) {
        return Err(FieldError::InvalidCharacters {
            field: field.into(),
        });
    }
    Ok(())
}

/// Whitespace (Unicode's White_Space) or a control character (Cc): exactly
/// `c.is_whitespace() || c.is_control()`, spelt out so the browser tracker carries no
/// Unicode table for it.
fn blank(c: char) -> bool {
    matches!(
        c,
        '\0'..=' '
            | '\u{7f}'..='\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Checks a name (`event_type`, `action`, entity `type`): lower_snake_case, at most
/// [`MAX_NAME_LEN`] characters.
pub fn check_name(s: &str, field: &str) -> Result<(), FieldError> {
    if s.is_empty() {
        return Err(FieldError::Empty {
            field: field.into(),
        });
    }
    if s.len() > MAX_NAME_LEN {
        return Err(FieldError::TooLong {
            field: field.into(),
            len: char_count(s),
            limit: MAX_NAME_LEN,
        });
    }
    let b = s.as_bytes();
    let snake = b[0].is_ascii_lowercase()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if !snake {
        return Err(FieldError::NotSnakeCase {
            field: field.into(),
        });
    }
    Ok(())
}

fn entities(items: Vec<Value>) -> Result<Vec<Entity>, EventError> {
    if items.len() > MAX_ENTITIES {
        return Err(EventError::TooManyEntities {
            count: items.len(),
            limit: MAX_ENTITIES,
        });
    }
    let list = At::Field("related_entities");
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let at = At::Index(&list, i);
            let Value::Object(mut obj) = item else {
                return Err(wrong_type(at, "an object"));
            };
            reject_unknown(&obj, &["type", "id"], Some(&at))?;
            let kind = take_str(&mut obj, "type", Some(&at))?;
            check_name(&kind, "type").map_err(|e| e.at(At::Key(&at, "type").to_string()))?;
            let id = id(&mut obj, "id", Some(&at))?;
            Ok(Entity { id, kind })
        })
        .collect()
}

fn channel_meta(mut obj: Map<String, Value>) -> Result<ChannelMeta, EventError> {
    let at = At::Field("channel_meta");
    reject_unknown(
        &obj,
        &["session_id", "client_ref", "anonymous_id"],
        Some(&at),
    )?;
    let session_id = id(&mut obj, "session_id", Some(&at))?;
    let mut optional = |field: &str| -> Result<Option<String>, EventError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => id(&mut obj, field, Some(&at)).map(Some),
        }
    };
    let client_ref = optional("client_ref")?;
    let anonymous_id = optional("anonymous_id")?;
    Ok(ChannelMeta {
        session_id,
        client_ref,
        anonymous_id,
    })
}

fn check_meta(meta: &Map<String, Value>) -> Result<(), EventError> {
    let mut keys = 0;
    check_object(meta, &At::Field("event_meta"), 1, &mut keys)
}

fn check_object(
    obj: &Map<String, Value>,
    at: &At<'_>,
    depth: usize,
    keys: &mut usize,
) -> Result<(), EventError> {
    for (k, v) in obj {
        *keys += 1;
        if *keys > MAX_META_KEYS {
            return Err(EventError::TooManyKeys {
                limit: MAX_META_KEYS,
            });
        }
        let here = At::Key(at, k);
        if k.is_empty() {
            return Err(FieldError::Empty {
                field: here.to_string(),
            }
            .into());
        }
        let len = char_count(k);
        if len > MAX_NAME_LEN {
            return Err(FieldError::TooLong {
                field: here.to_string(),
                len,
                limit: MAX_NAME_LEN,
            }
            .into());
        }
        check_value(v, &here, depth, keys)?;
    }
    Ok(())
}

fn check_value(v: &Value, at: &At<'_>, depth: usize, keys: &mut usize) -> Result<(), EventError> {
    match v {
        Value::String(s) => {
            let len = char_count(s);
            if len > MAX_STRING_LEN {
                return Err(FieldError::TooLong {
                    field: at.to_string(),
                    len,
                    limit: MAX_STRING_LEN,
                }
                .into());
            }
            Ok(())
        }
        Value::Object(obj) => {
            if depth + 1 > MAX_META_DEPTH {
                return Err(EventError::TooDeep {
                    field: at.to_string(),
                    limit: MAX_META_DEPTH,
                });
            }
            check_object(obj, at, depth + 1, keys)
        }
        Value::Array(items) => {
            if depth + 1 > MAX_META_DEPTH {
                return Err(EventError::TooDeep {
                    field: at.to_string(),
                    limit: MAX_META_DEPTH,
                });
            }
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| check_value(item, &At::Index(at, i), depth + 1, keys))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_are_counted_as_code_points() {
        for s in [
            "",
            "abc",
            "é",
            "日本語",
            "a🎉b",
            "\u{0}\u{7f}\u{80}\u{10ffff}",
        ] {
            assert_eq!(char_count(s), s.chars().count(), "{s:?}");
        }
        let long = "é".repeat(MAX_ID_LEN + 1);
        assert!(matches!(
            check_id(&long, "id"),
            Err(FieldError::TooLong { len, .. }) if len == MAX_ID_LEN + 1
        ));
    }

    #[test]
    fn blank_is_whitespace_or_control() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(
                blank(c),
                c.is_whitespace() || c.is_control(),
                "{:#x}",
                c as u32
            );
        }
    }
}
