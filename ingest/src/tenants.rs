//! Tenant lookup by client key, cached: every batch needs it, tenants rarely change, and a
//! tenant added by `ingest tenant add` while the service runs is found on its first batch.

use std::sync::Arc;

use crate::AppState;
use crate::error::ApiError;
use crate::store::Tenant;

pub(crate) async fn lookup(state: &AppState, client_key: &str) -> Result<Arc<Tenant>, ApiError> {
    if let Some(t) = state
        .tenants
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(client_key)
    {
        return Ok(t.clone());
    }
    let store = state.store.clone();
    let key = client_key.to_owned();
    let found = tokio::task::spawn_blocking(move || store.tenant(&key))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read tenants");
            ApiError::StoreUnavailable
        })?;
    let tenant = Arc::new(found.ok_or_else(|| ApiError::UnknownClientKey(client_key.to_owned()))?);
    state
        .tenants
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(client_key.to_owned(), tenant.clone());
    Ok(tenant)
}
