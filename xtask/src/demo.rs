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
    // The demo keeps its tenant's secret key beside its store, so every run can link the
    // dashboard; a real deployment shows the key once and stores only its hash.
    let key_file = data_dir.join("demo-api-key");
    if !ingest::tenants(&data_dir)?.iter().any(|k| k == CLIENT_KEY) {
        let key = ingest::add_tenant(&data_dir, CLIENT_KEY)?;
        std::fs::write(&key_file, &key)?;
    }
    let api_key = std::fs::read_to_string(&key_file).unwrap_or_default();
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
        let dashboard = match api_key.trim() {
            "" => format!("{}/dashboard (enter the tenant's secret API key)", server.url),
            key => format!("{}/dashboard#key={key}", server.url),
        };
        println!("\nPersonafin Capture demo\n  open      {url}\n  dashboard {dashboard}\n  ingest    {} (store: {})\n  events    `cargo run -q -p ingest -- events list --data-dir .data/demo --client-key {CLIENT_KEY}`\nCtrl-C stops it.", server.url, data_dir.display());
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
