//! What the benchmarks share: a minimal keep-alive HTTP/1.1 client (no client library, so the
//! load generator stays cheap and its cost is plain to see) and the process's memory.

// Each benchmark binary uses a part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::net::{TcpListener, TcpStream};

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

/// `ingest serve` in this process over a store in `dir`, with one tenant and no rate limit.
pub(crate) struct Service {
    pub addr: SocketAddr,
    /// The tenant's secret API key.
    pub api_key: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Service {
    pub(crate) async fn start(dir: &Path, client_key: &str) -> Service {
        let (_, api_key) = ingest::Store::open(dir)
            .unwrap()
            .add_tenant(client_key, &[])
            .unwrap();
        Service::serve(dir, api_key).await
    }

    /// `ingest serve` again over a store [`Service::start`] made.
    pub(crate) async fn serve(dir: &Path, api_key: String) -> Service {
        let mut config = ingest::Config::new("127.0.0.1:0".parse().unwrap(), dir.to_owned());
        // The load comes from one address, far faster than any tenant's limits allow.
        config.rate_limit = 1e9;
        config.rate_burst = 1e9;
        config.byte_rate_limit = 1e12;
        config.source_rate_limit = 1e9;
        config.source_rate_burst = 1e9;
        config.source_byte_rate_limit = 1e12;
        let listener = TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(ingest::serve(config, listener, async {
            let _ = stopped.await;
        }));
        Service {
            addr,
            api_key,
            stop,
            server,
        }
    }

    /// Shuts down gracefully and waits for the last commit.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

/// A fresh event id as the tracker makes them: a version 7 UUID (the time in ms, then random
/// bits), from a cheap generator so that making ids costs the load generator little.
pub(crate) fn event_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);
    let mix = || {
        // splitmix64
        let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let (a, b) = (mix(), mix());
    format!(
        "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
        ms >> 16,
        ms & 0xffff,
        a & 0xfff,
        0x8000 | (a >> 12) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// The `p` quantile (0 to 1) of some durations, nearest rank.
pub(crate) fn percentile(samples: &[std::time::Duration], p: f64) -> std::time::Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// CPU time this process has used so far (all threads, user and system), in seconds.
pub(crate) fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, after the parenthesised command name, in clock
    // ticks of 1/100 s (USER_HZ on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let ticks: f64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    ticks / 100.0
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
