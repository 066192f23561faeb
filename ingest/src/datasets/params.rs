//! The datasets' parameters (`docs/datasets.md` §3) and weight table, with their defaults, read from one
//! `datasets.toml`. Every field is optional in the file; what it leaves out keeps the default.

use std::collections::BTreeMap;

use serde::Deserialize;

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    pub personal: Personal,
    pub consensus: Consensus,
    pub search: Search,
    pub engagement: Engagement,
    pub lateness: Lateness,
    /// `"event_type.action" = weight`, overriding the default table (`docs/datasets.md` §2).
    pub weights: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Personal {
    pub half_life_hours: f64,
    pub prune_below: f64,
    pub max_entities: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Consensus {
    pub half_life_fast_hours: f64,
    pub half_life_slow_hours: f64,
    pub rate_prior_r0: f64,
    pub z_min: f64,
    pub dedup_bucket_hours: f64,
    pub min_users_trending: usize,
    pub min_users_popular_entities: usize,
    pub min_users_popular_content: usize,
    pub min_users_popular_searches: usize,
    pub materialize_every_secs: u64,
    /// Length of each materialised list (the API's `limit` is at most this).
    pub top_n: usize,
    /// Hard cap of distinct search keys (Space-Saving eviction beyond it).
    pub max_search_keys: usize,
    /// Hard caps of distinct entity ids per entity type, and of content ids, as of searches.
    pub max_entity_keys: usize,
    pub max_content_keys: usize,
    /// The entity types the consensus lists are kept for: any, when empty, up to
    /// `max_entity_types` (the first seen; a type is forgotten once nothing of it is left).
    /// Events name their types themselves, and anyone can send events: without a bound, each
    /// new type would be a new pair of lists, materialised every minute.
    pub entity_types: Vec<String>,
    pub max_entity_types: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Search {
    pub max_len: usize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Engagement {
    pub click_window_hours: f64,
    pub conversion_window_hours: f64,
    /// `event_type.action` pairs; `*.converted` matches any event type.
    pub conversion_actions: Vec<String>,
    pub wilson_z: f64,
    /// Impressions first seen longer ago than this (behind the watermark) are forgotten.
    pub retention_days: u32,
}

/// How far behind the watermark (the newest event time seen) an event may arrive and still
/// count. `enabled = false` accepts any lateness (the order-independence property tests).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lateness {
    pub enabled: bool,
    pub personal_hours: f64,
    pub consensus_hours: f64,
    /// Events from further ahead of the clock than this are rejected.
    pub future_minutes: f64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            personal: Personal {
                half_life_hours: 336.0,
                prune_below: 0.01,
                max_entities: 200,
            },
            consensus: Consensus {
                half_life_fast_hours: 1.0,
                half_life_slow_hours: 168.0,
                rate_prior_r0: 1.0,
                z_min: 1.0,
                dedup_bucket_hours: 1.0,
                min_users_trending: 3,
                min_users_popular_entities: 1,
                min_users_popular_content: 1,
                min_users_popular_searches: 3,
                materialize_every_secs: 60,
                top_n: 100,
                max_search_keys: 200_000,
                max_entity_keys: 100_000,
                max_content_keys: 100_000,
                entity_types: Vec::new(),
                max_entity_types: 32,
            },
            search: Search { max_len: 64 },
            engagement: Engagement {
                click_window_hours: 1.0,
                conversion_window_hours: 24.0,
                conversion_actions: [
                    "watchlist.added",
                    "trade.order_placed",
                    "alert.created",
                    "content.read",
                    "*.converted",
                ]
                .map(String::from)
                .to_vec(),
                wilson_z: 1.96,
                retention_days: 35,
            },
            lateness: Lateness {
                enabled: true,
                personal_hours: 96.0,
                consensus_hours: 24.0,
                future_minutes: 5.0,
            },
            weights: BTreeMap::new(),
        }
    }
}

/// Each section's default is the one in [`Params::default`], so a file may give any subset.
macro_rules! section_defaults {
    ($($section:ident: $field:ident),*) => {$(
        impl Default for $section {
            fn default() -> $section {
                Params::default().$field
            }
        }
    )*};
}

section_defaults!(
    Personal: personal,
    Consensus: consensus,
    Search: search,
    Engagement: engagement,
    Lateness: lateness
);

/// Where an event's weight goes (`docs/datasets.md` §2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Feeds {
    pub personal: bool,
    pub entities: bool,
    pub content: bool,
    pub searches: bool,
    pub watchlist: Option<bool>,
}

const NONE: Feeds = Feeds {
    personal: false,
    entities: false,
    content: false,
    searches: false,
    watchlist: None,
};
const P_TE: Feeds = Feeds {
    personal: true,
    entities: true,
    ..NONE
};
const P_TE_TC: Feeds = Feeds {
    content: true,
    ..P_TE
};

