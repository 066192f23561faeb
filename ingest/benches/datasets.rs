//! `cargo xtask bench datasets`: the datasets engine on 1 M synthetic events (10k users, 5k
//! tickers, 1k content items, 5k queries) in memory, as a replay runs it; materialisation of
//! every consensus list; and query latency against a running service while another client
//! keeps ingesting. A report, never a test: it writes `target/bench/datasets.md`.

mod support;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ingest::datasets::{Engine, Input, Params};
use serde_json::json;
use tokio::net::TcpStream;

const EVENTS: u64 = 1_000_000;
const USERS: u64 = 10_000;
const TICKERS: u64 = 5_000;
const CONTENT: u64 = 1_000;
const QUERIES: u64 = 5_000;
/// 2025-01-06T12:00:00Z; the synthetic week ends here.
const NOW: i64 = 1_736_164_800_000;
const WEEK: i64 = 7 * 24 * 3_600_000;
const CLIENT_KEY: &str = "pk_bench";
/// Events posted before the query measurement starts, and the query requests per kind.
const PRELOAD: u64 = 100_000;
const QUERIES_PER_KIND: usize = 400;
/// The concurrent load: this many prepared batches of `LOAD_BATCH` events.
const LOAD_BATCHES: u64 = 4_000;
const LOAD_BATCH: u64 = 50;

/// A deterministic xorshift stream, so every run replays the same events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Skewed towards small values, as attention is: a few tickers get most of it.
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * n as f64) as u64
    }
}

/// The `i`-th synthetic event: a mix of the weight table's actions, recommendation
/// impressions and clicks, and searches, spread over a week in roughly time order.
fn synthetic(i: u64, rng: &mut Rng) -> Input {
    let ts = NOW - WEEK + (i as i64 * WEEK) / EVENTS as i64 - rng.below(600_000) as i64;
    let user = format!("user-{}", rng.below(USERS));
    let ticker = format!("T{}", rng.skewed(TICKERS));
    let roll = rng.below(100);
    let (event, mut meta) = match roll {
        0..=34 => ("instrument.viewed", json!({})),
        35..=44 => ("chart.interacted", json!({})),
        45..=56 => (
            "search.submitted",
            json!({ "query": format!("Query {}", rng.skewed(QUERIES)) }),
        ),
        57..=66 => (
            "content.viewed",
            json!({ "content_id": format!("c{}", rng.skewed(CONTENT)) }),
        ),
        67..=69 => (
            "content.read",
            json!({ "content_id": format!("c{}", rng.skewed(CONTENT)) }),
        ),
        70..=72 => ("watchlist.added", json!({})),
        73..=74 => ("trade.order_placed", json!({})),
        75..=86 => (
            "recommendation.viewed",
            json!({ "impression_id": format!("imp-{i}"), "request_id": format!("r-{}", i / 5),
                    "recommender": format!("rec-{}", i % 3), "surface": "home", "position": 1 + i % 5 }),
        ),
        87..=90 => (
            "recommendation.clicked",
            json!({ "impression_id": format!("imp-{}", i.saturating_sub(rng.below(40))),
                    "recommender": format!("rec-{}", i % 3), "surface": "home", "position": 1 + i % 5 }),
        ),
        91..=94 => ("search.result_clicked", json!({})),
        _ => ("instrument.clicked", json!({})),
    };
    let (event_type, action) = event.split_once('.').unwrap_or((event, ""));
    if let Some(m) = meta.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    let mut input = Input::new(
        &format!("e{i}"),
        ts,
        &user,
        &format!("{user}-s"),
        event_type,
        action,
    )
    .with_meta(meta.as_object().unwrap_or(&serde_json::Map::new()))
    .with_entity("ticker", &ticker);
    if event_type == "content" {
        input = input.with_entity("ticker", &format!("T{}", rng.skewed(TICKERS)));
    }
    input
}

struct Replay {
    prune: Duration,
    engine_queries: Vec<Latencies>,
    ingest: Duration,
    materialise: Duration,
    documents: usize,
    rss_before: f64,
    rss_after: f64,
    sizes: String,
}

