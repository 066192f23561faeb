//! The decisions behind autocapture, free of the DOM: when a route change is a new page
//! view, how `data-pf-*` attributes become an event, and when an impression counts as seen.

use super::{EntityRef, Meta, cut, parse_int, pieces};

/// Remembers the last page viewed, so `pushState`, `replaceState`, `popstate` and
/// `hashchange` reporting one navigation (or none) give one page view.
#[derive(Debug, Default)]
pub struct PageViews {
    last: Option<String>,
}

impl PageViews {
    /// True when `url` differs from the page last viewed; it becomes the last one. Returns the
    /// previous URL, the SPA's referrer, alongside.
    pub fn changed(&mut self, url: &str) -> Option<Option<String>> {
        if self.last.as_deref() == Some(url) {
            return None;
        }
        Some(self.last.replace(url.to_owned()))
    }
}

/// `data-pf-event="watchlist.added"` → `("watchlist", "added")`.
pub fn split_event_name(name: &str) -> Result<(&str, &str), String> {
    match cut(name.trim_ascii(), b'.') {
        Some((t, a)) if !t.is_empty() && !a.is_empty() => Ok((t, a)),
        _ => Err([
            "data-pf-event=\"",
            name,
            "\" must be written `event_type.action`, e.g. `watchlist.added`",
        ]
        .concat()),
    }
}

/// `data-pf-entities="ticker:AAPL ticker:MSFT"` (spaces or commas between entities).
pub fn parse_entities(list: &str) -> Result<Vec<EntityRef>, String> {
    let mut out = Vec::new();
    for item in list
        .split_ascii_whitespace()
        .flat_map(|word| pieces(word, b','))
    {
        match cut(item, b':') {
            Some((kind, id)) if !kind.is_empty() && !id.is_empty() => out.push(EntityRef {
                kind: kind.to_owned(),
                id: id.to_owned(),
            }),
            _ if item.is_empty() => {}
            _ => {
                return Err([
                    "entity `",
                    item,
                    "` must be written `type:id`, e.g. `ticker:AAPL`",
                ]
                .concat());
            }
        }
    }
    Ok(out)
}

/// The `event_meta` key of a `data-pf-meta-*` attribute: `data-pf-meta-page-section` →
/// `page_section`, so attribute names stay HTML-style and keys stay lower_snake.
pub fn meta_key(attribute: &str) -> Option<String> {
    let rest = attribute.strip_prefix("data-pf-meta-")?;
    (!rest.is_empty()).then(|| {
        rest.chars()
            .map(|c| if c == '-' { '_' } else { c })
            .collect()
    })
}

/// The attributes of an impression element that become `event_meta`, with their keys.
/// `data-pf-position` becomes a number (the 1-based slot); the others stay strings.
pub const IMPRESSION_ATTRIBUTES: [(&str, &str); 6] = [
    ("data-pf-impression-id", "impression_id"),
    ("data-pf-fxcid", "fxcid"),
    ("data-pf-request-id", "request_id"),
    ("data-pf-recommender", "recommender"),
    ("data-pf-surface", "surface"),
    ("data-pf-content-id", "content_id"),
];

/// The event type of an impression's `viewed`/`clicked`: `data-pf-type` when given, else
/// `content` for an `fxcid` and `recommendation` for an `impression_id`.
pub fn impression_type(explicit: Option<&str>, has_fxcid: bool) -> &str {
    match explicit {
        Some(t) if !t.is_empty() => t,
        _ if has_fxcid => "content",
        _ => "recommendation",
    }
}

/// How much of an impression must show, and for how long, before it counts as viewed (the
/// IAB/MRC display standard).
pub const VIEW_RATIO: f64 = 0.5;
pub const VIEW_MS: i64 = 1_000;

/// One impression's visibility over time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Exposure {
    visible_since: Option<i64>,
    viewed: bool,
}

impl Exposure {
    /// Records a new visible ratio at `now`; returns how long to wait before asking
    /// [`Exposure::due`], when the element just became visible enough.
    pub fn update(&mut self, ratio: f64, now: i64) -> Option<i64> {
        if self.viewed {
            return None;
        }
        if ratio >= VIEW_RATIO {
            if self.visible_since.is_none() {
                self.visible_since = Some(now);
                return Some(VIEW_MS);
            }
        } else {
            self.visible_since = None;
        }
        None
    }

