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
