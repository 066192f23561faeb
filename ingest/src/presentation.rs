//! The live side of the datasets: one engine per tenant, fed by `POST /v1/events` after each
//! commit and rebuilt from the event log when first needed (so a restart loses nothing);
//! and the presentation store, refreshed every `consensus.materialize_every_secs` with the
//! materialised lists and the engagement feedback records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::datasets::{Counters, Document, Engine, Input, Params};
use crate::store::{Presentation, Store, StoreError, now_ms};

pub(crate) struct Datasets {
    params: Params,
    /// Honour `as_of` in queries (replays and acceptance tests over old fixtures).
    pub(crate) test_mode: bool,
    engines: Mutex<HashMap<i64, Arc<Mutex<Engine>>>>,
    /// The stored documents, kept in memory too.
    documents: Mutex<HashMap<(i64, String), Arc<Document>>>,
    /// When each tenant's documents were last materialised.
    refreshed: Mutex<HashMap<i64, Instant>>,
}

/// Feedback records due by `as_of`, as the store keeps them.
fn feedback_of(engine: &mut Engine, as_of: i64) -> Vec<(Option<String>, String)> {
    engine
        .finalise(as_of)
        .into_iter()
        .map(|f| (f.recommender, f.record.to_string()))
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Datasets {
    pub(crate) fn new(params: Params, test_mode: bool) -> Datasets {
        Datasets {
            params,
            test_mode,
            engines: Mutex::default(),
            documents: Mutex::default(),
            refreshed: Mutex::default(),
        }
    }

    pub(crate) fn params(&self) -> &Params {
        &self.params
    }

    /// The tenant's engine; on first use rebuilt from the log, in event-time order. Blocks.
    /// Events committed while the rebuild reads are fed again by their requests afterwards,
    /// which the engine's event-id dedup makes harmless.
    pub(crate) fn engine(
        &self,
        store: &Store,
        tenant_id: i64,
    ) -> Result<Arc<Mutex<Engine>>, StoreError> {
        self.engine_or_rebuild(store, tenant_id)
            .map(|(engine, _)| engine)
    }

    /// The engine, and whether this call rebuilt it (from a log holding everything
    /// committed so far).
    fn engine_or_rebuild(
        &self,
        store: &Store,
        tenant_id: i64,
    ) -> Result<(Arc<Mutex<Engine>>, bool), StoreError> {
        if let Some(existing) = lock(&self.engines).get(&tenant_id) {
            return Ok((existing.clone(), false));
        }
        // Not there: make one, unless another request does first (checked again below).
        let engine = Arc::new(Mutex::new(Engine::new(self.params.clone())));
        let mut guard = lock(&engine);
        {
            let mut engines = lock(&self.engines);
            if let Some(existing) = engines.get(&tenant_id) {
                return Ok((existing.clone(), false));
            }
            engines.insert(tenant_id, engine.clone());
        }
        let now = now_ms();
        let started = std::time::Instant::now();
        let rebuilt = store.for_each_event(tenant_id, |payload| {
            let input = serde_json::from_str(payload)
                .ok()
                .and_then(|v| Input::from_stored(&v));
            if let Some(input) = input {
                guard.ingest(&input, now);
            }
        });
        match rebuilt {
            Ok(events) => {
                guard.prune();
                tracing::info!(
                    tenant_id,
                    events,
                    ms = started.elapsed().as_millis() as u64,
                    "datasets rebuilt from the event log"
                );
                drop(guard);
                Ok((engine, true))
            }
            Err(e) => {
                lock(&self.engines).remove(&tenant_id);
                Err(e)
            }
        }
    }

    /// Feeds newly stored (committed) events to the tenant's engine. Blocks.
    pub(crate) fn apply(
        &self,
        store: &Store,
        tenant_id: i64,
        inputs: &[Input],
    ) -> Result<(), StoreError> {
        let (engine, rebuilt) = self.engine_or_rebuild(store, tenant_id)?;
        if rebuilt {
            // The log it was rebuilt from already holds these events.
            return Ok(());
        }
        let now = now_ms();
        let mut engine = lock(&engine);
        for input in inputs {
            engine.ingest(input, now);
        }
        Ok(())
    }

    pub(crate) fn erase(
        &self,
        store: &Store,
        tenant_id: i64,
        user_ids: &[String],
    ) -> Result<(), StoreError> {
        let engine = self.engine(store, tenant_id)?;
        lock(&engine).erase_users(user_ids);
        Ok(())
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
        if let Some(engine) = engine {
            if let Ok(mut engine) = engine.try_lock() {
                return Ok(f(&mut engine));
            }
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
        .map_err(|e| StoreError::Commit(format!("datasets task failed: {e}")))?
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
        store
            .present(Presentation {
                tenant_id,
                documents: documents.clone(),
                feedback,
            })
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
        store
            .present(Presentation {
                tenant_id,
                documents: Vec::new(),
                feedback,
            })
            .await
    }

    fn remember(&self, tenant_id: i64, documents: &[Document]) {
        let mut cache = lock(&self.documents);
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
        }
    }
}
