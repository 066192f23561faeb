//! When an impression counts as seen, free of the DOM. (How the page and its `data-pf-*`
//! attributes become events is `host.js`'s: it writes them as `track()` calls, which are
//! validated and recorded like the page's own.)

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
