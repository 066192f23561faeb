//! The query API's requests (spec §5.5), parsed from a path and query string once, so the
//! HTTP routes and `ingest replay` answer exactly alike.

use std::collections::BTreeMap;

use schema::Timestamp;
use serde_json::{Value, json};

use super::engagement::{Filter, GroupBy, ITEM_SORTS, ItemsQuery, SummaryQuery, date};
use super::params::DAY_MS;
use super::preferences::PreferencesQuery;
use super::recommend::{Kind, Recommend};
use super::{Engine, Mode};

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// Engagement queries without `from` cover this many days up to `to`.
const DEFAULT_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("no query route {0}")]
    NotFound(String),
    #[error("unknown query parameter `{0}`; this route takes: {1}")]
    UnknownParameter(String, String),
    #[error("parameter `{name}` must be {expected}, not `{value}`")]
    BadParameter {
        name: String,
        expected: String,
        value: String,
    },
    #[error("name the user: the `user` parameter, or the `Client-Ref` header")]
    MissingUser,
    #[error("name the user once: the `user` parameter or the `Client-Ref` header, not both")]
    UserTwice,
    #[error("`from` ({from}) is after `to` ({to})")]
    BadRange { from: String, to: String },
    #[error("no impression `{0}` (unknown, or past its retention)")]
    UnknownImpression(String),
}

impl QueryError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::NotFound(_) => "not_found",
            QueryError::UnknownParameter(..) => "unknown_parameter",
            QueryError::BadParameter { .. } => "bad_parameter",
            QueryError::MissingUser => "missing_parameter",
            QueryError::UserTwice => "bad_parameter",
            QueryError::BadRange { .. } => "bad_range",
            QueryError::UnknownImpression(_) => "unknown_impression",
        }
    }

    /// The HTTP status: 404 for an unknown route, else 400.
    pub fn status(&self) -> u16 {
        if matches!(
            self,
            QueryError::NotFound(_) | QueryError::UnknownImpression(_)
        ) {
            404
        } else {
            400
        }
    }

    /// The body the API answers with (RFC 9457 problem details, plus the code).
    pub fn problem(&self) -> Value {
        let status = self.status();
        json!({
            "type": "about:blank",
            "title": if status == 404 { "Not Found" } else { "Bad Request" },
            "status": status,
            "detail": self.to_string(),
            "error": self.code(),
        })
    }
}

/// A parsed request of the query API.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    kind: Kind_,
    /// `as_of`, honoured only in replay and test mode.
    pub as_of: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind_ {
    Trending { key: String, limit: usize },
    Preferences(PreferencesQuery, String),
    Summary(GroupBy, Dates),
    Items(Dates, String, usize),
    ClickPositions(Dates),
    Daily(Dates),
    Impression(String),
    Feedback(Option<String>, i64, usize),
    Recommendations(Recommend, String),
}

/// Filters whose dates default relative to `as_of`.
#[derive(Debug, Clone, PartialEq)]
struct Dates {
    recommender: Option<String>,
    surface: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
}

impl Dates {
    fn resolve(&self, as_of: i64) -> Filter {
        let to = self.to.unwrap_or(as_of.div_euclid(DAY_MS));
        Filter {
            recommender: self.recommender.clone(),
            surface: self.surface.clone(),
            from: self.from.unwrap_or(to - (DEFAULT_DAYS - 1)),
            to,
        }
    }
}

/// Where the answer to a query comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Target<'a> {
    /// A materialised list: serve the document under `key`, cut to `limit` items.
    Document { key: &'a str, limit: usize },
    /// The feedback log after `cursor`.
    Feedback {
        recommender: Option<&'a str>,
        cursor: i64,
        limit: usize,
    },
    /// Computed by [`Engine::answer`]; `client_ref` (when given) must be pseudonymised first.
    Engine { client_ref: Option<&'a str> },
}

/// Query parameters, each taken at most once; whatever is left unread is an error.
struct Params<'a> {
    pairs: BTreeMap<String, String>,
    allowed: &'a [&'a str],
}

