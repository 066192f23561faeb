use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{count_rows, event};

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// One HTTP/1.1 request over a real socket; returns the status line and body.
async fn http_post(addr: std::net::SocketAddr, body: &str) -> (String, String) {
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
    let config = ingest::Config::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ingest::serve(config, listener, async {
        let _ = stopped.await;
    }));

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
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(count_rows(dir.path(), "events"), 400);
    let store = ingest::Store::open(dir.path()).unwrap();
    let stored = store.recent_events(1, 1).unwrap();
    assert_eq!(
        stored[0]["context"],
        json!({"browser": "Firefox", "os": "Linux", "device": "desktop"}),
        "the user agent is kept only as families"
    );
    store.close();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in ["127.0.0.1", "rv:128.0"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} was stored"
            );
        }
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
