//! `cargo xtask demo`: build the browser package, start ingest on an embedded store, serve
//! the example pages, print the URL; Ctrl-C stops both.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tower_http::services::ServeDir;

use crate::cmd::root;
use crate::ingest::{self, Ingest};
use crate::{build, install};

pub(crate) const CLIENT_KEY: &str = "pk_demo";

pub(crate) fn run(ingest_addr: SocketAddr, web_addr: SocketAddr) -> anyhow::Result<()> {
    install::for_build()?;
    ingest::build()?;
    let sizes = build::package()?;
    eprintln!("browser package:\n{sizes}");
    let data_dir = root().join(".data/demo");
    if !ingest::tenants(&data_dir)?.iter().any(|k| k == CLIENT_KEY) {
        ingest::add_tenant(&data_dir, CLIENT_KEY)?;
    }
    let server = Ingest::start(&data_dir, &ingest_addr.to_string())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(web_addr)
            .await
            .with_context(|| format!("cannot serve the demo on {web_addr}; pass --web-port to pick another"))?;
        let url = format!(
            "http://{}/examples/basic/?endpoint={}/v1/events&clientKey={CLIENT_KEY}",
            listener.local_addr()?,
            server.url
        );
        println!("\nPersonafin Capture demo\n  open   {url}\n  ingest {} (store: {})\n  events `cargo run -q -p ingest -- events list --data-dir .data/demo --client-key {CLIENT_KEY}`\nCtrl-C stops it.", server.url, data_dir.display());
        let app = Router::new()
            .nest_service("/examples", ServeDir::new(root().join("examples")))
            .nest_service("/js-wrapper", ServeDir::new(root().join("js-wrapper")));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    })?;
    drop(server);
    Ok(())
}
