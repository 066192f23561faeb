//! The HTTP surface: one module per route family.

mod events;
mod openapi;
mod ops;
mod query;
mod users;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::extract::MatchedPath;
use axum::http::Request;
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::routing::{delete, get, post};
use axum::{BoxError, Router, middleware};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The datasets dashboard: one static page that reads the query API with the key its user
/// types in.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}

/// Names the request's span by the route it matched, as its template.
async fn record_route(
    matched: MatchedPath,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    tracing::Span::current().record("route", matched.as_str());
    next.run(request).await
}

/// Whether a page of `origin` may call the API across origins. A preflight has no body, so the
/// batch's client key is not known yet: on `/v1/events?client_key=K` the answer is tenant K's
/// (its origins, or any when it lists none); elsewhere, whether any tenant allows the origin.
/// `POST /v1/events` itself is answered to any origin, since it checks the batch's tenant's
/// origins (403 for one it does not list, which the page may then read), and every query
/// route needs the secret key.
async fn origin_allowed(state: AppState, origin: HeaderValue, method: Method, uri: Uri) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if method == Method::POST && uri.path() == "/v1/events" {
        return true;
    }
    let client_key = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "client_key")
        .map(|(_, v)| v.into_owned());
    if let Some(client_key) = client_key {
        return crate::tenants::lookup(&state, &client_key)
            .await
            .is_ok_and(|tenant| tenant.allows_origin(origin));
    }
    let store = state.store.clone();
    let origin = origin.to_owned();
    tokio::task::spawn_blocking(move || {
        store
            .tenants()
            .is_ok_and(|tenants| tenants.iter().any(|t| t.allows_origin(&origin)))
    })
    .await
    .unwrap_or(false)
}

/// Which routes a listener serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Serves {
    /// The API and the operations' routes (readiness, metrics) on one port.
    Everything,
    /// The API alone, the operations' routes being on a port of their own (`--ops-listen`).
    Api,
    /// Readiness and metrics (and `/healthz`, which every port answers).
    Ops,
}

pub(crate) fn router(state: AppState, serves: Serves) -> Router {
    let timeout = state.limits.request_timeout;
    // Over the concurrency limit, answer 503 at once: queueing would only turn overload into
    // timeouts for everyone.
    let protect = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |err: BoxError| async move {
            if err.is::<tower::timeout::error::Elapsed>() {
                ApiError::Timeout(timeout.as_secs())
            } else if err.is::<tower::load_shed::error::Overloaded>() {
                ApiError::Overloaded
            } else {
                tracing::error!(error = %err, "request failed in a middleware");
                ApiError::Internal
            }
        }))
        .load_shed()
        // Global: `Router::layer` builds one layer per route, and the limit is the service's.
        .layer(GlobalConcurrencyLimitLayer::new(
            state.limits.max_concurrent_requests,
        ))
        .timeout(timeout);
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate({
            let state = state.clone();
            move |origin, parts| {
                origin_allowed(state, origin, parts.method.clone(), parts.uri.clone())
            }
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
            header::AUTHORIZATION,
            header::IF_NONE_MATCH,
            header::HeaderName::from_static(query::CLIENT_REF),
        ])
        .expose_headers([header::RETRY_AFTER, header::ETAG, REQUEST_ID])
        .max_age(Duration::from_secs(86_400));
    // CORS for the API alone: readiness and metrics are for load balancers and Prometheus,
    // never for a script on some page.
    let queries = crate::datasets::ROUTES
        .iter()
        .fold(Router::new(), |r, route| {
            r.route(route.path, get(query::query))
        });
    let api = Router::new()
        .route("/v1/events", post(events::post))
        .route("/v1/users/{client_ref}", delete(users::erase))
        .route("/v1/users", delete(users::erase_named_in_header))
        .route("/openapi.json", get(openapi::serve))
        .merge(queries)
        .layer(cors)
        .route("/dashboard", get(dashboard));
    let ops = Router::new()
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics));
    let healthz = Router::new().route("/healthz", get(|| async { "ok\n" }));
    let routes = match serves {
        Serves::Everything => api.merge(ops),
        Serves::Api => api,
        Serves::Ops => ops,
    };
    routes
        .merge(healthz)
        .route_layer(middleware::from_fn(record_route))
        .fallback(|uri: Uri| async move {
            tracing::Span::current().record("route", "unmatched");
            ApiError::NotFound(uri.path().to_owned())
        })
        .layer(DefaultBodyLimit::max(schema::limits::MAX_BODY_BYTES))
        .layer(protect)
        .layer(middleware::from_fn_with_state(state.clone(), ops::count_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            // Never the path or the query as sent: they may name a user (`/v1/users/{client_ref}`,
            // `?user=`). The route's template is filled in once routing has found it.
            tracing::info_span!("request", method = %req.method(), route = tracing::field::Empty, request_id = id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}
