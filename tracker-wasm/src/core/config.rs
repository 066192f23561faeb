use schema::limits::{MAX_BODY_BYTES, MAX_EVENT_BYTES, MAX_EVENTS_PER_BATCH};
use serde::Deserialize;

/// What `init()` takes, in camelCase. Unknown keys are an error naming the key, so a typo
/// such as `flushIntervalMS` is caught at start-up, not discovered in production.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The tenant's public write key.
    pub client_key: String,
    /// Full URL of ingest's `POST /v1/events`.
    pub endpoint: String,
    /// The customer's own non-PII user identifier.
    #[serde(default)]
    pub client_ref: Option<String>,
    /// Send as soon as this many events are queued.
    #[serde(default = "defaults::max_events")]
    pub max_events: u32,
    /// Largest batch body, in bytes.
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: u32,
    /// Send queued events at the latest this long after the first was queued.
    #[serde(default = "defaults::flush_interval_ms")]
    pub flush_interval_ms: u32,
    /// Queue bound; beyond it the oldest events are dropped and counted.
    #[serde(default = "defaults::max_queued_events")]
    pub max_queued_events: u32,
    /// A session ends after this long without events.
    #[serde(default = "defaults::session_timeout_minutes")]
    pub session_timeout_minutes: u32,
    /// Log every event and response to the console.
    #[serde(default)]
    pub debug: bool,
}

mod defaults {
    pub(super) fn max_events() -> u32 {
        20
    }
    pub(super) fn max_bytes() -> u32 {
        60_000
    }
    pub(super) fn flush_interval_ms() -> u32 {
        1_000
    }
    pub(super) fn max_queued_events() -> u32 {
        1_000
    }
    pub(super) fn session_timeout_minutes() -> u32 {
        30
    }
}

/// The camelCase keys `init()` accepts, taken from the `Deserialize` impl itself so they can
/// never drift from the struct. Needed because `serde_wasm_bindgen` reads only the fields it
/// knows from a JS object and never reports the others, whatever `deny_unknown_fields` says.
pub fn known_keys() -> &'static [&'static str] {
    use serde::de::{self, Visitor};

    struct Capture(&'static [&'static str]);
    impl<'de> de::Deserializer<'de> for &mut Capture {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only structs are captured"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = fields;
            Err(de::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut capture = Capture(&[]);
    let _ = Config::deserialize(&mut capture);
    capture.0
}

/// The first key of `keys` that `init()` does not know, as an error naming it.
pub fn check_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<(), ConfigError> {
    let known = known_keys();
    match keys.into_iter().find(|k| !known.contains(k)) {
        Some(k) => Err(ConfigError(format!(
            "unknown key `{k}`; expected one of {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// A configuration value outside what the tracker can work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Smallest batch body that still fits one event of the largest allowed size.
const MIN_BATCH_BYTES: u32 = MAX_EVENT_BYTES as u32 + 64;

impl Config {
    /// Checks the ranges serde cannot express.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_owned()));
        if let Err(e) = schema::check_id(&self.client_key, "clientKey") {
            return Err(ConfigError(e.to_string()));
        }
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return err("`endpoint` must be an absolute http:// or https:// URL");
        }
        if let Some(r) = &self.client_ref {
            if let Err(e) = schema::check_id(r, "clientRef") {
                return Err(ConfigError(e.to_string()));
            }
        }
        if self.max_events == 0 || self.max_events as usize > MAX_EVENTS_PER_BATCH {
            return err("`maxEvents` must be between 1 and 500");
        }
        if self.max_bytes < MIN_BATCH_BYTES || self.max_bytes as usize > MAX_BODY_BYTES {
            return err("`maxBytes` must be between 32832 and 1048576");
        }
        if self.flush_interval_ms == 0 {
            return err("`flushIntervalMs` must be at least 1");
        }
        if self.max_queued_events < self.max_events {
            return err("`maxQueuedEvents` must be at least `maxEvents`");
        }
        if self.session_timeout_minutes == 0 {
            return err("`sessionTimeoutMinutes` must be at least 1");
        }
        Ok(self)
    }
}

#[cfg(test)]
pub(crate) fn test_config() -> Config {
    Config {
        client_key: "pk_test".into(),
        endpoint: "http://127.0.0.1:8787/v1/events".into(),
        client_ref: None,
        max_events: defaults::max_events(),
        max_bytes: defaults::max_bytes(),
        flush_interval_ms: defaults::flush_interval_ms(),
        max_queued_events: defaults::max_queued_events(),
        session_timeout_minutes: defaults::session_timeout_minutes(),
        debug: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Config {
        super::test_config()
    }

    #[test]
    fn known_keys_come_from_the_struct() {
        assert_eq!(known_keys()[..3], ["clientKey", "endpoint", "clientRef"]);
        assert!(known_keys().contains(&"flushIntervalMs"));
        assert!(check_keys(["clientKey", "debug"]).is_ok());
        let e = check_keys(["clientKey", "flushIntervalMS"]).unwrap_err();
        assert!(e.0.starts_with("unknown key `flushIntervalMS`"), "{e}");
    }

    #[test]
    fn the_limits_in_messages_match_the_constants() {
        assert_eq!(MIN_BATCH_BYTES, 32832);
        assert_eq!(MAX_BODY_BYTES, 1048576);
        assert_eq!(MAX_EVENTS_PER_BATCH, 500);
    }

    #[test]
    fn rejects_values_out_of_range_naming_the_key() {
        type Mutation = fn(&mut Config);
        let cases: [(Mutation, &str); 6] = [
            (|c| c.endpoint = "/v1/events".into(), "endpoint"),
            (|c| c.client_key = String::new(), "clientKey"),
            (|c| c.max_events = 0, "maxEvents"),
            (|c| c.max_bytes = 1000, "maxBytes"),
            (|c| c.max_queued_events = 5, "maxQueuedEvents"),
            (|c| c.client_ref = Some("has space".into()), "clientRef"),
        ];
        for (mutate, key) in cases {
            let mut c = minimal();
            mutate(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.0.contains(key), "{e} does not name {key}");
        }
        assert!(minimal().validate().is_ok());
    }
}
