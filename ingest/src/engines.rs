//! The live side of the datasets: one engine per tenant, following the store's durable
//! commits (stored events and erasures, in commit order, on a thread of its own) and built
//! when first needed from its latest snapshot and the log after it, or from the whole log
//! (so a restart loses nothing); snapshots written every `--snapshot-every-secs` and when
//! the service stops; and the presentation store, refreshed every
//! `consensus.materialize_every_secs` with the materialised lists and the engagement
//! feedback records.
//!
//! A request that reads an engine first waits until the engines have applied every commit
//! answered so far ([`Engines::caught_up`]): a client reads its own writes and erasures,
//! while `POST /v1/events` waits for the disk alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::datasets::{Counters, Document, Engine, Input, Params};
use crate::lock;
use crate::store::{Change, FeedbackRecord, Materialised, Payload, Store, StoreError, now_ms};

/// Events between two prunes of an engine being rebuilt, so that its memory follows what the
/// datasets keep rather than the length of the log.
const PRUNE_EVERY: usize = 50_000;

pub(crate) struct Engines {
    params: Params,
    /// Honour `as_of` in queries (replays and acceptance tests over old fixtures).
    pub(crate) test_mode: bool,
    engines: Mutex<HashMap<i64, Arc<Mutex<Engine>>>>,
    /// The stored documents, kept in memory too.
    documents: Mutex<HashMap<(i64, String), Arc<Document>>>,
    /// When each tenant's documents were last materialised.
    refreshed: Mutex<HashMap<i64, Instant>>,
    /// The position (see [`Store::subscribe`]) of the last commit the engines applied.
    applied: tokio::sync::watch::Sender<u64>,
    /// Per tenant, the log position of the newest event its engine holds: changed under the
    /// engine's lock, so it always says what the engine holds.
    through: Mutex<HashMap<i64, i64>>,
    /// Per tenant, the log position its stored snapshot covers, and when it was written.
    saved: Mutex<HashMap<i64, (i64, Instant)>>,
    /// Taken while a snapshot is written: one at a time.
    saving: Mutex<()>,
    /// Seconds between two snapshots of an engine.
    snapshot_every: AtomicU64,
}

/// Seconds between two snapshots, unless told (`--snapshot-every-secs`).
const SNAPSHOT_EVERY_SECS: u64 = 600;

/// Feedback records due by `as_of`, as the store keeps them.
fn feedback_of(engine: &mut Engine, as_of: i64) -> Vec<FeedbackRecord> {
    engine
        .finalise(as_of)
        .into_iter()
        .map(|f| FeedbackRecord::new(&f.record, f.recommender))
        .collect()
}

impl Engines {
    pub(crate) fn new(params: Params, test_mode: bool) -> Engines {
        Engines {
            params,
            test_mode,
            engines: Mutex::default(),
            documents: Mutex::default(),
            refreshed: Mutex::default(),
            applied: tokio::sync::watch::Sender::new(0),
            through: Mutex::default(),
            saved: Mutex::default(),
            saving: Mutex::default(),
            snapshot_every: AtomicU64::new(SNAPSHOT_EVERY_SECS),
        }
    }

    /// Writes each engine's snapshot every `every` (when it has taken events since).
    pub(crate) fn snapshot_every(&self, every: Duration) {
        self.snapshot_every
            .store(every.as_secs().max(1), Ordering::Relaxed);
    }

