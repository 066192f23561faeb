//! What `init()` takes, read key by key from plain values so the wasm links no serde: the
//! browser glue turns the JS object into `(key, Value)` pairs and [`Config::parse`] does the rest.

use schema::limits::{MAX_BODY_BYTES, MAX_EVENT_BYTES, MAX_EVENTS_PER_BATCH};

/// One configuration value as JS gave it. The browser glue checks that `onBatch` and
/// `onError` are functions and keeps them; here they are skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
    /// An array; its items as values.
    List(Vec<Value>),
    /// `null` or `undefined`: the key's default.
    Absent,
    /// Anything else, by its JS type name, for the error message.
    Other(&'static str),
}

/// Where the tracker keeps the visitor id, the session and the queue between page loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Identity, session and queue in `localStorage`: events survive reloads and offline spells.
    LocalStorage,
    /// Identity and session in a first-party cookie; the queue stays in memory, because a
    /// cookie holds 4 KB and rides along on every request to the site.
    Cookie,
    /// Nothing written to the device.
    Memory,
}

/// Whether the visitor agreed to be tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Granted,
    /// Not decided yet: events are kept in memory only, and sent with their original
    /// timestamps once consent is granted.
    Pending,
    /// Refused: nothing is recorded, sent or written to the device.
    Denied,
}

impl Consent {
    pub fn parse(s: &str) -> Option<Consent> {
        match s {
            "granted" => Some(Consent::Granted),
            "pending" => Some(Consent::Pending),
            "denied" => Some(Consent::Denied),
            _ => None,
        }
    }
}

/// What the tracker records without being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Autocapture {
    /// `page.viewed` on load and on every SPA route change.
    pub page_views: bool,
    /// Clicks on elements with `data-pf-event`.
    pub data_attributes: bool,
    /// `viewed` and `clicked` for elements with `data-pf-impression-id` or `data-pf-fxcid`.
    pub impressions: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The tenant's public write key.
    pub client_key: String,
    /// Full URL of ingest's `POST /v1/events`.
    pub endpoint: String,
    /// The customer's own non-PII user identifier.
    pub client_ref: Option<String>,
    pub storage: Storage,
    /// A session ends after this long without events.
    pub session_timeout_minutes: u32,
    /// Send as soon as this many events are queued.
    pub max_events: u32,
    /// Largest batch body, in bytes.
    pub max_bytes: u32,
    /// Send queued events at the latest this long after the first was queued.
    pub flush_interval_ms: u32,
    /// Queue bound; beyond it the oldest events are dropped and counted.
    pub max_queued_events: u32,
    /// Log every event and response to the console.
    pub debug: bool,
    /// Record nothing when the browser sends Do Not Track or Global Privacy Control.
    pub respect_do_not_track: bool,
    pub consent: Consent,
    pub autocapture: Autocapture,
    /// On a host page: the origins of embedded iframes (our components) that may ask for the
    /// visitor's session and user id.
    pub iframe_origins: Vec<String>,
    /// In an iframe component: the origins of host pages whose session and user id it adopts.
    pub host_origins: Vec<String>,
}

/// Every key `init()` accepts, in the order the docs list them. `autocapture` takes `true`,
/// `false` or an object of the `autocapture.*` switches.
pub const KNOWN_KEYS: [&str; 17] = [
    "clientKey",
    "endpoint",
    "clientRef",
    "storage",
    "sessionTimeoutMinutes",
    "maxEvents",
    "maxBytes",
    "flushIntervalMs",
    "maxQueuedEvents",
    "debug",
    "respectDoNotTrack",
    "consent",
    "onError",
    "onBatch",
    "autocapture",
    "iframeOrigins",
    "hostOrigins",
];

/// The switches an `autocapture` object may hold.
const AUTOCAPTURE_KEYS: [&str; 3] = ["pageViews", "dataAttributes", "impressions"];