impl Params<'_> {
    fn take(&mut self, name: &str) -> Option<String> {
        self.pairs.remove(name)
    }

    fn parse<T>(
        &mut self,
        name: &str,
        expected: &str,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, QueryError> {
        let Some(value) = self.take(name) else {
            return Ok(None);
        };
        f(&value).map(Some).ok_or_else(|| QueryError::BadParameter {
            name: name.to_owned(),
            expected: expected.to_owned(),
            value,
        })
    }

    fn limit(&mut self) -> Result<usize, QueryError> {
        Ok(self
            .parse("limit", &format!("an integer from 1 to {MAX_LIMIT}"), |v| {
                v.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n))
            })?
            .unwrap_or(DEFAULT_LIMIT))
    }

    fn date(&mut self, name: &str) -> Result<Option<i64>, QueryError> {
        self.parse(name, "a date like 2025-01-06", |v| {
            (v.len() == 10)
                .then(|| Timestamp::parse(&format!("{v}T00:00:00Z")).ok())
                .flatten()
                .map(|t| t.0.div_euclid(DAY_MS))
        })
    }

    fn dates(&mut self) -> Result<Dates, QueryError> {
        let dates = Dates {
            recommender: self.take("recommender").filter(|s| !s.is_empty()),
            surface: self.take("surface").filter(|s| !s.is_empty()),
            from: self.date("from")?,
            to: self.date("to")?,
        };
        if let (Some(from), Some(to)) = (dates.from, dates.to)
            && from > to
        {
            return Err(QueryError::BadRange {
                from: date(from),
                to: date(to),
            });
        }
        Ok(dates)
    }

    fn finish(self) -> Result<(), QueryError> {
        match self.pairs.into_keys().next() {
            Some(name) => Err(QueryError::UnknownParameter(name, self.allowed.join(", "))),
            None => Ok(()),
        }
    }
}

impl Query {
    /// Parses `path` (e.g. `/v1/trending/entities`) and its query string.
    pub fn parse(path: &str, query: &str) -> Result<Query, QueryError> {
        Query::parse_with_user(path, query, None)
    }

