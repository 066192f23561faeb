//! A customer's own system reading a cluster's anonymised events: a durable JetStream
//! consumer on `pfc.events.>`, each event printed as one JSON line (`tenant_id` and the
//! event as the log keeps it), acknowledged once printed. Stopped and started again, it goes
//! on where it left off; several copies with the same name share the events.
//!
//! ```text
//! cargo run -p personafin-subscriber -- nats://10.0.0.1:4222,nats://10.0.0.2:4222 my-warehouse
//! ```
//!
//! The stream (`PFC`) and its subjects are described in `docs/deploy.md`; any language with
//! an official NATS client (Go, Python, JavaScript, Java, .NET, …) reads them the same way.

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let servers = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let name = args.next().unwrap_or_else(|| "my-warehouse".into());
    // Stop after this many events (for a test); by default, never.
    let limit: Option<usize> = args.next().map(|n| n.parse()).transpose()?;

    let servers = servers
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<async_nats::ServerAddr>, _>>()?;
    let client = async_nats::connect(servers).await?;
    let stream = jetstream::new(client).get_stream("PFC").await?;
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: "pfc.events.>".into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    let mut seen = 0;
    while let Some(message) = messages.next().await {
        let message = message?;
        // `pfc.events.<tenant id>`
        let tenant_id = message.subject.rsplit('.').next().unwrap_or_default();
        let event = std::str::from_utf8(&message.payload)?;
        println!(r#"{{"tenant_id":{tenant_id},"event":{event}}}"#);
        message.ack().await?;
        seen += 1;
        if limit.is_some_and(|limit| seen >= limit) {
            break;
        }
    }
    Ok(())
}