/// A configuration value outside what the tracker can work with; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Smallest batch body that still fits one event of the largest allowed size.
const MIN_BATCH_BYTES: u32 = MAX_EVENT_BYTES as u32 + 64;

impl Default for Config {
    fn default() -> Config {
        Config {
            client_key: String::new(),
            endpoint: String::new(),
            client_ref: None,
            storage: Storage::LocalStorage,
            session_timeout_minutes: 30,
            max_events: 100,
            max_bytes: 60_000,
            flush_interval_ms: 1_000,
            max_queued_events: 1_000,
            debug: false,
            respect_do_not_track: false,
            consent: Consent::Granted,
            autocapture: Autocapture {
                page_views: true,
                data_attributes: true,
                impressions: true,
            },
            iframe_origins: Vec::new(),
            host_origins: Vec::new(),
        }
    }
}

impl Config {
    /// Reads `init()`'s options. Keys are camelCase; nested `autocapture` switches come as
    /// `autocapture.pageViews` and so on. The first problem found is the error, naming its key.
    pub fn parse(pairs: &[(String, Value)]) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let (mut key, mut endpoint) = (None, None);
        for (k, v) in pairs {
            if matches!(v, Value::Absent) {
                continue;
            }
            match k.as_str() {
                "clientKey" => key = Some(string(k, v)?),
                "endpoint" => endpoint = Some(string(k, v)?),
                "clientRef" => c.client_ref = Some(string(k, v)?),
                "storage" => {
                    c.storage = match string(k, v)?.as_str() {
                        "localStorage" => Storage::LocalStorage,
                        "cookie" => Storage::Cookie,
                        "memory" => Storage::Memory,
                        other => {
                            return Err(one_of(k, other, "'localStorage', 'cookie', 'memory'"));
                        }
                    }
                }
                "sessionTimeoutMinutes" => c.session_timeout_minutes = count(k, v, 1)?,
                "maxEvents" => c.max_events = count(k, v, 1)?,
                "maxBytes" => c.max_bytes = count(k, v, 0)?,
                "flushIntervalMs" => c.flush_interval_ms = count(k, v, 1)?,
                "maxQueuedEvents" => c.max_queued_events = count(k, v, 1)?,
                "debug" => c.debug = boolean(k, v)?,
                "respectDoNotTrack" => c.respect_do_not_track = boolean(k, v)?,
                "consent" => {
                    let s = string(k, v)?;
                    c.consent = Consent::parse(&s)
                        .ok_or_else(|| one_of(k, &s, "'granted', 'pending', 'denied'"))?;
                }
                "autocapture" => {
                    let on = boolean(k, v)?;
                    c.autocapture = Autocapture {
                        page_views: on,
                        data_attributes: on,
                        impressions: on,
                    };
                }
                "autocapture.pageViews" => c.autocapture.page_views = boolean(k, v)?,
                "autocapture.dataAttributes" => c.autocapture.data_attributes = boolean(k, v)?,
                "autocapture.impressions" => c.autocapture.impressions = boolean(k, v)?,
                "iframeOrigins" => c.iframe_origins = origins(k, v)?,
                "hostOrigins" => c.host_origins = origins(k, v)?,
                // Callbacks, read by the browser glue.
                "onError" | "onBatch" => {}
                _ => return Err(unknown_key(k)),
            }
        }
        c.client_key = key.ok_or_else(|| ConfigError("`clientKey` is required".into()))?;
        c.endpoint = endpoint.ok_or_else(|| ConfigError("`endpoint` is required".into()))?;
        c.validate()
    }

    /// Checks the ranges and relations between keys.
    fn validate(self) -> Result<Config, ConfigError> {
        let err = |s: &str| Err(ConfigError(s.to_owned()));
        if let Err(e) = schema::check_id(&self.client_key, "clientKey") {
            return Err(ConfigError(e.message()));
        }
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return err("`endpoint` must be an absolute http:// or https:// URL");
        }
        if let Some(r) = &self.client_ref {
            if let Err(e) = schema::check_id(r, "clientRef") {
                return Err(ConfigError(e.message()));
            }
        }
        if self.max_events as usize > MAX_EVENTS_PER_BATCH {
            return err("`maxEvents` must be between 1 and 500");
        }
        if self.max_bytes < MIN_BATCH_BYTES || self.max_bytes as usize > MAX_BODY_BYTES {
            return err("`maxBytes` must be between 32832 and 1048576");
        }
        if self.max_queued_events < self.max_events {
            return err("`maxQueuedEvents` must be at least `maxEvents`");
        }
        Ok(self)
    }
}

