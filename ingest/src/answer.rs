//! The query API's executor: a parsed [`Query`] answered from a [`Backend`]. Serving, the
//! backend is the store and the live engines (`routes::query`); for `ingest replay`, the
//! tests and the fuzz target, it is one engine in memory (`replay::Answerer`). Which answer
//! comes from where — a materialised list, the feedback log, or the engine, with the user's
//! `client_ref` pseudonymised first — is decided here, once.

use std::sync::Arc;

use serde_json::Value;

use crate::datasets::{Document, Query, QueryError, Target, feedback_page};

/// What a query is answered with.
pub(crate) enum Answer {
    /// A materialised list, to be cut to `limit` items (and served with its ETag).
    Document {
        document: Arc<Document>,
        limit: usize,
    },
    Json(Value),
}

/// Why a query got no answer: the query's own fault, or the backend's.
pub(crate) enum Failure<E> {
    Query(QueryError),
    Backend(E),
}

impl<E> From<QueryError> for Failure<E> {
    fn from(e: QueryError) -> Failure<E> {
        Failure::Query(e)
    }
}

/// Where answers come from; `query` carries the time asked for (`as_of`), which a backend
/// honours or not.
pub(crate) trait Backend {
    type Error;

    /// The materialised list under `key`.
    async fn document(&mut self, key: &str, query: &Query) -> Result<Arc<Document>, Self::Error>;

    /// The feedback log's records after `cursor`, `(position, record)` each, in order.
    async fn feedback(
        &mut self,
        recommender: Option<&str>,
        cursor: i64,
        limit: usize,
        query: &Query,
    ) -> Result<Vec<(i64, Value)>, Self::Error>;

    /// The engine's answer; `user_id` is the pseudonym of the query's `client_ref`.
    async fn compute(
        &mut self,
        query: Query,
        user_id: Option<String>,
    ) -> Result<Result<Value, QueryError>, Self::Error>;

    /// The pseudonym of the tenant's `client_ref`.
    fn pseudonymise(&self, client_ref: &str) -> String;
}

pub(crate) async fn execute<B: Backend>(
    backend: &mut B,
    query: Query,
) -> Result<Answer, Failure<B::Error>> {
    match query.target() {
        Target::Document { key, limit } => Ok(Answer::Document {
            document: backend
                .document(key, &query)
                .await
                .map_err(Failure::Backend)?,
            limit,
        }),
        Target::Feedback {
            recommender,
            cursor,
            limit,
        } => {
            let records = backend
                .feedback(recommender, cursor, limit, &query)
                .await
                .map_err(Failure::Backend)?;
            Ok(Answer::Json(feedback_page(records, cursor)))
        }
        Target::Engine { client_ref } => {
            let user_id = client_ref.map(|c| backend.pseudonymise(c));
            let answer = backend
                .compute(query, user_id)
                .await
                .map_err(Failure::Backend)??;
            Ok(Answer::Json(answer))
        }
    }
}

/// The value of a future that never waits, as an in-memory backend's.
pub(crate) fn at_once<F: Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("an in-memory backend answers without waiting"),
    }
}
