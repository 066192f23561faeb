//! Operations: readiness and metrics. (`/healthz` is a constant: the process answers.)

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Ready when the store answers a read and takes writes. The body says no more than that:
/// the cause goes to the log, not to whoever can reach the port.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let not_ready = |what: &str, error: &dyn std::fmt::Display| {
        // The cause goes to the log, not into the answer.
        tracing::warn!(error = %error, "not ready: {what}");
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    };
    if let Err(e) = state.store.ready().await {
        return not_ready("store", &e);
    }
    if let Some(cluster) = &state.cluster
        && let Some(fault) = cluster.fault().await
    {
        return not_ready("cluster", &fault);
    }
    (StatusCode::OK, "ready\n").into_response()
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let engines = state.engines.clone();
    let counters = tokio::task::spawn_blocking(move || engines.counters())
        .await
        .unwrap_or_default();
    let lag = state.engines.lag(&state.store);
    let stream_lag = match &state.cluster {
        Some(cluster) => match cluster.bus.lag(&cluster.consumer).await {
            Ok(lag) => lag.render(&cluster.consumer),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read this node's consumer lag");
                String::new()
            }
        },
        None => String::new(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render() + &crate::metrics::render_datasets(&counters, lag) + &stream_lag,
    )
        .into_response()
}

/// Counts every response by status, including those the protection layers give.
pub(crate) async fn count_response(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    state.metrics.response(response.status().as_u16());
    response
}