    /// [`Query::parse`], with the user named outside the URL: the `Client-Ref` header's
    /// value (percent-encoded as in a path), which keeps the identifier out of access logs.
    /// It serves `/v1/preferences/entities` and `/v1/recommendations` without `user=`.
    pub fn parse_with_user(
        path: &str,
        query: &str,
        client_ref: Option<&str>,
    ) -> Result<Query, QueryError> {
        let mut pairs = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if pairs.insert(k.to_string(), v.to_string()).is_some() {
                return Err(QueryError::BadParameter {
                    name: k.to_string(),
                    expected: "given once".into(),
                    value: v.to_string(),
                });
            }
        }
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let allowed: &[&str] = match segments.as_slice() {
            ["v1", "trending", "entities"] => &["entity_type", "mode", "limit", "as_of"],
            ["v1", "trending", "content" | "searches"] => &["mode", "limit", "as_of"],
            ["v1", "users", _, "preferences", "entities"] | ["v1", "preferences", "entities"] => {
                &["entity_type", "limit", "include_negative", "as_of"]
            }
            ["v1", "engagement", "summary"] => {
                &["group_by", "recommender", "surface", "from", "to", "as_of"]
            }
            ["v1", "engagement", "items"] => &[
                "recommender",
                "surface",
                "sort",
                "limit",
                "from",
                "to",
                "as_of",
            ],
            ["v1", "engagement", "click-positions" | "daily"] => {
                &["recommender", "surface", "from", "to", "as_of"]
            }
            ["v1", "engagement", "impressions", _] => &["as_of"],
            ["v1", "engagement", "feedback"] => &["recommender", "cursor", "limit", "as_of"],
            ["v1", "recommendations"] => {
                &["user", "kind", "entity_type", "surface", "limit", "as_of"]
            }
            _ => return Err(QueryError::NotFound(path.to_owned())),
        };
        let mut p = Params { pairs, allowed };
        let as_of = p.parse("as_of", "an RFC 3339 time", |v| {
            Timestamp::parse(v).ok().map(|t| t.0)
        })?;
        let mode = |p: &mut Params<'_>| -> Result<Mode, QueryError> {
            Ok(p.parse("mode", "trending or popular", Mode::parse)?
                .unwrap_or(Mode::Trending))
        };
        let kind = match segments.as_slice() {
            ["v1", "trending", dataset] => {
                let mode = mode(&mut p)?;
                let kind = match *dataset {
                    "entities" => p.take("entity_type").unwrap_or_else(|| "ticker".into()),
                    _ => "all".into(),
                };
                Kind_::Trending {
                    key: format!("{dataset}/{}/{kind}", mode.name()),
                    limit: p.limit()?,
                }
            }
            ["v1", "users", _, ..] | ["v1", "preferences", ..] => {
                let client_ref = match segments.as_slice() {
                    ["v1", "users", in_path, ..] => percent_decode(in_path),
                    _ => percent_decode(client_ref.ok_or(QueryError::MissingUser)?),
                };
                Kind_::Preferences(
                    PreferencesQuery {
                        as_of: 0,
                        entity_type: p.take("entity_type"),
                        limit: p.limit()?,
                        include_negative: p
                            .parse("include_negative", "true or false", |v| v.parse().ok())?
                            .unwrap_or(false),
                    },
                    client_ref,
                )
            }
            ["v1", "engagement", "summary"] => {
                let group_by = p
                    .parse("group_by", "recommender, surface or item", GroupBy::parse)?
                    .unwrap_or(GroupBy::Recommender);
                Kind_::Summary(group_by, p.dates()?)
            }
            ["v1", "engagement", "items"] => {
                let sort = p
                    .parse("sort", &ITEM_SORTS.join(", "), |v| {
                        ITEM_SORTS.contains(&v).then(|| v.to_owned())
                    })?
                    .unwrap_or_else(|| "ctr_lower_bound".into());
                Kind_::Items(p.dates()?, sort, p.limit()?)
            }
            ["v1", "engagement", "click-positions"] => Kind_::ClickPositions(p.dates()?),
            ["v1", "engagement", "daily"] => Kind_::Daily(p.dates()?),
            ["v1", "engagement", "impressions", id] => Kind_::Impression(percent_decode(id)),
            ["v1", "engagement", "feedback"] => Kind_::Feedback(
                p.take("recommender").filter(|s| !s.is_empty()),
                p.parse("cursor", "a cursor from a previous page", |v| {
                    v.parse().ok().filter(|c: &i64| *c >= 0)
                })?
                .unwrap_or(0),
                p.parse("limit", "an integer from 1 to 1000", |v| {
                    v.parse().ok().filter(|n| (1..=1000).contains(n))
                })?
                .unwrap_or(100),
            ),
            _ => {
                let client_ref = match (p.take("user"), client_ref) {
                    (Some(_), Some(_)) => return Err(QueryError::UserTwice),
                    (Some(user), None) => user,
                    (None, Some(header)) => percent_decode(header),
                    (None, None) => return Err(QueryError::MissingUser),
                };
                let kind = p
                    .parse("kind", "entities or content", Kind::parse)?
                    .unwrap_or(Kind::Entities);
                Kind_::Recommendations(
                    Recommend {
                        kind,
                        entity_type: p.take("entity_type").unwrap_or_else(|| "ticker".into()),
                        surface: p.take("surface"),
                        limit: p
                            .parse("limit", "an integer from 1 to 50", |v| {
                                v.parse().ok().filter(|n| (1..=50).contains(n))
                            })?
                            .unwrap_or(10),
                    },
                    client_ref,
                )
            }
        };
        p.finish()?;
        Ok(Query { kind, as_of })
    }

    /// Whether the answer reads the ranked lists of the latest [`Engine::materialise`].
    pub fn reads_ranked_lists(&self) -> bool {
        matches!(self.kind, Kind_::Recommendations(..))
    }

    pub fn target(&self) -> Target<'_> {
        match &self.kind {
            Kind_::Trending { key, limit } => Target::Document { key, limit: *limit },
            Kind_::Feedback(recommender, cursor, limit) => Target::Feedback {
                recommender: recommender.as_deref(),
                cursor: *cursor,
                limit: *limit,
            },
            Kind_::Preferences(_, client_ref) | Kind_::Recommendations(_, client_ref) => {
                Target::Engine {
                    client_ref: Some(client_ref),
                }
            }
            _ => Target::Engine { client_ref: None },
        }
    }
}

