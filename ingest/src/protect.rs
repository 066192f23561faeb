//! Protection of the service from its callers: a per-client_key rate limit in events per
//! second (a token bucket, in memory only), plus the limits the router applies to every
//! request (timeout, concurrency).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits of one ingest process; `serve` takes them from [`crate::Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Sustained events per second one client_key may send.
    pub events_per_second: f64,
    /// Events one client_key may send at once after being idle.
    pub burst_events: f64,
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
    /// Requests handled at once; more are answered 503 at once rather than queued.
    pub max_concurrent_requests: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            events_per_second: 20_000.0,
            burst_events: 50_000.0,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 1024,
        }
    }
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by client_key.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(limits: &Limits) -> RateLimiter {
        RateLimiter {
            rate: limits.events_per_second,
            burst: limits.burst_events,
            buckets: Mutex::default(),
        }
    }

    /// Takes `events` tokens for `key` at `now`, or says how long until they are there.
    pub(crate) fn check(&self, key: &str, events: usize, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        let wanted = events as f64;
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            return Ok(());
        }
        // A batch larger than the burst can never pass whole; it is told to wait one full
        // refill, and the tracker splits batches far below any sane burst anyway.
        let missing = (wanted.min(self.burst) - bucket.tokens).max(0.0);
        // A rate so small that the wait overflows a Duration waits as long as one can.
        Err(Duration::try_from_secs_f64(missing / self.rate).unwrap_or(Duration::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let limits = Limits {
            events_per_second: 10.0,
            burst_events: 20.0,
            ..Limits::default()
        };
        let rl = RateLimiter::new(&limits);
        let t0 = Instant::now();
        assert_eq!(rl.check("pk", 20, t0), Ok(()));
        assert_eq!(rl.check("pk", 5, t0), Err(Duration::from_millis(500)));
        assert_eq!(
            rl.check("other", 5, t0),
            Ok(()),
            "buckets are per client_key"
        );
        assert_eq!(rl.check("pk", 5, t0 + Duration::from_millis(500)), Ok(()));
        assert_eq!(
            rl.check("pk", 20, t0 + Duration::from_secs(100)),
            Ok(()),
            "never more than the burst"
        );
        assert!(rl.check("pk", 1, t0 + Duration::from_secs(100)).is_err());
    }

    #[test]
    fn a_rate_too_small_to_compute_a_wait_for_waits_the_longest() {
        let limits = Limits {
            events_per_second: f64::MIN_POSITIVE,
            burst_events: 1.0,
            ..Limits::default()
        };
        let rl = RateLimiter::new(&limits);
        let t0 = Instant::now();
        assert_eq!(rl.check("pk", 1, t0), Ok(()));
        assert_eq!(rl.check("pk", 1, t0), Err(Duration::MAX));
    }
}