/// 1 M events through the engine, timing only the engine (events are made in chunks
/// outside the clock).
fn replay() -> Replay {
    let rss_before = support::rss_mib();
    let mut engine = Engine::new(Params::default());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ingest = Duration::ZERO;
    let mut chunk = Vec::with_capacity(10_000);
    for start in (0..EVENTS).step_by(10_000) {
        chunk.clear();
        chunk.extend((start..start + 10_000).map(|i| synthetic(i, &mut rng)));
        let t = Instant::now();
        for input in &chunk {
            engine.ingest(input, NOW);
        }
        ingest += t.elapsed();
    }
    drop(chunk);
    let t = Instant::now();
    engine.prune();
    let prune = t.elapsed();
    let t = Instant::now();
    let documents = engine.materialise(NOW, NOW).len();
    let materialise = t.elapsed();
    let rss_after = support::rss_mib();
    let mut answerer = ingest::replay::Answerer::new(engine, NOW, str::to_owned);
    let mut engine_queries = Vec::new();
    for (kind, path) in [
        (
            "engagement summary",
            "/v1/engagement/summary?group_by=recommender",
        ),
        ("engagement items", "/v1/engagement/items?recommender=rec-1"),
        ("user preferences", "/v1/users/user-17/preferences/entities"),
        ("recommendations", "/v1/recommendations?user=user-17"),
    ] {
        let samples = (0..20)
            .map(|_| {
                let t = Instant::now();
                answerer.answer(path).expect("a valid query");
                t.elapsed()
            })
            .collect();
        engine_queries.push(Latencies { kind, samples });
    }
    let engine = answerer.engine();
    let sizes = engine
        .sizes()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    Replay {
        prune,
        engine_queries,
        ingest,
        materialise,
        documents,
        rss_before,
        rss_after,
        sizes,
    }
}

/// The synthetic events as a wire batch, timed near the real clock so ingest takes them.
fn batch(from: u64, n: u64, rng: &mut Rng, now: i64) -> String {
    let events: Vec<_> = (from..from + n)
        .map(|i| {
            let input = synthetic(i, rng);
            let mut meta = serde_json::Map::new();
            for (k, v) in [
                ("impression_id", &input.impression_id),
                ("request_id", &input.request_id),
                ("recommender", &input.recommender),
                ("surface", &input.surface),
                ("content_id", &input.content_id),
                ("query", &input.query),
            ] {
                if let Some(v) = v {
                    meta.insert(k.into(), json!(v));
                }
            }
            if let Some(p) = input.position {
                meta.insert("position".into(), json!(p));
            }
            let created = schema::Timestamp(now - (NOW - input.ts) / 200).to_string();
            json!({
                "client_key": CLIENT_KEY, "event_id": input.event_id, "created_at": created,
                "event_type": input.event_type, "action": input.action, "event_meta": meta,
                "related_entities": input.entities.iter().map(|e| json!({"type": e.kind, "id": e.id})).collect::<Vec<_>>(),
                "channel_meta": { "session_id": input.session_id, "client_ref": input.user_id },
            })
        })
        .collect();
    json!({ "events": events }).to_string()
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn post(body: &str) -> Vec<u8> {
    format!(
        "POST /v1/events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Posts the prepared requests, one `every` so long or back to back, until `stop` (or
/// until they run out); counts the events.
async fn ingest_load(
    addr: SocketAddr,
    requests: Vec<Vec<u8>>,
    stop: Arc<AtomicBool>,
    posted: Arc<AtomicU64>,
    every: Option<Duration>,
) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pace = every.map(tokio::time::interval);
    for request in requests {
        if let Some(pace) = &mut pace {
            pace.tick().await;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (status, reply) = support::exchange(&mut stream, &request, &mut buf).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
        posted.fetch_add(LOAD_BATCH, Ordering::Relaxed);
    }
}

struct Latencies {
    kind: &'static str,
    samples: Vec<Duration>,
}

impl Latencies {
    fn percentile(&self, p: f64) -> Duration {
        support::percentile(&self.samples, p)
    }
}

/// Makes the path of a query request, varying the user.
type PathFor = Box<dyn Fn(&mut Rng) -> String>;

async fn queries(addr: SocketAddr, api_key: &str) -> Vec<Latencies> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let mut buf = vec![0u8; 256 * 1024];
    let mut rng = Rng(42);
    let kinds: [(&'static str, PathFor); 5] = [
        (
            "trending entities (materialised)",
            Box::new(|_| "/v1/trending/entities?mode=trending".into()),
        ),
        (
            "popular searches (materialised)",
            Box::new(|_| "/v1/trending/searches?mode=popular".into()),
        ),
        (
            "user preferences",
            Box::new(|r| format!("/v1/users/user-{}/preferences/entities", r.below(USERS))),
        ),
        (
            "engagement summary",
            Box::new(|_| "/v1/engagement/summary?group_by=recommender".into()),
        ),
        (
            "recommendations",
            Box::new(|r| format!("/v1/recommendations?user=user-{}", r.below(USERS))),
        ),
    ];
    let mut out = Vec::new();
    for (kind, path) in kinds {
        let mut samples = Vec::with_capacity(QUERIES_PER_KIND);
        for _ in 0..QUERIES_PER_KIND {
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {api_key}\r\n\r\n",
                path(&mut rng)
            );
            let t = Instant::now();
            let (status, body) = support::exchange(&mut stream, request.as_bytes(), &mut buf).await;
            samples.push(t.elapsed());
            assert_eq!(status, 200, "{kind}: {}", String::from_utf8_lossy(&body));
        }
        out.push(Latencies { kind, samples });
    }
    out
}

fn on_own_thread<T: Send + 'static, F: std::future::Future<Output = T>>(
    task: impl FnOnce() -> F + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(task())
    })
}

