//! `cargo xtask bench ingest`: events per second and batch latency of ingest with durable
//! commits, measured in one run beside (a) a bare axum server that accepts and discards the
//! same batches and (b) the store's own commit ceiling for the same batches without HTTP.
//! A report, never a test: it writes `target/bench/ingest.md`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use ingest::store::{StoredEvent, Write};
use tokio::net::{TcpListener, TcpStream};

mod support;

/// The allocator the `ingest` binary runs with (`src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent keep-alive connections (or store writers) of each measured level: a few busy
/// clients, then many, as a service in front of thousands of browsers sees.
const LEVELS: [usize; 2] = [16, 64];
const EVENTS_PER_BATCH: usize = 50;
const DURATION: Duration = Duration::from_secs(6);
const CLIENT_KEY: &str = "pk_bench";

struct Run {
    name: &'static str,
    events: u64,
    elapsed: Duration,
    /// CPU time the whole process used meanwhile (server and load generator).
    cpu: f64,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        support::percentile(&self.latencies, p)
    }
    /// CPU used, as a share of all cores' time.
    fn busy(&self, cores: usize) -> f64 {
        self.cpu / (self.elapsed.as_secs_f64() * cores as f64)
    }
}

/// Runs `connections` tasks of `work` until the deadline and sums what they did: each gives
/// its events and its batches' latencies.
async fn measure<F, Fut>(name: &'static str, connections: usize, work: F) -> Run
where
    F: Fn(Instant) -> Fut,
    Fut: std::future::Future<Output = (u64, Vec<Duration>)> + Send + 'static,
{
    let (started, cpu) = (Instant::now(), support::cpu_seconds());
    let deadline = started + DURATION;
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(work(deadline)))
        .collect();
    let mut run = Run {
        name,
        events: 0,
        elapsed: Duration::ZERO,
        cpu: 0.0,
        latencies: Vec::new(),
    };
    for t in tasks {
        let (events, latencies) = t.await.expect("load task");
        run.events += events;
        run.latencies.extend(latencies);
    }
    run.elapsed = started.elapsed();
    run.cpu = support::cpu_seconds() - cpu;
    run
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A batch of unique events shaped like the tracker's.
fn batch_body() -> String {
    let mut body = String::with_capacity(EVENTS_PER_BATCH * 330);
    body.push_str(r#"{"sent_at":"2026-11-28T14:00:01Z","events":["#);
    for i in 0..EVENTS_PER_BATCH {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"client_key":"{CLIENT_KEY}","event_id":"{}","created_at":"2026-11-28T14:00:00.123Z","event_type":"instrument","action":"viewed","event_meta":{{"page":"/stocks/AAPL?utm_source=news","position":{}}},"related_entities":[{{"type":"ticker","id":"AAPL"}}],"channel_meta":{{"session_id":"s-{}","client_ref":"user-{}"}}}}"#,
            support::event_id(),
            i + 1,
            n % 1000,
            n % 10_000
        );
    }
    body.push_str("]}");
    body
}