    /// Follows the store's commits on a thread of its own, until the store closes or these
    /// datasets are dropped.
    pub(crate) fn follow(self: &Arc<Self>, store: &Arc<Store>) {
        let (position, commits) = store.subscribe();
        self.applied.send_replace(position);
        let (this, store) = (Arc::downgrade(self), Arc::downgrade(store));
        let spawned = std::thread::Builder::new()
            .name("datasets-feed".into())
            .spawn(move || follow(&this, &store, &commits));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the thread that feeds the datasets");
        }
    }

    /// Waits until the engines have applied every commit answered so far.
    pub(crate) async fn caught_up(&self, store: &Store) {
        let target = store.position();
        let mut applied = self.applied.subscribe();
        let _ = applied.wait_for(|&at| at >= target).await;
    }

    /// Commits answered that the engines have not applied yet.
    pub(crate) fn lag(&self, store: &Store) -> u64 {
        store.position().saturating_sub(*self.applied.borrow())
    }

    /// Applies one commit's change. An engine that panics is dropped, to be rebuilt from the
    /// log on its next use, rather than kept half-changed.
    fn apply_change(&self, store: &Store, change: &Change) {
        let (tenant_id, applied) = match change {
            Change::Stored {
                tenant_id,
                inputs,
                through,
            } => (*tenant_id, {
                let apply = || self.apply(store, *tenant_id, inputs, *through);
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(apply))
            }),
            Change::Erased {
                tenant_id,
                user_ids,
            } => (*tenant_id, {
                let erase = || {
                    self.erase(*tenant_id, user_ids);
                    Ok(())
                };
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(erase))
            }),
        };
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // Its events are stored: the next rebuild from the log has them.
                tracing::error!(error = %e, tenant_id, "cannot feed stored events to the datasets");
                lock(&self.engines).remove(&tenant_id);
            }
            Err(_) => {
                tracing::error!(
                    tenant_id,
                    "the datasets engine failed; it is rebuilt on next use"
                );
                lock(&self.engines).remove(&tenant_id);
            }
        }
    }

    pub(crate) fn params(&self) -> &Params {
        &self.params
    }

    /// The tenant's engine; on first use loaded from its snapshot, then fed the log after
    /// it, in log order, or without a usable snapshot built from the whole log. Blocks.
    /// The engine keeps no event ids (the log has each event once): changes the log already
    /// gave it are told apart by their log position (see [`Engines::apply`]).
    pub(crate) fn engine(
        &self,
        store: &Store,
        tenant_id: i64,
    ) -> Result<Arc<Mutex<Engine>>, StoreError> {
        if let Some(existing) = lock(&self.engines).get(&tenant_id) {
            return Ok(existing.clone());
        }
        // Not there: make one, unless another request does first (checked again below).
        let engine = Arc::new(Mutex::new(Engine::for_deduplicated_log(
            self.params.clone(),
        )));
        let mut guard = lock(&engine);
        {
            let mut engines = lock(&self.engines);
            if let Some(existing) = engines.get(&tenant_id) {
                return Ok(existing.clone());
            }
            engines.insert(tenant_id, engine.clone());
        }
        let started = std::time::Instant::now();
        let after = match self.restore(store, tenant_id) {
            Some((restored, through)) => {
                *guard = restored;
                lock(&self.saved).insert(tenant_id, (through, Instant::now()));
                Some(through)
            }
            None => None,
        };
        let restored = started.elapsed();
        let now = now_ms();
        let mut read = 0;
        let rebuilt = store.for_each_event_after(tenant_id, after.unwrap_or(0), |payload| {
            if let Ok(payload) = Payload::parse(payload) {
                guard.ingest(&payload.input(), now);
            }
            read += 1;
            if read % PRUNE_EVERY == 0 {
                guard.prune();
            }
        });
        // What an earlier run exported is not offered again unless its labels change.
        let rebuilt = rebuilt.and_then(|read| {
            guard.exported(store.feedback_labels(tenant_id)?);
            Ok(read)
        });
        match rebuilt {
            Ok((events, through)) => {
                // Set before the engine is free: a change waiting for it checks this first.
                lock(&self.through).insert(tenant_id, through);
                guard.prune();
                tracing::info!(
                    tenant_id,
                    events,
                    snapshot_through = after,
                    snapshot_ms = restored.as_millis() as u64,
                    ms = started.elapsed().as_millis() as u64,
                    "datasets engine ready"
                );
                drop(guard);
                Ok(engine)
            }
            Err(e) => {
                lock(&self.engines).remove(&tenant_id);
                Err(e)
            }
        }
    }

    /// The tenant's engine as its snapshot left it, and the log position the snapshot
    /// covers; none without a snapshot, or with one that cannot be used (then the log says
    /// why, and the engine is built from the whole log).
    fn restore(&self, store: &Store, tenant_id: i64) -> Option<(Engine, i64)> {
        let snapshot = match store.snapshot(tenant_id) {
            Ok(found) => found?,
            Err(e) => {
                tracing::warn!(error = %e, tenant_id, "cannot read the engine snapshot; building the engine from the whole log");
                return None;
            }
        };
        match Engine::restore(self.params.clone(), &snapshot) {
            Ok(restored) => Some(restored),
            Err(e) => {
                tracing::warn!(error = %e, tenant_id, "the engine snapshot cannot be used; building the engine from the whole log");
                None
            }
        }
    }

    /// Writes a snapshot of the tenant's engine, when it holds events its stored snapshot
    /// lacks (or that snapshot was deleted); says whether it did. Blocks: the state is
    /// encoded under the engine's lock (about a second for ten million events' state), then
    /// written without it. Failures are logged: the log still holds everything.
    pub(crate) fn save_snapshot(&self, store: &Store, tenant_id: i64) -> bool {
        let _one_at_a_time = lock(&self.saving);
        let Some(engine) = lock(&self.engines).get(&tenant_id).cloned() else {
            return false;
        };
        let (snapshot, applied, through) = {
            let engine = lock(&engine);
            let Some(through) = lock(&self.through).get(&tenant_id).copied() else {
                return false;
            };
            if lock(&self.saved).get(&tenant_id).map(|s| s.0) == Some(through) {
                return false;
            }
            // Every commit up to `applied` is in this state (some later ones may be too).
            let applied = *self.applied.borrow();
            (engine.snapshot(through), applied, through)
        };
        let saved = snapshot.map_err(|e| e.to_string()).and_then(|s| {
            store
                .save_snapshot(tenant_id, applied, &s)
                .map_err(|e| e.to_string())
        });
        match saved {
            Ok(true) => {
                lock(&self.saved).insert(tenant_id, (through, Instant::now()));
                true
            }
            // Users were erased meanwhile: the next round takes a state without them.
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(error = %e, tenant_id, "cannot write the engine snapshot");
                false
            }
        }
    }

    /// Writes the snapshots due: those of engines whose last was written `snapshot_every`
    /// ago or never. Blocks.
    fn save_snapshots_due(&self, store: &Store) {
        let every = Duration::from_secs(self.snapshot_every.load(Ordering::Relaxed));
        let tenants: Vec<i64> = lock(&self.engines).keys().copied().collect();
        for tenant_id in tenants {
            let due = lock(&self.saved)
                .get(&tenant_id)
                .is_none_or(|(_, at)| at.elapsed() >= every);
            if due {
                self.save_snapshot(store, tenant_id);
            }
        }
    }

    /// Writes a snapshot of every engine that holds events its stored one lacks (when the
    /// service stops). Blocks.
    pub(crate) fn save_snapshots(&self, store: &Store) {
        let tenants: Vec<i64> = lock(&self.engines).keys().copied().collect();
        for tenant_id in tenants {
            self.save_snapshot(store, tenant_id);
        }
    }

    /// Feeds newly stored events, the last at log position `through`, to the tenant's
    /// engine, unless it holds them already (from the log or its snapshot). Blocks.
    fn apply(
        &self,
        store: &Store,
        tenant_id: i64,
        inputs: &[Input],
        through: i64,
    ) -> Result<(), StoreError> {
        let engine = self.engine(store, tenant_id)?;
        let now = now_ms();
        let mut engine = lock(&engine);
        let held = lock(&self.through).get(&tenant_id).copied();
        if held.is_some_and(|held| through <= held) {
            return Ok(());
        }
        for input in inputs {
            engine.ingest(input, now);
        }
        lock(&self.through).insert(tenant_id, through);
        Ok(())
    }

    /// Forgets users in the tenant's engine. An engine not built yet is left alone: the log
    /// it will be built from no longer holds them, and the store deleted its snapshot.
    fn erase(&self, tenant_id: i64, user_ids: &[String]) {
        let engine = lock(&self.engines).get(&tenant_id).cloned();
        if let Some(engine) = engine {
            lock(&engine).erase_users(user_ids);
            // The store deleted its snapshot: the next round writes one without the users.
            lock(&self.saved).remove(&tenant_id);
        }
    }

    /// Runs a short read `f` (well under a millisecond) on the tenant's engine: right here
    /// when the engine is free, else off the async threads like [`Self::with_engine`], so a
    /// materialisation holding the engine never blocks a worker.
    pub(crate) async fn read_engine<T: Send + 'static>(
        self: &Arc<Self>,
        store: &Arc<Store>,
        tenant_id: i64,
        f: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let engine = lock(&self.engines).get(&tenant_id).cloned();
        if let Some(engine) = engine
            && let Ok(mut engine) = engine.try_lock()
        {
            return Ok(f(&mut engine));
        }
        self.with_engine(store, tenant_id, f).await
    }

    /// Runs `f` on the tenant's engine, off the async threads.
    pub(crate) async fn with_engine<T: Send + 'static>(
        self: &Arc<Self>,
        store: &Arc<Store>,
        tenant_id: i64,
        f: impl FnOnce(&mut Engine) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (this, store) = (self.clone(), store.clone());
        tokio::task::spawn_blocking(move || {
            let engine = this.engine(&store, tenant_id)?;
            let mut engine = lock(&engine);
            Ok(f(&mut engine))
        })
        .await
        .map_err(StoreError::Task)?
    }

    /// Materialises the tenant's lists now, finalises the feedback due, and stores both;
    /// returns the documents.
    pub(crate) async fn refresh(
        self: &Arc<Self>,
        store: &Arc<Store>,
        tenant_id: i64,
    ) -> Result<Vec<Document>, StoreError> {
        let (documents, feedback) = self
            .with_engine(store, tenant_id, move |engine| {
                engine.prune();
                let now = now_ms();
                (engine.materialise(now, now), feedback_of(engine, now))
            })
            .await?;
        self.present(store, tenant_id, documents.clone(), feedback)
            .await?;
        self.remember(tenant_id, &documents);
        lock(&self.refreshed).insert(tenant_id, Instant::now());
        Ok(documents)
    }

    /// For a query whose list has no stored document: the tenant's documents materialised
    /// now, unless that was done within the materialisation interval. Then `None`: the list
    /// is empty for now, and the materialiser refreshes it in the background. A list nobody
    /// feeds (an entity type no event has) must not rewrite every document on each request.
    pub(crate) async fn refresh_for_query(
        self: &Arc<Self>,
        store: &Arc<Store>,
        tenant_id: i64,
    ) -> Result<Option<Vec<Document>>, StoreError> {
        let every = Duration::from_secs(self.params.consensus.materialize_every_secs);
        let recent = lock(&self.refreshed)
            .get(&tenant_id)
            .is_some_and(|at| at.elapsed() < every);
        if recent {
            return Ok(None);
        }
        self.refresh(store, tenant_id).await.map(Some)
    }

    /// Finalises the feedback due by `as_of` (test mode's clock) and stores it; the lists
    /// are left as they are.
    pub(crate) async fn finalise_at(
        self: &Arc<Self>,
        store: &Arc<Store>,
        tenant_id: i64,
        as_of: i64,
    ) -> Result<(), StoreError> {
        let feedback = self
            .with_engine(store, tenant_id, move |engine| feedback_of(engine, as_of))
            .await?;
        self.present(store, tenant_id, Vec::new(), feedback).await
    }

    /// Stores documents and feedback records. When that fails, the engine offers the
    /// records again next time: they are not lost, and the store appends each change of
    /// labels once however often it is offered.
    async fn present(
        self: &Arc<Self>,
        store: &Arc<Store>,
        tenant_id: i64,
        documents: Vec<Document>,
        feedback: Vec<FeedbackRecord>,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = feedback.iter().map(|f| f.impression_id.clone()).collect();
        let presented = store
            .present(Materialised {
                tenant_id,
                every_document: !documents.is_empty(),
                documents,
                feedback,
            })
            .await;
        if presented.is_err() && !ids.is_empty() {
            let again =
                move |engine: &mut Engine| engine.offer_again(ids.iter().map(String::as_str));
            self.with_engine(store, tenant_id, again).await?;
        }
        presented
    }

    /// Keeps a tenant's whole set of documents in memory, in place of those it had.
    fn remember(&self, tenant_id: i64, documents: &[Document]) {
        let mut cache = lock(&self.documents);
        cache.retain(|(tenant, _), _| *tenant != tenant_id);
        for d in documents {
            cache.insert((tenant_id, d.key.clone()), Arc::new(d.clone()));
        }
    }

    /// The document under `key` if memory holds it; never blocks on the store.
    pub(crate) fn cached_document(&self, tenant_id: i64, key: &str) -> Option<Arc<Document>> {
        lock(&self.documents)
            .get(&(tenant_id, key.to_owned()))
            .cloned()
    }

    /// The stored document under `key`: from memory, else from the store. Blocks.
    pub(crate) fn document(
        &self,
        store: &Store,
        tenant_id: i64,
        key: &str,
    ) -> Result<Option<Arc<Document>>, StoreError> {
        if let Some(found) = self.cached_document(tenant_id, key) {
            return Ok(Some(found));
        }
        let Some((body, etag)) = store.document(tenant_id, key)? else {
            return Ok(None);
        };
        let Some(found) = Document::parse(key, &body, &etag).map(Arc::new) else {
            tracing::warn!(
                tenant_id,
                key,
                "a stored document is not valid JSON; rebuilding it"
            );
            return Ok(None);
        };
        lock(&self.documents).insert((tenant_id, key.to_owned()), found.clone());
        Ok(Some(found))
    }

    /// Counters summed over every tenant's engine.
    pub(crate) fn counters(&self) -> Counters {
        let engines: Vec<_> = lock(&self.engines).values().cloned().collect();
        let mut sum = Counters::default();
        for engine in engines {
            sum += &lock(&engine).counters;
        }
        sum
    }

    /// Refreshes every tenant's presentation documents now and then every
    /// `materialize_every_secs`, until the process ends.
    pub(crate) async fn run(self: Arc<Self>, store: Arc<Store>) {
        let every = Duration::from_secs(self.params.consensus.materialize_every_secs);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let tenants = {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.tenants()).await
            };
            let tenants = match tenants {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot list tenants to materialise");
                    continue;
                }
                Err(_) => continue,
            };
            for tenant in tenants {
                if let Err(e) = self.refresh(&store, tenant.id).await {
                    tracing::warn!(error = %e, tenant = tenant.client_key, "cannot materialise");
                }
            }
            let (this, store) = (self.clone(), store.clone());
            let _ = tokio::task::spawn_blocking(move || this.save_snapshots_due(&store)).await;
        }
    }
}

