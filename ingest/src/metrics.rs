//! Counters for `/metrics`, in the Prometheus text format. Atomics, so the hot path pays a
//! relaxed add; the few labelled families sit behind a mutex taken once per request.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::lock;

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) batches: AtomicU64,
    pub(crate) events_accepted: AtomicU64,
    pub(crate) events_duplicate: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) store_writes: AtomicU64,
    pub(crate) store_write_micros: AtomicU64,
    rejected_by_error: Mutex<BTreeMap<&'static str, u64>>,
    responses_by_status: Mutex<BTreeMap<u16, u64>>,
}

impl Metrics {
    pub(crate) fn rejected(&self, code: &'static str) {
        *lock(&self.rejected_by_error).entry(code).or_default() += 1;
    }

    pub(crate) fn response(&self, status: u16) {
        *lock(&self.responses_by_status).entry(status).or_default() += 1;
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        counter(
            &mut out,
            "ingest_batches_total",
            "Batches that reached validation.",
            self.batches.load(Relaxed),
        );
        counter(
            &mut out,
            "ingest_events_accepted_total",
            "Events stored.",
            self.events_accepted.load(Relaxed),
        );
        counter(
            &mut out,
            "ingest_events_duplicate_total",
            "Events already stored, not stored again.",
            self.events_duplicate.load(Relaxed),
        );
        counter(
            &mut out,
            "ingest_rate_limited_total",
            "Requests answered 429.",
            self.rate_limited.load(Relaxed),
        );
        counter(
            &mut out,
            "ingest_store_writes_total",
            "Requests' writes to the store, each waiting for a durable (group) commit.",
            self.store_writes.load(Relaxed),
        );
        let seconds = self.store_write_micros.load(Relaxed) as f64 / 1e6;
        let _ = write!(
            out,
            "# HELP ingest_store_write_seconds_total Time requests spent waiting for their durable commit (on a cluster's edge: for every PubAck of the batch).\n# TYPE ingest_store_write_seconds_total counter\ningest_store_write_seconds_total {seconds}\n"
        );
        out.push_str("# HELP ingest_events_rejected_total Events rejected by validation, by rule.\n# TYPE ingest_events_rejected_total counter\n");
        for (code, n) in lock(&self.rejected_by_error).iter() {
            let _ = writeln!(out, "ingest_events_rejected_total{{error=\"{code}\"}} {n}");
        }
        out.push_str("# HELP ingest_http_responses_total HTTP responses, by status code.\n# TYPE ingest_http_responses_total counter\n");
        for (status, n) in lock(&self.responses_by_status).iter() {
            let _ = writeln!(
                out,
                "ingest_http_responses_total{{status=\"{status}\"}} {n}"
            );
        }
        out
    }
}

/// The datasets engines' counters, summed over tenants.
/// The datasets' counters, and `lag`: commits answered that the engines have not applied.
pub(crate) fn render_datasets(c: &crate::datasets::Counters, lag: u64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "# HELP datasets_feed_lag_commits Commits answered that the datasets have not applied yet.\n# TYPE datasets_feed_lag_commits gauge\ndatasets_feed_lag_commits {lag}\n"
    );
    for (name, help, value) in [
        (
            "datasets_events_applied_total",
            "Events the datasets engines applied.",
            c.applied,
        ),
        (
            "datasets_events_duplicate_total",
            "Events the engines had already seen.",
            c.duplicates,
        ),
        (
            "datasets_events_future_total",
            "Events rejected for a time too far ahead of the clock.",
            c.future_rejected,
        ),
        (
            "datasets_unknown_actions_total",
            "Events whose (event_type, action) the weight table does not know.",
            c.unknown_actions,
        ),
        (
            "datasets_search_dropped_total",
            "Search queries dropped: empty, too long or shaped like personal data.",
            c.search_dropped,
        ),
        (
            "datasets_entity_types_refused_total",
            "Contributions to entity lists of a type past the bound (or not allowed).",
            c.entity_types_refused,
        ),
    ] {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        );
    }
    out.push_str("# HELP datasets_late_dropped_total Events too far behind the watermark for a dataset.\n# TYPE datasets_late_dropped_total counter\n");
    for (dataset, n) in [
        ("personal", c.late_dropped_personal),
        ("consensus", c.late_dropped_consensus),
        ("engagement", c.late_dropped_engagement),
    ] {
        let _ = writeln!(
            out,
            "datasets_late_dropped_total{{dataset=\"{dataset}\"}} {n}"
        );
    }
    out
}
