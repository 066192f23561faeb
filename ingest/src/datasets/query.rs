//! The query API: its routes as one table ([`ROUTES`]: paths, parameters and what each
//! answers), and its requests parsed from a path and query string by that table, so the HTTP
//! router, the OpenAPI document, the service's answers and `ingest replay`'s all agree. The
//! datasets the routes read are described in `docs/datasets.md`.

use std::collections::BTreeMap;

use schema::Timestamp;
use serde_json::{Value, json};

use super::engagement::{Filter, GroupBy, ITEM_SORTS, ItemsQuery, SummaryQuery, date};
use super::params::DAY_MS;
use super::preferences::PreferencesQuery;
use super::recommend::{Kind, Recommend};
use super::{Engine, Mode};

/// Engagement queries without `from` cover this many days up to `to`.
const DEFAULT_DAYS: i64 = 30;

/// What went wrong with a query; the HTTP layer turns it into a status and a problem body.
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

    /// Whether the query names something that does not exist (a route, an impression), as
    /// against asking for it wrongly.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            QueryError::NotFound(_) | QueryError::UnknownImpression(_)
        )
    }
}

/// One route of the query API.
#[derive(Debug)]
pub struct Route {
    /// The path, with `{name}` for a segment the request fills in.
    pub path: &'static str,
    pub endpoint: Endpoint,
    pub summary: &'static str,
    pub description: &'static str,
    /// Its query parameters but `as_of`, which every route takes ([`AS_OF`]).
    pub parameters: &'static [Parameter],
    /// Where the user the route is about is named, if it is about one.
    pub user: User,
}

/// What a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    TrendingEntities,
    TrendingContent,
    TrendingSearches,
    Preferences,
    Summary,
    Items,
    ClickPositions,
    Daily,
    Impression,
    Feedback,
    Recommendations,
}

/// Where a route names its user (the customer's `client_ref`, pseudonymised before use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    Nobody,
    /// The `{client_ref}` segment of the path.
    InPath,
    /// The `Client-Ref` header, which keeps the identifier out of every URL and access log.
    InHeader,
    /// The `user` parameter or the `Client-Ref` header, one of the two.
    InParameterOrHeader,
}

/// A query parameter: its name, the values it takes, and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Parameter {
    pub name: &'static str,
    pub shape: Shape,
    pub description: &'static str,
}

/// The values a parameter takes; the parser reads them by it and OpenAPI describes them by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Text,
    Integer {
        min: u32,
        max: u32,
        default: u32,
    },
    /// `true` or `false`, `false` when absent.
    Boolean,
    OneOf {
        values: &'static [&'static str],
        default: &'static str,
    },
    /// A UTC date, `2025-01-06`.
    Date,
    /// An RFC 3339 time.
    Time,
    /// A `next_cursor` from a previous page.
    Cursor,
}

impl Shape {
    /// What a value must be, as an error message says it.
    fn expected(&self) -> String {
        match self {
            Shape::Text => "text".into(),
            Shape::Integer { min, max, .. } => format!("an integer from {min} to {max}"),
            Shape::Boolean => "true or false".into(),
            Shape::OneOf { values, .. } => match values.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => "nothing".into(),
            },
            Shape::Date => "a date like 2025-01-06".into(),
            Shape::Time => "an RFC 3339 time".into(),
            Shape::Cursor => "a cursor from a previous page".into(),
        }
    }
}

/// Answer as of this time: every route takes it, and honours it in replays and in test mode.
pub const AS_OF: Parameter = Parameter {
    name: "as_of",
    shape: Shape::Time,
    description: "Answer as of this time; honoured only when the service runs with --test-mode.",
};

const fn limit(max: u32, default: u32) -> Parameter {
    Parameter {
        name: "limit",
        shape: Shape::Integer {
            min: 1,
            max,
            default,
        },
        description: "Most items to return",
    }
}

const fn text(name: &'static str, description: &'static str) -> Parameter {
    Parameter {
        name,
        shape: Shape::Text,
        description,
    }
}