/// The feed thread: applies each commit's changes in order, then marks its position applied.
fn follow(
    datasets: &Weak<Engines>,
    store: &Weak<Store>,
    commits: &std::sync::mpsc::Receiver<Arc<crate::store::Committed>>,
) {
    while let Ok(committed) = commits.recv() {
        let (Some(datasets), Some(store)) = (datasets.upgrade(), store.upgrade()) else {
            return;
        };
        for change in &committed.changes {
            datasets.apply_change(&store, change);
        }
        datasets.applied.send_replace(committed.position);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use std::sync::Mutex;

    use crate::datasets::Engine;
    use crate::lock;
    use crate::{AppState, Keyring, Store};

    fn batch(ids: &[&str]) -> Request<Body> {
        batch_for("pk_feed", ids)
    }

    fn batch_for(client_key: &str, ids: &[&str]) -> Request<Body> {
        let at: Vec<_> = ids
            .iter()
            .map(|id| (*id, "2026-11-28T14:00:00.000Z"))
            .collect();
        batch_at(client_key, &at)
    }

    /// A batch of `u1`'s views of AAPL: (event id, `created_at`) each.
    fn batch_at(client_key: &str, events: &[(&str, &str)]) -> Request<Body> {
        let events: Vec<serde_json::Value> = events
            .iter()
            .map(|(id, created_at)| {
                serde_json::json!({
                    "client_key": client_key, "event_id": id,
                    "created_at": created_at,
                    "event_type": "instrument", "action": "viewed",
                    "related_entities": [{"type": "ticker", "id": "AAPL"}],
                    "channel_meta": {"session_id": "s1", "client_ref": "u1"}
                })
            })
            .collect();
        Request::post("/v1/events")
            .header("content-type", "application/json")
            .body(Body::from(
                serde_json::json!({ "events": events }).to_string(),
            ))
            .unwrap()
    }

    #[tokio::test]
    async fn a_post_waits_for_the_disk_never_for_the_datasets() {
        let s = Served::new();
        s.post(&s.app, &["a"]).await;

        // The tenant's engine is busy (a materialisation, a long rebuild): events are still
        // stored and answered.
        let engine = s.state.engines.engine(&s.store, s.tenant_id).unwrap();
        let posted = while_busy(engine, async {
            tokio::time::timeout(
                Duration::from_secs(60),
                s.app.clone().oneshot(batch(&["b", "c"])),
            )
            .await
            .expect("the POST was answered while the engine was busy")
            .unwrap()
        })
        .await;
        assert_eq!(posted.status(), StatusCode::OK);

        // Once free, the engine has them: a read waits until it has caught up.
        assert_eq!(s.preference_events(&s.app, "u1").await, 3);
    }

    #[tokio::test]
    async fn feedback_a_store_could_not_take_is_offered_again() {
        let Served {
            dir: _dir,
            store,
            tenant_id,
            state,
            app,
            ..
        } = Served::new();
        let mut request = batch(&["v1"]);
        let body = serde_json::json!({ "events": [{
            "client_key": "pk_feed", "event_id": "v1", "created_at": "2026-11-28T14:00:00.000Z",
            "event_type": "recommendation", "action": "viewed",
            "related_entities": [{"type": "ticker", "id": "AAPL"}],
            "event_meta": {"impression_id": "imp-1", "recommender": "r1"},
            "channel_meta": {"session_id": "s1", "client_ref": "u1"}
        }]});
        *request.body_mut() = Body::from(body.to_string());
        assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
        let datasets = state.engines.clone();
        datasets.caught_up(&store).await;
        let later = schema::Timestamp::parse("2026-11-30T00:00:00Z").unwrap().0;

        store.close();
        assert!(
            datasets
                .finalise_at(&store, tenant_id, later)
                .await
                .is_err()
        );
        let offered = datasets
            .with_engine(&store, tenant_id, move |e| e.finalise(later).len())
            .await
            .unwrap();
        assert_eq!(
            offered, 1,
            "the record the store did not take is offered again"
        );
    }

    /// Runs `f` while another thread holds `engine`, as a long materialisation would.
    async fn while_busy<T>(
        engine: Arc<Mutex<Engine>>,
        f: impl std::future::Future<Output = T>,
    ) -> T {
        let (held, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let busy = std::thread::spawn(move || {
            let _busy = lock(&engine);
            held.0.send(()).unwrap();
            let _ = release.1.recv();
        });
        held.1.recv().unwrap();
        let out = f.await;
        release.0.send(()).unwrap();
        busy.join().unwrap();
        out
    }

    /// `client_ref`'s preference events, as `app` answers.
    async fn preference_events(app: &axum::Router, api_key: &str, client_ref: &str) -> u64 {
        let request = Request::get(format!("/v1/users/{client_ref}/preferences/entities"))
            .header("authorization", format!("Bearer {api_key}"))
            .body(Body::empty())
            .unwrap();
        let answer = app.clone().oneshot(request).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["events"].as_u64().unwrap())
            .sum()
    }

    /// A store with one tenant (`pk_feed`) and the service over it.
    struct Served {
        dir: tempfile::TempDir,
        store: Arc<Store>,
        tenant_id: i64,
        api_key: String,
        state: AppState,
        app: axum::Router,
    }

    impl Served {
        fn new() -> Served {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(Store::open(dir.path()).unwrap());
            let (tenant, api_key) = store.add_tenant("pk_feed", &[]).unwrap();
            let state = AppState::new(store.clone(), Arc::new(Keyring::from_secret(vec![7; 32])));
            let app = crate::app(state.clone());
            Served {
                dir,
                store,
                tenant_id: tenant.id,
                api_key,
                state,
                app,
            }
        }

        /// Posts a batch of `u1`'s events with these ids, through `app`.
        async fn post(&self, app: &axum::Router, ids: &[&str]) {
            let answer = app.clone().oneshot(batch(ids)).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
        }

        /// The tenant's preference events of `client_ref`, as `app` answers.
        async fn preference_events(&self, app: &axum::Router, client_ref: &str) -> u64 {
            preference_events(app, &self.api_key, client_ref).await
        }

        /// Writes the snapshot of `state`'s engine; says whether it did.
        async fn save(&self, state: &AppState) -> bool {
            let (datasets, store) = (state.engines.clone(), self.store.clone());
            let tenant_id = self.tenant_id;
            tokio::task::spawn_blocking(move || datasets.save_snapshot(&store, tenant_id))
                .await
                .unwrap()
        }

        /// The same store and keys with datasets of their own, as after a restart.
        fn restarted(&self) -> (AppState, axum::Router) {
            let datasets = Arc::new(super::Engines::new(Default::default(), false));
            datasets.follow(&self.store);
            let state = AppState {
                engines: datasets,
                ..self.state.clone()
            };
            (state.clone(), crate::app(state))
        }

        /// Deletes events from the log behind the service's back.
        fn delete_log_events(&self, event_ids: &[&str]) {
            let db = self.dir.path().join(crate::store::DB_FILE);
            let conn = rusqlite::Connection::open(db).unwrap();
            for id in event_ids {
                conn.execute("DELETE FROM events WHERE event_id = ?1", [id])
                    .unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_restart_loads_the_snapshot_and_reads_only_the_log_after_it() {
        let s = Served::new();
        s.post(&s.app, &["a", "b"]).await;
        assert_eq!(s.preference_events(&s.app, "u1").await, 2);
        assert!(s.save(&s.state).await, "a snapshot is written");
        assert!(
            !s.save(&s.state).await,
            "nothing new: no snapshot is written again"
        );
        s.post(&s.app, &["c"]).await;

        // Events the snapshot covers are taken from it, not from the log: with "a" and "b"
        // gone from the log, a restart still counts them, and "c" from the log after it.
        s.delete_log_events(&["a", "b"]);
        let (again, app) = s.restarted();
        assert_eq!(s.preference_events(&app, "u1").await, 3);

        // An engine loaded from a snapshot takes events and snapshots like any other.
        s.post(&app, &["d"]).await;
        assert_eq!(s.preference_events(&app, "u1").await, 4);
        assert!(s.save(&again).await);
        s.delete_log_events(&["c", "d"]);
        let (_, app) = s.restarted();
        assert_eq!(s.preference_events(&app, "u1").await, 4);
    }

    #[tokio::test]
    async fn a_snapshot_that_cannot_be_used_leaves_the_engine_to_the_whole_log() {
        let s = Served::new();
        s.post(&s.app, &["a", "b"]).await;
        assert_eq!(s.preference_events(&s.app, "u1").await, 2);
        assert!(s.save(&s.state).await);
        let path = s
            .dir
            .path()
            .join(crate::store::SNAPSHOT_DIR)
            .join(format!("tenant-{}.snapshot", s.tenant_id));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        s.delete_log_events(&["a"]);
        let (_, app) = s.restarted();
        assert_eq!(
            s.preference_events(&app, "u1").await,
            1,
            "the damaged snapshot is not read: the log alone counts"
        );
    }

    #[tokio::test]
    async fn an_erasure_deletes_the_snapshot_before_it_answers_and_refuses_older_states() {
        let s = Served::new();
        s.post(&s.app, &["a"]).await;
        assert_eq!(s.preference_events(&s.app, "u1").await, 1);
        assert!(s.save(&s.state).await);
        assert!(s.store.snapshot(s.tenant_id).unwrap().is_some());

        let before = s.store.position();
        let erase = Request::delete("/v1/users")
            .header("authorization", format!("Bearer {}", s.api_key))
            .header("client-ref", "u1")
            .body(Body::empty())
            .unwrap();
        let answer = s.app.clone().oneshot(erase).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(
            s.store.snapshot(s.tenant_id).unwrap().is_none(),
            "the snapshot held the user: it is gone once the erasure is answered"
        );
        // A state taken before the erasure reached the engines is refused.
        assert!(
            !s.store
                .save_snapshot(s.tenant_id, before, b"older")
                .unwrap()
        );
        assert!(s.store.snapshot(s.tenant_id).unwrap().is_none());

        // The next one is taken without the user, and a restart loads it.
        s.state.engines.caught_up(&s.store).await;
        assert!(s.save(&s.state).await);
        let (_, app) = s.restarted();
        assert_eq!(s.preference_events(&app, "u1").await, 0);
    }

    #[tokio::test]
    async fn an_engine_rebuilt_from_the_log_drops_the_late_events_the_live_one_dropped() {
        let s = Served::new();
        let late = |state: &AppState| {
            let tenant_id = s.tenant_id;
            let counted = move |e: &mut Engine| e.counters.late_dropped_consensus;
            let (datasets, store) = (state.engines.clone(), s.store.clone());
            async move {
                datasets
                    .with_engine(&store, tenant_id, counted)
                    .await
                    .unwrap()
            }
        };
        // The second came 30 hours behind the first: too late for the consensus lists.
        for event in [
            ("now", "2026-11-28T14:00:00.000Z"),
            ("late", "2026-11-27T08:00:00.000Z"),
        ] {
            let answer = s.app.clone().oneshot(batch_at("pk_feed", &[event])).await;
            assert_eq!(answer.unwrap().status(), StatusCode::OK);
        }
        s.state.engines.caught_up(&s.store).await;
        assert_eq!(late(&s.state).await, 1);
        // Rebuilt in the order the log took them, not in event-time order (which would let
        // the late one in): the answers do not change with a restart.
        let (again, _) = s.restarted();
        assert_eq!(late(&again).await, 1);
    }

    #[tokio::test]
    async fn events_a_rebuild_read_are_not_applied_again_by_the_feed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let (t, api_key) = store.add_tenant("pk_feed", &[]).unwrap();
        let (u, _) = store.add_tenant("pk_other", &[]).unwrap();
        let state = AppState::new(store.clone(), Arc::new(Keyring::from_secret(vec![7; 32])));
        let app = crate::app(state.clone());
        let post = |request: Request<Body>| {
            let app = app.clone();
            async move { assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK) }
        };
        post(batch_for("pk_feed", &["a"])).await;
        post(batch_for("pk_other", &["u1"])).await;
        let datasets = state.engines.clone();
        datasets.caught_up(&store).await;
        // The tenant's engine is gone (as after a restart), and the feed is held up behind
        // another tenant's busy engine while an event of the tenant is committed.
        lock(&datasets.engines).remove(&t.id);
        let other = datasets.engine(&store, u.id).unwrap();
        while_busy(other, async {
            post(batch_for("pk_other", &["u2"])).await;
            post(batch_for("pk_feed", &["b"])).await;
            // A read rebuilds the engine from the log, "b" included, before the feed gets to
            // "b"'s change.
            let d = datasets.clone();
            let s = store.clone();
            tokio::task::spawn_blocking(move || d.engine(&s, t.id).map(|_| ()))
                .await
                .unwrap()
                .unwrap();
        })
        .await;
        let request = Request::get("/v1/users/u1/preferences/entities")
            .header("authorization", format!("Bearer {api_key}"))
            .body(Body::empty())
            .unwrap();
        let answer = app.clone().oneshot(request).await.unwrap();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["items"][0]["events"], 2, "a and b, once each: {body}");
    }
}