/// The error for a key `init()` does not know, listing the ones it does.
pub fn unknown_key(key: &str) -> ConfigError {
    let (known, parent) = match key.strip_prefix("autocapture.") {
        Some(_) => (&AUTOCAPTURE_KEYS[..], "autocapture."),
        None => (&KNOWN_KEYS[..], ""),
    };
    let mut list = String::new();
    for k in known {
        if !list.is_empty() {
            list.push_str(", ");
        }
        list.push_str(parent);
        list.push_str(k);
    }
    ConfigError(["unknown key `", key, "`; expected one of ", &list].concat())
}

fn type_error(key: &str, expected: &str, v: &Value) -> ConfigError {
    let got = match v {
        Value::Str(_) => "a string",
        Value::Num(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::List(_) => "an array",
        Value::Absent => "nothing",
        Value::Other(t) => t,
    };
    ConfigError(["`", key, "` must be ", expected, ", not ", got].concat())
}

fn one_of(key: &str, got: &str, allowed: &str) -> ConfigError {
    ConfigError(["`", key, "` must be one of ", allowed, ", not '", got, "'"].concat())
}

fn string(key: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(type_error(key, "a string", v)),
    }
}

/// A list of origins such as `https://app.example.com`: scheme, host and optional port, no
/// path, because `postMessage` compares exactly that.
fn origins(key: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
    let Value::List(items) = v else {
        return Err(type_error(key, "an array of origins", v));
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::Str(o) if is_origin(o) => out.push(o.clone()),
            Value::Str(o) => {
                return Err(ConfigError(
                    [
                        "`",
                        key,
                        "` holds origins like 'https://app.example.com' (no path, no trailing slash), not '",
                        o,
                        "'",
                    ]
                    .concat(),
                ));
            }
            other => return Err(type_error(key, "an array of origin strings", other)),
        }
    }
    Ok(out)
}

fn is_origin(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|host| !host.is_empty() && !host.contains(['/', '?', '#', ' ']))
}

fn boolean(key: &str, v: &Value) -> Result<bool, ConfigError> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(type_error(key, "a boolean", v)),
    }
}

/// A whole number of at least `min` that fits in a u32.
fn count(key: &str, v: &Value, min: u32) -> Result<u32, ConfigError> {
    match v {
        Value::Num(n) if n.fract() == 0.0 && *n >= f64::from(min) && *n <= f64::from(u32::MAX) => {
            Ok(*n as u32)
        }
        Value::Num(_) => Err(ConfigError(if min == 0 {
            ["`", key, "` must be a whole number"].concat()
        } else {
            ["`", key, "` must be a whole number of at least 1"].concat()
        })),
        _ => Err(type_error(key, "a number", v)),
    }
}

