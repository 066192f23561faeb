//! Per-day engagement counters, kept current as impressions change, so that reports read
//! O(days × groups) counters rather than every impression.
//!
//! Every impression adds a [`Tally`] to two cells: the fine cell of its (day, recommender,
//! surface, item) and the coarse cell of its (day, recommender, surface). A change to an
//! impression subtracts its old contribution and adds its new one, so the counters always
//! equal what a scan of the impressions would give. Lists (`request_id`) are counted in the
//! coarse cell of their earliest member; fine cells count list memberships instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use schema::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::super::FastMap;
use super::super::params::DAY_MS;

/// Counts one impression adds (or a cell holds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Tally {
    pub impressions: i64,
    pub implied: i64,
    pub clicked: i64,
    pub click_events: i64,
    pub late_click_events: i64,
    pub converted: i64,
    pub inferred: i64,
    pub clicked_converted: i64,
    pub position_sum: i64,
    pub positions: i64,
    /// Impressions that belong to a list, and those of them clicked.
    pub listed: i64,
    pub clicked_listed: i64,
}

impl Tally {
    fn add(&mut self, o: &Tally, sign: i64) {
        self.impressions += sign * o.impressions;
        self.implied += sign * o.implied;
        self.clicked += sign * o.clicked;
        self.click_events += sign * o.click_events;
        self.late_click_events += sign * o.late_click_events;
        self.converted += sign * o.converted;
        self.inferred += sign * o.inferred;
        self.clicked_converted += sign * o.clicked_converted;
        self.position_sum += sign * o.position_sum;
        self.positions += sign * o.positions;
        self.listed += sign * o.listed;
        self.clicked_listed += sign * o.clicked_listed;
    }
}

/// Who an impression or list counts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Place {
    pub day: i64,
    pub recommender: Option<Arc<str>>,
    pub surface: Option<Arc<str>>,
}

/// What one impression adds: its place, item, counts, and the position of its first click.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Contribution {
    pub place: Place,
    pub item: Option<Arc<str>>,
    pub tally: Tally,
    pub clicked_position: Option<u32>,
}

/// What one list adds: one list to its place, clicked or not.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ListShare {
    pub place: Place,
    pub clicked: bool,
}

type GroupKey = (Option<Arc<str>>, Option<Arc<str>>);
type ItemKey = (Option<Arc<str>>, Option<Arc<str>>, Option<Arc<str>>);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Coarse {
    tally: Tally,
    lists: i64,
    clicked_lists: i64,
    /// First-click position → clicked impressions.
    positions: BTreeMap<u32, i64>,
}

impl Coarse {
    fn is_empty(&self) -> bool {
        self.tally == Tally::default() && self.lists == 0 && self.positions.is_empty()
    }