    /// True exactly once: the first time the element has been visible enough for
    /// [`VIEW_MS`] without interruption.
    pub fn due(&mut self, now: i64) -> bool {
        let due = !self.viewed && self.visible_since.is_some_and(|t| now - t >= VIEW_MS);
        self.viewed |= due;
        due
    }

    /// The page went to the background: visible time starts again when it comes back.
    pub fn hidden(&mut self) {
        self.visible_since = None;
    }

    pub fn viewed(&self) -> bool {
        self.viewed
    }
}

/// An element's `data-pf-*` attributes, as the browser glue reads them.
pub type Attributes<'a> = [(&'a str, &'a str)];

fn attribute<'a>(attrs: &Attributes<'a>, name: &str) -> Option<&'a str> {
    attrs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// An event autocapture records, built from attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Captured {
    pub event_type: String,
    pub action: String,
    pub meta_json: String,
    pub entities: Vec<EntityRef>,
}

impl Captured {
    pub fn input(&self) -> super::EventInput<'_> {
        super::EventInput {
            event_type: &self.event_type,
            action: &self.action,
            meta_json: Some(&self.meta_json),
            entities: &self.entities,
            timestamp: None,
        }
    }
}

/// The key an impression is known by: its impression id, else its `fxcid`.
pub fn impression_key<'a>(attrs: &Attributes<'a>) -> Option<&'a str> {
    attribute(attrs, "data-pf-impression-id").or_else(|| attribute(attrs, "data-pf-fxcid"))
}

/// A click on a `data-pf-event="type.action"` element, with `data-pf-entities` and
/// `data-pf-meta-*`; inside an impression element (`impression`, empty when none) it carries
/// that impression's id, so a conversion is attributed.
pub fn declared_event(
    declared: &Attributes<'_>,
    impression: &Attributes<'_>,
) -> Result<Captured, String> {
    let name = attribute(declared, "data-pf-event").unwrap_or_default();
    let (event_type, action) = split_event_name(name)?;
    let entities = entities_of(declared)?;
    let mut meta = Meta::default();
    for (attr, key) in &IMPRESSION_ATTRIBUTES[..2] {
        if let Some(v) = attribute(impression, attr) {
            meta.str(key, v);
        }
    }
    declared_meta(declared, &mut meta);
    Ok(Captured {
        event_type: event_type.to_owned(),
        action: action.to_owned(),
        meta_json: meta.finish(),
        entities,
    })
}

/// `recommendation.viewed` / `clicked` of an impression element (or `content.*` for an
/// `fxcid`, or the type given by `data-pf-type`), with its ids, position and meta.
pub fn impression_event(attrs: &Attributes<'_>, action: &str) -> Result<Captured, String> {
    let entities = entities_of(attrs)?;
    let mut meta = Meta::default();
    for (attr, key) in IMPRESSION_ATTRIBUTES {
        if let Some(v) = attribute(attrs, attr) {
            meta.str(key, v);
        }
    }
    if let Some(position) = attribute(attrs, "data-pf-position") {
        match parse_int(position.trim_ascii()) {
            Some(p) => {
                meta.int("position", p);
            }
            None => {
                return Err(
                    ["data-pf-position=\"", position, "\" must be a whole number"].concat(),
                );
            }
        }
    }
    declared_meta(attrs, &mut meta);
    let explicit = attribute(attrs, "data-pf-type");
    let has_fxcid = attribute(attrs, "data-pf-fxcid").is_some();
    Ok(Captured {
        event_type: impression_type(explicit, has_fxcid).to_owned(),
        action: action.to_owned(),
        meta_json: meta.finish(),
        entities,
    })
}

fn entities_of(attrs: &Attributes<'_>) -> Result<Vec<EntityRef>, String> {
    attribute(attrs, "data-pf-entities").map_or(Ok(Vec::new()), parse_entities)
}

