use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{count_rows, event};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// `ingest serve` in-process over `data_dir` with every default: its address, the sender that
/// stops it, and its task.
pub(crate) async fn serving(
    data_dir: &std::path::Path,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = ingest::Config::new("127.0.0.1:0".parse().unwrap(), data_dir.to_owned());
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ingest::serve(config, listener, async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// Stops a server started with `ingest::serve` and waits for it to return, without error.
pub(crate) async fn stop_and_wait(
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("stopped within 30 s")
        .unwrap()
        .unwrap();
}

/// One HTTP/1.1 request over a real socket; returns the status line and body.
pub(crate) async fn http_post(addr: std::net::SocketAddr, body: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nUser-Agent: {UA}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test]
async fn serves_on_a_socket_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    ingest::Store::open(dir.path())
        .unwrap()
        .add_tenant(crate::CLIENT_KEY, &[])
        .unwrap();
    let (addr, stop, server) = serving(dir.path()).await;

    let requests: Vec<_> = (0..8)
        .map(|i| {
            let body = json!({ "events": (0..50).map(|j| event(&format!("s{i}-{j}"), "u")).collect::<Vec<_>>() });
            tokio::spawn(async move { http_post(addr, &body.to_string()).await })
        })
        .collect();
    for r in requests {
        let (status, body) = r.await.unwrap();
        assert!(status.contains("200"), "{status}: {body}");
        assert!(body.contains("\"accepted\":50"), "{body}");
    }
    stop_and_wait(stop, server).await;
    assert_eq!(count_rows(dir.path(), "events"), 400);
    let store = ingest::Store::open(dir.path()).unwrap();
    let stored = store.recent_events(1, 1).unwrap();
    assert_eq!(
        stored[0]["context"],
        json!({"browser": "Firefox", "os": "Linux", "device": "desktop"}),
        "the user agent is kept only as families"
    );
    store.close();
    crate::assert_no_file_holds(dir.path(), &["127.0.0.1", "rv:128.0"]);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

/// Starts `ingest serve` in-process with `config` adjusted by `f`; returns its address and the
/// sender that stops it.
async fn started(
    f: impl FnOnce(&mut ingest::Config),
) -> (
    tempfile::TempDir,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    started_with(&[], f).await
}

/// [`started`] over a store with these tenants: client key and allowed origins.
async fn started_with(
    tenants: &[(&str, &[&str])],
    f: impl FnOnce(&mut ingest::Config),
) -> (
    tempfile::TempDir,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ingest::Store::open(dir.path()).unwrap();
        for (client_key, origins) in tenants {
            let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
            store.add_tenant(client_key, &origins).unwrap();
        }
        store.close();
    }
    let mut config = ingest::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    f(&mut config);
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(ingest::serve(config, listener, async {
        let _ = stopped.await;
    }));
    (dir, addr, stop)
}

/// Sends a `GET /healthz` on `stream`, keeping the connection open, and reads the answer's
/// status line.
async fn healthz(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: ingest\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_cut_off() {
    let (_dir, addr, _stop) = started(|c| c.header_read_timeout = 1).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /v1/events HTTP/1.1\r\nHost: ingest\r\n")
        .await
        .unwrap();
    // The rest of the head never comes: the server closes the connection (with or without a
    // 408 first). Without a header deadline the read would wait for ever.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection was still open after 30 s");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let (_dir, addr, _stop) = started(|c| c.max_connections = 1).await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    assert!(healthz(&mut first).await.contains("200"));
    // The kernel completes the second handshake, but ingest does not take the connection
    // while the first stays open.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let waiting = tokio::spawn(async move { healthz(&mut second).await });
    // An absence takes a while to see: half a second in which a served request would have
    // been answered many times over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "served past the cap of one connection"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("served once the first connection closed")
        .unwrap();
    assert!(status.contains("200"), "{status}");
}

/// A `GET` over a new connection: the status code, the head, and the body.
async fn get(
    addr: std::net::SocketAddr,
    path: &str,
    origin: Option<&str>,
) -> (u16, String, String) {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    request(addr, "GET", path, &origin).await
}

/// A request with `headers` (each line ending in CRLF) over a new connection.
pub(crate) async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: ingest\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn operations_routes_are_for_operators_alone() {
    let tenants: &[(&str, &[&str])] = &[("pk_app", &["https://app.example.com"])];
    let (_dir, addr, _stop) = started_with(tenants, |_| {}).await;
    let (status, head, body) = get(addr, "/readyz", Some("https://evil.example")).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    let (status, head, _) = get(addr, "/metrics", Some("https://evil.example")).await;
    assert_eq!(status, 200);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    // The API still answers pages of any origin (each tenant's origins are checked on POST).
    let (_, head, _) = get(addr, "/openapi.json", Some("https://app.example.com")).await;
    assert!(
        head.contains("access-control-allow-origin: https://app.example.com"),
        "{head}"
    );

    // With --ops-listen, they move to a port of their own.
    let dir = tempfile::tempdir().unwrap();
    let config = ingest::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api_addr, ops_addr) = (api.local_addr().unwrap(), ops.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ingest::serve_with_ops(config, api, Some(ops), async {
        let _ = stopped.await;
    }));
    for (addr, path, status) in [
        (api_addr, "/readyz", 404),
        (api_addr, "/metrics", 404),
        (api_addr, "/healthz", 200),
        (api_addr, "/openapi.json", 200),
        (ops_addr, "/readyz", 200),
        (ops_addr, "/metrics", 200),
        (ops_addr, "/healthz", 200),
        (ops_addr, "/openapi.json", 404),
    ] {
        assert_eq!(get(addr, path, None).await.0, status, "{addr}{path}");
    }
    stop_and_wait(stop, server).await;
    assert!(
        TcpStream::connect(ops_addr).await.is_err(),
        "both listeners closed"
    );
}

#[tokio::test]
async fn preflights_are_answered_for_the_tenants_origins_only() {
    let tenants: &[(&str, &[&str])] = &[
        ("pk_a", &["https://a.example"]),
        ("pk_b", &["https://b.example"]),
    ];
    let (_dir, addr, _stop) = started_with(tenants, |_| {}).await;
    let allowed = |path: &'static str, origin: &'static str| async move {
        let headers = format!(
            "Origin: {origin}\r\nAccess-Control-Request-Method: POST\r\n\
             Access-Control-Request-Headers: content-type\r\n"
        );
        let (_, head, _) = request(addr, "OPTIONS", path, &headers).await;
        head.contains(&format!("access-control-allow-origin: {origin}"))
    };
    // The client key in the query: that tenant's origins alone.
    assert!(allowed("/v1/events?client_key=pk_b", "https://b.example").await);
    assert!(!allowed("/v1/events?client_key=pk_b", "https://a.example").await);
    assert!(!allowed("/v1/events?client_key=pk_none", "https://a.example").await);
    // Without it: an origin some tenant lists, and no other.
    assert!(allowed("/v1/events", "https://a.example").await);
    assert!(allowed("/v1/trending/entities", "https://b.example").await);
    assert!(!allowed("/v1/events", "https://evil.example").await);
    assert!(!allowed("/v1/trending/entities", "https://evil.example").await);
}

/// A `POST /v1/events` of `body` from the local address `from` (any of 127/8 is this host's);
/// `headers` end each line in CRLF. Returns the status code and the body.
async fn post_from(
    addr: std::net::SocketAddr,
    from: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: ingest\r\n{headers}Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn one_source_over_its_limit_leaves_the_tenants_allowance_to_others() {
    let (_dir, addr, stop) = started_with(&[("pk_fixture", &[])], |c| {
        c.source_rate_limit = 0.01;
        c.source_rate_burst = 4.0;
        c.client_ip_header = Some("x-forwarded-for".parse().unwrap());
    })
    .await;
    let mut n = 0;
    let mut batch = || {
        n += 1;
        let events: Vec<_> = (0..3)
            .map(|i| event(&format!("src-{n}-{i}"), "u1"))
            .collect();
        json!({ "events": events }).to_string()
    };
    assert_eq!(post_from(addr, "127.0.0.1", "", &batch()).await.0, 200);
    let (status, body) = post_from(addr, "127.0.0.1", "", &batch()).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("\"rate_limited\"") && body.contains("this address"),
        "{body}"
    );
    // Another address still sends: the first one's refusals took nothing from the tenant.
    assert_eq!(post_from(addr, "127.0.0.2", "", &batch()).await.0, 200);
    // Behind the configured proxy header, the address the proxy added is the source.
    let forwarded = "X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n";
    assert_eq!(
        post_from(addr, "127.0.0.1", forwarded, &batch()).await.0,
        200
    );
    let (status, _) = post_from(addr, "127.0.0.2", forwarded, &batch()).await;
    assert_eq!(status, 429, "the same client through the proxy");
    stop.send(()).unwrap();
}
