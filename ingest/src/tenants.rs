//! Tenant lookup: by client key for writes, by secret API key for reads (the [`ApiKey`]
//! extractor); both cached for a few seconds, as every request needs one and tenants rarely
//! change. A key that names no tenant is remembered too, for a second, so wrong keys cost the
//! store little: a tenant added by `ingest tenant add` while the service runs is found within
//! that second; a key rotated by `ingest tenant rotate-key` is used once the entry expires.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;
use crate::store::{self, Tenant};
use crate::{read, write};

/// How long a looked-up tenant is trusted before it is read again.
pub(crate) const CACHE_FOR: Duration = Duration::from_secs(5);
/// How long a key that names no tenant is answered 401 without asking the store: a page
/// that keeps sending with a wrong key, or anyone trying keys, costs a read a second.
pub(crate) const UNKNOWN_FOR: Duration = Duration::from_secs(1);
/// Entries past which misses are no longer remembered (expired ones are dropped first):
/// random keys must not grow the cache without bound.
const MAX_ENTRIES: usize = 10_000;

/// What a lookup key named when it was read: a tenant, or `None`.
type Entry = (Option<Arc<Tenant>>, Instant);

/// Tenants by a lookup key, with the time each was read.
#[derive(Default)]
pub(crate) struct Cache(RwLock<HashMap<String, Entry>>);

impl Cache {
    /// The tenant, `Some(None)` for a key known to name none, `None` when the store must be
    /// asked.
    fn get(&self, key: &str, ttl: Duration, unknown_ttl: Duration) -> Option<Option<Arc<Tenant>>> {
        let entries = read(&self.0);
        let (tenant, read_at) = entries.get(key)?;
        let ttl = if tenant.is_some() { ttl } else { unknown_ttl };
        (read_at.elapsed() < ttl).then(|| tenant.clone())
    }

    fn put(&self, key: String, tenant: Option<Arc<Tenant>>, unknown_ttl: Duration) {
        let mut entries = write(&self.0);
        if tenant.is_none() && entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (t, at)| t.is_some() || at.elapsed() < unknown_ttl);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(key, (tenant, Instant::now()));
    }
}

pub(crate) async fn lookup(state: &AppState, client_key: &str) -> Result<Arc<Tenant>, ApiError> {
    let unknown = || ApiError::UnknownClientKey(clip(client_key));
    if let Some(t) = state
        .tenants
        .get(client_key, state.tenant_ttl, state.unknown_ttl)
    {
        return t.ok_or_else(unknown);
    }
    let found = match &state.cluster {
        Some(cluster) => shared(cluster.database.tenant(client_key).await)?,
        None => {
            let key = client_key.to_owned();
            read_tenant(state, move |store| store.tenant(&key)).await?
        }
    };
    let tenant = found.map(Arc::new);
    state
        .tenants
        .put(client_key.to_owned(), tenant.clone(), state.unknown_ttl);
    tenant.ok_or_else(unknown)
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
        if let Some(tenant) = state
            .api_keys
            .get(&hash, state.tenant_ttl, state.unknown_ttl)
        {
            return tenant.map(ApiKey).ok_or(ApiError::UnknownApiKey);
        }
        let found = match &state.cluster {
            Some(cluster) => shared(cluster.database.tenant_by_api_key(&token).await)?,
            None => read_tenant(state, move |store| store.tenant_by_api_key(&token)).await?,
        };
        let tenant = found.map(Arc::new);
        state.api_keys.put(hash, tenant.clone(), state.unknown_ttl);
        tenant.map(ApiKey).ok_or(ApiError::UnknownApiKey)
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

/// A tenant read from the cluster's database.
fn shared(
    found: Result<Option<Tenant>, crate::database::DatabaseError>,
) -> Result<Option<Tenant>, ApiError> {
    found.map_err(|e| {
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