/// Query latencies while one client ingests, paced or flat out.
struct UnderLoad {
    load: &'static str,
    latencies: Vec<Latencies>,
    events_per_second: f64,
}

/// A running service with `PRELOAD` events, then query latencies while one client ingests:
/// first at a steady 5,000 events/s, then as fast as the service takes them.
async fn under_load() -> Vec<UnderLoad> {
    let dir = tempfile::tempdir().unwrap();
    let service = support::Service::start(dir.path(), CLIENT_KEY).await;
    let addr = service.addr;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut rng = Rng(7);
    for from in (0..PRELOAD).step_by(500) {
        let body = batch(from, 500, &mut rng, wall_ms());
        let (status, reply) = support::exchange(&mut stream, &post(&body), &mut buf).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    }
    // The concurrent load's requests are made beforehand, so building JSON does not take
    // the CPU the service and the queries are measured on.
    let mut requests: Vec<Vec<u8>> = (0..LOAD_BATCHES)
        .map(|k| {
            post(&batch(
                PRELOAD + k * LOAD_BATCH,
                LOAD_BATCH,
                &mut rng,
                wall_ms(),
            ))
        })
        .collect();
    let paced = requests.split_off(LOAD_BATCHES as usize * 3 / 4);
    let mut runs = Vec::new();
    for (load, requests, every) in [
        (
            "steady 5,000 events/s",
            paced,
            Some(Duration::from_millis(10)),
        ),
        ("flat out", requests, None),
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let posted = Arc::new(AtomicU64::new(0));
        // Each client on a thread of its own, so the service's runtime schedules only the
        // service and the latencies are the service's, not the client tasks' turns.
        let (load_stop, load_posted) = (stop.clone(), posted.clone());
        let load_thread =
            on_own_thread(move || ingest_load(addr, requests, load_stop, load_posted, every));
        let started = Instant::now();
        let api_key = service.api_key.clone();
        let latencies = on_own_thread(move || async move { queries(addr, &api_key).await });
        let latencies = tokio::task::spawn_blocking(move || latencies.join().unwrap())
            .await
            .unwrap();
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || load_thread.join().unwrap())
            .await
            .unwrap();
        runs.push(UnderLoad {
            load,
            latencies,
            events_per_second: posted.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        });
    }
    service.stop().await;
    runs
}