impl Engine {
    /// Answers an engine-computed query at `as_of`. `user_id` is the pseudonym of the
    /// query's `client_ref` (see [`Target::Engine`]); `mint` makes a fresh random id with the
    /// given prefix (recommendations only).
    pub fn answer(
        &self,
        query: &Query,
        as_of: i64,
        user_id: Option<&str>,
        mint: &mut dyn FnMut(&str) -> String,
    ) -> Result<Value, QueryError> {
        let p = &self.params;
        let user_id = user_id.unwrap_or("");
        Ok(match &query.kind {
            Kind_::Preferences(q, _) => {
                let q = PreferencesQuery { as_of, ..q.clone() };
                self.preferences.response(self.key(user_id), user_id, &q, p)
            }
            Kind_::Summary(group_by, dates) => self.engagement.summary(
                &SummaryQuery {
                    group_by: *group_by,
                    filter: dates.resolve(as_of),
                },
                p,
            ),
            Kind_::Items(dates, sort, limit) => self.engagement.items(
                &ItemsQuery {
                    filter: dates.resolve(as_of),
                    sort: sort.clone(),
                    limit: *limit,
                },
                p,
            ),
            Kind_::ClickPositions(dates) => self.engagement.click_positions(&dates.resolve(as_of)),
            Kind_::Daily(dates) => self.engagement.daily(&dates.resolve(as_of), p),
            Kind_::Impression(id) => self
                .engagement
                .impression(id, p)
                .ok_or_else(|| QueryError::UnknownImpression(id.clone()))?,
            Kind_::Recommendations(r, _) => self.recommend(r, user_id, as_of, mint),
            Kind_::Trending { .. } | Kind_::Feedback(..) => json!(null),
        })
    }
}

/// One page of the feedback log: `records` are `(seq, record)` after the cursor, in order.
pub fn feedback_page(records: Vec<(i64, Value)>, cursor: i64) -> Value {
    let next = records.last().map_or(cursor, |(seq, _)| *seq);
    json!({
        "records": records.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        "next_cursor": next.to_string(),
    })
}

pub fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(|| segment.to_owned(), |(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_parameters_are_named() {
        let err = |path: &str, q: &str| Query::parse(path, q).unwrap_err().to_string();
        assert!(err("/v1/trending/entities", "mode=hot").contains("`mode`"));
        assert!(err("/v1/trending/entities", "limit=101").contains("`limit`"));
        assert!(err("/v1/trending/entities", "limt=5").contains("`limt`"));
        assert!(err("/v1/engagement/summary", "from=2025-01-07&to=2025-01-06").contains("after"));
        assert!(err("/v1/engagement/summary", "from=yesterday").contains("`from`"));
        assert!(err("/v1/recommendations", "").contains("`user`"));
        assert!(err("/v1/nope", "").contains("/v1/nope"));
        assert!(err("/v1/trending/content", "mode=popular&mode=trending").contains("once"));
    }

    #[test]
    fn user_segments_are_percent_decoded() {
        let q = Query::parse("/v1/users/a%2Fb%20c+d/preferences/entities", "").unwrap();
        assert_eq!(
            q.target(),
            Target::Engine {
                client_ref: Some("a/b c+d")
            }
        );
    }
}
