//! The expected numbers of `docs/datasets.md` §6.1–6.2, as data: each query and the values at
//! JSON pointers of its response.

// Expected values are written as `docs/datasets.md` prints them (0.707107, not FRAC_1_SQRT_2).
#![allow(clippy::approx_constant)]

use serde_json::Value;

use super::NOW;

const TOLERANCE: f64 = 1e-6;

/// An expected value at a JSON pointer of a query's response.
pub(super) enum Want {
    Num(f64),
    Str(&'static str),
    Bool(bool),
    Null,
    Len(usize),
}
use Want::*;

pub(super) type Check = (&'static str, &'static [(&'static str, Want)]);

pub(super) const FIXTURE_A: &[Check] = &[
    // A1: personal, u1 @ NOW.
    (
        "/v1/users/u1/preferences/entities?entity_type=ticker",
        &[
            ("/items", Len(2)),
            ("/items/0/entity/id", Str("TSLA")),
            ("/items/0/score", Num(9.0)),
            ("/items/0/share", Num(0.8)),
            ("/items/0/in_watchlist", Bool(false)),
            ("/items/0/events", Num(3.0)),
            ("/items/1/entity/id", Str("AAPL")),
            ("/items/1/score", Num(2.25)),
            ("/items/1/share", Num(0.2)),
            ("/items/1/in_watchlist", Bool(true)),
            ("/items/1/events", Num(3.0)),
            ("/half_life_hours", Num(336.0)),
        ],
    ),
    (
        "/v1/users/u1/preferences/entities?include_negative=true",
        &[
            ("/items", Len(3)),
            ("/items/2/entity/id", Str("NVDA")),
            ("/items/2/score", Num(-2.5)),
        ],
    ),
    // A2: personal decay.
    (
        "/v1/users/u1/preferences/entities?as_of=2025-01-20T12:00:00Z",
        &[
            ("/items/0/entity/id", Str("TSLA")),
            ("/items/0/score", Num(4.5)),
            ("/items/0/share", Num(0.8)),
            ("/items/1/entity/id", Str("AAPL")),
            ("/items/1/score", Num(1.125)),
            ("/items/1/share", Num(0.2)),
        ],
    ),
    (
        "/v1/users/u1/preferences/entities?as_of=2025-04-28T12:00:00Z",
        &[
            ("/items", Len(1)),
            ("/items/0/entity/id", Str("TSLA")),
            ("/items/0/score", Num(0.03515625)),
            ("/items/0/share", Num(1.0)),
        ],
    ),
    // A3: tie-break and no dedup in personal.
    (
        "/v1/users/u4/preferences/entities",
        &[
            ("/items", Len(4)),
            ("/items/0/entity/id", Str("MSFT")),
            ("/items/0/score", Num(5.0)),
            ("/items/0/events", Num(5.0)),
            ("/items/0/share", Num(0.402764)),
            ("/items/1/entity/id", Str("TSLA")),
            ("/items/1/score", Num(5.0)),
            ("/items/1/in_watchlist", Bool(true)),
            ("/items/1/share", Num(0.402764)),
            ("/items/2/entity/id", Str("NVDA")),
            ("/items/2/score", Num(1.707107)),
            ("/items/2/share", Num(0.137512)),
            ("/items/3/entity/id", Str("AAPL")),
            ("/items/3/score", Num(0.707107)),
            ("/items/3/share", Num(0.056959)),
        ],
    ),
    (
        "/v1/users/u2/preferences/entities",
        &[
            ("/items", Len(3)),
            ("/items/0/entity/id", Str("TSLA")),
            ("/items/0/score", Num(3.207107)),
            ("/items/1/entity/id", Str("AAPL")),
            ("/items/1/score", Num(2.707107)),
            ("/items/2/entity/id", Str("NVDA")),
            ("/items/2/score", Num(0.707107)),
        ],
    ),
    // A4: trending and popular entities @ NOW.
    (
        "/v1/trending/entities?entity_type=ticker&mode=trending",
        &[
            ("/dataset", Str("entities")),
            ("/mode", Str("trending")),
            ("/as_of", Str(NOW)),
            ("/params/min_users", Num(3.0)),
            ("/items", Len(2)),
            ("/items/0/rank", Num(1.0)),
            ("/items/0/entity/id", Str("TSLA")),
            ("/items/0/hot_score", Num(17.0)),
            ("/items/0/popular_score", Num(18.25)),
            ("/items/0/rate_fast_per_hour", Num(11.783502)),
            ("/items/0/rate_baseline_per_hour", Num(0.075297)),
            ("/items/0/trend_score", Num(11.290835)),
            ("/items/0/ratio", Num(11.888343)),
            ("/items/0/unique_users_24h", Num(4.0)),
            ("/items/0/unique_users_7d", Num(4.0)),
            ("/items/1/entity/id", Str("AAPL")),
            ("/items/1/hot_score", Num(5.0)),
            ("/items/1/popular_score", Num(7.5625)),
            ("/items/1/rate_fast_per_hour", Num(3.465736)),
            ("/items/1/rate_baseline_per_hour", Num(0.031202)),
            ("/items/1/trend_score", Num(3.382174)),
            ("/items/1/unique_users_24h", Num(3.0)),
            ("/items/1/unique_users_7d", Num(3.0)),
        ],
    ),
    (
        "/v1/trending/entities?entity_type=ticker&mode=popular",
        &[
            ("/items", Len(4)),
            ("/items/0/entity/id", Str("TSLA")),
            ("/items/0/popular_score", Num(18.25)),
            ("/items/1/entity/id", Str("AAPL")),
            ("/items/1/popular_score", Num(7.5625)),
            ("/items/2/entity/id", Str("NVDA")),
            ("/items/2/popular_score", Num(3.75)),
            ("/items/2/hot_score", Num(1.0)),
            ("/items/2/rate_fast_per_hour", Num(0.693147)),
            ("/items/2/rate_baseline_per_hour", Num(0.015472)),
            ("/items/2/trend_score", Num(0.672493)),
            ("/items/2/unique_users_24h", Num(1.0)),
            ("/items/2/unique_users_7d", Num(1.0)),
            ("/items/3/entity/id", Str("MSFT")),
            ("/items/3/popular_score", Num(1.0)),
            ("/items/3/hot_score", Num(1.0)),
            ("/items/3/rate_baseline_per_hour", Num(0.004126)),
            ("/items/3/trend_score", Num(0.687604)),
            ("/items/3/unique_users_24h", Num(1.0)),
        ],
    ),
    (
        "/v1/trending/entities?mode=popular&limit=1",
        &[("/items", Len(1)), ("/items/0/entity/id", Str("TSLA"))],
    ),
    // A5: trending later.
    (
        "/v1/trending/entities?mode=trending&as_of=2025-01-06T14:00:00Z",
        &[
            ("/items", Len(1)),
            ("/items/0/entity/id", Str("TSLA")),
            ("/items/0/trend_score", Num(2.769643)),
            ("/items/0/hot_score", Num(4.25)),
        ],
    ),
    (
        "/v1/trending/entities?mode=trending&as_of=2025-01-07T12:00:00Z",
        &[("/items", Len(0))],
    ),
    // A6: content.
    (
        "/v1/trending/content?mode=trending",
        &[
            ("/items", Len(1)),
            ("/items/0/content_id", Str("c1")),
            ("/items/0/hot_score", Num(4.0)),
            ("/items/0/popular_score", Num(4.0)),
            ("/items/0/trend_score", Num(2.733620)),
            ("/items/0/unique_users_24h", Num(3.0)),
        ],
    ),
    (
        "/v1/trending/content?mode=popular",
        &[
            ("/items", Len(2)),
            ("/items/0/content_id", Str("c1")),
            ("/items/0/popular_score", Num(4.0)),
            ("/items/1/content_id", Str("c2")),
            ("/items/1/popular_score", Num(2.5)),
            ("/items/1/hot_score", Num(1.0)),
            ("/items/1/trend_score", Num(0.679338)),
            ("/items/1/unique_users_24h", Num(1.0)),
        ],
    ),
    // A7: searches.
    (
        "/v1/trending/searches?mode=trending",
        &[
            ("/items", Len(2)),
            ("/items/0/query", Str("tesla")),
            ("/items/0/hot_score", Num(3.0)),
            ("/items/0/popular_score", Num(3.0)),
            ("/items/0/trend_score", Num(2.054389)),
            ("/items/0/unique_users_24h", Num(3.0)),
            ("/items/0/unique_users_7d", Num(3.0)),
            ("/items/1/query", Str("nvidia")),
            ("/items/1/hot_score", Num(3.0)),
            ("/items/1/popular_score", Num(5.0)),
            ("/items/1/trend_score", Num(2.037899)),
            ("/items/1/unique_users_24h", Num(3.0)),
            ("/items/1/unique_users_7d", Num(3.0)),
        ],
    ),
    (
        "/v1/trending/searches?mode=popular",
        &[
            ("/items", Len(2)),
            ("/items/0/query", Str("nvidia")),
            ("/items/0/popular_score", Num(5.0)),
            ("/items/1/query", Str("tesla")),
            ("/items/1/popular_score", Num(3.0)),
        ],
    ),
];

pub(super) const FIXTURE_B: &[Check] = &[
    // B1: summary by recommender.
    (
        "/v1/engagement/summary?group_by=recommender&from=2025-01-06&to=2025-01-06",
        &[
            ("/rows", Len(2)),
            ("/rows/0/recommender", Str("similar_stocks")),
            ("/rows/0/impressions", Num(6.0)),
            ("/rows/0/implied_views", Num(1.0)),
            ("/rows/0/clicked_impressions", Num(3.0)),
            ("/rows/0/click_events", Num(4.0)),
            ("/rows/0/late_click_events", Num(1.0)),
            ("/rows/0/ctr", Num(0.5)),
            ("/rows/0/ctr_lower_bound", Num(0.187613)),
            ("/rows/0/converted_impressions", Num(2.0)),
            ("/rows/0/conversions_inferred", Num(1.0)),
            ("/rows/0/cvr", Num(0.333333)),
            ("/rows/0/post_click_cvr", Num(0.666667)),
            ("/rows/0/avg_click_position", Num(2.0)),
            ("/rows/0/lists", Num(3.0)),
            ("/rows/0/clicked_lists", Num(2.0)),
            ("/rows/0/list_ctr", Num(0.666667)),
            ("/rows/1/recommender", Str("news_feed")),
            ("/rows/1/impressions", Num(4.0)),
            ("/rows/1/implied_views", Num(0.0)),
            ("/rows/1/clicked_impressions", Num(2.0)),
            ("/rows/1/click_events", Num(2.0)),
            ("/rows/1/late_click_events", Num(0.0)),
            ("/rows/1/ctr", Num(0.5)),
            ("/rows/1/ctr_lower_bound", Num(0.150036)),
            ("/rows/1/converted_impressions", Num(1.0)),
            ("/rows/1/conversions_inferred", Num(0.0)),
            ("/rows/1/cvr", Num(0.25)),
            ("/rows/1/post_click_cvr", Num(0.5)),
            ("/rows/1/avg_click_position", Num(1.5)),
            ("/rows/1/lists", Num(3.0)),
            ("/rows/1/clicked_lists", Num(2.0)),
            ("/rows/1/list_ctr", Num(0.666667)),
            ("/totals/impressions", Num(10.0)),
            ("/totals/implied_views", Num(1.0)),
            ("/totals/clicked_impressions", Num(5.0)),
            ("/totals/click_events", Num(6.0)),
            ("/totals/late_click_events", Num(1.0)),
            ("/totals/ctr", Num(0.5)),
            ("/totals/ctr_lower_bound", Num(0.236590)),
            ("/totals/converted_impressions", Num(3.0)),
            ("/totals/conversions_inferred", Num(1.0)),
            ("/totals/cvr", Num(0.3)),
            ("/totals/post_click_cvr", Num(0.6)),
            ("/totals/avg_click_position", Num(1.8)),
            ("/totals/lists", Num(6.0)),
            ("/totals/clicked_lists", Num(4.0)),
            ("/totals/list_ctr", Num(0.666667)),
            ("/totals/unattributed_conversions", Num(0.0)),
        ],
    ),
    // B2: items.
    (
        "/v1/engagement/items?recommender=similar_stocks&sort=ctr_lower_bound",
        &[
            ("/rows", Len(3)),
            ("/rows/0/item", Str("AMD")),
            ("/rows/0/impressions", Num(1.0)),
            ("/rows/0/clicked_impressions", Num(1.0)),
            ("/rows/0/click_events", Num(2.0)),
            ("/rows/0/ctr", Num(1.0)),
            ("/rows/0/ctr_lower_bound", Num(0.206543)),
            ("/rows/1/item", Str("NVDA")),
            ("/rows/1/impressions", Num(2.0)),
            ("/rows/1/clicked_impressions", Num(1.0)),
            ("/rows/1/ctr", Num(0.5)),
            ("/rows/1/ctr_lower_bound", Num(0.094529)),
            ("/rows/1/converted_impressions", Num(1.0)),
            ("/rows/2/item", Str("MSFT")),
            ("/rows/2/impressions", Num(3.0)),
            ("/rows/2/clicked_impressions", Num(1.0)),
            ("/rows/2/ctr", Num(0.333333)),
            ("/rows/2/ctr_lower_bound", Num(0.061490)),
            ("/rows/2/converted_impressions", Num(1.0)),
        ],
    ),
    (
        "/v1/engagement/items?recommender=news_feed&sort=ctr_lower_bound",
        &[
            ("/rows", Len(2)),
            ("/rows/0/item", Str("c1")),
            ("/rows/0/impressions", Num(2.0)),
            ("/rows/0/clicked_impressions", Num(1.0)),
            ("/rows/0/ctr", Num(0.5)),
            ("/rows/0/ctr_lower_bound", Num(0.094529)),
            ("/rows/0/converted_impressions", Num(1.0)),
            ("/rows/1/item", Str("c2")),
            ("/rows/1/impressions", Num(2.0)),
            ("/rows/1/clicked_impressions", Num(1.0)),
            ("/rows/1/ctr", Num(0.5)),
            ("/rows/1/ctr_lower_bound", Num(0.094529)),
            ("/rows/1/converted_impressions", Num(0.0)),
        ],
    ),
    // B3: click positions.
    (
        "/v1/engagement/click-positions?recommender=similar_stocks&from=2025-01-06&to=2025-01-06",
        &[
            ("/positions", Len(3)),
            ("/positions/0/position", Num(1.0)),
            ("/positions/0/clicks", Num(1.0)),
            ("/positions/1/position", Num(2.0)),
            ("/positions/1/clicks", Num(1.0)),
            ("/positions/2/position", Num(3.0)),
            ("/positions/2/clicks", Num(1.0)),
        ],
    ),
    (
        "/v1/engagement/click-positions?recommender=news_feed",
        &[
            ("/positions", Len(2)),
            ("/positions/0/position", Num(1.0)),
            ("/positions/0/clicks", Num(1.0)),
            ("/positions/1/position", Num(2.0)),
            ("/positions/1/clicks", Num(1.0)),
        ],
    ),
    // B4: null semantics.
    (
        "/v1/engagement/summary?recommender=unknown&from=2025-01-06&to=2025-01-06",
        &[
            ("/rows", Len(0)),
            ("/totals/impressions", Num(0.0)),
            ("/totals/ctr", Null),
            ("/totals/cvr", Null),
            ("/totals/avg_click_position", Null),
        ],
    ),
    // The impression record (debug route) of the inferred conversion.
    (
        "/v1/engagement/impressions/imp-5",
        &[
            ("/implied_view", Bool(true)),
            ("/clicked", Bool(true)),
            ("/converted", Bool(true)),
            ("/conversion", Str("inferred")),
            ("/item", Str("NVDA")),
        ],
    ),
    (
        "/v1/engagement/impressions/imp-6",
        &[("/clicked", Bool(false)), ("/late_click_events", Num(1.0))],
    ),
];

pub(super) fn check(answer: &mut dyn FnMut(&str) -> Value, checks: &[Check]) {
    for (query, wants) in checks {
        let body = answer(query);
        for (pointer, want) in wants.iter() {
            let got = body
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{query}: no {pointer} in {body}"));
            let ok = match want {
                Num(n) => got.as_f64().is_some_and(|g| (g - n).abs() <= TOLERANCE),
                Str(s) => got.as_str() == Some(s),
                Bool(b) => got.as_bool() == Some(*b),
                Null => got.is_null(),
                Len(n) => got.as_array().is_some_and(|a| a.len() == *n),
            };
            assert!(ok, "{query}: {pointer} is {got}, expected {}", show(want));
        }
    }
}

fn show(want: &Want) -> String {
    match want {
        Num(n) => n.to_string(),
        Str(s) => format!("{s:?}"),
        Bool(b) => b.to_string(),
        Null => "null".into(),
        Len(n) => format!("{n} items"),
    }
}
