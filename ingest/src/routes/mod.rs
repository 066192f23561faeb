//! The HTTP surface: one module per route family.

mod events;
mod users;

pub(crate) use events::event_time;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, Uri, header};
use axum::routing::{delete, get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(crate) fn router(state: AppState) -> Router {
    // The preflight cannot know the tenant (it has no body), so CORS answers every origin
    // here and `POST /v1/events` enforces each tenant's allowed origins itself.
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::AUTHORIZATION,
        ])
        .expose_headers([header::RETRY_AFTER, REQUEST_ID])
        .max_age(Duration::from_secs(86_400));
    Router::new()
        .route("/v1/events", post(events::post))
        .route("/v1/users/{client_ref}", delete(users::erase))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|uri: Uri| async move { ApiError::NotFound(uri.path().to_owned()) })
        .layer(DefaultBodyLimit::max(schema::limits::MAX_BODY_BYTES))
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