/// Events per run of the memory measurement, each in a process of its own.
const MEMORY_RUNS: [u64; 3] = [1_000_000, 5_000_000, 10_000_000];
/// The memory runs' span of event time, whatever their length: a site's busy day.
const MEMORY_SPAN: i64 = 20 * 3_600_000;
/// Distinct impression (and served list) ids in the memory runs: the keys stay the same
/// however many events there are.
const IMPRESSIONS: u64 = 20_000;

/// `n` events over the same bounded keys and [`MEMORY_SPAN`] into an engine as the live
/// service keeps it (or, with `with_ids`, as a replay of files does, remembering event ids),
/// pruned as it goes. Prints the engine's RSS growth and sizes as one JSON line.
fn memory_run(n: u64, with_ids: bool) {
    let rss_before = support::rss_mib();
    let params = Params::default();
    let mut engine = if with_ids {
        Engine::new(params)
    } else {
        Engine::for_deduplicated_log(params)
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = Instant::now();
    for i in 0..n {
        let mut input = synthetic(i % EVENTS, &mut rng);
        input.event_id = format!("e{i}");
        input.ts = NOW - MEMORY_SPAN + (i as i64 * MEMORY_SPAN) / n as i64;
        if input.impression_id.is_some() {
            input.impression_id = Some(format!("imp-{}", i % IMPRESSIONS));
            input.request_id = Some(format!("r-{}", (i % IMPRESSIONS) / 5));
        }
        engine.ingest(&input, NOW);
        if i % 100_000 == 0 {
            engine.prune();
        }
    }
    engine.prune();
    let seconds = t.elapsed().as_secs_f64();
    let rss = support::rss_mib() - rss_before;
    let sizes: serde_json::Map<String, serde_json::Value> = engine
        .sizes()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    println!(
        "{}",
        json!({ "rss_mib": rss, "seconds": seconds, "sizes": sizes })
    );
}

/// The memory runs, each in a child process (so that each measures its own engine alone).
fn memory_report() -> String {
    let mut report = format!(
        "## Engine memory over bounded keys

Events over {} hours of event time from the same keys whatever their number ({USERS} users, {TICKERS} tickers, {CONTENT} content items, {QUERIES} queries, {IMPRESSIONS} impression ids), pruned as the service prunes; each run in a process of its own. RSS growth of the process over the run. The live service's engines keep no event ids (the store's `(tenant, event_id)` deduplicates); a replay of files does. Goal: 10 M within 1.5× of 1 M.

| events | engine | RSS growth | time | event ids | dedup slots | (user, key) pairs of the lists | preferences | entities | content | searches | impressions |
|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
",
        MEMORY_SPAN / 3_600_000
    );
    let exe = std::env::current_exe().expect("the benchmark's own path");
    for n in MEMORY_RUNS {
        for with_ids in [false, true] {
            let out = std::process::Command::new(&exe)
                .env("DATASETS_BENCH_MEMORY", format!("{n},{with_ids}"))
                .output()
                .expect("the memory run starts");
            let line = String::from_utf8_lossy(&out.stdout);
            let run: serde_json::Value = serde_json::from_str(line.trim())
                .unwrap_or_else(|e| panic!("memory run {n}: {e}: {line}"));
            let size = |k: &str| run["sizes"][k].as_u64().unwrap_or(0);
            let _ = writeln!(
                report,
                "| {n} | {} | {:.0} MiB | {:.1} s | {} | {} | {} | {} | {} | {} | {} | {} |",
                if with_ids {
                    "replay (ids kept)"
                } else {
                    "live"
                },
                run["rss_mib"].as_f64().unwrap_or(0.0),
                run["seconds"].as_f64().unwrap_or(0.0),
                size("event_ids"),
                size("dedup_slots"),
                size("consensus_users"),
                size("preferences"),
                size("entities"),
                size("content"),
                size("searches"),
                size("impressions"),
            );
        }
    }
    report
}