const fn date_param(name: &'static str) -> Parameter {
    Parameter {
        name,
        shape: Shape::Date,
        description: "UTC date of first sight; default: the 30 days up to as_of",
    }
}

const LIMIT: Parameter = limit(100, 20);
const MODE: Parameter = Parameter {
    name: "mode",
    shape: Shape::OneOf {
        values: &["trending", "popular"],
        default: "trending",
    },
    description: "trending: immediately popular (fast vs slow decayed rate, z-score, k-anonymous); popular: slow decayed score",
};
const ENTITY_TYPE: Parameter = text("entity_type", "Entity type (default ticker)");
const RECOMMENDER: Parameter = text("recommender", "Only this recommender");
const SURFACE: Parameter = text("surface", "Only this surface");
const FROM: Parameter = date_param("from");
const TO: Parameter = date_param("to");
const ONLY_ENTITY_TYPE: Parameter = text("entity_type", "Only this entity type");
const INCLUDE_NEGATIVE: Parameter = Parameter {
    name: "include_negative",
    shape: Shape::Boolean,
    description: "Also return negative preferences",
};
const GROUP_BY: Parameter = Parameter {
    name: "group_by",
    shape: Shape::OneOf {
        values: &["recommender", "surface", "item"],
        default: "recommender",
    },
    description: "Grouping",
};
const SORT: Parameter = Parameter {
    name: "sort",
    shape: Shape::OneOf {
        values: &ITEM_SORTS,
        default: "ctr_lower_bound",
    },
    description: "Sort field (descending)",
};
const CURSOR: Parameter = Parameter {
    name: "cursor",
    shape: Shape::Cursor,
    description: "next_cursor of the previous page",
};
const FEEDBACK_LIMIT: Parameter = limit(1000, 100);
const USER: Parameter = text(
    "user",
    "Your client_ref for the user (pseudonymised, never returned); or send it in the Client-Ref header, which keeps it out of access logs. One of the two is required.",
);
const KIND: Parameter = Parameter {
    name: "kind",
    shape: Shape::OneOf {
        values: &["entities", "content"],
        default: "entities",
    },
    description: "What to recommend",
};
const WHERE_SHOWN: Parameter = text("surface", "Where the list is shown; echoed in event_meta");
const RECOMMENDATIONS_LIMIT: Parameter = Parameter {
    description: "Most items",
    ..limit(50, 10)
};

const MATERIALISED: &str =
    "A materialised list, served verbatim from the presentation store with an ETag.";