/// The default table: `(event_type.action, weight, feeds)`. `search.submitted` weighs 0 for
/// entities and 1 for searches; the search weight is fixed (`docs/datasets.md` §2).
const TABLE: [(&str, f64, Feeds); 16] = [
    ("instrument.viewed", 1.0, P_TE),
    ("instrument.clicked", 0.5, P_TE),
    ("chart.interacted", 1.0, P_TE),
    (
        "search.submitted",
        0.0,
        Feeds {
            searches: true,
            ..NONE
        },
    ),
    ("search.result_clicked", 2.0, P_TE),
    ("content.viewed", 1.0, P_TE_TC),
    ("content.clicked", 1.0, P_TE_TC),
    ("content.read", 2.0, P_TE_TC),
    ("content.shared", 3.0, P_TE_TC),
    ("alert.created", 3.0, P_TE),
    ("trade.ticket_opened", 3.0, P_TE),
    (
        "watchlist.added",
        5.0,
        Feeds {
            watchlist: Some(true),
            ..P_TE
        },
    ),
    ("trade.order_placed", 8.0, P_TE),
    (
        "watchlist.removed",
        -5.0,
        Feeds {
            personal: true,
            watchlist: Some(false),
            ..NONE
        },
    ),
    ("recommendation.clicked", 2.0, P_TE),
    (
        "recommendation.dismissed",
        -2.0,
        Feeds {
            personal: true,
            ..NONE
        },
    ),
];

/// An event type's weight and feeds, `None` for a pair the table does not know.
pub(crate) fn lookup(params: &Params, event_type: &str, action: &str) -> Option<(f64, Feeds)> {
    let (name, weight, feeds) = TABLE
        .iter()
        .find(|(name, ..)| name.split_once('.') == Some((event_type, action)))?;
    Some((
        params.weights.get(*name).copied().unwrap_or(*weight),
        *feeds,
    ))
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParamsError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Params {
    /// Reads a `datasets.toml` (`source` names it in errors); keys it leaves out keep their
    /// defaults, unknown keys are errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Params, ParamsError> {
        let params: Params = toml::from_str(text).map_err(|e| ParamsError::Parse {
            path: source.to_owned(),
            message: e.to_string().trim().to_owned(),
        })?;
        params.check().map_err(|message| ParamsError::Invalid {
            path: source.to_owned(),
            message,
        })?;
        Ok(params)
    }

    fn check(&self) -> Result<(), String> {
        let positive = [
            ("personal.half_life_hours", self.personal.half_life_hours),
            (
                "consensus.half_life_fast_hours",
                self.consensus.half_life_fast_hours,
            ),
            (
                "consensus.half_life_slow_hours",
                self.consensus.half_life_slow_hours,
            ),
            (
                "consensus.dedup_bucket_hours",
                self.consensus.dedup_bucket_hours,
            ),
            ("consensus.rate_prior_r0", self.consensus.rate_prior_r0),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{name} must be a positive number, not {value}"));
            }
            // Durations become milliseconds; less than one would divide by zero.
            if name.ends_with("_hours") && Params::hours(value) < 1 {
                return Err(format!(
                    "{name} must be at least one millisecond, not {value} h"
                ));
            }
        }
        if self.consensus.top_n == 0 || self.consensus.top_n > 1000 {
            return Err("consensus.top_n must be between 1 and 1000".into());
        }
        let c = &self.consensus;
        for (name, cap) in [
            ("consensus.max_search_keys", c.max_search_keys),
            ("consensus.max_entity_keys", c.max_entity_keys),
            ("consensus.max_content_keys", c.max_content_keys),
            ("consensus.max_entity_types", c.max_entity_types),
        ] {
            if cap < 8 {
                return Err(format!("{name} must be at least 8, not {cap}"));
            }
        }
        if self.consensus.materialize_every_secs == 0 {
            return Err("consensus.materialize_every_secs must be at least 1".into());
        }
        for name in self.weights.keys() {
            let known = TABLE.iter().any(|(n, ..)| n == name);
            if !known {
                return Err(format!(
                    "weights.\"{name}\" is not in the weight table; known: {}",
                    TABLE.map(|(n, ..)| n).join(", ")
                ));
            }
        }
        if let Some((name, w)) = self.weights.iter().find(|(_, w)| !w.is_finite()) {
            return Err(format!(
                "weights.\"{name}\" must be a finite number, not {w}"
            ));
        }
        Ok(())
    }

    /// The default weight table: `("event_type.action", weight)`.
    pub fn default_weights() -> impl Iterator<Item = (&'static str, f64)> {
        TABLE.iter().map(|(name, w, _)| (*name, *w))
    }

    pub(crate) fn is_conversion(&self, event_type: &str, action: &str) -> bool {
        self.engagement
            .conversion_actions
            .iter()
            .any(|c| match c.split_once('.') {
                Some(("*", a)) => a == action,
                Some((t, a)) => t == event_type && a == action,
                None => false,
            })
    }

    pub(crate) fn hours(h: f64) -> i64 {
        (h * HOUR_MS as f64).round() as i64
    }
}
