//! What `init()` takes, read key by key from the flat string `host.js` makes of the options
//! object, so the wasm links no serde: `key\x1fvalue` entries separated by `\x1d`, each value
//! tagged with its JS type (see [`Config::parse`]). One table says what each key takes, so
//! every key is checked, and named in its error, by the same few lines.

use schema::limits::{MAX_BODY_BYTES, MAX_EVENT_BYTES, MAX_EVENTS_PER_BATCH};

use super::text::{cut, parse_int, pieces};

/// Separators of the flat options string (the same as `host.js` writes everywhere).
const FIELD: u8 = 0x1f;
const GROUP: u8 = 0x1d;
const ITEM: u8 = 0x1c;

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
    /// `'granted'`, `'pending'` or `'denied'`; the error names `consent` and what it got.
    pub fn parse(s: &str) -> Result<Consent, ConfigError> {
        match s {
            "granted" => Ok(Consent::Granted),
            "pending" => Ok(Consent::Pending),
            "denied" => Ok(Consent::Denied),
            _ => Err(one_of(CONSENT, s, "'granted', 'pending', 'denied'")),
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

/// What a key takes, by the tag `host.js` gives each value: `s` string, `n` number (whole,
/// or `0.5` for any other), `b` boolean (`b1`/`b0`), `l` list (items tagged too, separated by
/// `\x1c`), `f` function, `o` object, `a` absent (`null` or `undefined`: the default).
#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// A whole number of at least the given one.
    Count(u32),
    Flag,
    Origins,
    /// `onBatch`, `onError`, `beforeSend`: the browser glue keeps them.
    Callback,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::Text => b's',
            Kind::Count(_) => b'n',
            Kind::Flag => b'b',
            Kind::Origins => b'l',
            Kind::Callback => b'f',
        }
    }
}

/// Every key `init()` accepts, in the order the docs list them. `autocapture` takes `true`,
/// `false` or an object of switches, which `host.js` writes as `autocapture.*` keys.
const KEYS: [(&str, Kind); 21] = [
    ("clientKey", Kind::Text),
    ("endpoint", Kind::Text),
    ("clientRef", Kind::Text),
    ("storage", Kind::Text),
    ("sessionTimeoutMinutes", Kind::Count(1)),
    ("maxEvents", Kind::Count(1)),
    ("maxBytes", Kind::Count(0)),
    ("flushIntervalMs", Kind::Count(1)),
    ("maxQueuedEvents", Kind::Count(1)),
    ("debug", Kind::Flag),
    ("respectDoNotTrack", Kind::Flag),
    ("consent", Kind::Text),
    ("onError", Kind::Callback),
    ("onBatch", Kind::Callback),
    ("autocapture", Kind::Flag),
    ("iframeOrigins", Kind::Origins),
    ("hostOrigins", Kind::Origins),
    ("beforeSend", Kind::Callback),
    ("autocapture.pageViews", Kind::Flag),
    ("autocapture.dataAttributes", Kind::Flag),
    ("autocapture.impressions", Kind::Flag),
];

