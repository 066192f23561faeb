//! Consensus datasets (`docs/datasets.md` §4.1–4.3): per key a fast and a slow decayed sum and the users
//! who contributed, from which trending (a Poisson z-score of the fast rate against the slow
//! baseline, with a minimum of distinct users) and popular lists are materialised.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use unicode_normalization::UnicodeNormalization;

use super::decay::Decayed;
use super::params::{DAY_MS, Params};
use super::{FastMap, ordinal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Trending,
    Popular,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "trending" => Some(Mode::Trending),
            "popular" => Some(Mode::Popular),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Trending => "trending",
            Mode::Popular => "popular",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Trend {
    fast: Decayed,
    slow: Decayed,
    /// Contributing user → time of their newest contribution.
    #[serde(deserialize_with = "super::snapshot::sized_map")]
    users: FastMap<u64, i64>,
    /// Space-Saving: the most this key's sums may lack, from keys evicted to make room.
    error: f64,
    /// The consensus dedup slots of this key: hash of (bucket, user, event_type, action) →
    /// the [`Holder`] of the slot. Sixteen bytes a slot: there is one per user, key, action
    /// and hour of the lateness window, the largest of the engine's state.
    #[serde(deserialize_with = "super::snapshot::sized_map")]
    slots: FastMap<u64, u64>,
}

/// The contribution holding a dedup slot, packed in 64 bits: its event's time (ms since
/// the epoch, 42 bits, to 2109), how many entities its event's weight was split among
/// (8 bits), and 14 bits of its id's hash, which order events of the same millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Holder(u64);

impl Holder {
    fn pack(t: i64, shares: u32, id: u64) -> Option<Holder> {
        let t = u64::try_from(t).ok().filter(|&t| t < 1 << 42)?;
        let shares = u64::from(shares).max(1);
        if shares > 255 {
            return None;
        }
        Some(Holder(t << 22 | shares << 14 | (id & 0x3fff)))
    }

    fn t(self) -> i64 {
        (self.0 >> 22) as i64
    }

    fn shares(self) -> f64 {
        ((self.0 >> 14) & 0xff) as f64
    }

    /// Later events win: time first, then the id's bits.
    fn order(self) -> (u64, u64) {
        (self.0 >> 22, self.0 & 0x3fff)
    }
}

/// One event's contribution to a key, under the dedup rule: per slot, the latest event's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Contribution {
    /// Hash of (bucket, user, event_type, action).
    pub slot: u64,
    pub t: i64,
    /// The event id's hash, the same in every engine (it breaks ties between events).
    pub id: u64,
    /// The action's weight, split among `shares` entities (the same for every event of a
    /// slot, so a holder keeps only its `shares`).
    pub weight: f64,
    pub shares: u32,
    pub user: u64,
}

/// One consensus dataset: keys (entity ids of one type, content ids, or queries) and sums.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Trends {
    #[serde(deserialize_with = "super::snapshot::sized_map")]
    keys: FastMap<String, Trend>,
}

/// One key's figures at `as_of`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stat<'a> {
    pub key: &'a str,
    pub hot: f64,
    pub slow: f64,
    pub rate_fast: f64,
    pub rate_baseline: f64,
    pub z: f64,
    pub ratio: f64,
    pub users_24h: usize,
    pub users_7d: usize,
    /// The contributing users, counted only for keys that may make a list.
    users: &'a FastMap<u64, i64>,
}

impl Stat<'_> {
    /// Fills in the distinct users of the half-open 24 h and 7 d windows before `as_of`.
    fn count_users(&mut self, as_of: i64) {
        let within = |w: i64| {
            self.users
                .values()
                .filter(|&&t| t > as_of - w && t <= as_of)
                .count()
        };
        self.users_24h = within(DAY_MS);
        self.users_7d = within(7 * DAY_MS);
    }
}

impl Trends {
    /// Adds a (deduplicated) contribution. With `cap`, a new key beyond it first evicts the
    /// eighth of keys with the smallest slow sums at `t` (Space-Saving, in bulk so each
    /// event pays O(1) amortised); the newcomer inherits the largest evicted sum as its error.
    pub(crate) fn add(
        &mut self,
        key: &str,
        weight: f64,
        t: i64,
        user: u64,
        params: &Params,
        cap: Option<usize>,
    ) {
        let c = &params.consensus;
        let (fast_h, slow_h) = (
            Params::hours(c.half_life_fast_hours),
            Params::hours(c.half_life_slow_hours),
        );
        let mut error = 0.0;
        if let Some(cap) = cap
            && self.keys.len() >= cap
            && !self.keys.contains_key(key)
        {
            error = self.evict(cap - cap / 8, t, slow_h);
        }
        let trend = self.keys.entry(key.to_owned()).or_default();
        trend.error = trend.error.max(error);
        trend.fast.add(weight, t, fast_h);
        trend.slow.add(weight, t, slow_h);
        let last = trend.users.entry(user).or_insert(t);
        *last = (*last).max(t);
    }