/// Log lengths of the restart measurement, and the events committed after the snapshot.
const RESTART_RUNS: [u64; 2] = [1_000_000, 10_000_000];
const RESTART_TAIL: u64 = 10_000;

/// The memory runs' `i`-th event of `n` as the log stores it (anonymised JSON), its time
/// within [`MEMORY_SPAN`] before `end`.
fn stored(i: u64, n: u64, end: i64, rng: &mut Rng) -> ingest::store::StoredEvent {
    let mut input = synthetic(i % EVENTS, rng);
    input.ts = end - MEMORY_SPAN + (i as i64 * MEMORY_SPAN) / n as i64;
    let mut meta = serde_json::Map::new();
    if input.impression_id.is_some() {
        meta.insert(
            "impression_id".into(),
            json!(format!("imp-{}", i % IMPRESSIONS)),
        );
        meta.insert(
            "request_id".into(),
            json!(format!("r-{}", (i % IMPRESSIONS) / 5)),
        );
    }
    for (k, v) in [
        ("recommender", &input.recommender),
        ("content_id", &input.content_id),
        ("query", &input.query),
    ] {
        if let Some(v) = v {
            meta.insert(k.into(), json!(v));
        }
    }
    let event_id = format!("e{i}");
    let payload = json!({
        "event_id": event_id, "event_time": schema::Timestamp(input.ts).to_string(),
        "event_type": input.event_type, "action": input.action, "event_meta": meta,
        "related_entities": input.entities.iter().map(|e| json!({"type": e.kind, "id": e.id})).collect::<Vec<_>>(),
        "channel_meta": { "session_id": input.session_id, "user_id": input.user_id },
    });
    ingest::store::StoredEvent {
        event_id,
        event_time: input.ts,
        user_id: Some(input.user_id),
        payload: payload.to_string(),
    }
}

/// Commits events `from..to` of `n` straight to the log of the store in `dir`.
async fn fill_log(dir: &std::path::Path, from: u64, to: u64, n: u64, end: i64) {
    let store = ingest::Store::open(dir).unwrap();
    let tenant = store.tenant(CLIENT_KEY).unwrap().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ from);
    let mut i = from;
    while i < to {
        let events: Vec<_> = (i..to.min(i + 10_000))
            .map(|i| stored(i, n, end, &mut rng))
            .collect();
        i += events.len() as u64;
        let write = ingest::store::Write {
            tenant_id: tenant.id,
            received_at: end,
            events,
            failed: Vec::new(),
            vault: Vec::new(),
            inputs: Vec::new(),
        };
        store.write(write).await.unwrap();
    }
    store.close();
}

/// Starts the service over `dir` and asks for a user's preferences until it answers: the
/// time until the tenant's engine is ready. (A request that waits past the request timeout
/// for an engine still being built is answered 408, and asked again.)
async fn time_to_ready(dir: &std::path::Path, api_key: &str) -> (support::Service, Duration) {
    let started = Instant::now();
    let service = support::Service::serve(dir, api_key.to_owned()).await;
    let mut stream = TcpStream::connect(service.addr).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let request = format!(
        "GET /v1/users/user-1/preferences/entities HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {api_key}\r\n\r\n"
    );
    loop {
        let (status, reply) = support::exchange(&mut stream, request.as_bytes(), &mut buf).await;
        match status {
            200 => return (service, started.elapsed()),
            408 => stream = TcpStream::connect(service.addr).await.unwrap(),
            _ => panic!("{status}: {}", String::from_utf8_lossy(&reply)),
        }
    }
}

