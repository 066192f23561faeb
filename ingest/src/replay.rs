//! `ingest replay`: wire-format events through the same pipeline (validation, anonymisation)
//! and datasets code as the service, with a manual clock, then the query API's answers.
//!
//! The events' one `client_key` becomes an ephemeral tenant whose pseudonymisation key is
//! random (or derived from a given master secret), and the queries are answered as that
//! tenant's secret key would be answered: a `{user_id}` in a path is the customer's own
//! `client_ref`, pseudonymised before the lookup.

use std::collections::HashMap;
use std::sync::Arc;

use schema::{Event, EventError, Timestamp};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::anonymise::keyring::Keyring;
use crate::anonymise::pseudonym::{Kind, pseudonymise, random, random_id};
use crate::anonymise::user_agent;
use crate::answer::{Answer, Backend, Failure, at_once, execute};
use crate::datasets::{Document, Engine, Outcome, Params, Query, QueryError};
use crate::pipeline::Pipeline;
use crate::store::Tenant;

/// One source of events: a name for messages (the file) and its JSON lines.
pub struct Source {
    pub name: String,
    pub text: String,
}

/// What a replay printed and what it refused.
#[derive(Debug, Default)]
pub struct Output {
    /// One JSON body per query, in order (a problem document for a query that failed).
    pub answers: Vec<String>,
    /// `file:line: message` of each line that was not a valid event.
    pub rejected: Vec<String>,
    pub failed_queries: usize,
    pub applied: usize,
    pub duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("events of more than one client_key (`{0}` and `{1}`): replay one tenant at a time")]
    MixedTenants(String, String),
    #[error("no valid event to replay")]
    NoEvents,
}

/// Replays `sources` in event-time order with the clock at `as_of`, then answers `queries`
/// (each `PATH?QUERY`, e.g. `/v1/trending/entities?mode=popular`; an `as_of` parameter
/// overrides the clock for that query). `master_secret` fixes the pseudonyms; without it
/// they are random for this run.
pub fn replay(
    sources: &[Source],
    as_of: i64,
    queries: &[String],
    params: Params,
    master_secret: Option<Vec<u8>>,
) -> Result<Output, ReplayError> {
    let mut out = Output::default();
    let mut events: Vec<(i64, usize, Event)> = Vec::new();
    for source in sources {
        for (n, line) in source.text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<&RawValue>(line)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|raw| Event::from_raw(raw).map_err(|e: EventError| e.to_string()));
            match parsed {
                Ok(event) => {
                    let seq = events.len();
                    events.push((event.created_at.0, seq, event));
                }
                Err(message) => out
                    .rejected
                    .push(format!("{}:{}: {message}", source.name, n + 1)),
            }
        }
    }
    let client_key = match events.first() {
        Some((_, _, e)) => e.client_key.clone(),
        None => return Err(ReplayError::NoEvents),
    };
    if let Some((_, _, other)) = events.iter().find(|(_, _, e)| e.client_key != client_key) {
        return Err(ReplayError::MixedTenants(
            client_key,
            other.client_key.clone(),
        ));
    }
    // Event-time order, as a backfill would process them; ties keep file order.
    events.sort_by_key(|(t, seq, _)| (*t, *seq));

    let secret = master_secret.unwrap_or_else(|| random::<32>().to_vec());
    let tenant = Tenant {
        id: 0,
        client_key,
        origins: Vec::new(),
        key_version: 1,
    };
    let key = Keyring::from_secret(secret).tenant_key(&tenant);
    // Received at `as_of`, from no browser, with no batch's `sent_at` to correct the clock by.
    let mut pipeline = Pipeline::new(&key, user_agent::reduce(""), as_of);
    let mut engine = Engine::new(params);
    for (_, _, event) in events {
        let input = pipeline.anonymise(event, None).input;
        match engine.ingest(&input, as_of) {
            Outcome::Applied => out.applied += 1,
            Outcome::Duplicate => out.duplicates += 1,
            Outcome::Future => out.rejected.push(format!(
                "{}: more than the allowed skew after --as-of",
                input.event_id
            )),
        }
    }

    let mut answerer = Answerer::new(engine, as_of, move |client_ref| {
        pseudonymise(&key, Kind::ClientRef, client_ref)
    });
    for text in queries {
        match answerer.answer(text) {
            Ok(body) => out.answers.push(body.to_string()),
            Err(e) => {
                out.failed_queries += 1;
                out.answers.push(crate::error::problem(&e).to_string());
            }
        }
    }
    Ok(out)
}

