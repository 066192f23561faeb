//! Protection of the service from its callers: rate limits in events and bytes per second
//! (token buckets, in memory only) for each client_key and, beside them, for each source
//! address, so that one visitor cannot use up a tenant's allowance; plus the limits the
//! router applies to every request (timeout, concurrency).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::lock;

/// A sustained rate, and how much may come at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Rate {
    /// The rate with a burst of two seconds' worth, as the byte limits have.
    pub fn with_two_second_burst(per_second: f64) -> Rate {
        Rate {
            per_second,
            burst: per_second * 2.0,
        }
    }
}

/// Limits of one ingest process; `serve` takes them from [`crate::Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Events one client_key may send.
    pub events: Rate,
    /// Bytes (of decompressed bodies) one client_key may send.
    pub bytes: Rate,
    /// Events one source address may send, to any tenant.
    pub source_events: Rate,
    /// Bytes one source address may send.
    pub source_bytes: Rate,
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
    /// Requests handled at once; more are answered 503 at once rather than queued.
    pub max_concurrent_requests: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            events: Rate {
                per_second: 20_000.0,
                burst: 50_000.0,
            },
            bytes: Rate::with_two_second_burst(64.0 * 1024.0 * 1024.0),
            // A visitor's page sends a few events a minute; an office behind one address,
            // hundreds of visitors, still far less than this.
            source_events: Rate {
                per_second: 2_000.0,
                burst: 10_000.0,
            },
            source_bytes: Rate::with_two_second_burst(4.0 * 1024.0 * 1024.0),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 1024,
        }
    }
}

/// Who is limited: the tenant, or the source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limited {
    ClientKey,
    Source,
}

/// A request's share of the limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cost {
    pub events: usize,
    pub bytes: usize,
}

#[derive(Debug)]
struct Bucket {
    events: f64,
    bytes: f64,
    updated: Instant,
}

/// Token buckets of one kind (client keys, or sources), each counting events and bytes.
struct Buckets<K> {
    events: Rate,
    bytes: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

/// Sources remembered at most; past it, those idle long enough to be full again are dropped.
const MAX_SOURCES: usize = 100_000;

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(events: Rate, bytes: Rate) -> Buckets<K> {
        Buckets {
            events,
            bytes,
            buckets: Mutex::default(),
        }
    }

