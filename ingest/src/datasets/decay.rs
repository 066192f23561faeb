//! Exponentially decayed sums, exact and independent of arrival order.
//!
//! A [`Decayed`] holds the sum's value at the time of its newest contribution. An event newer
//! than that decays the value forward and adds its weight; an older (late) event adds its
//! weight decayed back to that time. Either way the value is `Σ wᵢ·2^{−(t_last − tᵢ)/H}`,
//! the forward-decay sum of Cormode et al. (ICDE 2009) with the landmark kept at `t_last`,
//! so no exponent ever grows with the age of the stream.

#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Decayed {
    value: f64,
    /// Time (ms) the value is expressed at; `None` until the first contribution.
    t_last: Option<i64>,
}

/// `2^{−Δ/H}` for `Δ` milliseconds and a half-life of `half_life` milliseconds.
pub(crate) fn factor(delta_ms: i64, half_life_ms: i64) -> f64 {
    (-(delta_ms as f64) / half_life_ms as f64).exp2()
}

impl Decayed {
    pub(crate) fn add(&mut self, weight: f64, t: i64, half_life_ms: i64) {
        match self.t_last {
            Some(last) if t < last => self.value += weight * factor(last - t, half_life_ms),
            Some(last) => {
                self.value = self.value * factor(t - last, half_life_ms) + weight;
                self.t_last = Some(t);
            }
            None => {
                self.value = weight;
                self.t_last = Some(t);
            }
        }
    }

    /// The sum as seen at `t`.
    pub(crate) fn at(&self, t: i64, half_life_ms: i64) -> f64 {
        match self.t_last {
            Some(last) => self.value * factor(t - last, half_life_ms),
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn with_no_new_events_the_value_halves_every_half_life() {
        let mut d = Decayed::default();
        d.add(3.7, 1_000, H);
        d.add(1.3, 5_000, H);
        for t in [5_000, 90_000_000, 1_000_000_000] {
            let now = d.at(t, H);
            let later = d.at(t + H, H);
            assert!(
                ((later - now / 2.0) / later).abs() <= 1e-12,
                "{now} {later}"
            );
        }
    }

    #[test]
    fn a_late_event_counts_as_if_it_had_come_in_order() {
        let mut late = Decayed::default();
        late.add(1.0, 0, H);
        late.add(1.0, -H, H);
        let mut ordered = Decayed::default();
        ordered.add(1.0, -H, H);
        ordered.add(1.0, 0, H);
        assert_eq!(late.at(0, H), 1.5);
        assert_eq!(ordered.at(0, H), 1.5);
    }

    #[test]
    fn an_empty_sum_is_zero_at_any_time() {
        assert_eq!(Decayed::default().at(i64::MAX, H), 0.0);
    }
}