    /// Adds a contribution unless a later event holds its dedup slot; one it replaces is
    /// taken back. Beyond `cap` keys, a new key evicts as in [`Trends::add`].
    /// An event that cannot be packed (a time before 1970, more than 255 entities) counts
    /// without a slot.
    pub(crate) fn contribute(&mut self, key: &str, c: Contribution, params: &Params, cap: usize) {
        let share = c.weight / f64::from(c.shares.max(1));
        let Some(me) = Holder::pack(c.t, c.shares, c.id) else {
            self.add(key, share, c.t, c.user, params, Some(cap));
            return;
        };
        let held = self
            .keys
            .get(key)
            .and_then(|trend| trend.slots.get(&c.slot));
        if held.is_some_and(|&held| Holder(held).order() >= me.order()) {
            return;
        }
        self.add(key, share, c.t, c.user, params, Some(cap));
        let Some(trend) = self.keys.get_mut(key) else {
            return;
        };
        if let Some(replaced) = trend.slots.insert(c.slot, me.0) {
            let replaced = Holder(replaced);
            let (t, weight) = (replaced.t(), c.weight / replaced.shares());
            let h = &params.consensus;
            trend
                .fast
                .add(-weight, t, Params::hours(h.half_life_fast_hours));
            trend
                .slow
                .add(-weight, t, Params::hours(h.half_life_slow_hours));
        }
    }

    /// Shrinks to `keep` keys, dropping the smallest slow sums; returns the largest dropped.
    fn evict(&mut self, keep: usize, t: i64, slow_h: i64) -> f64 {
        let mut sums: Vec<(f64, String)> = self
            .keys
            .iter()
            .map(|(k, v)| (v.slow.at(t, slow_h), k.clone()))
            .collect();
        let drop = sums.len().saturating_sub(keep);
        if drop == 0 {
            return 0.0;
        }
        sums.select_nth_unstable_by(drop - 1, |a, b| a.0.total_cmp(&b.0));
        let mut largest = 0.0_f64;
        for (sum, key) in &sums[..drop] {
            largest = largest.max(*sum);
            self.keys.remove(key);
        }
        largest
    }

    /// Forgets users whose last contribution is older than `horizon`, dedup slots held by
    /// events before `slots_from` (the start of the oldest bucket late events can reach), and
    /// keys with no such user left and a negligible slow sum.
    pub(crate) fn prune(&mut self, horizon: i64, now: i64, slow_h: i64, slots_from: i64) {
        self.keys.retain(|_, trend| {
            trend.users.retain(|_, &mut last| last >= horizon);
            trend
                .slots
                .retain(|_, held| Holder(*held).t() >= slots_from);
            !trend.users.is_empty() || trend.slow.at(now, slow_h) >= 1e-3
        });
    }

    pub(crate) fn remove_user(&mut self, user: u64) {
        for trend in self.keys.values_mut() {
            trend.users.remove(&user);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// (user, key) pairs held for the distinct-user counts, over every key.
    pub(crate) fn user_entries(&self) -> usize {
        self.keys.values().map(|t| t.users.len()).sum()
    }

    /// Dedup slots held, over every key.
    pub(crate) fn slots(&self) -> usize {
        self.keys.values().map(|t| t.slots.len()).sum()
    }

    /// Every key's figures at `as_of`, users not yet counted (see [`rank`]).
    pub(crate) fn stats(&self, as_of: i64, params: &Params) -> Vec<Stat<'_>> {
        let c = &params.consensus;
        let (fast_h, slow_h) = (
            Params::hours(c.half_life_fast_hours),
            Params::hours(c.half_life_slow_hours),
        );
        let ln2 = std::f64::consts::LN_2;
        self.keys
            .iter()
            .map(|(key, trend)| {
                let hot = trend.fast.at(as_of, fast_h);
                let slow = trend.slow.at(as_of, slow_h);
                let rate_fast = hot * ln2 / c.half_life_fast_hours;
                let rate_baseline = slow * ln2 / c.half_life_slow_hours;
                let r0 = c.rate_prior_r0;
                Stat {
                    key,
                    hot,
                    slow,
                    rate_fast,
                    rate_baseline,
                    z: (rate_fast - rate_baseline) / (rate_baseline + r0).sqrt(),
                    ratio: (rate_fast + r0) / (rate_baseline + r0),
                    users_24h: 0,
                    users_7d: 0,
                    users: &trend.users,
                }
            })
            .collect()
    }
}

/// The ranked list of one mode, at most `top_n` long. Keys are ordered on their sums first,
/// and users are counted (the costly part: a popular key has many) only down the list until
/// it is full, so materialising stays cheap however many users there are.
pub(crate) fn rank<'a>(
    mut stats: Vec<Stat<'a>>,
    mode: Mode,
    min_users: usize,
    as_of: i64,
    params: &Params,
) -> Vec<Stat<'a>> {
    let z_min = params.consensus.z_min;
    if mode == Mode::Trending {
        stats.retain(|s| s.z >= z_min);
    }
    let by_sums = |a: &Stat<'_>, b: &Stat<'_>| -> Ordering {
        match mode {
            Mode::Trending => ordinal(b.z)
                .total_cmp(&ordinal(a.z))
                .then(ordinal(b.hot).total_cmp(&ordinal(a.hot))),
            Mode::Popular => ordinal(b.slow).total_cmp(&ordinal(a.slow)),
        }
    };
    stats.sort_unstable_by(|a, b| by_sums(a, b).then_with(|| a.key.cmp(b.key)));
    let n = params.consensus.top_n;
    let mut list: Vec<Stat<'a>> = Vec::with_capacity(n);
    for mut stat in stats {
        // Full, and past the last tie on the sums (popular breaks those on users).
        if list.len() >= n
            && list
                .last()
                .is_none_or(|l| by_sums(l, &stat) != Ordering::Equal)
        {
            break;
        }
        stat.count_users(as_of);
        let users = match mode {
            Mode::Trending => stat.users_24h,
            Mode::Popular => stat.users_7d,
        };
        if users >= min_users {
            list.push(stat);
        }
    }
    list.sort_by(|a, b| {
        by_sums(a, b)
            .then(match mode {
                Mode::Trending => Ordering::Equal,
                Mode::Popular => b.users_7d.cmp(&a.users_7d),
            })
            .then_with(|| a.key.cmp(b.key))
    });
    list.truncate(n);
    list
}

