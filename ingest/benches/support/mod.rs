//! What the benchmarks share: a minimal keep-alive HTTP/1.1 client (no client library, so the
//! load generator stays cheap and its cost is plain to see) and the process's memory.

// Each benchmark binary uses a part of this module.
#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one request on a keep-alive connection and reads the whole response; returns the
/// status code and the body.
pub(crate) async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> (u16, Vec<u8>) {
    stream.write_all(request).await.expect("write");
    let mut read = 0;
    loop {
        if read == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[read..]).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        read += n;
        let Some(end) = buf[..read].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() < end + 4 + len {
            buf.resize(end + 4 + len, 0);
        }
        while read < end + 4 + len {
            read += stream.read(&mut buf[read..]).await.expect("read body");
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        return (status, buf[end + 4..end + 4 + len].to_vec());
    }
}

/// Peak resident memory of this process so far (VmHWM), in MiB.
pub(crate) fn peak_rss_mib() -> f64 {
    proc_status_kib("VmHWM:") / 1024.0
}

/// Resident memory of this process now (VmRSS), in MiB.
pub(crate) fn rss_mib() -> f64 {
    proc_status_kib("VmRSS:") / 1024.0
}

fn proc_status_kib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}