/// Every route of the query API.
pub const ROUTES: &[Route] = &[
    Route {
        path: "/v1/trending/entities",
        endpoint: Endpoint::TrendingEntities,
        summary: "Trending or popular entities",
        description: MATERIALISED,
        parameters: &[ENTITY_TYPE, MODE, LIMIT],
        user: User::Nobody,
    },
    Route {
        path: "/v1/trending/content",
        endpoint: Endpoint::TrendingContent,
        summary: "Trending or popular content",
        description: MATERIALISED,
        parameters: &[MODE, LIMIT],
        user: User::Nobody,
    },
    Route {
        path: "/v1/trending/searches",
        endpoint: Endpoint::TrendingSearches,
        summary: "Trending or popular searches (normalised queries)",
        description: MATERIALISED,
        parameters: &[MODE, LIMIT],
        user: User::Nobody,
    },
    Route {
        path: "/v1/users/{client_ref}/preferences/entities",
        endpoint: Endpoint::Preferences,
        summary: "A user's entity preferences",
        description: "The path carries your own client_ref; it is pseudonymised before the lookup and never returned. An unknown user gets an empty list.",
        parameters: &[ONLY_ENTITY_TYPE, LIMIT, INCLUDE_NEGATIVE],
        user: User::InPath,
    },
    Route {
        path: "/v1/preferences/entities",
        endpoint: Endpoint::Preferences,
        summary: "A user's entity preferences, the user named in a header",
        description: "As /v1/users/{client_ref}/preferences/entities, with the client_ref in the Client-Ref header instead of the path, so that no access log on the way holds it.",
        parameters: &[ONLY_ENTITY_TYPE, LIMIT, INCLUDE_NEGATIVE],
        user: User::InHeader,
    },
    Route {
        path: "/v1/engagement/summary",
        endpoint: Endpoint::Summary,
        summary: "Recommendation engagement by recommender, surface or item",
        description: "CTR with its Wilson lower bound, conversions (direct and inferred), click positions, list CTR.",
        parameters: &[GROUP_BY, RECOMMENDER, SURFACE, FROM, TO],
        user: User::Nobody,
    },
    Route {
        path: "/v1/engagement/items",
        endpoint: Endpoint::Items,
        summary: "Engagement per item",
        description: "Sorted by the chosen field, then impressions, then item.",
        parameters: &[RECOMMENDER, SURFACE, SORT, LIMIT, FROM, TO],
        user: User::Nobody,
    },
    Route {
        path: "/v1/engagement/click-positions",
        endpoint: Endpoint::ClickPositions,
        summary: "First clicks by list position",
        description: "One click per clicked impression.",
        parameters: &[RECOMMENDER, SURFACE, FROM, TO],
        user: User::Nobody,
    },
    Route {
        path: "/v1/engagement/daily",
        endpoint: Endpoint::Daily,
        summary: "CTR per recommender and day",
        description: "What the dashboard charts.",
        parameters: &[RECOMMENDER, SURFACE, FROM, TO],
        user: User::Nobody,
    },
    Route {
        path: "/v1/engagement/impressions/{impression_id}",
        endpoint: Endpoint::Impression,
        summary: "One impression's record (debug)",
        description: "Its views, clicks and conversions as the engagement rules read them.",
        parameters: &[],
        user: User::Nobody,
    },
    Route {
        path: "/v1/engagement/feedback",
        endpoint: Endpoint::Feedback,
        summary: "Feedback for recommenders",
        description: "Finalised impressions (click window closed) with clicked/converted labels, oldest first; a later record with the same impression_id updates the labels. Pass next_cursor back as cursor.",
        parameters: &[RECOMMENDER, CURSOR, FEEDBACK_LIMIT],
        user: User::Nobody,
    },
    Route {
        path: "/v1/recommendations",
        endpoint: Endpoint::Recommendations,
        summary: "Recommendations for a user",
        description: "Entities (preferences, trending, popular) or content, each with a fresh impression_id (fxcid for content) and the event_meta to send back with viewed/clicked events. Items shown repeatedly without a click are demoted.",
        parameters: &[USER, KIND, ENTITY_TYPE, WHERE_SHOWN, RECOMMENDATIONS_LIMIT],
        user: User::InParameterOrHeader,
    },
];

impl Route {
    /// The route `path` asks for, with the segments it fills in, in order.
    pub fn find(path: &str) -> Option<(&'static Route, Vec<&str>)> {
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        ROUTES.iter().find_map(|route| {
            let template: Vec<&str> = route.path.split('/').collect();
            if template.len() != segments.len() {
                return None;
            }
            let mut filled = Vec::new();
            for (t, s) in template.iter().zip(&segments) {
                if t.starts_with('{') {
                    filled.push(*s);
                } else if t != s {
                    return None;
                }
            }
            Some((route, filled))
        })
    }

    /// Its query parameters, `as_of` last.
    pub fn all_parameters(&self) -> impl Iterator<Item = &'static Parameter> + use<> {
        self.parameters.iter().chain(std::iter::once(&AS_OF))
    }
}

/// A parsed request of the query API.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    request: Request,
    /// `as_of`, honoured only in replay and test mode.
    pub as_of: Option<i64>,
}

