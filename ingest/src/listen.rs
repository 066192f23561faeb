//! The accept loop: what axum's `serve` does, plus the two guards it lacks against slow or
//! numerous clients, and the same graceful shutdown.
//!
//! - A deadline for each request's head. The request timeout starts only once the head is
//!   read, so a client that trickles its headers (slowloris) would hold a connection for
//!   ever; hyper has the deadline, but needs a timer, which axum's `serve` does not give it.
//!   Its clock starts when the connection waits for a request, so it also closes keep-alive
//!   connections idle for as long.
//! - A cap on open connections. Past it, nothing more is accepted until one closes: new
//!   clients wait in the kernel's backlog instead of using up the process's file descriptors.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The address a request's connection came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) std::net::IpAddr);

type Request = axum::http::Request<hyper::body::Incoming>;

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the open connections
/// to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    // HTTP/1.1 only, as axum's `serve` with its default features: trackers send one batch at
    // a time per page, and a proxy in front speaks HTTP/2 to browsers if wanted.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, most likely; as axum does, wait for some to
                    // be freed rather than spin.
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Each request knows the address it came from: the rate limits count by it.
        let app = tower::ServiceExt::map_request(app.clone(), move |mut request: Request| {
            request.extensions_mut().insert(Peer(peer.ip()));
            request
        });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
