//! The query API's routes (the table `datasets::ROUTES`; `GET /v1/recommendations` among
//! them) over HTTP: read-only, with the tenant's secret API key, answered by the executor
//! (`answer`) from the store and the live engines. Materialised lists are served verbatim
//! from the presentation store (with an ETag); preferences and engagement are computed on
//! read.

use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::anonymise::pseudonym::{Kind, pseudonymise, random_id};
use crate::answer::{Answer, Backend, Failure, execute};
use crate::datasets::{Document, Engine, Query, QueryError};
use crate::error::ApiError;
use crate::store::{StoreError, Tenant, now_ms};
use crate::tenants::ApiKey;

/// The header that names a user outside the URL, so that access logs never hold the
/// identifier: the client_ref, percent-encoded as in a path (plain ASCII is itself).
pub(crate) const CLIENT_REF: &str = "client-ref";

fn unavailable(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "cannot answer a query");
    ApiError::StoreUnavailable
}

pub(crate) async fn query(
    State(state): State<AppState>,
    ApiKey(tenant): ApiKey,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client_ref = match headers.get(CLIENT_REF) {
        Some(value) => Some(value.to_str().map_err(|_| ApiError::BadClientRefHeader)?),
        None => None,
    };
    let query = Query::parse_with_user(uri.path(), uri.query().unwrap_or(""), client_ref)?;
    // Every commit answered so far is in the answer: the client's own events and erasures.
    state.engines.caught_up(&state.store).await;
    let mut served = Served {
        as_of: query.as_of.filter(|_| state.engines.test_mode),
        tenant: &tenant,
        state: &state,
    };
    let json = |body: String| {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
    };
    match execute(&mut served, query).await {
        Ok(Answer::Document { document, limit }) => {
            let matches = headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == document.etag.as_bytes());
            let etag = HeaderValue::from_str(&document.etag).map_err(|_| ApiError::Internal)?;
            let cache = HeaderValue::from_str(&format!(
                "private, max-age={}",
                state.engines.params().consensus.materialize_every_secs
            ))
            .map_err(|_| ApiError::Internal)?;
            let headers = [(header::ETAG, etag), (header::CACHE_CONTROL, cache)];
            if matches {
                return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
            }
            Ok((headers, json(document.cut(limit).into_owned())).into_response())
        }
        Ok(Answer::Json(body)) => Ok(json(body.to_string()).into_response()),
        Err(Failure::Query(e)) => Err(e.into()),
        Err(Failure::Backend(e)) => Err(e),
    }
}

/// Answers from the store and the tenant's live engine; `as_of` is the query's in test mode,
/// else none (now).
struct Served<'a> {
    state: &'a AppState,
    tenant: &'a Tenant,
    as_of: Option<i64>,
}

impl Backend for Served<'_> {
    type Error = ApiError;

    async fn document(&mut self, key: &str, _: &Query) -> Result<Arc<Document>, ApiError> {
        document(self.state, self.tenant.id, key, self.as_of).await
    }

    async fn feedback(
        &mut self,
        recommender: Option<&str>,
        cursor: i64,
        limit: usize,
        _: &Query,
    ) -> Result<Vec<(i64, Value)>, ApiError> {
        let (state, tenant_id) = (self.state, self.tenant.id);
        if let Some(as_of) = self.as_of {
            state
                .engines
                .finalise_at(&state.store, tenant_id, as_of)
                .await
                .map_err(unavailable)?;
        }
        let store = state.store.clone();
        let recommender = recommender.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            store.feedback(tenant_id, recommender.as_deref(), cursor, limit)
        })
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(unavailable)
    }

    async fn compute(
        &mut self,
        query: Query,
        user_id: Option<String>,
    ) -> Result<Result<Value, QueryError>, ApiError> {
        let (engines, store, as_of) = (&self.state.engines, &self.state.store, self.as_of);
        let ranked = query.reads_ranked_lists();
        let read = move |engine: &mut Engine| {
            if let (Some(at), true) = (as_of, ranked) {
                // Recommendations read the latest materialised lists: in test mode,
                // those at `as_of`.
                engine.materialise(at, now_ms());
            }
            let at = as_of.unwrap_or_else(now_ms);
            engine.answer(&query, at, user_id.as_deref(), &mut random_id)
        };
        let answer = if as_of.is_some() && ranked {
            // Test mode materialises first: not a short read.
            engines.with_engine(store, self.tenant.id, read).await
        } else {
            engines.read_engine(store, self.tenant.id, read).await
        };
        answer.map_err(unavailable)
    }

    fn pseudonymise(&self, client_ref: &str) -> String {
        let key = self.state.keyring.tenant_key(self.tenant);
        pseudonymise(&key, Kind::ClientRef, client_ref)
    }
}

/// The document under `key`: at `as_of` (test mode) computed on the spot; otherwise the
/// stored one, materialising now if the tenant has none yet.
async fn document(
    state: &AppState,
    tenant_id: i64,
    key: &str,
    as_of: Option<i64>,
) -> Result<Arc<Document>, ApiError> {
    let engines = &state.engines;
    if let (None, Some(doc)) = (as_of, engines.cached_document(tenant_id, key)) {
        return Ok(doc);
    }
    if as_of.is_none() {
        let (engines, store) = (engines.clone(), state.store.clone());
        let wanted = key.to_owned();
        let stored =
            tokio::task::spawn_blocking(move || engines.document(&store, tenant_id, &wanted))
                .await
                .map_err(|_| ApiError::Internal)?
                .map_err(unavailable)?;
        if let Some(doc) = stored {
            return Ok(doc);
        }
    }
    let at = as_of.unwrap_or_else(now_ms);
    let docs = match as_of {
        Some(at) => engines
            .with_engine(&state.store, tenant_id, move |e| {
                e.materialise(at, now_ms())
            })
            .await
            .map(Some),
        None => engines.refresh_for_query(&state.store, tenant_id).await,
    }
    .map_err(unavailable)?
    .unwrap_or_default();
    let doc = match docs.into_iter().find(|d| d.key == key) {
        Some(doc) => doc,
        None => {
            let key = key.to_owned();
            engines
                .with_engine(&state.store, tenant_id, move |e| {
                    e.empty_list(&key, at, now_ms())
                })
                .await
                .map_err(unavailable)?
                .ok_or(ApiError::Internal)?
        }
    };
    Ok(Arc::new(doc))
}