/// What a query asks, its parameters read and defaults filled in.
#[derive(Debug, Clone, PartialEq)]
enum Request {
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

/// A request's query string, read by its route's parameters: each given at most once, none
/// the route does not take.
struct QueryString {
    pairs: BTreeMap<String, String>,
}

impl QueryString {
    fn new(query: &str, route: &Route) -> Result<QueryString, QueryError> {
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
        if let Some(unknown) = pairs
            .keys()
            .find(|k| !route.all_parameters().any(|p| p.name == k.as_str()))
        {
            let takes: Vec<&str> = route.all_parameters().map(|p| p.name).collect();
            return Err(QueryError::UnknownParameter(
                unknown.clone(),
                takes.join(", "),
            ));
        }
        Ok(QueryString { pairs })
    }

    fn text(&mut self, p: &Parameter) -> Option<String> {
        self.pairs.remove(p.name)
    }

    /// A filter's value: an empty one filters nothing.
    fn filter(&mut self, p: &Parameter) -> Option<String> {
        self.text(p).filter(|s| !s.is_empty())
    }

    fn read<T>(
        &mut self,
        p: &Parameter,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, QueryError> {
        let Some(value) = self.pairs.remove(p.name) else {
            return Ok(None);
        };
        f(&value).map(Some).ok_or_else(|| QueryError::BadParameter {
            name: p.name.to_owned(),
            expected: p.shape.expected(),
            value,
        })
    }

    fn integer(&mut self, p: &Parameter) -> Result<usize, QueryError> {
        let Shape::Integer { min, max, default } = p.shape else {
            unreachable!("`{}` is declared an integer", p.name)
        };
        Ok(self
            .read(p, |v| {
                v.parse::<u32>().ok().filter(|n| (min..=max).contains(n))
            })?
            .unwrap_or(default) as usize)
    }

    /// One of the parameter's values, as `f` reads it; the default when absent.
    fn one_of<T>(&mut self, p: &Parameter, f: impl Fn(&str) -> Option<T>) -> Result<T, QueryError> {
        let Shape::OneOf { default, .. } = p.shape else {
            unreachable!("`{}` is declared one of some values", p.name)
        };
        let given = self.pairs.remove(p.name);
        let value = given.as_deref().unwrap_or(default);
        f(value).ok_or_else(|| QueryError::BadParameter {
            name: p.name.to_owned(),
            expected: p.shape.expected(),
            value: value.to_owned(),
        })
    }

    fn boolean(&mut self, p: &Parameter) -> Result<bool, QueryError> {
        Ok(self.read(p, |v| v.parse().ok())?.unwrap_or(false))
    }

    fn date(&mut self, p: &Parameter) -> Result<Option<i64>, QueryError> {
        self.read(p, |v| {
            (v.len() == 10)
                .then(|| Timestamp::parse(&format!("{v}T00:00:00Z")).ok())
                .flatten()
                .map(|t| t.0.div_euclid(DAY_MS))
        })
    }

    fn dates(&mut self) -> Result<Dates, QueryError> {
        let dates = Dates {
            recommender: self.filter(&RECOMMENDER),
            surface: self.filter(&SURFACE),
            from: self.date(&FROM)?,
            to: self.date(&TO)?,
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
        let (route, filled) =
            Route::find(path).ok_or_else(|| QueryError::NotFound(path.to_owned()))?;
        let mut q = QueryString::new(query, route)?;
        let as_of = q.read(&AS_OF, |v| Timestamp::parse(v).ok().map(|t| t.0))?;
        let user = match route.user {
            User::Nobody => None,
            User::InPath => filled.first().map(|segment| percent_decode(segment)),
            User::InHeader => Some(percent_decode(client_ref.ok_or(QueryError::MissingUser)?)),
            User::InParameterOrHeader => Some(match (q.text(&USER), client_ref) {
                (Some(_), Some(_)) => return Err(QueryError::UserTwice),
                (Some(user), None) => user,
                (None, Some(header)) => percent_decode(header),
                (None, None) => return Err(QueryError::MissingUser),
            }),
        };
        let trending = |q: &mut QueryString, dataset: &str, kind: String| {
            let mode = q.one_of(&MODE, Mode::parse)?;
            Ok::<_, QueryError>(Request::Trending {
                key: format!("{dataset}/{}/{kind}", mode.name()),
                limit: q.integer(&LIMIT)?,
            })
        };
        let request = match route.endpoint {
            Endpoint::TrendingEntities => {
                let kind = q.text(&ENTITY_TYPE).unwrap_or_else(|| "ticker".into());
                trending(&mut q, "entities", kind)?
            }
            Endpoint::TrendingContent => trending(&mut q, "content", "all".into())?,
            Endpoint::TrendingSearches => trending(&mut q, "searches", "all".into())?,
            Endpoint::Preferences => Request::Preferences(
                PreferencesQuery {
                    as_of: 0,
                    entity_type: q.text(&ONLY_ENTITY_TYPE),
                    limit: q.integer(&LIMIT)?,
                    include_negative: q.boolean(&INCLUDE_NEGATIVE)?,
                },
                user.unwrap_or_default(),
            ),
            Endpoint::Summary => {
                let group_by = q.one_of(&GROUP_BY, GroupBy::parse)?;
                Request::Summary(group_by, q.dates()?)
            }
            Endpoint::Items => {
                let sort = q.one_of(&SORT, |v| ITEM_SORTS.contains(&v).then(|| v.to_owned()))?;
                Request::Items(q.dates()?, sort, q.integer(&LIMIT)?)
            }
            Endpoint::ClickPositions => Request::ClickPositions(q.dates()?),
            Endpoint::Daily => Request::Daily(q.dates()?),
            Endpoint::Impression => Request::Impression(
                filled
                    .first()
                    .map_or_else(String::new, |id| percent_decode(id)),
            ),
            Endpoint::Feedback => Request::Feedback(
                q.filter(&RECOMMENDER),
                q.read(&CURSOR, |v| v.parse().ok().filter(|c: &i64| *c >= 0))?
                    .unwrap_or(0),
                q.integer(&FEEDBACK_LIMIT)?,
            ),
            Endpoint::Recommendations => Request::Recommendations(
                Recommend {
                    kind: q.one_of(&KIND, Kind::parse)?,
                    entity_type: q.text(&ENTITY_TYPE).unwrap_or_else(|| "ticker".into()),
                    surface: q.text(&WHERE_SHOWN),
                    limit: q.integer(&RECOMMENDATIONS_LIMIT)?,
                },
                user.unwrap_or_default(),
            ),
        };
        if let Some(unread) = q.pairs.into_keys().next() {
            // A parameter the table declares and the parser above does not read.
            let takes: Vec<&str> = route.all_parameters().map(|p| p.name).collect();
            return Err(QueryError::UnknownParameter(unread, takes.join(", ")));
        }
        Ok(Query { request, as_of })
    }

    /// Whether the answer reads the ranked lists of the latest [`Engine::materialise`].
    pub fn reads_ranked_lists(&self) -> bool {
        matches!(self.request, Request::Recommendations(..))
    }

    pub fn target(&self) -> Target<'_> {
        match &self.request {
            Request::Trending { key, limit } => Target::Document { key, limit: *limit },
            Request::Feedback(recommender, cursor, limit) => Target::Feedback {
                recommender: recommender.as_deref(),
                cursor: *cursor,
                limit: *limit,
            },
            Request::Preferences(_, client_ref) | Request::Recommendations(_, client_ref) => {
                Target::Engine {
                    client_ref: Some(client_ref),
                }
            }
            Request::Summary(..)
            | Request::Items(..)
            | Request::ClickPositions(_)
            | Request::Daily(_)
            | Request::Impression(_) => Target::Engine { client_ref: None },
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
        Ok(match &query.request {
            Request::Preferences(q, _) => {
                let q = PreferencesQuery { as_of, ..q.clone() };
                self.preferences.response(self.key(user_id), user_id, &q, p)
            }
            Request::Summary(group_by, dates) => self.engagement.summary(
                &SummaryQuery {
                    group_by: *group_by,
                    filter: dates.resolve(as_of),
                },
                p,
            ),
            Request::Items(dates, sort, limit) => self.engagement.items(
                &ItemsQuery {
                    filter: dates.resolve(as_of),
                    sort: sort.clone(),
                    limit: *limit,
                },
                p,
            ),
            Request::ClickPositions(dates) => {
                self.engagement.click_positions(&dates.resolve(as_of))
            }
            Request::Daily(dates) => self.engagement.daily(&dates.resolve(as_of), p),
            Request::Impression(id) => self
                .engagement
                .impression(id, p)
                .ok_or_else(|| QueryError::UnknownImpression(id.clone()))?,
            Request::Recommendations(r, _) => self.recommend(r, user_id, as_of, mint),
            Request::Trending { .. } | Request::Feedback(..) => json!(null),
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

    /// A value each shape takes.
    fn example(shape: Shape) -> String {
        match shape {
            Shape::Text => "x".into(),
            Shape::Integer { max, .. } => max.to_string(),
            Shape::Boolean => "true".into(),
            Shape::OneOf { values, .. } => values[values.len() - 1].into(),
            Shape::Date => "2025-01-06".into(),
            Shape::Time => "2025-01-06T12:00:00Z".into(),
            Shape::Cursor => "7".into(),
        }
    }

    /// Each route's path with its segments filled in, and the header naming its user.
    fn filled(route: &Route) -> (String, Option<&'static str>) {
        let path = route
            .path
            .replace("{client_ref}", "someone")
            .replace("{impression_id}", "imp-1");
        let header = (route.user == User::InHeader).then_some("someone");
        (path, header)
    }

    #[test]
    fn every_route_reads_every_parameter_the_table_gives_it_and_no_other() {
        for route in ROUTES {
            let (path, header) = filled(route);
            let user = if route.user == User::InParameterOrHeader {
                "user=someone&"
            } else {
                ""
            };
            let minimal = user.trim_end_matches('&');
            Query::parse_with_user(&path, minimal, header)
                .unwrap_or_else(|e| panic!("{}: defaults: {e}", route.path));
            let all: Vec<String> = route
                .all_parameters()
                .map(|p| format!("{}={}", p.name, example(p.shape)))
                .collect();
            Query::parse_with_user(&path, &all.join("&"), header)
                .unwrap_or_else(|e| panic!("{}?{}: {e}", route.path, all.join("&")));
            for p in route.all_parameters().filter(|p| p.shape != Shape::Text) {
                let err = Query::parse_with_user(&path, &format!("{user}{}=%3F", p.name), header)
                    .unwrap_err();
                assert_eq!(
                    err,
                    QueryError::BadParameter {
                        name: p.name.into(),
                        expected: p.shape.expected(),
                        value: "?".into()
                    },
                    "{}",
                    route.path
                );
            }
            let takes: Vec<&str> = route.all_parameters().map(|p| p.name).collect();
            assert_eq!(
                Query::parse_with_user(&path, &format!("{user}nope=1"), header),
                Err(QueryError::UnknownParameter(
                    "nope".into(),
                    takes.join(", ")
                ))
            );
        }
    }

    #[test]
    fn a_path_finds_its_route_and_the_segments_it_fills() {
        for route in ROUTES {
            let (path, _) = filled(route);
            let (found, segments) = Route::find(&path).unwrap();
            assert_eq!(found.path, route.path);
            assert_eq!(segments.len(), route.path.matches('{').count());
            assert!(
                Route::find(&format!("{path}/")).is_some(),
                "a trailing slash"
            );
            assert!(Route::find(&format!("{path}/more")).is_none());
        }
        assert!(Route::find("/v1/users/a/b/preferences/entities").is_none());
        assert!(Route::find("/").is_none());
    }

    #[test]
    fn a_choice_is_spelled_out_as_a_sentence() {
        let expected = |values| {
            Shape::OneOf {
                values,
                default: "a",
            }
            .expected()
        };
        assert_eq!(expected(&["a"]), "a");
        assert_eq!(expected(&["a", "b"]), "a or b");
        assert_eq!(expected(&["a", "b", "c"]), "a, b or c");
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
