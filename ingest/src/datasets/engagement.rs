//! Recommendation engagement (spec §5.3.5). Each impression keeps the *set* of its views,
//! clicks and direct conversions, and every metric is derived from those sets when read, so
//! arrival order never matters. Conversions without an impression id are attributed to the
//! same user's most recent valid click on the same item (last click); the attribution is
//! recomputed whenever that user's clicks on the item change.

use std::collections::BTreeMap;
use std::sync::Arc;

use schema::Timestamp;
use serde_json::{Map, Value, json};

use super::params::{DAY_MS, Params};
use super::{FastMap, FastSet, Input};

/// The fields of the event that created an impression (its earliest view or click).
#[derive(Debug, Clone)]
struct Origin {
    ts: i64,
    event_id: String,
    user: u64,
    recommender: Option<String>,
    surface: Option<String>,
    item: Option<String>,
    request_id: Option<String>,
    position: Option<u32>,
}

#[derive(Debug, Default)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// A conversion without an impression id, waiting for (or attributed to) a click.
#[derive(Debug)]
struct Loose {
    ts: i64,
    items: Vec<String>,
    attributed: Option<Arc<str>>,
}

#[derive(Debug, Default)]
pub(crate) struct Engagement {
    impressions: FastMap<Arc<str>, Impression>,
    /// Impressions by the UTC day of their first sight.
    by_day: BTreeMap<i64, FastSet<Arc<str>>>,
    by_user: FastMap<u64, FastSet<Arc<str>>>,
    loose: FastMap<u64, Vec<Loose>>,
    /// Conversions no click explains, by UTC day of the conversion.
    unattributed: BTreeMap<i64, i64>,
    /// Impressions whose feedback may be due: not yet exported, or changed since.
    pending: FastSet<Arc<str>>,
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

impl Engagement {
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
        let imp = self.impressions.entry(key.clone()).or_default();
        let old_day = imp.first_seen().map(day);
        let old_click = imp.derive(params).and_then(|d| d.first_click);
        let mut old_user = None;
        match role {
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
                    old_user = imp.origin.as_ref().map(|o| o.user).filter(|&u| u != user);
                    imp.origin = Some(Origin {
                        ts: input.ts,
                        event_id: input.event_id.clone(),
                        user,
                        recommender: input.recommender.clone(),
                        surface: input.surface.clone(),
                        item: input.item(),
                        request_id: input.request_id.clone(),
                        position: input.position,
                    });
                }
            }
        }
        let new_day = imp.first_seen().map(day);
        let new_click = imp.derive(params).and_then(|d| d.first_click);
        let (user, item) = imp
            .origin
            .as_ref()
            .map_or((None, None), |o| (Some(o.user), o.item.clone()));
        if old_day != new_day {
            if let Some(d) = old_day {
                if let Some(set) = self.by_day.get_mut(&d) {
                    set.remove(&key);
                }
            }
            if let Some(d) = new_day {
                self.by_day.entry(d).or_default().insert(key.clone());
            }
        }
        if let Some(old) = old_user {
            if let Some(set) = self.by_user.get_mut(&old) {
                set.remove(&key);
            }
            self.attribute(old, Only::All, params);
        }
        if let Some(user) = user {
            self.by_user.entry(user).or_default().insert(key.clone());
        }
        self.pending.insert(key);
        // Attribution reads only first clicks: nothing else can move a conversion.
        if let (Some(user), Some(item), true) = (user, item, old_click != new_click) {
            self.attribute(user, Only::Item(&item), params);
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
        let Some(loose) = self.loose.get_mut(&user) else {
            return;
        };
        let last = loose.len().saturating_sub(1);
        let window = Params::hours(params.engagement.conversion_window_hours);
        let candidates = self.by_user.get(&user);
        for (n, conversion) in loose.iter_mut().enumerate() {
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
                    let origin_item = imp.origin.as_ref()?.item.as_ref()?;
                    if !conversion.items.contains(origin_item) {
                        return None;
                    }
                    let click = imp.derive(params)?.first_click?;
                    (0..=window)
                        .contains(&(conversion.ts - click))
                        .then_some((click, key))
                })
                .max()
                .map(|(_, key)| key.clone());
            if best == conversion.attributed {
                continue;
            }
            let d = day(conversion.ts);
            if let Some(old) = conversion.attributed.take() {
                if let Some(imp) = self.impressions.get_mut(&old) {
                    imp.inferred -= 1;
                }
                self.pending.insert(old);
                *self.unattributed.entry(d).or_default() += 1;
            }
            if let Some(new) = &best {
                if let Some(imp) = self.impressions.get_mut(new) {
                    imp.inferred += 1;
                }
                self.pending.insert(new.clone());
                *self.unattributed.entry(d).or_default() -= 1;
            }
            conversion.attributed = best;
        }
    }

    /// Forgets impressions first seen before `horizon` and id-less conversions that no
    /// late click can reach any more (older than `settled`).
    pub(crate) fn prune(&mut self, horizon: i64, settled: i64) {
        let old_days: Vec<i64> = self.by_day.range(..day(horizon)).map(|(d, _)| *d).collect();
        for d in old_days {
            for key in self.by_day.remove(&d).into_iter().flatten() {
                if let Some(imp) = self.impressions.remove(&key) {
                    if let Some(o) = imp.origin {
                        if let Some(set) = self.by_user.get_mut(&o.user) {
                            set.remove(&key);
                        }
                    }
                }
                self.pending.remove(&key);
            }
        }
        self.by_user.retain(|_, set| !set.is_empty());
        self.loose.retain(|_, list| {
            list.retain(|c| c.ts >= settled);
            !list.is_empty()
        });
        // Impressions that only ever received conversions are not in `by_day`.
        self.impressions
            .retain(|_, imp| imp.origin.is_some() || imp.conversions.iter().any(|&t| t >= horizon));
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
                    recommender: imp.origin.as_ref().and_then(|o| o.recommender.clone()),
                    record: record(key, imp, &d),
                });
            }
            done.push(key.clone());
        }
        for key in done {
            if let Some(imp) = self.impressions.get_mut(&key) {
                if let Some(d) = imp.derive(params) {
                    imp.emitted = Some(Labels {
                        clicked: d.clicked(),
                        converted: d.converted(),
                    });
                }
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

    /// `GET /v1/engagement/impressions/{id}`.
    pub(crate) fn impression(&self, id: &str, params: &Params) -> Option<Value> {
        let (key, imp) = self.impressions.get_key_value(id)?;
        let d = imp.derive(params)?;
        Some(record(key, imp, &d))
    }

    /// The created impressions with first sight in `[from, to]` (UTC days) that pass `filter`.
    fn select<'a>(
        &'a self,
        filter: &'a Filter,
        params: &'a Params,
    ) -> impl Iterator<Item = (&'a Origin, Derived)> + 'a {
        self.by_day
            .range(filter.from..=filter.to)
            .flat_map(|(_, keys)| keys)
            .filter_map(move |key| {
                let imp = &self.impressions[key];
                let origin = imp.origin.as_ref()?;
                let matches = |want: &Option<String>, have: &Option<String>| {
                    want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
                };
                if !matches(&filter.recommender, &origin.recommender)
                    || !matches(&filter.surface, &origin.surface)
                {
                    return None;
                }
                Some((origin, imp.derive(params)?))
            })
    }

    /// `GET /v1/engagement/summary`.
    pub(crate) fn summary(&self, q: &SummaryQuery, params: &Params) -> Value {
        let z = params.engagement.wilson_z;
        let mut groups: BTreeMap<Option<&str>, Counts<'_>> = BTreeMap::new();
        let mut totals = Counts::default();
        for (origin, d) in self.select(&q.filter, params) {
            let key = match q.group_by {
                GroupBy::Recommender => origin.recommender.as_deref(),
                GroupBy::Surface => origin.surface.as_deref(),
                GroupBy::Item => origin.item.as_deref(),
            };
            groups.entry(key).or_default().add(origin, &d);
            totals.add(origin, &d);
        }
        let mut rows: Vec<(Option<&str>, Counts<'_>)> = groups.into_iter().collect();
        rows.sort_by(|a, b| b.1.impressions.cmp(&a.1.impressions).then(a.0.cmp(&b.0)));
        let rows: Vec<Value> = rows
            .iter()
            .map(|(key, c)| {
                let mut row = Map::new();
                row.insert(q.group_by.name().into(), json!(key));
                row.extend(c.to_json(z));
                Value::Object(row)
            })
            .collect();
        let unattributed: i64 = self
            .unattributed
            .range(q.filter.from..=q.filter.to)
            .map(|(_, n)| n)
            .sum();
        let mut totals = totals.to_json(z);
        totals.insert("unattributed_conversions".into(), json!(unattributed));
        json!({
            "from": date(q.filter.from),
            "to": date(q.filter.to),
            "group_by": q.group_by.name(),
            "rows": rows,
            "totals": totals,
        })
    }

    /// `GET /v1/engagement/items`.
    pub(crate) fn items(&self, q: &ItemsQuery, params: &Params) -> Value {
        let z = params.engagement.wilson_z;
        let mut groups: FastMap<&str, Counts<'_>> = FastMap::default();
        for (origin, d) in self.select(&q.filter, params) {
            if let Some(item) = origin.item.as_deref() {
                groups.entry(item).or_default().add(origin, &d);
            }
        }
        let mut rows: Vec<(&str, Map<String, Value>, &Counts<'_>)> = groups
            .iter()
            .map(|(item, c)| {
                let mut row = Map::new();
                row.insert("item".into(), json!(item));
                let all = c.to_json(z);
                for field in [
                    "impressions",
                    "clicked_impressions",
                    "click_events",
                    "ctr",
                    "ctr_lower_bound",
                    "converted_impressions",
                    "cvr",
                ] {
                    row.insert(field.into(), all[field].clone());
                }
                (*item, row, c)
            })
            .collect();
        let sort = q.sort.as_str();
        let value = |row: &Map<String, Value>| row[sort].as_f64().unwrap_or(f64::NEG_INFINITY);
        rows.sort_by(|a, b| {
            value(&b.1)
                .total_cmp(&value(&a.1))
                .then(b.2.impressions.cmp(&a.2.impressions))
                .then(a.0.cmp(b.0))
        });
        rows.truncate(q.limit);
        json!({
            "recommender": q.filter.recommender,
            "sort": sort,
            "rows": rows.into_iter().map(|(_, row, _)| Value::Object(row)).collect::<Vec<_>>(),
        })
    }

    /// `GET /v1/engagement/click-positions`: first clicks per impression, by position.
    pub(crate) fn click_positions(&self, filter: &Filter, params: &Params) -> Value {
        let mut positions: BTreeMap<u32, u32> = BTreeMap::new();
        for (origin, d) in self.select(filter, params) {
            if let (true, Some(p)) = (d.clicked(), origin.position) {
                *positions.entry(p).or_default() += 1;
            }
        }
        json!({
            "recommender": filter.recommender,
            "from": date(filter.from),
            "to": date(filter.to),
            "positions": positions
                .into_iter()
                .map(|(position, clicks)| json!({"position": position, "clicks": clicks}))
                .collect::<Vec<_>>(),
        })
    }

    /// `GET /v1/engagement/daily`: CTR per recommender and day, for the dashboard's chart.
    pub(crate) fn daily(&self, filter: &Filter, params: &Params) -> Value {
        let z = params.engagement.wilson_z;
        let mut groups: BTreeMap<(i64, Option<&str>), Counts<'_>> = BTreeMap::new();
        for (origin, d) in self.select(filter, params) {
            groups
                .entry((day(d.first_seen), origin.recommender.as_deref()))
                .or_default()
                .add(origin, &d);
        }
        let rows: Vec<Value> = groups
            .iter()
            .map(|((d, recommender), c)| {
                let all = c.to_json(z);
                json!({
                    "date": date(*d),
                    "recommender": recommender,
                    "impressions": all["impressions"],
                    "clicked_impressions": all["clicked_impressions"],
                    "ctr": all["ctr"],
                    "ctr_lower_bound": all["ctr_lower_bound"],
                })
            })
            .collect();
        json!({ "from": date(filter.from), "to": date(filter.to), "rows": rows })
    }

    /// Per item: the Wilson lower bound of its CTR over every retained impression, the
    /// recommender's measure of how well an item engages.
    pub(crate) fn item_quality(&self, params: &Params) -> FastMap<String, f64> {
        let mut counts: FastMap<&str, (u32, u32)> = FastMap::default();
        for imp in self.impressions.values() {
            let (Some(item), Some(d)) = (
                imp.origin.as_ref().and_then(|o| o.item.as_deref()),
                imp.derive(params),
            ) else {
                continue;
            };
            let c = counts.entry(item).or_default();
            c.0 += u32::from(d.clicked());
            c.1 += 1;
        }
        counts
            .into_iter()
            .filter_map(|(item, (k, n))| {
                Some((item.to_owned(), wilson(k, n, params.engagement.wilson_z)?))
            })
            .collect()
    }
}

fn record(key: &str, imp: &Impression, d: &Derived) -> Value {
    let o = imp.origin.as_ref();
    let field = |f: fn(&Origin) -> Option<&String>| o.and_then(f).cloned();
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

/// Wilson score interval's lower bound for `k` successes in `n` trials (`None` when n = 0).
pub fn wilson(k: u32, n: u32, z: f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let (k, n) = (f64::from(k), f64::from(n));
    let p = k / n;
    let z2 = z * z;
    Some(
        (p + z2 / (2.0 * n) - z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt()) / (1.0 + z2 / n),
    )
}

#[derive(Debug, Default)]
struct Counts<'a> {
    impressions: u32,
    implied: u32,
    clicked: u32,
    click_events: u32,
    late_click_events: u32,
    converted: u32,
    inferred: u32,
    clicked_converted: u32,
    position_sum: f64,
    positions: u32,
    lists: FastSet<&'a str>,
    clicked_lists: FastSet<&'a str>,
}

impl<'a> Counts<'a> {
    fn add(&mut self, origin: &'a Origin, d: &Derived) {
        self.impressions += 1;
        self.implied += u32::from(d.implied);
        self.click_events += d.click_events;
        self.late_click_events += d.late_click_events;
        if d.clicked() {
            self.clicked += 1;
            if let Some(p) = origin.position {
                self.position_sum += f64::from(p);
                self.positions += 1;
            }
        }
        if d.converted() {
            self.converted += 1;
            self.inferred += u32::from(!d.direct);
            self.clicked_converted += u32::from(d.clicked());
        }
        if let Some(list) = origin.request_id.as_deref() {
            self.lists.insert(list);
            if d.clicked() {
                self.clicked_lists.insert(list);
            }
        }
    }

    fn to_json(&self, z: f64) -> Map<String, Value> {
        let ratio = |a: u32, b: u32| (b > 0).then(|| f64::from(a) / f64::from(b));
        let (lists, clicked_lists) = (self.lists.len() as u32, self.clicked_lists.len() as u32);
        let value = json!({
            "impressions": self.impressions,
            "implied_views": self.implied,
            "clicked_impressions": self.clicked,
            "click_events": self.click_events,
            "late_click_events": self.late_click_events,
            "ctr": ratio(self.clicked, self.impressions),
            "ctr_lower_bound": wilson(self.clicked, self.impressions, z),
            "converted_impressions": self.converted,
            "conversions_inferred": self.inferred,
            "cvr": ratio(self.converted, self.impressions),
            "post_click_cvr": ratio(self.clicked_converted, self.clicked),
            "avg_click_position": (self.positions > 0).then(|| self.position_sum / f64::from(self.positions)),
            "lists": lists,
            "clicked_lists": clicked_lists,
            "list_ctr": ratio(clicked_lists, lists),
        });
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// UTC days (since the epoch) and optional recommender/surface.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    pub recommender: Option<String>,
    pub surface: Option<String>,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupBy {
    Recommender,
    Surface,
    Item,
}

impl GroupBy {
    pub(crate) fn parse(s: &str) -> Option<GroupBy> {
        match s {
            "recommender" => Some(GroupBy::Recommender),
            "surface" => Some(GroupBy::Surface),
            "item" => Some(GroupBy::Item),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            GroupBy::Recommender => "recommender",
            GroupBy::Surface => "surface",
            GroupBy::Item => "item",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SummaryQuery {
    pub group_by: GroupBy,
    pub filter: Filter,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ItemsQuery {
    pub filter: Filter,
    pub sort: String,
    pub limit: usize,
}

/// Fields `GET /v1/engagement/items` can sort by.
pub const ITEM_SORTS: [&str; 7] = [
    "ctr_lower_bound",
    "ctr",
    "impressions",
    "clicked_impressions",
    "click_events",
    "converted_impressions",
    "cvr",
];

/// `YYYY-MM-DD` of a UTC day number.
pub(crate) fn date(day: i64) -> String {
    let t = Timestamp::saturating(day.saturating_mul(DAY_MS)).to_string();
    t.get(..10).unwrap_or(&t).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_lower_bounds_match_the_spec() {
        for (k, n, expected) in [
            (1, 1, 0.206543),
            (1, 2, 0.094529),
            (1, 3, 0.061490),
            (3, 6, 0.187613),
            (2, 4, 0.150036),
        ] {
            let lb = wilson(k, n, 1.96).unwrap();
            assert!((lb - expected).abs() <= 1e-6, "({k},{n}) → {lb}");
        }
        assert_eq!(wilson(0, 0, 1.96), None);
    }
}
