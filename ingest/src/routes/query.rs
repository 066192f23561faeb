//! The query API (datasets spec §5.5) and `GET /v1/recommendations`: read-only, with the
//! tenant's secret API key. Materialised lists are served verbatim from the presentation
//! store (with an ETag); preferences and engagement are computed on read.

use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::anonymise::pseudonym::{Kind, pseudonymise, random_id};
use crate::datasets::{Document, Engine, Query, Target, feedback_page};
use crate::error::ApiError;
use crate::store::{StoreError, now_ms};
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
    let datasets = &state.datasets;
    // Every commit answered so far is in the answer: the client's own events and erasures.
    datasets.caught_up(&state.store).await;
    let as_of = query.as_of.filter(|_| datasets.test_mode);
    let json = |body: String| {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
    };
    match query.target() {
        Target::Document { key, limit } => {
            let doc = document(&state, tenant.id, key, as_of).await?;
            let matches = headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == doc.etag.as_bytes());
            let etag = HeaderValue::from_str(&doc.etag).map_err(|_| ApiError::Internal)?;
            let cache = HeaderValue::from_str(&format!(
                "private, max-age={}",
                datasets.params().consensus.materialize_every_secs
            ))
            .map_err(|_| ApiError::Internal)?;
            let headers = [(header::ETAG, etag), (header::CACHE_CONTROL, cache)];
            if matches {
                return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
            }
            Ok((headers, json(doc.cut(limit).into_owned())).into_response())
        }
        Target::Feedback {
            recommender,
            cursor,
            limit,
        } => {
            if let Some(as_of) = as_of {
                datasets
                    .finalise_at(&state.store, tenant.id, as_of)
                    .await
                    .map_err(unavailable)?;
            }
            let store = state.store.clone();
            let recommender = recommender.map(str::to_owned);
            let records = tokio::task::spawn_blocking(move || {
                store.feedback(tenant.id, recommender.as_deref(), cursor, limit)
            })
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(unavailable)?;
            Ok(json(feedback_page(records, cursor).to_string()).into_response())
        }
        Target::Engine { client_ref } => {
            let key = state.keyring.tenant_key(&tenant);
            let user_id = client_ref.map(|c| pseudonymise(&key, Kind::ClientRef, c));
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
                datasets.with_engine(&state.store, tenant.id, read).await
            } else {
                datasets.read_engine(&state.store, tenant.id, read).await
            };
            let answer = answer.map_err(unavailable)??;
            Ok(json(answer.to_string()).into_response())
        }
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
    let datasets = &state.datasets;
    if let (None, Some(doc)) = (as_of, datasets.cached_document(tenant_id, key)) {
        return Ok(doc);
    }
    if as_of.is_none() {
        let (datasets, store) = (datasets.clone(), state.store.clone());
        let wanted = key.to_owned();
        let stored =
            tokio::task::spawn_blocking(move || datasets.document(&store, tenant_id, &wanted))
                .await
                .map_err(|_| ApiError::Internal)?
                .map_err(unavailable)?;
        if let Some(doc) = stored {
            return Ok(doc);
        }
    }
    let at = as_of.unwrap_or_else(now_ms);
    let docs = match as_of {
        Some(at) => datasets
            .with_engine(&state.store, tenant_id, move |e| {
                e.materialise(at, now_ms())
            })
            .await
            .map(Some),
        None => datasets.refresh_for_query(&state.store, tenant_id).await,
    }
    .map_err(unavailable)?
    .unwrap_or_default();
    let doc = match docs.into_iter().find(|d| d.key == key) {
        Some(doc) => doc,
        None => {
            let key = key.to_owned();
            datasets
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