#[cfg(test)]
pub(crate) fn test_config() -> Config {
    Config {
        client_key: "pk_test".into(),
        endpoint: "http://127.0.0.1:8787/v1/events".into(),
        ..Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(extra: &[(&str, Value)]) -> Vec<(String, Value)> {
        let mut p = vec![
            ("clientKey".to_owned(), Value::Str("pk_test".into())),
            (
                "endpoint".to_owned(),
                Value::Str("http://127.0.0.1:8787/v1/events".into()),
            ),
        ];
        p.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        p
    }

    #[test]
    fn defaults_and_every_key_parse() {
        assert_eq!(Config::parse(&pairs(&[])).unwrap(), test_config());
        let c = Config::parse(&pairs(&[
            ("clientRef", Value::Str("user-42".into())),
            ("storage", Value::Str("cookie".into())),
            ("sessionTimeoutMinutes", Value::Num(5.0)),
            ("maxEvents", Value::Num(7.0)),
            ("maxBytes", Value::Num(40_000.0)),
            ("flushIntervalMs", Value::Num(250.0)),
            ("maxQueuedEvents", Value::Num(70.0)),
            ("debug", Value::Bool(true)),
            ("respectDoNotTrack", Value::Bool(true)),
            ("consent", Value::Str("pending".into())),
            ("autocapture", Value::Bool(false)),
            ("autocapture.impressions", Value::Bool(true)),
            ("onError", Value::Absent),
            (
                "iframeOrigins",
                Value::List(vec![Value::Str("https://widgets.example".into())]),
            ),
            (
                "hostOrigins",
                Value::List(vec![Value::Str("http://127.0.0.1:8080".into())]),
            ),
        ]))
        .unwrap();
        assert_eq!(c.iframe_origins, ["https://widgets.example"]);
        assert_eq!(c.host_origins, ["http://127.0.0.1:8080"]);
        assert_eq!(c.client_ref.as_deref(), Some("user-42"));
        assert_eq!(c.storage, Storage::Cookie);
        assert_eq!(
            (c.session_timeout_minutes, c.max_events, c.max_bytes),
            (5, 7, 40_000)
        );
        assert_eq!((c.flush_interval_ms, c.max_queued_events), (250, 70));
        assert!(c.debug && c.respect_do_not_track);
        assert_eq!(c.consent, Consent::Pending);
        assert_eq!(
            c.autocapture,
            Autocapture {
                page_views: false,
                data_attributes: false,
                impressions: true
            }
        );
    }

    #[test]
    fn unknown_keys_are_named_with_the_known_ones() {
        let e = Config::parse(&pairs(&[("flushIntervalMS", Value::Num(5.0))])).unwrap_err();
        assert!(e.0.starts_with("unknown key `flushIntervalMS`"), "{e}");
        assert!(e.0.contains("flushIntervalMs"), "{e}");
        let e = Config::parse(&pairs(&[("autocapture.clicks", Value::Bool(true))])).unwrap_err();
        assert!(e.0.contains("autocapture.pageViews"), "{e}");
    }

    #[test]
    fn the_limits_in_messages_match_the_constants() {
        assert_eq!(MIN_BATCH_BYTES, 32832);
        assert_eq!(MAX_BODY_BYTES, 1048576);
        assert_eq!(MAX_EVENTS_PER_BATCH, 500);
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        let cases: [(&str, Value); 15] = [
            ("iframeOrigins", Value::Str("https://a.example".into())),
            (
                "iframeOrigins",
                Value::List(vec![Value::Str("https://a.example/".into())]),
            ),
            ("hostOrigins", Value::List(vec![Value::Num(1.0)])),
            ("endpoint", Value::Str("/v1/events".into())),
            ("clientKey", Value::Str(String::new())),
            ("clientKey", Value::Num(3.0)),
            ("maxEvents", Value::Num(0.0)),
            ("maxEvents", Value::Num(1.5)),
            ("maxBytes", Value::Num(1000.0)),
            ("maxQueuedEvents", Value::Num(5.0)),
            ("clientRef", Value::Str("has space".into())),
            ("storage", Value::Str("indexedDB".into())),
            ("consent", Value::Str("yes".into())),
            ("debug", Value::Str("true".into())),
            ("sessionTimeoutMinutes", Value::Other("an object")),
        ];
        for (key, value) in cases {
            let e = Config::parse(&pairs(&[(key, value.clone())])).unwrap_err();
            assert!(e.0.contains(key), "{e} does not name {key} ({value:?})");
        }
        let e = Config::parse(&[]).unwrap_err();
        assert!(e.0.contains("clientKey"), "{e}");
    }
}