    fn add(&mut self, o: &Coarse) {
        self.tally.add(&o.tally, 1);
        self.lists += o.lists;
        self.clicked_lists += o.clicked_lists;
        for (p, n) in &o.positions {
            *self.positions.entry(*p).or_default() += n;
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Counters {
    /// Day → (recommender, surface) → counts.
    coarse: BTreeMap<i64, FastMap<GroupKey, Coarse>>,
    /// Day → (recommender, surface, item) → counts.
    fine: BTreeMap<i64, FastMap<ItemKey, Tally>>,
}

fn group_key(p: &Place) -> GroupKey {
    (p.recommender.clone(), p.surface.clone())
}

impl Counters {
    pub(super) fn apply(&mut self, c: &Contribution, sign: i64) {
        let day = self.coarse.entry(c.place.day).or_default();
        let key = group_key(&c.place);
        let cell = day.entry(key.clone()).or_default();
        cell.tally.add(&c.tally, sign);
        if let Some(p) = c.clicked_position {
            let n = cell.positions.entry(p).or_default();
            *n += sign;
            if *n == 0 {
                cell.positions.remove(&p);
            }
        }
        if cell.is_empty() {
            day.remove(&key);
        }
        let day = self.fine.entry(c.place.day).or_default();
        let key = (
            c.place.recommender.clone(),
            c.place.surface.clone(),
            c.item.clone(),
        );
        let cell = day.entry(key.clone()).or_default();
        cell.add(&c.tally, sign);
        if *cell == Tally::default() {
            day.remove(&key);
        }
    }

    pub(super) fn apply_list(&mut self, l: &ListShare, sign: i64) {
        let day = self.coarse.entry(l.place.day).or_default();
        let key = group_key(&l.place);
        let cell = day.entry(key.clone()).or_default();
        cell.lists += sign;
        cell.clicked_lists += sign * i64::from(l.clicked);
        if cell.is_empty() {
            day.remove(&key);
        }
    }

    /// Forgets item-level counters of days before `fine_from` and the rest before
    /// `coarse_from`.
    pub(super) fn prune(&mut self, fine_from: i64, coarse_from: i64) {
        self.fine = self.fine.split_off(&fine_from);
        self.coarse = self.coarse.split_off(&coarse_from);
        self.fine.retain(|_, cells| !cells.is_empty());
        self.coarse.retain(|_, cells| !cells.is_empty());
    }

    fn coarse_cells<'a>(
        &'a self,
        f: &'a Filter,
    ) -> impl Iterator<Item = (i64, &'a GroupKey, &'a Coarse)> + 'a {
        self.coarse
            .range(f.from..=f.to)
            .flat_map(|(day, cells)| cells.iter().map(move |(k, c)| (*day, k, c)))
            .filter(|(_, (r, s), _)| f.matches(r, s))
    }

    fn fine_cells<'a>(
        &'a self,
        f: &'a Filter,
    ) -> impl Iterator<Item = (i64, &'a ItemKey, &'a Tally)> + 'a {
        self.fine
            .range(f.from..=f.to)
            .flat_map(|(day, cells)| cells.iter().map(move |(k, c)| (*day, k, c)))
            .filter(|(_, (r, s, _), _)| f.matches(r, s))
    }

    /// `GET /v1/engagement/summary`.
    pub(super) fn summary(&self, q: &SummaryQuery, z: f64, unattributed: i64) -> Value {
        let mut totals = Coarse::default();
        for (_, _, cell) in self.coarse_cells(&q.filter) {
            totals.add(cell);
        }
        let mut groups: BTreeMap<Option<Arc<str>>, Coarse> = BTreeMap::new();
        match q.group_by {
            GroupBy::Recommender | GroupBy::Surface => {
                for (_, (r, s), cell) in self.coarse_cells(&q.filter) {
                    let key = if q.group_by == GroupBy::Recommender {
                        r
                    } else {
                        s
                    };
                    groups.entry(key.clone()).or_default().add(cell);
                }
            }
            GroupBy::Item => {
                for (_, (_, _, item), tally) in self.fine_cells(&q.filter) {
                    let group = groups.entry(item.clone()).or_default();
                    group.tally.add(tally, 1);
                    // An item's lists are the lists it was shown in.
                    group.lists += tally.listed;
                    group.clicked_lists += tally.clicked_listed;
                }
            }
        }
        let mut rows: Vec<(Option<Arc<str>>, Coarse)> = groups.into_iter().collect();
        rows.sort_by(|a, b| {
            b.1.tally
                .impressions
                .cmp(&a.1.tally.impressions)
                .then(a.0.cmp(&b.0))
        });
        let rows: Vec<Value> = rows
            .iter()
            .map(|(key, c)| {
                let mut row = Map::new();
                row.insert(q.group_by.name().into(), json!(key.as_deref()));
                row.extend(report(c, z));
                Value::Object(row)
            })
            .collect();
        let mut totals = report(&totals, z);
        totals.insert("unattributed_conversions".into(), json!(unattributed));
        json!({
            "from": date(q.filter.from),
            "to": date(q.filter.to),
            "group_by": q.group_by.name(),
            "rows": rows,
            "totals": totals,
        })
    }

    /// `GET /v1/engagement/items`: ranked on numbers, and only the rows returned are
    /// written as JSON.
    pub(super) fn items(&self, q: &ItemsQuery, z: f64) -> Value {
        let mut groups: FastMap<&str, Tally> = FastMap::default();
        for (_, (_, _, item), tally) in self.fine_cells(&q.filter) {
            if let Some(item) = item.as_deref() {
                groups.entry(item).or_default().add(tally, 1);
            }
        }
        let sort = q.sort.as_str();
        let ratio = |a: i64, b: i64| {
            if b > 0 {
                a as f64 / b as f64
            } else {
                f64::NEG_INFINITY
            }
        };
        let key = |t: &Tally| match sort {
            "ctr" => ratio(t.clicked, t.impressions),
            "impressions" => t.impressions as f64,
            "clicked_impressions" => t.clicked as f64,
            "click_events" => t.click_events as f64,
            "converted_impressions" => t.converted as f64,
            "cvr" => ratio(t.converted, t.impressions),
            _ => wilson(t.clicked, t.impressions, z).unwrap_or(f64::NEG_INFINITY),
        };
        let mut rows: Vec<(&str, f64, &Tally)> =
            groups.iter().map(|(item, t)| (*item, key(t), t)).collect();
        let order = |a: &(&str, f64, &Tally), b: &(&str, f64, &Tally)| {
            b.1.total_cmp(&a.1)
                .then(b.2.impressions.cmp(&a.2.impressions))
                .then(a.0.cmp(b.0))
        };
        if rows.len() > q.limit && q.limit > 0 {
            rows.select_nth_unstable_by(q.limit - 1, order);
        }
        rows.truncate(q.limit);
        rows.sort_by(order);
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|(item, _, tally)| {
                let all = report(
                    &Coarse {
                        tally: *tally,
                        ..Coarse::default()
                    },
                    z,
                );
                let mut row = Map::new();
                row.insert("item".into(), json!(item));
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
                Value::Object(row)
            })
            .collect();
        json!({ "recommender": q.filter.recommender, "sort": sort, "rows": rows })
    }

    /// `GET /v1/engagement/click-positions`: first clicks per impression, by position.
    pub(super) fn click_positions(&self, f: &Filter) -> Value {
        let mut positions: BTreeMap<u32, i64> = BTreeMap::new();
        for (_, _, cell) in self.coarse_cells(f) {
            for (p, n) in &cell.positions {
                *positions.entry(*p).or_default() += n;
            }
        }
        json!({
            "recommender": f.recommender,
            "from": date(f.from),
            "to": date(f.to),
            "positions": positions
                .into_iter()
                .map(|(position, clicks)| json!({"position": position, "clicks": clicks}))
                .collect::<Vec<_>>(),
        })
    }

    /// `GET /v1/engagement/daily`: CTR per recommender and day, for the dashboard's chart.
    pub(super) fn daily(&self, f: &Filter, z: f64) -> Value {
        let mut groups: BTreeMap<(i64, Option<Arc<str>>), Coarse> = BTreeMap::new();
        for (day, (r, _), cell) in self.coarse_cells(f) {
            groups.entry((day, r.clone())).or_default().add(cell);
        }
        let rows: Vec<Value> = groups
            .iter()
            .map(|((day, recommender), c)| {
                let all = report(c, z);
                json!({
                    "date": date(*day),
                    "recommender": recommender.as_deref(),
                    "impressions": all["impressions"],
                    "clicked_impressions": all["clicked_impressions"],
                    "ctr": all["ctr"],
                    "ctr_lower_bound": all["ctr_lower_bound"],
                })
            })
            .collect();
        json!({ "from": date(f.from), "to": date(f.to), "rows": rows })
    }

    /// Per item, over every retained day: the Wilson lower bound of its CTR.
    pub(super) fn item_quality(&self, z: f64) -> FastMap<String, f64> {
        let mut counts: FastMap<&str, (i64, i64)> = FastMap::default();
        for cells in self.fine.values() {
            for ((_, _, item), tally) in cells {
                if let Some(item) = item.as_deref() {
                    let c = counts.entry(item).or_default();
                    c.0 += tally.clicked;
                    c.1 += tally.impressions;
                }
            }
        }
        counts
            .into_iter()
            .filter_map(|(item, (k, n))| Some((item.to_owned(), wilson(k, n, z)?)))
            .collect()
    }
}

