//! `POST /v1/events`: the HTTP side of taking a batch (content type, gzip, the tenant and its
//! origins, rate limits, metrics); the batch itself goes through the `pipeline` to the sink,
//! and is answered once the sink has it durably.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use schema::parse_batch;
use serde::Serialize;

use crate::anonymise::user_agent;
use crate::anonymise::vault::Vault;
use crate::error::ApiError;
use crate::listen::Peer;
use crate::pipeline::{Pipeline, Processed, Rejected};
use crate::protect::{Cost, Limited};
use crate::store::now_ms;
use crate::{AppState, tenants};

#[derive(Debug, Serialize)]
pub(crate) struct Accepted {
    accepted: usize,
    duplicates: usize,
    rejected: Vec<Rejected>,
}

pub(crate) async fn post(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Accepted>, ApiError> {
    check_content_type(&headers)?;
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: schema::limits::MAX_BODY_BYTES,
        },
        _ => ApiError::BadBody(e.body_text()),
    })?;
    let body = decode(&headers, body)?;
    let batch = parse_batch(&body)?;
    let client_key = batch.client_key()?;
    let tenant = tenants::lookup(&state, &client_key).await?;
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
        && !tenant.allows_origin(origin)
    {
        return Err(ApiError::OriginNotAllowed {
            origin: origin.to_owned(),
            client_key,
        });
    }
    let cost = Cost {
        events: batch.events.len(),
        bytes: body.len(),
    };
    let source = state.source(&headers, peer.map(|Extension(Peer(ip))| ip));
    if let Err((limited, wait)) =
        state
            .rate_limiter
            .check(&client_key, source, cost, Instant::now())
    {
        state.metrics.rate_limited.fetch_add(1, Relaxed);
        let retry_after = wait.as_secs_f64().ceil().max(1.0) as u64;
        return Err(match limited {
            Limited::ClientKey => ApiError::RateLimited {
                client_key,
                retry_after,
            },
            Limited::Source => ApiError::SourceRateLimited { retry_after },
        });
    }
    state.metrics.batches.fetch_add(1, Relaxed);
    let agent = user_agent::reduce(
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    );
    let vault = state
        .identity_vault
        .then(|| Vault::new(&state.keyring.vault_key(&tenant.client_key)));
    let Processed { write, rejected } =
        Pipeline::new(&state.keyring.tenant_key(&tenant), agent, now_ms())
            .with_vault(vault)
            .batch(tenant.id, &client_key, batch.sent_at, &batch.events);
    let submitted = write.events.len();
    let started = Instant::now();
    let outcome = state.sink.write(write).await.map_err(|e| {
        tracing::error!(error = %e, "cannot commit events");
        ApiError::StoreUnavailable
    })?;
    let m = &state.metrics;
    m.store_writes.fetch_add(1, Relaxed);
    m.store_write_micros
        .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    // The newly stored events reach the datasets through the store's feed, in commit order
    // (see `engines`): the answer waits for the disk, never for the datasets.
    let accepted = outcome.inserted.iter().filter(|&&new| new).count();
    m.events_accepted.fetch_add(accepted as u64, Relaxed);
    m.events_duplicate
        .fetch_add((submitted - accepted) as u64, Relaxed);
    rejected.iter().for_each(|r| m.rejected(r.error));
    tracing::debug!(
        client_key,
        accepted,
        duplicates = submitted - accepted,
        rejected = rejected.len(),
        "batch stored"
    );
    Ok(Json(Accepted {
        accepted,
        duplicates: submitted - accepted,
        rejected,
    }))
}

/// The body, gunzipped when `Content-Encoding: gzip`. Decompression stops one byte past the
/// limit, so a gzip bomb costs at most that much memory.
fn decode(headers: &HeaderMap, body: Bytes) -> Result<Bytes, ApiError> {
    use std::io::Read;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") => Ok(body),
        Some("gzip" | "x-gzip") => {
            let limit = schema::limits::MAX_BODY_BYTES;
            let mut out = Vec::with_capacity(gunzip_capacity(body.len(), limit));
            flate2::read::GzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::BadBody(format!("cannot gunzip the body: {e}")))?;
            if out.len() > limit {
                return Err(ApiError::DecompressedTooLarge { limit });
            }
            Ok(out.into())
        }
        Some(other) => Err(ApiError::UnsupportedEncoding(other.to_owned())),
    }
}

/// Room for a gunzipped body up front: JSON batches compress about fourfold, and the
/// decoder stops one byte past the limit, so more than that is never needed.
fn gunzip_capacity(compressed: usize, limit: usize) -> usize {
    compressed.saturating_mul(4).min(limit + 1)
}

/// JSON, or `text/plain` as `navigator.sendBeacon` and preflight-free `fetch` send it.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let value = value.to_str().unwrap_or("");
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" | "text/plain" => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(value.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gunzip_room_is_never_more_than_the_limit_allows() {
        assert_eq!(gunzip_capacity(1_000, 1 << 20), 4_000);
        assert_eq!(gunzip_capacity(1 << 20, 1 << 20), (1 << 20) + 1);
        assert_eq!(gunzip_capacity(usize::MAX, 10), 11);
    }
}
