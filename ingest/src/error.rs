use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schema::BatchError;

use crate::datasets::QueryError;

/// Every error the HTTP API answers with, as `{ "error": "<code>", "message": "…" }`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("body is over the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("decompressed body is over the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("content encoding `{0}` is not supported; send gzip or no encoding")]
    UnsupportedEncoding(String),
    #[error("cannot read the request body: {0}")]
    BadBody(String),
    #[error("content type `{0}` is not accepted; send application/json or text/plain")]
    UnsupportedMediaType(String),
    #[error("unknown client_key `{0}`")]
    UnknownClientKey(String),
    #[error("this route needs the tenant's secret API key as `Authorization: Bearer sk_…`")]
    MissingApiKey,
    #[error("unknown API key")]
    UnknownApiKey,
    #[error("origin `{origin}` is not allowed for client_key `{client_key}`")]
    OriginNotAllowed { origin: String, client_key: String },
    #[error(
        "client_key `{client_key}` sends more than its rate limit; retry after {retry_after} s"
    )]
    RateLimited {
        client_key: String,
        retry_after: u64,
    },
    #[error(
        "this address sends more than its rate limit (whatever the client_key); retry after {retry_after} s"
    )]
    SourceRateLimited { retry_after: u64 },
    #[error("the Client-Ref header must be visible ASCII: percent-encode other characters (UTF-8)")]
    BadClientRefHeader,
    #[error("name the user to erase in the Client-Ref header")]
    MissingClientRefHeader,
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    #[error("the service is at its limit of concurrent requests; retry later")]
    Overloaded,
    #[error("no route for {0}")]
    NotFound(String),
    #[error("the store cannot commit right now; retry later")]
    StoreUnavailable,
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Batch(BatchError::TooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            ApiError::Batch(e) => (StatusCode::BAD_REQUEST, e.code()),
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::DecompressedTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
            }
            ApiError::UnsupportedEncoding(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_encoding")
            }
            ApiError::BadBody(_) => (StatusCode::BAD_REQUEST, "malformed_body"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::UnknownClientKey(_) => (StatusCode::UNAUTHORIZED, "unknown_client_key"),
            ApiError::MissingApiKey => (StatusCode::UNAUTHORIZED, "missing_api_key"),
            ApiError::UnknownApiKey => (StatusCode::UNAUTHORIZED, "unknown_api_key"),
            ApiError::OriginNotAllowed { .. } => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            ApiError::RateLimited { .. } | ApiError::SourceRateLimited { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::BadClientRefHeader => (StatusCode::BAD_REQUEST, "bad_client_ref_header"),
            ApiError::MissingClientRefHeader => (StatusCode::BAD_REQUEST, "missing_client_ref"),
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::Query(e) => (query_status(e), e.code()),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// A query's error as a status: 404 for what does not exist, else 400.
fn query_status(e: &QueryError) -> StatusCode {
    if e.is_not_found() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// A query's error as the API answers it: RFC 9457 problem details, plus the code.
pub(crate) fn problem(e: &QueryError) -> serde_json::Value {
    let status = query_status(e);
    serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": e.to_string(),
        "error": e.code(),
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Query(e) = &self {
            let content_type = [(header::CONTENT_TYPE, "application/problem+json")];
            return (status, content_type, problem(e).to_string()).into_response();
        }
        let body = serde_json::json!({ "error": code, "message": self.to_string() });
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::MissingApiKey | ApiError::UnknownApiKey) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. }
            | ApiError::SourceRateLimited { retry_after } => Some(*retry_after),
            ApiError::StoreUnavailable | ApiError::Overloaded => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