/// The first half of a restart measurement over a log of `n` events, in a process of its
/// own: the engine built from the whole log, the service stopped (writing its snapshot), and
/// a tail committed after it. Prints one JSON line, with the data dir it leaves for
/// [`ready_run`].
async fn restart_run(n: u64) {
    log_to_stderr();
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join(ingest::store::SNAPSHOT_DIR);
    // A first start makes the master secret and the tenant.
    let service = support::Service::start(dir.path(), CLIENT_KEY).await;
    let api_key = service.api_key.clone();
    service.stop().await;
    let end = wall_ms();
    fill_log(dir.path(), 0, n, n, end).await;
    let _ = std::fs::remove_dir_all(&snapshots);
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let log_mib =
        std::fs::metadata(dir.path().join(ingest::store::DB_FILE)).map_or(0.0, |m| mib(m.len()));

    let (service, whole_log) = time_to_ready(dir.path(), &api_key).await;
    let stopping = Instant::now();
    service.stop().await;
    let stop = stopping.elapsed();
    let snapshot_mib: f64 = std::fs::read_dir(&snapshots)
        .map(|files| {
            files
                .filter_map(|f| f.ok()?.metadata().ok())
                .map(|m| mib(m.len()))
                .sum()
        })
        .unwrap_or(0.0);
    fill_log(dir.path(), n, n + RESTART_TAIL, n, end).await;
    // The restart is measured by the parent, once this process has ended and let go of its
    // memory: here, a process faulting in fresh memory while another holds gigabytes took
    // two to three times as long.
    println!(
        "{}",
        json!({
            "log_mib": log_mib, "whole_log_s": whole_log.as_secs_f64(), "stop_s": stop.as_secs_f64(),
            "snapshot_mib": snapshot_mib, "dir": dir.keep(), "api_key": api_key,
        })
    );
}

/// The restarted service of [`restart_run`], in a process of its own: prints the seconds
/// until it was ready.
async fn ready_run(dir: &std::path::Path, api_key: &str) {
    log_to_stderr();
    let (service, ready) = time_to_ready(dir, api_key).await;
    service.stop().await;
    println!("{}", ready.as_secs_f64());
}

/// `RUST_LOG=info` shows how long an engine's snapshot and log each took.
fn log_to_stderr() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