/// The response item of one ranked stat; `subject` names what is ranked
/// (`{"entity": …}`, `{"content_id": …}` or `{"query": …}`).
pub(crate) fn item(rank: usize, stat: &Stat<'_>, subject: (&str, Value)) -> Value {
    let mut item = serde_json::Map::new();
    item.insert("rank".into(), json!(rank));
    item.insert(subject.0.into(), subject.1);
    for (name, value) in [
        ("trend_score", json!(stat.z)),
        ("hot_score", json!(stat.hot)),
        ("popular_score", json!(stat.slow)),
        ("rate_fast_per_hour", json!(stat.rate_fast)),
        ("rate_baseline_per_hour", json!(stat.rate_baseline)),
        ("ratio", json!(stat.ratio)),
        ("unique_users_24h", json!(stat.users_24h)),
        ("unique_users_7d", json!(stat.users_7d)),
    ] {
        item.insert(name.into(), value);
    }
    Value::Object(item)
}

/// A search query as a trending key: NFKC, trimmed, lowercased, inner whitespace collapsed.
/// `None` when empty, longer than `max_len` characters, or shaped like personal data (six
/// or more digits in a row, or an `@`): such queries are never stored.
pub fn normalise_query(query: &str, max_len: usize) -> Option<String> {
    let nfkc: String = query.nfkc().collect();
    let normal = nfkc
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let mut digits = 0;
    let pii = normal.chars().any(|c| {
        digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
        digits >= 6 || c == '@'
    });
    (!normal.is_empty() && normal.chars().count() <= max_len && !pii).then_some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_normalised_or_dropped() {
        let check = |q: &str, expected: Option<&str>| {
            assert_eq!(normalise_query(q, 64).as_deref(), expected, "{q:?}");
        };
        check("  Tesla  ", Some("tesla"));
        check("NVIDIA", Some("nvidia"));
        check("ＴＳＬＡ", Some("tsla"));
        check("tesla   model\t3", Some("tesla model 3"));
        check("acct 123456", None);
        check("a@b.com", None);
        check("   ", None);
        check(&"x".repeat(65), None);
        check(&"x".repeat(64), Some(&"x".repeat(64)));
        check("12345 6", Some("12345 6"));
    }

    #[test]
    fn a_full_list_still_breaks_ties_on_users() {
        let mut params = Params::default();
        params.consensus.top_n = 1;
        let mut t = Trends::default();
        // Equal sums; "b" has two users, "a" one: popular puts "b" first despite the ids.
        t.add("a", 2.0, 0, 1, &params, None);
        t.add("b", 1.0, 0, 1, &params, None);
        t.add("b", 1.0, 0, 2, &params, None);
        t.add("c", 0.5, 0, 3, &params, None);
        let list = rank(t.stats(0, &params), Mode::Popular, 1, 0, &params);
        let keys: Vec<&str> = list.iter().map(|s| s.key).collect();
        assert_eq!(keys, ["b"]);
        assert_eq!(list[0].users_7d, 2);
        params.consensus.top_n = 3;
        let list = rank(t.stats(0, &params), Mode::Popular, 2, 0, &params);
        let keys: Vec<&str> = list.iter().map(|s| s.key).collect();
        assert_eq!(keys, ["b"], "min_users filters as it goes");
    }

    #[test]
    fn space_saving_keeps_the_cap_and_carries_the_evicted_sum() {
        let params = Params::default();
        let mut t = Trends::default();
        for i in 0..16 {
            for _ in 0..=i {
                t.add(&format!("q{i:02}"), 1.0, 0, i, &params, Some(16));
            }
        }
        assert_eq!(t.len(), 16);
        t.add("new", 1.0, 0, 99, &params, Some(16));
        assert!(t.len() <= 16, "{}", t.len());
        assert!(!t.keys.contains_key("q00") && !t.keys.contains_key("q01"));
        assert!(t.keys.contains_key("q15"));
        assert_eq!(t.keys["new"].error, 2.0);
    }
}