/// Where the `autocapture.*` switches start in [`KEYS`].
const SWITCHES: usize = 18;
/// Where `consent` is in [`KEYS`].
const CONSENT: usize = 11;
/// Where the five whole numbers start in [`KEYS`].
const COUNTS: usize = 4;

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
    /// Reads `init()`'s options, as `host.js` flattens them. The first problem found is the
    /// error, naming its key.
    pub fn parse(flat: &str) -> Result<Config, ConfigError> {
        // Each key's value without its tag, when given.
        let mut given: [Option<&str>; KEYS.len()] = [None; KEYS.len()];
        for entry in pieces(flat, GROUP).filter(|e| !e.is_empty()) {
            let (key, value) = cut(entry, FIELD).unwrap_or((entry, "a"));
            let i = KEYS
                .iter()
                .position(|(k, _)| *k == key)
                .ok_or_else(|| unknown_key(key))?;
            let tag = value.as_bytes().first().copied().unwrap_or(b'a');
            if tag == b'a' {
                continue;
            }
            let kind = KEYS[i].1;
            if tag != kind.tag() {
                return Err(type_error(key, kind.tag(), tag));
            }
            given[i] = Some(&value[1..]);
        }
        let text = |i: usize| given[i].map(str::to_owned);
        let flag = |i: usize| given[i].map(|v| v == "1");
        let mut c = Config {
            client_key: text(0).ok_or_else(|| required("clientKey"))?,
            endpoint: text(1).ok_or_else(|| required("endpoint"))?,
            client_ref: text(2),
            ..Config::default()
        };
        if let Some(v) = given[3] {
            c.storage = match v {
                "localStorage" => Storage::LocalStorage,
                "cookie" => Storage::Cookie,
                "memory" => Storage::Memory,
                _ => return Err(one_of(3, v, "'localStorage', 'cookie', 'memory'")),
            }
        }
        let mut counts = [
            c.session_timeout_minutes,
            c.max_events,
            c.max_bytes,
            c.flush_interval_ms,
            c.max_queued_events,
        ];
        for (n, count) in counts.iter_mut().enumerate() {
            let i = COUNTS + n;
            if let Some(v) = given[i] {
                *count = whole(i, v)?;
            }
        }
        [
            c.session_timeout_minutes,
            c.max_events,
            c.max_bytes,
            c.flush_interval_ms,
            c.max_queued_events,
        ] = counts;
        c.debug = flag(9).unwrap_or(c.debug);
        c.respect_do_not_track = flag(10).unwrap_or(c.respect_do_not_track);
        if let Some(v) = given[CONSENT] {
            c.consent = Consent::parse(v)?;
        }
        let all = flag(14).unwrap_or(true);
        c.autocapture = Autocapture {
            page_views: flag(SWITCHES).unwrap_or(all),
            data_attributes: flag(SWITCHES + 1).unwrap_or(all),
            impressions: flag(SWITCHES + 2).unwrap_or(all),
        };
        c.iframe_origins = origins(15, given[15])?;
        c.host_origins = origins(16, given[16])?;
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
        if let Some(r) = &self.client_ref
            && let Err(e) = schema::check_id(r, "clientRef")
        {
            return Err(ConfigError(e.message()));
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

/// The error for a key `init()` does not know, listing the ones it does (the `autocapture.*`
/// switches for a key under `autocapture`).
fn unknown_key(key: &str) -> ConfigError {
    let under = key.starts_with("autocapture.");
    let mut list = String::new();
    for (k, _) in &KEYS[..] {
        if k.starts_with("autocapture.") == under {
            if !list.is_empty() {
                list.push_str(", ");
            }
            list.push_str(k);
        }
    }
    ConfigError(["unknown key `", key, "`; expected one of ", &list].concat())
}

fn required(key: &str) -> ConfigError {
    ConfigError(["`", key, "` is required"].concat())
}

/// What a value of each tag is, for messages.
fn noun(tag: u8) -> &'static str {
    match tag {
        b's' => "a string",
        b'n' => "a number",
        b'b' => "a boolean",
        b'l' => "an array",
        b'f' => "a function",
        b'o' => "an object",
        _ => "null",
    }
}

fn type_error(key: &str, expected: u8, got: u8) -> ConfigError {
    ConfigError(["`", key, "` must be ", noun(expected), ", not ", noun(got)].concat())
}

fn one_of(i: usize, got: &str, allowed: &str) -> ConfigError {
    ConfigError(
        [
            "`",
            KEYS[i].0,
            "` must be one of ",
            allowed,
            ", not '",
            got,
            "'",
        ]
        .concat(),
    )
}

/// The `i`th key's number: whole, at least its minimum, and within a u32.
fn whole(i: usize, v: &str) -> Result<u32, ConfigError> {
    let (key, min) = match KEYS[i] {
        (key, Kind::Count(min)) => (key, min),
        (key, _) => (key, 0),
    };
    match parse_int(v) {
        Some(n) if n >= i64::from(min) && n <= i64::from(u32::MAX) => Ok(n as u32),
        _ => {
            let least = if min > 0 { " of at least 1" } else { "" };
            Err(ConfigError(
                ["`", key, "` must be a whole number", least].concat(),
            ))
        }
    }
}

/// The `i`th key's list of origins such as `https://app.example.com`: scheme, host and
/// optional port, no path, because `postMessage` compares exactly that.
fn origins(i: usize, list: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let key = KEYS[i].0;
    let mut out = Vec::new();
    for item in pieces(list.unwrap_or(""), ITEM).filter(|v| !v.is_empty()) {
        let text = item.strip_prefix("s");
        match text.filter(|o| is_origin(o)) {
            Some(o) => out.push(o.to_owned()),
            None => {
                let got = match text {
                    Some(o) => ["'", o, "'"].concat(),
                    None => noun(item.as_bytes()[0]).to_owned(),
                };
                return Err(ConfigError(
                    [
                        "`",
                        key,
                        "` holds origins like 'https://app.example.com' (no path, no trailing slash), not ",
                        &got,
                    ]
                    .concat(),
                ));
            }
        }
    }
    Ok(out)
}

fn is_origin(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|host| {
        !host.is_empty() && !host.bytes().any(|b| matches!(b, b'/' | b'?' | b'#' | b' '))
    })
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

    /// The options as `host.js` flattens them: the required keys, then `extra`.
    fn flat(extra: &[(&str, &str)]) -> String {
        let mut out =
            String::from("clientKey\x1fspk_test\x1dendpoint\x1fshttp://127.0.0.1:8787/v1/events");
        for (k, v) in extra {
            out.push_str(&["\x1d", k, "\x1f", v].concat());
        }
        out
    }

    #[test]
    fn defaults_and_every_key_parse() {
        assert_eq!(Config::parse(&flat(&[])).unwrap(), test_config());
        let c = Config::parse(&flat(&[
            ("clientRef", "suser-42"),
            ("storage", "scookie"),
            ("sessionTimeoutMinutes", "n5"),
            ("maxEvents", "n7"),
            ("maxBytes", "n40000"),
            ("flushIntervalMs", "n250"),
            ("maxQueuedEvents", "n70"),
            ("debug", "b1"),
            ("respectDoNotTrack", "b1"),
            ("consent", "spending"),
            ("autocapture", "b0"),
            ("autocapture.impressions", "b1"),
            ("onError", "a"),
            ("onBatch", "f"),
            ("beforeSend", "f"),
            ("iframeOrigins", "lshttps://widgets.example"),
            (
                "hostOrigins",
                "lshttp://127.0.0.1:8080\x1cshttps://app.example",
            ),
        ]))
        .unwrap();
        assert_eq!(c.iframe_origins, ["https://widgets.example"]);
        assert_eq!(
            c.host_origins,
            ["http://127.0.0.1:8080", "https://app.example"]
        );
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
        // Absent values (null, undefined) and empty lists leave the defaults.
        let c = Config::parse(&flat(&[("maxEvents", "a"), ("hostOrigins", "l")])).unwrap();
        assert_eq!((c.max_events, c.host_origins.len()), (100, 0));
        let c = Config::parse(&flat(&[("autocapture.pageViews", "b0")])).unwrap();
        assert!(!c.autocapture.page_views && c.autocapture.impressions);
    }

    #[test]
    fn unknown_keys_are_named_with_the_known_ones() {
        let e = Config::parse(&flat(&[("flushIntervalMS", "n5")])).unwrap_err();
        assert!(e.0.starts_with("unknown key `flushIntervalMS`"), "{e}");
        assert!(e.0.contains("flushIntervalMs"), "{e}");
        assert!(!e.0.contains("autocapture.pageViews"), "{e}");
        let e = Config::parse(&flat(&[("autocapture.clicks", "b1")])).unwrap_err();
        assert!(e.0.contains("autocapture.pageViews"), "{e}");
        assert!(!e.0.contains("clientKey"), "{e}");
    }

    #[test]
    fn the_limits_in_messages_match_the_constants() {
        assert_eq!(MIN_BATCH_BYTES, 32832);
        assert_eq!(MAX_BODY_BYTES, 1048576);
        assert_eq!(MAX_EVENTS_PER_BATCH, 500);
        assert_eq!(KEYS[SWITCHES].0, "autocapture.pageViews");
        assert_eq!(KEYS[COUNTS].0, "sessionTimeoutMinutes");
        assert_eq!(KEYS[CONSENT].0, "consent");
        // The other places `Config::parse` reads by index.
        for (i, key) in [
            (0, "clientKey"),
            (1, "endpoint"),
            (2, "clientRef"),
            (3, "storage"),
            (9, "debug"),
            (10, "respectDoNotTrack"),
            (14, "autocapture"),
            (15, "iframeOrigins"),
            (16, "hostOrigins"),
        ] {
            assert_eq!(KEYS[i].0, key);
        }
        assert!(matches!(KEYS[COUNTS + 4].1, Kind::Count(_)));
        assert!(!matches!(KEYS[COUNTS + 5].1, Kind::Count(_)));
    }

    #[test]
    fn rejects_bad_values_naming_the_key() {
        let cases: [(&str, &str, &str); 19] = [
            (
                "iframeOrigins",
                "shttps://a.example",
                "must be an array, not a string",
            ),
            ("iframeOrigins", "lshttps://a.example/", "no trailing slash"),
            (
                "hostOrigins",
                "ln1",
                "(no path, no trailing slash), not a number",
            ),
            ("endpoint", "s/v1/events", "absolute"),
            ("clientKey", "s", "clientKey"),
            ("clientKey", "n3", "must be a string, not a number"),
            ("maxEvents", "n0", "at least 1"),
            ("maxEvents", "n0.5", "whole number"),
            ("maxBytes", "n1000", "between"),
            ("maxQueuedEvents", "n5", "at least `maxEvents`"),
            ("clientRef", "shas space", "clientRef"),
            ("storage", "sindexedDB", "not 'indexedDB'"),
            ("consent", "syes", "'granted', 'pending', 'denied'"),
            ("debug", "strue", "must be a boolean, not a string"),
            ("sessionTimeoutMinutes", "o", "not an object"),
            ("onError", "slog", "must be a function, not a string"),
            ("beforeSend", "o", "must be a function, not an object"),
            ("autocapture", "o", "must be a boolean"),
            ("flushIntervalMs", "n99999999999", "whole number"),
        ];
        for (key, value, says) in cases {
            let e = Config::parse(&flat(&[(key, value)])).unwrap_err();
            assert!(e.0.contains(key), "{e} does not name {key} ({value:?})");
            assert!(e.0.contains(says), "{e} does not say {says:?}");
        }
        let e = Config::parse("").unwrap_err();
        assert!(e.0.contains("clientKey"), "{e}");
        let e = Config::parse("clientKey\x1fspk_1").unwrap_err();
        assert!(e.0.contains("`endpoint` is required"), "{e}");
    }
}