/// One keep-alive HTTP/1.1 connection posting batches until the deadline.
async fn client(addr: SocketAddr, deadline: Instant) -> (u64, Vec<Duration>) {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("the server under test accepts");
    stream.set_nodelay(true).ok();
    let (mut events, mut latencies) = (0, Vec::new());
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < deadline {
        let body = batch_body();
        let request = format!(
            "POST /v1/events HTTP/1.1\r\nHost: bench\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let started = Instant::now();
        let (status, body) = support::exchange(&mut stream, request.as_bytes(), &mut buf).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        latencies.push(started.elapsed());
        events += EVENTS_PER_BATCH as u64;
    }
    (events, latencies)
}

async fn load(name: &'static str, addr: SocketAddr, connections: usize) -> Run {
    measure(name, connections, move |deadline| client(addr, deadline)).await
}

/// (a): the same HTTP stack, reading the body and answering, with no parsing or storage.
async fn bare_axum(connections: usize) -> Run {
    let app = Router::new().route(
        "/v1/events",
        post(|body: Bytes| async move {
            format!(
                "{{\"accepted\":{},\"duplicates\":0,\"rejected\":[]}}",
                body.len().min(1)
            )
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let run = load("(a) bare axum, accept and discard", addr, connections).await;
    server.abort();
    run
}

/// The service under test, with its real store in a temp dir.
async fn ingest_service(dir: &std::path::Path, connections: usize) -> Run {
    let service = support::Service::start(dir, CLIENT_KEY).await;
    let run = load(
        "ingest, durable (fsync before the answer, group commit)",
        service.addr,
        connections,
    )
    .await;
    service.stop().await;
    run
}

/// (b): the store alone, the same batches written by as many concurrent writers.
async fn store_ceiling(dir: &std::path::Path, connections: usize) -> Run {
    let store = Arc::new(ingest::Store::open(dir).unwrap());
    let (tenant, _) = store.add_tenant(CLIENT_KEY, &[]).unwrap();
    let run = measure(
        "(b) store alone, same batches, group commit",
        connections,
        |deadline| {
            let store = store.clone();
            async move {
                let (mut events, mut latencies) = (0u64, Vec::new());
                while Instant::now() < deadline {
                    let write = Write {
                        tenant_id: tenant.id,
                        received_at: 1_795_874_400_000,
                        events: (0..EVENTS_PER_BATCH).map(|_| stored_event()).collect(),
                        failed: Vec::new(),
                        vault: Vec::new(),
                        inputs: Vec::new(),
                    };
                    let t = Instant::now();
                    store.write(write).await.unwrap();
                    latencies.push(t.elapsed());
                    events += EVENTS_PER_BATCH as u64;
                }
                (events, latencies)
            }
        },
    )
    .await;
    store.close();
    run
}

fn stored_event() -> StoredEvent {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    StoredEvent {
        event_id: support::event_id(),
        event_time: 1_795_874_400_123,
        user_id: Some(format!("{:032x}", n % 10_000)),
        payload: format!(
            r#"{{"event_id":"store-{n}","event_type":"instrument","action":"viewed","event_meta":{{"page":"/stocks/AAPL?utm_source=news","position":1}},"related_entities":[{{"id":"AAPL","type":"ticker"}}],"channel_meta":{{"session_id":"{:032x}","user_id":"{:032x}"}}}}"#,
            n % 1000,
            n % 10_000
        ),
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = format!(
        "# ingest benchmark\n\n{cores} cores; batches of {EVENTS_PER_BATCH} events with version 7 UUID event ids (as the tracker makes them), {} s per run; the load generator runs in the same process, so CPU is the whole process's.\n",
        DURATION.as_secs()
    );
    for connections in LEVELS {
        let (ours, a, b) = runtime.block_on(async {
            let a = bare_axum(connections).await;
            let dir = tempfile::tempdir().unwrap();
            let ours = ingest_service(dir.path(), connections).await;
            let dir = tempfile::tempdir().unwrap();
            let b = store_ceiling(dir.path(), connections).await;
            (ours, a, b)
        });
        let _ = write!(
            report,
            "\n## {connections} keep-alive connections (or writers)\n\n| run | events/s | batch p50 | batch p99 | CPU busy |\n|---|---:|---:|---:|---:|\n"
        );
        for run in [&ours, &a, &b] {
            let _ = writeln!(
                report,
                "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.0} % |",
                run.name,
                run.rate(),
                run.percentile(0.5).as_secs_f64() * 1e3,
                run.percentile(0.99).as_secs_f64() * 1e3,
                100.0 * run.busy(cores)
            );
        }
        let _ = writeln!(
            report,
            "\nTargets: ≥ 100000 events/s → {:.0}; ≥ 80 % of (b) → {:.0} %; ≥ 50 % of (a) → {:.0} %.",
            ours.rate(),
            100.0 * ours.rate() / b.rate(),
            100.0 * ours.rate() / a.rate(),
        );
    }
    let _ = writeln!(
        report,
        "\nPeak RSS of the whole benchmark process: {:.0} MiB.",
        support::peak_rss_mib()
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ingest.md"), &report).unwrap();
    print!("{report}");
}
