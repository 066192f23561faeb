//! `GET /v1/recommendations`: entities (from the user's preferences, trending and popular)
//! or content (trending and popular), each with a freshly minted `impression_id` (`fxcid`
//! for content) that the UI echoes on its `viewed`/`clicked` events, closing the loop.
//!
//! Score = relevance × quality × fatigue:
//! - relevance: `0.6·share of the user's preferences + 0.3·trend z / max z + 0.1·popular
//!   score / max` (entities); `0.7·trend + 0.3·popular` (content);
//! - quality: `1 + Wilson lower bound of the item's CTR` over all users, so items that
//!   engage rise with evidence rather than with luck;
//! - fatigue: `2^−(times shown − times clicked)` for this user, so an item shown repeatedly
//!   without a click sinks (three unclicked showings cut its score to an eighth), while
//!   one the user clicks whenever shown keeps its place.

use std::collections::BTreeMap;

use schema::Timestamp;
use serde_json::{Value, json};

use super::Engine;

/// The name recommendations carry as `recommender` (engagement groups by it).
pub(crate) const RECOMMENDER: &str = "personafin_blend";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Entities,
    Content,
}

impl Kind {
    pub(crate) fn parse(s: &str) -> Option<Kind> {
        match s {
            "entities" => Some(Kind::Entities),
            "content" => Some(Kind::Content),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recommend {
    pub kind: Kind,
    pub entity_type: String,
    pub surface: Option<String>,
    pub limit: usize,
}

#[derive(Debug, Default)]
struct Candidate {
    relevance: f64,
    reasons: Vec<&'static str>,
}

impl Engine {
    pub(crate) fn recommend(
        &self,
        r: &Recommend,
        user_id: &str,
        as_of: i64,
        mint: &mut dyn FnMut(&str) -> String,
    ) -> Value {
        let user = self.key(user_id);
        let mut candidates: BTreeMap<String, Candidate> = BTreeMap::new();
        let add = |candidates: &mut BTreeMap<String, Candidate>,
                   list: &[(String, f64)],
                   weight: f64,
                   reason: &'static str| {
            let max = list.iter().map(|(_, s)| *s).fold(0.0_f64, f64::max);
            if max <= 0.0 {
                return;
            }
            for (key, score) in list {
                let c = candidates.entry(key.clone()).or_default();
                c.relevance += weight * score / max;
                c.reasons.push(reason);
            }
        };
        let ranked = |key: String| self.ranked.get(&key).map_or(&[][..], Vec::as_slice);
        let (dataset, kind) = match r.kind {
            Kind::Entities => ("entities", r.entity_type.as_str()),
            Kind::Content => ("content", "all"),
        };
        let (trend_w, popular_w) = match r.kind {
            Kind::Entities => {
                let prefs: Vec<(String, f64)> = self
                    .preferences
                    .top(user, as_of, &self.params)
                    .into_iter()
                    .filter(|(k, _)| k.kind == r.entity_type)
                    .map(|(k, s)| (k.id, s))
                    .collect();
                let total: f64 = prefs.iter().map(|(_, s)| s).sum();
                if total > 0.0 {
                    for (id, s) in &prefs {
                        let c = candidates.entry(id.clone()).or_default();
                        c.relevance += 0.6 * s / total;
                        c.reasons.push("preference");
                    }
                }
                (0.3, 0.1)
            }
            Kind::Content => (0.7, 0.3),
        };
        let trending = ranked(format!("{dataset}/trending/{kind}"));
        add(&mut candidates, trending, trend_w, "trending");
        let popular = ranked(format!("{dataset}/popular/{kind}"));
        add(&mut candidates, popular, popular_w, "popular");

        let exposure = self.engagement.exposure(user, &self.params);
        let mut scored: Vec<(String, f64, Candidate)> = candidates
            .into_iter()
            .map(|(key, c)| {
                let quality = 1.0 + self.quality.get(&key).copied().unwrap_or(0.0);
                let (shown, clicked) = exposure.get(key.as_str()).copied().unwrap_or((0, 0));
                let fatigue = 0.5f64.powi(shown.saturating_sub(clicked).min(64) as i32);
                (key, c.relevance * quality * fatigue, c)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        scored.truncate(r.limit);

        let request_id = mint("req_");
        let items: Vec<Value> = scored
            .into_iter()
            .enumerate()
            .map(|(i, (key, score, c))| {
                let position = i + 1;
                let (subject, id_field, id) = match r.kind {
                    Kind::Entities => (
                        ("entity", json!({"type": r.entity_type, "id": key})),
                        "impression_id",
                        mint("imp_"),
                    ),
                    Kind::Content => (("content_id", json!(key)), "fxcid", mint("fx_")),
                };
                json!({
                    "position": position,
                    subject.0: subject.1,
                    id_field: id,
                    "score": score,
                    "reasons": c.reasons,
                    "event_meta": {
                        id_field: id,
                        "recommender": RECOMMENDER,
                        "surface": r.surface,
                        "request_id": request_id,
                        "position": position,
                    },
                })
            })
            .collect();
        json!({
            "user_id": user_id,
            "as_of": Timestamp(as_of),
            "recommender": RECOMMENDER,
            "surface": r.surface,
            "request_id": request_id,
            "items": items,
        })
    }
}