/// The report fields of a group's counts.
fn report(c: &Coarse, z: f64) -> Map<String, Value> {
    let t = &c.tally;
    let ratio = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
    let value = json!({
        "impressions": t.impressions,
        "implied_views": t.implied,
        "clicked_impressions": t.clicked,
        "click_events": t.click_events,
        "late_click_events": t.late_click_events,
        "ctr": ratio(t.clicked, t.impressions),
        "ctr_lower_bound": wilson(t.clicked, t.impressions, z),
        "converted_impressions": t.converted,
        "conversions_inferred": t.inferred,
        "cvr": ratio(t.converted, t.impressions),
        "post_click_cvr": ratio(t.clicked_converted, t.clicked),
        "avg_click_position": ratio(t.position_sum, t.positions),
        "lists": c.lists,
        "clicked_lists": c.clicked_lists,
        "list_ctr": ratio(c.clicked_lists, c.lists),
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Wilson score interval's lower bound for `k` successes in `n` trials (`None` when n = 0).
pub fn wilson(k: i64, n: i64, z: f64) -> Option<f64> {
    if n <= 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = z * z;
    Some(
        (p + z2 / (2.0 * n) - z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt()) / (1.0 + z2 / n),
    )
}

/// UTC days (since the epoch) and optional recommender/surface.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Filter {
    pub recommender: Option<String>,
    pub surface: Option<String>,
    pub from: i64,
    pub to: i64,
}

impl Filter {
    fn matches(&self, recommender: &Option<Arc<str>>, surface: &Option<Arc<str>>) -> bool {
        let ok = |want: &Option<String>, have: &Option<Arc<str>>| {
            want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
        };
        ok(&self.recommender, recommender) && ok(&self.surface, surface)
    }
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
