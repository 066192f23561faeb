//! When to try a failed batch again: exponential backoff with full jitter (so a fleet of
//! pages that lost the server together does not come back together), never sooner than the
//! server's `Retry-After`.

/// First retry delay's ceiling, and the largest ceiling.
const BASE_MS: u64 = 1_000;
const MAX_MS: u64 = 60_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records a failure; returns the delay before the next attempt. `jitter` is uniform in
    /// [0, 1); `retry_after_ms` is the server's `Retry-After`, when it sent one.
    pub fn fail(&mut self, retry_after_ms: Option<u64>, jitter: f64) -> u64 {
        let ceiling = BASE_MS
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_MS);
        self.failures = self.failures.saturating_add(1);
        let jittered = (ceiling as f64 * jitter.clamp(0.0, 1.0)) as u64;
        jittered.max(retry_after_ms.unwrap_or(0))
    }

    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Reads `Retry-After` in its delay-seconds form; the HTTP-date form is rare from APIs and
/// would need the client's clock to agree with the server's, so it is ignored.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    super::parse_int(value.trim_ascii())
        .and_then(|s| u64::try_from(s).ok())
        .map(|s| s.saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let mut b = Backoff::default();
        let ceilings: Vec<u64> = (0..9).map(|_| b.fail(None, 0.999_999)).collect();
        assert_eq!(
            ceilings,
            [
                999, 1_999, 3_999, 7_999, 15_999, 31_999, 59_999, 59_999, 59_999
            ]
        );
        b.succeed();
        assert_eq!(b.fail(None, 0.5), 500, "success starts over");
    }

    #[test]
    fn jitter_spreads_and_retry_after_is_a_floor() {
        let mut b = Backoff::default();
        assert_eq!(b.fail(None, 0.0), 0);
        assert_eq!(b.fail(Some(30_000), 0.1), 30_000);
        assert_eq!(b.fail(Some(1_000), 0.5), 2_000);
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(parse_retry_after(" 7 "), Some(7_000));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