    /// Takes the cost from `key`'s bucket at `now`, or says how long until it is there;
    /// either the events or the bytes can be short.
    fn take(&self, key: &K, cost: Cost, now: Instant) -> Result<(), Duration> {
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_SOURCES && !buckets.contains_key(key) {
            let refill = |r: Rate| r.burst / r.per_second;
            let idle = refill(self.events).max(refill(self.bytes));
            buckets.retain(|_, b| now.saturating_duration_since(b.updated).as_secs_f64() < idle);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            events: self.events.burst,
            bytes: self.bytes.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let refill = |tokens: f64, r: Rate| (tokens + elapsed * r.per_second).min(r.burst);
        bucket.events = refill(bucket.events, self.events);
        bucket.bytes = refill(bucket.bytes, self.bytes);
        bucket.updated = now;
        let (events, bytes) = (cost.events as f64, cost.bytes as f64);
        if bucket.events >= events && bucket.bytes >= bytes {
            bucket.events -= events;
            bucket.bytes -= bytes;
            return Ok(());
        }
        // More than a burst can never pass whole; it is told to wait one full refill, and
        // the tracker splits batches far below any sane burst anyway.
        let wait = |tokens: f64, wanted: f64, r: Rate| {
            (wanted.min(r.burst) - tokens).max(0.0) / r.per_second
        };
        let secs =
            wait(bucket.events, events, self.events).max(wait(bucket.bytes, bytes, self.bytes));
        // A rate so small that the wait overflows a Duration waits as long as one can.
        Err(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    }
}

/// The key a source address is limited by: a hash of it under a key made at start and never
/// stored, so the limiter holds no address. An IPv6 host is limited by its /64, which one
/// host may rotate addresses within.
fn source_key(ip: IpAddr) -> u64 {
    static KEY: LazyLock<std::hash::RandomState> = LazyLock::new(std::hash::RandomState::new);
    match ip {
        IpAddr::V4(v4) => KEY.hash_one(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => KEY.hash_one(v4.octets()),
            None => KEY.hash_one(&v6.octets()[..8]),
        },
    }
}

/// The rate limits: per client_key, and per source address beside them.
pub(crate) struct RateLimiter {
    tenants: Buckets<String>,
    sources: Buckets<u64>,
}

impl RateLimiter {
    pub(crate) fn new(limits: &Limits) -> RateLimiter {
        RateLimiter {
            tenants: Buckets::new(limits.events, limits.bytes),
            sources: Buckets::new(limits.source_events, limits.source_bytes),
        }
    }

    /// Takes `cost` from the source's bucket (when the address is known), then from the
    /// client_key's, or says which limit was hit and how long until the cost would pass. A
    /// source over its limit takes nothing from the tenant's allowance.
    pub(crate) fn check(
        &self,
        client_key: &str,
        source: Option<IpAddr>,
        cost: Cost,
        now: Instant,
    ) -> Result<(), (Limited, Duration)> {
        if let Some(ip) = source {
            self.sources
                .take(&source_key(ip), cost, now)
                .map_err(|wait| (Limited::Source, wait))?;
        }
        self.tenants
            .take(&client_key.to_owned(), cost, now)
            .map_err(|wait| (Limited::ClientKey, wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(events: Rate, source_events: Rate) -> Limits {
        Limits {
            events,
            source_events,
            ..Limits::default()
        }
    }

    const fn rate(per_second: f64, burst: f64) -> Rate {
        Rate { per_second, burst }
    }

    fn events(n: usize) -> Cost {
        Cost {
            events: n,
            bytes: 0,
        }
    }

    #[test]
    fn refills_at_the_rate_up_to_the_burst() {
        let rl = RateLimiter::new(&limits(rate(10.0, 20.0), rate(1e6, 1e6)));
        let t0 = Instant::now();
        assert_eq!(rl.check("pk", None, events(20), t0), Ok(()));
        assert_eq!(
            rl.check("pk", None, events(5), t0),
            Err((Limited::ClientKey, Duration::from_millis(500)))
        );
        assert_eq!(
            rl.check("other", None, events(5), t0),
            Ok(()),
            "buckets are per client_key"
        );
        let later = t0 + Duration::from_millis(500);
        assert_eq!(rl.check("pk", None, events(5), later), Ok(()));
        let much_later = t0 + Duration::from_secs(100);
        assert_eq!(
            rl.check("pk", None, events(20), much_later),
            Ok(()),
            "never more than the burst"
        );
        assert!(rl.check("pk", None, events(1), much_later).is_err());
    }

    #[test]
    fn one_source_uses_up_its_own_allowance_not_the_tenants() {
        let rl = RateLimiter::new(&limits(rate(100.0, 100.0), rate(10.0, 10.0)));
        let (a, b): (IpAddr, IpAddr) = (
            "203.0.113.7".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        );
        let t0 = Instant::now();
        assert_eq!(rl.check("pk", Some(a), events(10), t0), Ok(()));
        for _ in 0..50 {
            assert_eq!(
                rl.check("pk", Some(a), events(10), t0),
                Err((Limited::Source, Duration::from_secs(1)))
            );
        }
        // The refused requests took nothing from the tenant: another visitor gets through.
        assert_eq!(rl.check("pk", Some(b), events(10), t0), Ok(()));
        // An IPv6 host is one source across its /64.
        let (v6a, v6b): (IpAddr, IpAddr) = (
            "2001:db8::1".parse().unwrap(),
            "2001:db8::ffff:1".parse().unwrap(),
        );
        assert_eq!(rl.check("pk", Some(v6a), events(10), t0), Ok(()));
        assert_eq!(
            rl.check("pk", Some(v6b), events(1), t0).unwrap_err().0,
            Limited::Source
        );
    }

    #[test]
    fn bytes_are_limited_as_well_as_events() {
        let l = Limits {
            bytes: Rate::with_two_second_burst(1_000.0),
            ..Limits::default()
        };
        let rl = RateLimiter::new(&l);
        let t0 = Instant::now();
        let heavy = Cost {
            events: 1,
            bytes: 1_500,
        };
        assert_eq!(rl.check("pk", None, heavy, t0), Ok(()));
        assert_eq!(
            rl.check("pk", None, heavy, t0),
            Err((Limited::ClientKey, Duration::from_secs(1)))
        );
    }

    #[test]
    fn a_rate_too_small_to_compute_a_wait_for_waits_the_longest() {
        let rl = RateLimiter::new(&limits(rate(f64::MIN_POSITIVE, 1.0), rate(1e6, 1e6)));
        let t0 = Instant::now();
        assert_eq!(rl.check("pk", None, events(1), t0), Ok(()));
        assert_eq!(
            rl.check("pk", None, events(1), t0),
            Err((Limited::ClientKey, Duration::MAX))
        );
    }

    #[test]
    fn idle_sources_are_forgotten_past_the_bound() {
        let rl = RateLimiter::new(&limits(rate(1e9, 1e9), rate(1.0, 1.0)));
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            rl.check("pk", Some(ip), events(1), t0).unwrap();
        }
        let later = t0 + Duration::from_secs(3_600);
        rl.check("pk", Some("192.0.2.1".parse().unwrap()), events(1), later)
            .unwrap();
        assert_eq!(lock(&rl.sources.buckets).len(), 1);
    }
}