/// Adds `data-pf-meta-*` attributes, as strings, under keys not already set.
fn declared_meta(attrs: &Attributes<'_>, meta: &mut Meta) {
    for (name, value) in attrs {
        if let Some(key) = meta_key(name) {
            if !meta.has(&key) {
                meta.str(&key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_one_page_view_however_often_it_is_reported() {
        let mut p = PageViews::default();
        assert_eq!(p.changed("https://x/a"), Some(None));
        assert_eq!(
            p.changed("https://x/a"),
            None,
            "replaceState to the same URL"
        );
        assert_eq!(p.changed("https://x/b"), Some(Some("https://x/a".into())));
        assert_eq!(
            p.changed("https://x/b#news"),
            Some(Some("https://x/b".into()))
        );
        assert_eq!(
            p.changed("https://x/b#news"),
            None,
            "popstate then hashchange"
        );
    }

    #[test]
    fn attributes_parse_or_say_what_is_wrong() {
        assert_eq!(
            split_event_name("watchlist.added"),
            Ok(("watchlist", "added"))
        );
        assert!(
            split_event_name("watchlist")
                .unwrap_err()
                .contains("event_type.action")
        );
        assert!(split_event_name(".added").is_err());
        let e = parse_entities("ticker:AAPL, ticker:MSFT  sector:tech").unwrap();
        let ids: Vec<_> = e.iter().map(|e| (e.kind.as_str(), e.id.as_str())).collect();
        assert_eq!(
            ids,
            [("ticker", "AAPL"), ("ticker", "MSFT"), ("sector", "tech")]
        );
        assert!(parse_entities("AAPL").unwrap_err().contains("`AAPL`"));
        assert!(parse_entities("").unwrap().is_empty());
        assert_eq!(
            meta_key("data-pf-meta-page-section").as_deref(),
            Some("page_section")
        );
        assert_eq!(meta_key("data-pf-meta-"), None);
        assert_eq!(meta_key("data-pf-event"), None);
        assert_eq!(impression_type(None, true), "content");
        assert_eq!(impression_type(None, false), "recommendation");
        assert_eq!(impression_type(Some("news"), true), "news");
    }

    #[test]
    fn an_impression_is_viewed_once_after_a_second_at_half_visible() {
        let mut e = Exposure::default();
        assert_eq!(e.update(0.2, 0), None);
        assert_eq!(e.update(0.6, 100), Some(VIEW_MS));
        assert_eq!(e.update(0.9, 300), None, "still the same exposure");
        assert!(!e.due(1_099));
        assert!(e.due(1_100));
        assert!(!e.due(5_000), "once only");
        assert_eq!(e.update(0.6, 6_000), None);
        assert!(e.viewed());
    }

    #[test]
    fn scrolling_away_or_hiding_the_page_starts_the_second_again() {
        let mut e = Exposure::default();
        e.update(0.5, 0);
        e.update(0.49, 900);
        assert!(!e.due(1_000), "left before the second was up");
        assert_eq!(e.update(0.7, 2_000), Some(VIEW_MS));
        e.hidden();
        assert!(!e.due(3_000));
        e.update(0.7, 3_500);
        assert!(e.due(4_500));
    }

    #[test]
    fn clicks_and_impressions_become_events_from_their_attributes() {
        let declared = [
            ("data-pf-event", "watchlist.added"),
            ("data-pf-entities", "ticker:AAPL"),
            ("data-pf-meta-page-section", "hero"),
        ];
        let impression = [
            ("data-pf-impression-id", "imp-1"),
            ("data-pf-position", "2"),
            ("data-pf-recommender", "similar"),
            ("data-pf-meta-slot", "top"),
        ];
        let e = declared_event(&declared, &impression).unwrap();
        assert_eq!(
            (e.event_type.as_str(), e.action.as_str()),
            ("watchlist", "added")
        );
        assert_eq!(
            e.meta_json,
            r#"{"impression_id":"imp-1","page_section":"hero"}"#
        );
        assert_eq!(e.entities[0].id, "AAPL");
        let v = impression_event(&impression, "viewed").unwrap();
        assert_eq!(v.event_type, "recommendation");
        assert_eq!(
            v.meta_json,
            r#"{"impression_id":"imp-1","recommender":"similar","position":2,"slot":"top"}"#
        );
        assert_eq!(impression_key(&impression), Some("imp-1"));
        let content = [("data-pf-fxcid", "fx-9")];
        assert_eq!(
            impression_event(&content, "clicked").unwrap().event_type,
            "content"
        );
        assert_eq!(impression_key(&content), Some("fx-9"));
        let bad = [("data-pf-fxcid", "fx-9"), ("data-pf-position", "first")];
        assert!(
            impression_event(&bad, "viewed")
                .unwrap_err()
                .contains("\"first\"")
        );
        assert!(declared_event(&[("data-pf-event", "nodot")], &[]).is_err());
    }
}
