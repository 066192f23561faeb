//! Recommendation engagement (`docs/datasets.md` §4.5). Each impression keeps the *set* of its views,
//! clicks and direct conversions, and every metric is derived from those sets, so arrival
//! order never matters. Conversions without an impression id are attributed to the same
//! user's most recent valid click on the same item (last click); the attribution is
//! recomputed whenever one of that user's first clicks on the item moves.
//!
//! Reports read per-day counters (`counters`), kept equal to what a scan of the impressions
//! would give: each change to an impression takes back its old contribution and adds its new.

mod counters;

use std::collections::BTreeMap;
use std::sync::Arc;

use schema::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use counters::{Contribution, Counters, ListShare, Place, Tally};
pub(crate) use counters::{Filter, GroupBy, ItemsQuery, SummaryQuery, date};
pub use counters::{ITEM_SORTS, wilson};

use super::params::{DAY_MS, Params};
use super::{FastMap, FastSet, Input};

/// The fields of the event that created an impression (its earliest view or click).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Origin {
    ts: i64,
    event_id: String,
    user: u64,
    recommender: Option<Arc<str>>,
    surface: Option<Arc<str>>,
    item: Option<Arc<str>>,
    request_id: Option<Arc<str>>,
    position: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Impression {
    origin: Option<Origin>,
    first_view: Option<i64>,
    /// Click times, sorted.
    clicks: Vec<i64>,
    /// Times of conversions that carried this impression's id.
    conversions: Vec<i64>,
    /// Conversions without an id attributed here.
    inferred: u32,
    /// The labels last exported as feedback.
    emitted: Option<Labels>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Labels {
    clicked: bool,
    converted: bool,
}

/// What an impression's sets say, under the windows of the parameters.
#[derive(Debug, Clone, Copy)]
struct Derived {
    first_seen: i64,
    implied: bool,
    click_events: u32,
    late_click_events: u32,
    first_click: Option<i64>,
    direct: bool,
    inferred: bool,
}

impl Derived {
    fn clicked(&self) -> bool {
        self.click_events > 0
    }

    fn converted(&self) -> bool {
        self.direct || self.inferred
    }
}

impl Impression {
    fn first_seen(&self) -> Option<i64> {
        match (self.first_view, self.clicks.first()) {
            (Some(v), Some(&c)) => Some(v.min(c)),
            (v, c) => v.or(c.copied()),
        }
    }

    fn derive(&self, params: &Params) -> Option<Derived> {
        self.origin.as_ref()?;
        let first_seen = self.first_seen()?;
        let e = &params.engagement;
        let click_window = Params::hours(e.click_window_hours);
        let conversion_window = Params::hours(e.conversion_window_hours);
        let valid = self
            .clicks
            .iter()
            .filter(|&&c| c - first_seen <= click_window);
        let click_events = valid.clone().count() as u32;
        let first_click = valid.clone().next().copied();
        let anchor = first_click.unwrap_or(first_seen);
        Some(Derived {
            first_seen,
            implied: self.first_view.is_none(),
            click_events,
            late_click_events: self.clicks.len() as u32 - click_events,
            first_click,
            direct: self
                .conversions
                .iter()
                .any(|&t| (0..=conversion_window).contains(&(t - anchor))),
            inferred: self.inferred > 0,
        })
    }

    /// What the impression adds to the counters; `None` until a view or click created it.
    fn contribution(&self, params: &Params) -> Option<Contribution> {
        let o = self.origin.as_ref()?;
        let d = self.derive(params)?;
        let (clicked, listed) = (i64::from(d.clicked()), i64::from(o.request_id.is_some()));
        let clicked_position = o.position.filter(|_| d.clicked());
        Some(Contribution {
            place: Place {
                day: day(d.first_seen),
                recommender: o.recommender.clone(),
                surface: o.surface.clone(),
            },
            item: o.item.clone(),
            tally: Tally {
                impressions: 1,
                implied: i64::from(d.implied),
                clicked,
                click_events: i64::from(d.click_events),
                late_click_events: i64::from(d.late_click_events),
                converted: i64::from(d.converted()),
                inferred: i64::from(d.converted() && !d.direct),
                clicked_converted: i64::from(d.converted()) * clicked,
                position_sum: clicked_position.map_or(0, i64::from),
                positions: i64::from(clicked_position.is_some()),
                listed,
                clicked_listed: listed * clicked,
            },
            clicked_position,
        })
    }

    fn request_id(&self) -> Option<Arc<str>> {
        self.origin.as_ref().and_then(|o| o.request_id.clone())
    }
}

/// A conversion without an impression id, waiting for (or attributed to) a click.
#[derive(Debug, Serialize, Deserialize)]
struct Loose {
    ts: i64,
    items: Vec<String>,
    attributed: Option<Arc<str>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Engagement {
    impressions: FastMap<Arc<str>, Impression>,
    /// Impressions by the UTC day of their first sight.
    by_day: BTreeMap<i64, FastSet<Arc<str>>>,
    by_user: FastMap<u64, FastSet<Arc<str>>>,
    /// Served lists (`request_id`) and their impressions.
    lists: FastMap<Arc<str>, FastSet<Arc<str>>>,
    loose: FastMap<u64, Vec<Loose>>,
    /// Conversions no click explains, by UTC day of the conversion.
    unattributed: BTreeMap<i64, i64>,
    /// Impressions whose feedback may be due: not yet exported, or changed since.
    pending: FastSet<Arc<str>>,
    counters: Counters,
}

fn day(t: i64) -> i64 {
    t.div_euclid(DAY_MS)
}

/// Which id-less conversions to attribute again.
#[derive(Clone, Copy)]
enum Only<'a> {
    All,
    /// The one just added.
    Last,
    /// Those naming this item.
    Item(&'a str),
}

/// What an event is to engagement.
enum Role {
    View,
    Click,
    Conversion,
}

fn interned(s: &Option<String>) -> Option<Arc<str>> {
    s.as_deref().map(Arc::from)
}

impl Engagement {
    /// After a snapshot is read: the indexes take the impressions' own ids again, in place
    /// of the copies the snapshot read (one allocation an id rather than five).
    pub(crate) fn share_ids(&mut self) {
        let ids: FastSet<Arc<str>> = self.impressions.keys().cloned().collect();
        let share = |set: &mut FastSet<Arc<str>>| {
            *set = set
                .drain()
                .map(|id| ids.get(&id).cloned().unwrap_or(id))
                .collect();
        };
        self.by_day.values_mut().for_each(share);
        self.by_user.values_mut().for_each(share);
        self.lists.values_mut().for_each(share);
        share(&mut self.pending);
        for loose in self.loose.values_mut().flatten() {
            if let Some(id) = loose.attributed.take() {
                loose.attributed = Some(ids.get(&id).cloned().unwrap_or(id));
            }
        }
    }

    /// A list's share of the counters, from its members (all but `exclude`): the place of
    /// its earliest member, clicked when any member was.
    fn list_share(&self, list: &str, exclude: Option<&str>, params: &Params) -> Option<ListShare> {
        let mut earliest: Option<(i64, &str, Place)> = None;
        let mut clicked = false;
        for key in self.lists.get(list)? {
            if exclude == Some(&**key) {
                continue;
            }
            let Some(c) = self
                .impressions
                .get(key)
                .and_then(|i| i.contribution(params))
            else {
                continue;
            };
            clicked |= c.tally.clicked > 0;
            let first = self.impressions[key].first_seen().unwrap_or(i64::MAX);
            if earliest
                .as_ref()
                .is_none_or(|(t, k, _)| (first, &**key) < (*t, *k))
            {
                earliest = Some((first, key, c.place));
            }
        }
        earliest.map(|(_, _, place)| ListShare { place, clicked })
    }

    /// Changes one impression, keeping every index and counter in step with it.
    fn change(&mut self, key: &Arc<str>, params: &Params, f: impl FnOnce(&mut Impression)) {
        let imp = self.impressions.entry(key.clone()).or_default();
        let before = imp.contribution(params);
        let (day_before, user_before, list_before) = (
            imp.first_seen().map(day),
            imp.origin.as_ref().map(|o| o.user),
            imp.request_id(),
        );
        let share_before = list_before
            .as_deref()
            .and_then(|l| self.list_share(l, None, params));
        let imp = self.impressions.entry(key.clone()).or_default();
        f(imp);
        let after = imp.contribution(params);
        let (day_after, user_after, list_after) = (
            imp.first_seen().map(day),
            imp.origin.as_ref().map(|o| o.user),
            imp.request_id(),
        );
        if before != after {
            if let Some(c) = &before {
                self.counters.apply(c, -1);
            }
            if let Some(c) = &after {
                self.counters.apply(c, 1);
            }
        }
        if day_before != day_after {
            if let Some(set) = day_before.and_then(|d| self.by_day.get_mut(&d)) {
                set.remove(key);
            }
            if let Some(d) = day_after {
                self.by_day.entry(d).or_default().insert(key.clone());
            }
        }
        if user_before != user_after
            && let Some(set) = user_before.and_then(|u| self.by_user.get_mut(&u))
        {
            set.remove(key);
        }
        if let Some(u) = user_after {
            self.by_user.entry(u).or_default().insert(key.clone());
        }
        // Lists: the old list without this impression, the new one before and after it.
        let mut shares = vec![(share_before, None)];
        if list_before != list_after {
            if let Some(l) = &list_before {
                if let Some(members) = self.lists.get_mut(l) {
                    members.remove(key);
                }
                shares[0].1 = Some(self.list_share(l, None, params));
            }
            if let Some(l) = &list_after {
                let before = self.list_share(l, Some(key), params);
                self.lists.entry(l.clone()).or_default().insert(key.clone());
                shares.push((before, Some(self.list_share(l, None, params))));
            }
        } else if let Some(l) = &list_after {
            self.lists.entry(l.clone()).or_default().insert(key.clone());
            shares[0].1 = Some(self.list_share(l, None, params));
        }
        for (old, new) in shares {
            let new = new.flatten();
            if old != new {
                if let Some(s) = &old {
                    self.counters.apply_list(s, -1);
                }
                if let Some(s) = &new {
                    self.counters.apply_list(s, 1);
                }
            }
        }
        self.pending.insert(key.clone());
    }

    pub(crate) fn observe(&mut self, input: &Input, user: u64, params: &Params) {
        let conversion = params.is_conversion(&input.event_type, &input.action);
        let Some(id) = input.impression_id.as_deref() else {
            if conversion {
                self.convert_without_id(input, user, params);
            }
            return;
        };
        let role = match input.action.as_str() {
            "viewed" => Role::View,
            "clicked" => Role::Click,
            _ if conversion => Role::Conversion,
            _ => return,
        };
        let key: Arc<str> = match self.impressions.get_key_value(id) {
            Some((k, _)) => k.clone(),
            None => Arc::from(id),
        };
        let first_click = |e: &Self| {
            e.impressions
                .get(&key)
                .and_then(|i| Some((i.origin.as_ref()?.user, i.derive(params)?.first_click)))
        };
        let before = first_click(self);
        self.change(&key, params, |imp| match role {
            Role::Conversion => imp.conversions.push(input.ts),
            Role::View | Role::Click => {
                if matches!(role, Role::View) {
                    imp.first_view = Some(imp.first_view.map_or(input.ts, |v| v.min(input.ts)));
                } else {
                    let at = imp.clicks.partition_point(|&c| c <= input.ts);
                    imp.clicks.insert(at, input.ts);
                }
                let earlier = imp
                    .origin
                    .as_ref()
                    .is_none_or(|o| (input.ts, &input.event_id) < (o.ts, &o.event_id));
                if earlier {
                    imp.origin = Some(Origin {
                        ts: input.ts,
                        event_id: input.event_id.clone(),
                        user,
                        recommender: interned(&input.recommender),
                        surface: interned(&input.surface),
                        item: interned(&input.item()),
                        request_id: interned(&input.request_id),
                        position: input.position,
                    });
                }
            }
        });
        // Attribution reads only users' first clicks: nothing else can move a conversion.
        let after = first_click(self);
        if before != after {
            let item = self.impressions[&key]
                .origin
                .as_ref()
                .and_then(|o| o.item.clone());
            if let Some((old_user, _)) = before.filter(|b| Some(b.0) != after.map(|a| a.0)) {
                self.attribute(old_user, Only::All, params);
            }
            if let (Some((user, _)), Some(item)) = (after, item) {
                self.attribute(user, Only::Item(&item), params);
            }
        }
    }

    fn convert_without_id(&mut self, input: &Input, user: u64, params: &Params) {
        let mut items: Vec<String> = input.entities.iter().map(|e| e.id.clone()).collect();
        items.extend(input.content_id.clone());
        *self.unattributed.entry(day(input.ts)).or_default() += 1;
        self.loose.entry(user).or_default().push(Loose {
            ts: input.ts,
            items,
            attributed: None,
        });
        self.attribute(user, Only::Last, params);
    }

    /// Recomputes the attribution of some of the user's id-less conversions, moving each to
    /// the most recent valid click within the conversion window.
    fn attribute(&mut self, user: u64, only: Only<'_>, params: &Params) {
        let Some(loose) = self.loose.get(&user) else {
            return;
        };
        let last = loose.len().saturating_sub(1);
        let window = Params::hours(params.engagement.conversion_window_hours);
        let candidates = self.by_user.get(&user);
        let mut moves = Vec::new();
        for (n, conversion) in loose.iter().enumerate() {
            let wanted = match only {
                Only::All => true,
                Only::Last => n == last,
                Only::Item(i) => conversion.items.iter().any(|c| c == i),
            };
            if !wanted {
                continue;
            }
            let best = candidates
                .into_iter()
                .flatten()
                .filter_map(|key| {
                    let imp = &self.impressions[key];
                    let item = imp.origin.as_ref()?.item.as_deref()?;
                    if !conversion.items.iter().any(|c| c == item) {
                        return None;
                    }
                    let click = imp.derive(params)?.first_click?;
                    (0..=window)
                        .contains(&(conversion.ts - click))
                        .then_some((click, key))
                })
                .max()
                .map(|(_, key)| key.clone());
            if best != conversion.attributed {
                moves.push((n, best));
            }
        }
        for (n, best) in moves {
            let Some(conversion) = self.loose.get_mut(&user).and_then(|l| l.get_mut(n)) else {
                continue;
            };
            let old = std::mem::replace(&mut conversion.attributed, best.clone());
            let d = day(conversion.ts);
            if let Some(old) = old {
                self.change(&old, params, |imp| imp.inferred -= 1);
                *self.unattributed.entry(d).or_default() += 1;
            }
            if let Some(new) = best {
                self.change(&new, params, |imp| imp.inferred += 1);
                *self.unattributed.entry(d).or_default() -= 1;
            }
        }
    }

    /// Forgets impressions first seen before `horizon` (their counts stay: item counters
    /// until `horizon`, the others for `keep_days` days) and id-less conversions that no late
    /// click can reach any more (older than `settled`).
    pub(crate) fn prune(&mut self, horizon: i64, settled: i64, keep_days: i64) {
        let old_days: Vec<i64> = self.by_day.range(..day(horizon)).map(|(d, _)| *d).collect();
        for d in old_days {
            for key in self.by_day.remove(&d).into_iter().flatten() {
                if let Some(imp) = self.impressions.remove(&key)
                    && let Some(o) = imp.origin
                {
                    if let Some(set) = self.by_user.get_mut(&o.user) {
                        set.remove(&key);
                    }
                    if let Some(members) = o.request_id.as_ref().and_then(|l| self.lists.get_mut(l))
                    {
                        members.remove(&key);
                    }
                }
                self.pending.remove(&key);
            }
        }
        self.by_user.retain(|_, set| !set.is_empty());
        self.lists.retain(|_, members| !members.is_empty());
        self.loose.retain(|_, list| {
            list.retain(|c| c.ts >= settled);
            !list.is_empty()
        });
        // Impressions that only ever received conversions are not in `by_day`.
        self.impressions
            .retain(|_, imp| imp.origin.is_some() || imp.conversions.iter().any(|&t| t >= horizon));
        self.counters.prune(day(horizon), day(horizon) - keep_days);
        let keep_from = day(horizon) - keep_days;
        self.unattributed = self.unattributed.split_off(&keep_from);
    }

    /// Unlinks the user from their impressions and forgets their id-less conversions; the
    /// aggregate counts they contributed stay.
    pub(crate) fn remove_user(&mut self, user: u64) {
        for key in self.by_user.remove(&user).into_iter().flatten() {
            if let Some(o) = self
                .impressions
                .get_mut(&key)
                .and_then(|i| i.origin.as_mut())
            {
                o.user = 0;
            }
        }
        self.loose.remove(&user);
    }

    pub(crate) fn len(&self) -> usize {
        self.impressions.len()
    }

    /// How often each item was shown to the user and how often they clicked it.
    pub(crate) fn exposure(&self, user: u64, params: &Params) -> FastMap<&str, (u32, u32)> {
        let mut seen: FastMap<&str, (u32, u32)> = FastMap::default();
        for key in self.by_user.get(&user).into_iter().flatten() {
            let imp = &self.impressions[key];
            let (Some(item), Some(d)) = (
                imp.origin.as_ref().and_then(|o| o.item.as_deref()),
                imp.derive(params),
            ) else {
                continue;
            };
            let e = seen.entry(item).or_default();
            e.0 += 1;
            e.1 += u32::from(d.clicked());
        }
        seen
    }

    /// Exported feedback: every impression whose click window has closed by `as_of`, once,
    /// and again whenever its labels change later (a late conversion).
    pub(crate) fn finalise(&mut self, as_of: i64, params: &Params) -> Vec<Feedback> {
        let window = Params::hours(params.engagement.click_window_hours);
        let mut out = Vec::new();
        let mut done = Vec::new();
        for key in &self.pending {
            let Some(imp) = self.impressions.get(key) else {
                done.push(key.clone());
                continue;
            };
            let Some(d) = imp.derive(params) else {
                done.push(key.clone());
                continue;
            };
            if d.first_seen + window > as_of {
                continue;
            }
            let labels = Labels {
                clicked: d.clicked(),
                converted: d.converted(),
            };
            if imp.emitted != Some(labels) {
                out.push(Feedback {
                    recommender: imp
                        .origin
                        .as_ref()
                        .and_then(|o| o.recommender.as_deref().map(str::to_owned)),
                    record: record(key, imp, &d),
                });
            }
            done.push(key.clone());
        }
        for key in done {
            if let Some(imp) = self.impressions.get_mut(&key)
                && let Some(d) = imp.derive(params)
            {
                imp.emitted = Some(Labels {
                    clicked: d.clicked(),
                    converted: d.converted(),
                });
            }
            self.pending.remove(&key);
        }
        out.sort_by(|a, b| {
            let t = |f: &Feedback| f.record["first_seen"].as_str().map(str::to_owned);
            t(a).cmp(&t(b)).then_with(|| {
                a.record["impression_id"]
                    .as_str()
                    .cmp(&b.record["impression_id"].as_str())
            })
        });
        out
    }

    /// Records labels exported by an earlier run (see [`super::Engine::exported`]).
    pub(crate) fn exported(&mut self, labels: impl IntoIterator<Item = (String, bool, bool)>) {
        for (id, clicked, converted) in labels {
            if let Some(imp) = self.impressions.get_mut(id.as_str()) {
                imp.emitted = Some(Labels { clicked, converted });
            }
        }
    }

    /// Marks impressions' feedback as not exported (see [`super::Engine::offer_again`]).
    pub(crate) fn offer_again<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        for id in ids {
            let Some(key) = self.impressions.get_key_value(id).map(|(k, _)| k.clone()) else {
                continue;
            };
            if let Some(imp) = self.impressions.get_mut(&key) {
                imp.emitted = None;
            }
            self.pending.insert(key);
        }
    }

    /// `GET /v1/engagement/summary`.
    pub(crate) fn summary(&self, q: &SummaryQuery, params: &Params) -> Value {
        let unattributed = self
            .unattributed
            .range(q.filter.from..=q.filter.to)
            .map(|(_, n)| n)
            .sum();
        self.counters
            .summary(q, params.engagement.wilson_z, unattributed)
    }

    /// `GET /v1/engagement/items`.
    pub(crate) fn items(&self, q: &ItemsQuery, params: &Params) -> Value {
        self.counters.items(q, params.engagement.wilson_z)
    }

    /// `GET /v1/engagement/click-positions`.
    pub(crate) fn click_positions(&self, filter: &Filter) -> Value {
        self.counters.click_positions(filter)
    }

    /// `GET /v1/engagement/daily`.
    pub(crate) fn daily(&self, filter: &Filter, params: &Params) -> Value {
        self.counters.daily(filter, params.engagement.wilson_z)
    }

    /// Per item: the Wilson lower bound of its CTR over the retained days, the recommender's
    /// measure of how well an item engages.
    pub(crate) fn item_quality(&self, params: &Params) -> FastMap<String, f64> {
        self.counters.item_quality(params.engagement.wilson_z)
    }

    /// `GET /v1/engagement/impressions/{id}`.
    pub(crate) fn impression(&self, id: &str, params: &Params) -> Option<Value> {
        let (key, imp) = self.impressions.get_key_value(id)?;
        let d = imp.derive(params)?;
        Some(record(key, imp, &d))
    }
}

fn record(key: &str, imp: &Impression, d: &Derived) -> Value {
    let o = imp.origin.as_ref();
    let field = |f: fn(&Origin) -> Option<&Arc<str>>| o.and_then(f).map(|s| s.to_string());
    json!({
        "impression_id": key,
        "recommender": field(|o| o.recommender.as_ref()),
        "surface": field(|o| o.surface.as_ref()),
        "item": field(|o| o.item.as_ref()),
        "request_id": field(|o| o.request_id.as_ref()),
        "position": o.and_then(|o| o.position),
        "first_seen": Timestamp(d.first_seen),
        "viewed": true,
        "implied_view": d.implied,
        "clicked": d.clicked(),
        "click_events": d.click_events,
        "late_click_events": d.late_click_events,
        "first_click": d.first_click.map(Timestamp),
        "converted": d.converted(),
        "conversion": if d.direct { json!("direct") } else if d.inferred { json!("inferred") } else { Value::Null },
    })
}

/// One feedback record: an impression's labels as exported to its recommender.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub recommender: Option<String>,
    pub record: Value,
}
