//! `DELETE /v1/users/{client_ref}`: erasure of one user, by the customer's own identifier.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;

use crate::AppState;
use crate::anonymise::user_ids;
use crate::error::ApiError;
use crate::routes::query::CLIENT_REF;
use crate::store::{Erased, Erasure};
use crate::tenants::ApiKey;

/// Removes every event and failed event of the user, under every key version, durably,
/// and what the datasets hold of them (preferences, contributions, impression links): the
/// answer comes once the running engines have forgotten the user too.
pub(crate) async fn erase(
    State(state): State<AppState>,
    ApiKey(tenant): ApiKey,
    Path(client_ref): Path<String>,
) -> Result<Json<Erased>, ApiError> {
    erase_user(state, tenant, client_ref).await
}

/// `DELETE /v1/users` with the user in the `Client-Ref` header (percent-encoded as in a
/// path): the same erasure, with the identifier kept out of URLs and so out of access logs.
pub(crate) async fn erase_named_in_header(
    State(state): State<AppState>,
    ApiKey(tenant): ApiKey,
    headers: HeaderMap,
) -> Result<Json<Erased>, ApiError> {
    let value = headers
        .get(CLIENT_REF)
        .ok_or(ApiError::MissingClientRefHeader)?
        .to_str()
        .map_err(|_| ApiError::BadClientRefHeader)?;
    let client_ref = crate::datasets::percent_decode(value);
    erase_user(state, tenant, client_ref).await
}

async fn erase_user(
    state: AppState,
    tenant: std::sync::Arc<crate::store::Tenant>,
    client_ref: String,
) -> Result<Json<Erased>, ApiError> {
    let user_ids = user_ids(&state.keyring, &tenant, &client_ref);
    if let Some(cluster) = &state.cluster {
        return erase_in_cluster(cluster, &tenant, user_ids).await.map(Json);
    }
    let erased = state
        .store
        .erase(Erasure {
            tenant_id: tenant.id,
            user_ids: user_ids.clone(),
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot erase a user");
            ApiError::StoreUnavailable
        })?;
    // The erasure reached the datasets with its commit; answer once they have applied it.
    state.engines.caught_up(&state.store).await;
    tracing::info!(
        client_key = tenant.client_key,
        events = erased.events,
        "user erased"
    );
    Ok(Json(erased))
}

/// How long an erasure's answer waits for this node's own copy of the stream to take it.
const REPLICA_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// In a cluster: the erasure goes on the stream, after every event published before it, so
/// each node's copy (and its datasets) forgets the user in the stream's order; PostgreSQL
/// forgets at once, and keeps a tombstone so that an event from before the erasure that a
/// sink stores later is not stored. Answered with the rows PostgreSQL held, once this
/// node's datasets have forgotten the user too.
async fn erase_in_cluster(
    cluster: &crate::Cluster,
    tenant: &crate::store::Tenant,
    user_ids: Vec<String>,
) -> Result<Erased, ApiError> {
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "cannot erase a user");
        ApiError::StoreUnavailable
    };
    let seq = cluster
        .bus
        .publish_erasure(tenant.id, &user_ids)
        .await
        .map_err(|e| unavailable(&e))?;
    let erased = cluster
        .database
        .erase(&crate::database::ErasureRow {
            seq: seq as i64,
            tenant_id: tenant.id,
            user_ids,
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let mut replicated = cluster.replicated.subscribe();
    let taken = tokio::time::timeout(REPLICA_WAIT, replicated.wait_for(|&at| at >= seq)).await;
    if !matches!(taken, Ok(Ok(_))) {
        tracing::warn!(
            seq,
            "this node's copy of the stream has not taken the erasure yet; it will"
        );
    }
    tracing::info!(
        client_key = tenant.client_key,
        events = erased.events,
        "user erased"
    );
    Ok(erased)
}