/// The restart runs, each in a child process.
fn restart_report() -> String {
    let mut report = format!(
        "## Restart: the engine from the whole log, and from a snapshot

The memory runs' events (bounded keys, {} hours of event time up to now) committed straight to a store's log; `ingest serve` started over it, timed until its first preferences answer (the tenant's engine ready). Then the service stopped (writing its snapshot), {RESTART_TAIL} more events were committed, and the service started again in a new process: the snapshot loaded, and the log after it read. Each run in a process of its own. Goal: ready within 2 s after a snapshot, whatever the log's length.

| events in the log | log size | ready, whole log | stop (snapshot written) | snapshot size | ready, snapshot + {RESTART_TAIL}-event tail |
|---:|---:|---:|---:|---:|---:|
",
        MEMORY_SPAN / 3_600_000
    );
    let exe = std::env::current_exe().expect("the benchmark's own path");
    for n in RESTART_RUNS {
        let out = std::process::Command::new(&exe)
            .env("DATASETS_BENCH_RESTART", n.to_string())
            .output()
            .expect("the restart run starts");
        let line = String::from_utf8_lossy(&out.stdout);
        let run: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            panic!(
                "restart run {n}: {e}: {line}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let dir = std::path::PathBuf::from(run["dir"].as_str().expect("the run's data dir"));
        // A restart is a new process.
        let out = std::process::Command::new(&exe)
            .env("DATASETS_BENCH_READY", &dir)
            .env(
                "DATASETS_BENCH_API_KEY",
                run["api_key"].as_str().unwrap_or_default(),
            )
            .output()
            .expect("the restarted service starts");
        let _ = std::fs::remove_dir_all(&dir);
        let line = String::from_utf8_lossy(&out.stdout);
        let from_snapshot: f64 = line.trim().parse().unwrap_or_else(|e| {
            panic!(
                "restart {n}: {e}: {line}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let f = |k: &str| run[k].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            report,
            "| {n} | {:.0} MiB | {:.2} s | {:.2} s | {:.0} MiB | {:.2} s |",
            f("log_mib"),
            f("whole_log_s"),
            f("stop_s"),
            f("snapshot_mib"),
            from_snapshot,
        );
    }
    report
}

fn main() {
    if let Ok(run) = std::env::var("DATASETS_BENCH_MEMORY") {
        let (n, with_ids) = run.split_once(',').expect("events,with_ids");
        memory_run(n.parse().expect("events"), with_ids == "true");
        return;
    }
    if let Ok(dir) = std::env::var("DATASETS_BENCH_READY") {
        let api_key = std::env::var("DATASETS_BENCH_API_KEY").expect("the tenant's API key");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(ready_run(std::path::Path::new(&dir), &api_key));
        return;
    }
    if let Ok(n) = std::env::var("DATASETS_BENCH_RESTART") {
        let n = n.parse().expect("events");
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(restart_run(n));
        return;
    }
    let memory = memory_report();
    let restart = restart_report();
    let r = replay();
    let peak_after_replay = support::peak_rss_mib();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let runs = runtime.block_on(under_load());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut report = format!(
        "# datasets benchmark\n\n{cores} cores, release build.\n\n## Replay: {EVENTS} synthetic events in memory\n\n{USERS} users, {TICKERS} tickers (skewed), {CONTENT} content items, {QUERIES} queries, over 7 days; 12 % recommendation impressions, 4 % clicks on them.\n\n"
    );
    let _ = writeln!(
        report,
        "| measure | figure | target |\n|---|---:|---:|\n| ingest {EVENTS} events (engine only) | {:.2} s ({:.0} events/s, {:.2} µs/event) | ≤ 10 s |\n| materialise every consensus list ({} documents) | {:.1} ms | < 1 s |\n| prune what can no longer change (at most once per hour of event time) | {:.1} ms | |\n| memory held by the engine (RSS growth) | {:.0} MiB | < 1 GiB |\n| peak RSS of the process after the replay | {:.0} MiB | |",
        r.ingest.as_secs_f64(),
        EVENTS as f64 / r.ingest.as_secs_f64(),
        r.ingest.as_secs_f64() * 1e6 / EVENTS as f64,
        r.documents,
        r.materialise.as_secs_f64() * 1e3,
        r.prune.as_secs_f64() * 1e3,
        r.rss_after - r.rss_before,
        peak_after_replay,
    );
    let _ = writeln!(report, "\nState after pruning: {}.\n", r.sizes);
    let _ = writeln!(
        report,
        "Answers computed on read from that state (engine only, no HTTP), 20 each:\n\n| query | p50 | max |\n|---|---:|---:|"
    );
    for l in &r.engine_queries {
        let _ = writeln!(
            report,
            "| {} | {:.3} ms | {:.3} ms |",
            l.kind,
            l.percentile(0.5).as_secs_f64() * 1e3,
            l.percentile(1.0).as_secs_f64() * 1e3
        );
    }
    report.push('\n');
    let _ = writeln!(
        report,
        "## Query latency under concurrent ingest\n\n`ingest serve` (SQLite store, durable commits) preloaded with {PRELOAD} events over HTTP; one keep-alive client posts prepared 50-event batches while another sends {QUERIES_PER_KIND} sequential requests per kind, each client on a thread of its own. Target: p99 ≤ 2 ms.\n\n| query | ingest load | p50 | p99 | max |\n|---|---|---:|---:|---:|"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for run in &runs {
        for l in &run.latencies {
            let _ = writeln!(
                report,
                "| {} | {} ({:.0} events/s) | {:.3} ms | {:.3} ms | {:.3} ms |",
                l.kind,
                run.load,
                run.events_per_second,
                ms(l.percentile(0.5)),
                ms(l.percentile(0.99)),
                ms(l.percentile(1.0))
            );
        }
    }
    report.push('\n');
    report.push_str(&memory);
    report.push('\n');
    report.push_str(&restart);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("datasets.md"), &report).unwrap();
    print!("{report}");
}
