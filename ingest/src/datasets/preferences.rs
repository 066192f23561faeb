//! Personal entity preferences (`docs/datasets.md` §4.4): per user and entity a decayed weighted sum of
//! interactions (negative weights included), the watchlist state and counts; at most
//! `personal.max_entities` entities per user.

use std::cmp::Ordering;

use schema::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::decay::Decayed;
use super::params::Params;
use super::{EntityKey, FastMap, ordinal};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Pref {
    score: Decayed,
    last: i64,
    events: u32,
    /// The newest watchlist change: (time, added). Newest wins whatever the arrival order;
    /// at equal times a removal wins.
    watch: Option<(i64, bool)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Preferences {
    #[serde(deserialize_with = "super::snapshot::sized_map")]
    users: FastMap<u64, FastMap<EntityKey, Pref>>,
}

/// A contribution to one (user, entity).
pub(crate) struct Touch<'a> {
    pub user: u64,
    pub entity: &'a EntityKey,
    pub weight: f64,
    pub t: i64,
    pub watchlist: Option<bool>,
}

impl Preferences {
    pub(crate) fn add(&mut self, touch: Touch<'_>, params: &Params) {
        let p = &params.personal;
        let h = Params::hours(p.half_life_hours);
        let entities = self.users.entry(touch.user).or_default();
        if entities.len() >= p.max_entities && !entities.contains_key(touch.entity) {
            // Make room by forgetting the weakest preference: bounded work (≤ max_entities).
            let weakest = entities
                .iter()
                .min_by(|a, b| {
                    let (a, b) = (
                        a.1.score.at(touch.t, h).abs(),
                        b.1.score.at(touch.t, h).abs(),
                    );
                    a.total_cmp(&b)
                })
                .map(|(k, _)| k.clone());
            if let Some(k) = weakest {
                entities.remove(&k);
            }
        }
        let pref = entities.entry(touch.entity.clone()).or_default();
        if touch.weight != 0.0 {
            pref.score.add(touch.weight, touch.t, h);
        }
        pref.last = if pref.events == 0 {
            touch.t
        } else {
            pref.last.max(touch.t)
        };
        pref.events += 1;
        if let Some(added) = touch.watchlist {
            let newer = match pref.watch {
                None => true,
                Some((t, was)) => touch.t > t || (touch.t == t && was && !added),
            };
            if newer {
                pref.watch = Some((touch.t, added));
            }
        }
    }

    /// Forgets preferences that decayed below `prune_below` by `now`, and empty users.
    pub(crate) fn prune(&mut self, now: i64, params: &Params) {
        let p = &params.personal;
        let h = Params::hours(p.half_life_hours);
        self.users.retain(|_, entities| {
            entities.retain(|_, pref| {
                pref.score.at(now, h).abs() >= p.prune_below || pref.watch.is_some_and(|(_, on)| on)
            });
            !entities.is_empty()
        });
    }

    pub(crate) fn remove_user(&mut self, user: u64) {
        self.users.remove(&user);
    }

    pub(crate) fn users(&self) -> usize {
        self.users.len()
    }

    /// (user, entity) preferences held.
    pub(crate) fn entries(&self) -> usize {
        self.users.values().map(|e| e.len()).sum()
    }

    /// `(entity, score)` of the user's positive preferences at `as_of`, strongest first.
    pub(crate) fn top(&self, user: u64, as_of: i64, params: &Params) -> Vec<(EntityKey, f64)> {
        self.scored(user, as_of, None, false, params)
            .into_iter()
            .map(|(k, s, _)| (k.clone(), s))
            .collect()
    }

    fn scored(
        &self,
        user: u64,
        as_of: i64,
        entity_type: Option<&str>,
        include_negative: bool,
        params: &Params,
    ) -> Vec<(&EntityKey, f64, &Pref)> {
        let p = &params.personal;
        let h = Params::hours(p.half_life_hours);
        let Some(entities) = self.users.get(&user) else {
            return Vec::new();
        };
        let mut items: Vec<_> = entities
            .iter()
            .filter(|(k, _)| entity_type.is_none_or(|t| k.kind == t))
            .map(|(k, pref)| (k, pref.score.at(as_of, h), pref))
            .filter(|(_, s, _)| s.abs() >= p.prune_below && (*s > 0.0 || include_negative))
            .collect();
        items.sort_unstable_by(|a, b| -> Ordering {
            ordinal(b.1)
                .total_cmp(&ordinal(a.1))
                .then(b.2.last.cmp(&a.2.last))
                .then_with(|| a.0.id.cmp(&b.0.id))
                .then_with(|| a.0.kind.cmp(&b.0.kind))
        });
        items
    }

    /// The response of `GET /v1/users/{user_id}/preferences/entities`.
    pub(crate) fn response(
        &self,
        user: u64,
        user_id: &str,
        query: &PreferencesQuery,
        params: &Params,
    ) -> Value {
        let mut items = self.scored(
            user,
            query.as_of,
            query.entity_type.as_deref(),
            query.include_negative,
            params,
        );
        items.truncate(query.limit);
        let total: f64 = items.iter().map(|i| i.1).filter(|s| *s > 0.0).sum();
        let items: Vec<Value> = items
            .iter()
            .enumerate()
            .map(|(i, (key, score, pref))| {
                json!({
                    "rank": i + 1,
                    "entity": key.to_json(),
                    "score": score,
                    "share": if *score > 0.0 && total > 0.0 { json!(score / total) } else { Value::Null },
                    "in_watchlist": pref.watch.is_some_and(|(_, on)| on),
                    "last_interaction_at": Timestamp(pref.last),
                    "events": pref.events,
                })
            })
            .collect();
        json!({
            "user_id": user_id,
            "as_of": Timestamp(query.as_of),
            "half_life_hours": params.personal.half_life_hours,
            "items": items,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PreferencesQuery {
    pub as_of: i64,
    pub entity_type: Option<String>,
    pub limit: usize,
    pub include_negative: bool,
}
