//! Tenant lookup: by client key for writes, by secret API key for reads (the [`ApiKey`]
//! extractor); both cached for a few seconds, as every request needs one and tenants rarely
//! change. A tenant added by `ingest tenant add` while the service runs is found on its
//! first request; a key rotated by `ingest tenant rotate-key` is used once the entry expires.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;
use crate::store::{self, Tenant};

/// How long a looked-up tenant is trusted before it is read again.
pub(crate) const CACHE_FOR: Duration = Duration::from_secs(5);

/// Tenants by a lookup key, with the time each was read.
#[derive(Default)]
pub(crate) struct Cache(RwLock<HashMap<String, (Arc<Tenant>, Instant)>>);

impl Cache {
    fn get(&self, key: &str, ttl: Duration) -> Option<Arc<Tenant>> {
        let entries = self.0.read().unwrap_or_else(|p| p.into_inner());
        let (tenant, read_at) = entries.get(key)?;
        (read_at.elapsed() < ttl).then(|| tenant.clone())
    }

    fn put(&self, key: String, tenant: Arc<Tenant>) {
        let mut entries = self.0.write().unwrap_or_else(|p| p.into_inner());
        entries.insert(key, (tenant, Instant::now()));
    }
}

pub(crate) async fn lookup(state: &AppState, client_key: &str) -> Result<Arc<Tenant>, ApiError> {
    if let Some(t) = state.tenants.get(client_key, state.tenant_ttl) {
        return Ok(t);
    }
    let key = client_key.to_owned();
    let found = read_tenant(state, move |store| store.tenant(&key)).await?;
    let tenant = Arc::new(found.ok_or_else(|| ApiError::UnknownClientKey(clip(client_key)))?);
    state.tenants.put(client_key.to_owned(), tenant.clone());
    Ok(tenant)
}

/// The tenant authenticated by `Authorization: Bearer <secret API key>`.
pub(crate) struct ApiKey(pub(crate) Arc<store::Tenant>);

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<ApiKey, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::MissingApiKey)?
            .to_owned();
        // Cached by the key's hash, as the store keeps it.
        let hash = store::sha256_hex(&token);
        if let Some(tenant) = state.api_keys.get(&hash, state.tenant_ttl) {
            return Ok(ApiKey(tenant));
        }
        let found = read_tenant(state, move |store| store.tenant_by_api_key(&token)).await?;
        let tenant = Arc::new(found.ok_or(ApiError::UnknownApiKey)?);
        state.api_keys.put(hash, tenant.clone());
        Ok(ApiKey(tenant))
    }
}

/// A tenant read from the store, off the async threads (SQLite blocks).
async fn read_tenant(
    state: &AppState,
    read: impl FnOnce(&store::Store) -> Result<Option<Tenant>, store::StoreError> + Send + 'static,
) -> Result<Option<Tenant>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(|_| ApiError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read tenants");
            ApiError::StoreUnavailable
        })
}

/// A caller-supplied key as echoed in an error: at most as long as a valid one could be.
fn clip(key: &str) -> String {
    let limit = schema::limits::MAX_ID_LEN;
    match key.char_indices().nth(limit) {
        Some((cut, _)) => format!("{}…", &key[..cut]),
        None => key.to_owned(),
    }
}
