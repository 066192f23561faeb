//! `DELETE /v1/users/{client_ref}`: erasure of one user, by the customer's own identifier.

use axum::Json;
use axum::extract::{Path, State};

use crate::AppState;
use crate::anonymise::user_ids;
use crate::error::ApiError;
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
    state.datasets.caught_up(&state.store).await;
    tracing::info!(
        client_key = tenant.client_key,
        events = erased.events,
        "user erased"
    );
    Ok(Json(erased))
}