/// Answers query API requests from an engine, as the service would for its tenant: lists
/// materialised at the query's `as_of` (or the clock), feedback from a log kept across
/// queries (so cursors work), client_refs pseudonymised by the tenant's key.
pub struct Answerer {
    engine: Engine,
    clock: i64,
    pseudonymise: Box<dyn Fn(&str) -> String>,
    documents: HashMap<i64, Vec<Document>>,
    /// The `as_of` of the engine's latest materialisation (what recommendations read).
    ranked_at: Option<i64>,
    feedback: Vec<(i64, Option<String>, Value)>,
}

impl Answerer {
    pub fn new(
        engine: Engine,
        clock: i64,
        pseudonymise: impl Fn(&str) -> String + 'static,
    ) -> Answerer {
        Answerer {
            engine,
            clock,
            pseudonymise: Box::new(pseudonymise),
            documents: HashMap::new(),
            ranked_at: None,
            feedback: Vec::new(),
        }
    }

    /// The response body to `PATH?QUERY`.
    pub fn answer(&mut self, text: &str) -> Result<Value, QueryError> {
        let (path, query) = text.split_once('?').unwrap_or((text, ""));
        let query = Query::parse(path, query)?;
        match at_once(execute(self, query)) {
            Ok(Answer::Document { document, limit }) => serde_json::from_str(&document.cut(limit))
                .map_err(|_| QueryError::NotFound(path.to_owned())),
            Ok(Answer::Json(body)) => Ok(body),
            Err(Failure::Query(e) | Failure::Backend(e)) => Err(e),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn into_engine(self) -> Engine {
        self.engine
    }
}

impl Backend for Answerer {
    type Error = QueryError;

    async fn document(&mut self, key: &str, query: &Query) -> Result<Arc<Document>, QueryError> {
        let at = query.as_of.unwrap_or(self.clock);
        let (engine, ranked_at) = (&mut self.engine, &mut self.ranked_at);
        let docs = self.documents.entry(at).or_insert_with(|| {
            *ranked_at = Some(at);
            engine.materialise(at, at)
        });
        docs.iter()
            .find(|d| d.key == key)
            .cloned()
            .or_else(|| engine.empty_list(key, at, at))
            .map(Arc::new)
            .ok_or_else(|| QueryError::NotFound(key.to_owned()))
    }

    async fn feedback(
        &mut self,
        recommender: Option<&str>,
        cursor: i64,
        limit: usize,
        query: &Query,
    ) -> Result<Vec<(i64, Value)>, QueryError> {
        for f in self.engine.finalise(query.as_of.unwrap_or(self.clock)) {
            let seq = self.feedback.len() as i64 + 1;
            self.feedback.push((seq, f.recommender, f.record));
        }
        Ok(self
            .feedback
            .iter()
            .filter(|(seq, r, _)| {
                *seq > cursor && recommender.is_none_or(|want| r.as_deref() == Some(want))
            })
            .take(limit)
            .map(|(seq, _, record)| (*seq, record.clone()))
            .collect())
    }

    async fn compute(
        &mut self,
        query: Query,
        user_id: Option<String>,
    ) -> Result<Result<Value, QueryError>, QueryError> {
        let at = query.as_of.unwrap_or(self.clock);
        if query.reads_ranked_lists() && self.ranked_at != Some(at) {
            self.engine.materialise(at, at);
            self.ranked_at = Some(at);
        }
        Ok(self
            .engine
            .answer(&query, at, user_id.as_deref(), &mut random_id))
    }

    fn pseudonymise(&self, client_ref: &str) -> String {
        (self.pseudonymise)(client_ref)
    }
}

/// Parses `--as-of`.
pub fn parse_as_of(s: &str) -> Result<i64, String> {
    Timestamp::parse(s)
        .map(|t| t.0)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}
