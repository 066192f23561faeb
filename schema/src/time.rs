//! RFC 3339 timestamps as milliseconds since the Unix epoch.
//!
//! Hand-written rather than pulled from `chrono` or `time`: the tracker links this into its
//! wasm, where every kilobyte is paid for by the customer's page.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Why a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampError(&'static str);

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Timestamp {
    /// 0000-01-01T00:00:00Z, the earliest instant RFC 3339 can write.
    pub const MIN: Timestamp = Timestamp(-62_167_219_200_000);
    /// 9999-12-31T23:59:59.999Z, the latest.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// The instant `ms`, clamped into what RFC 3339 can write.
    pub fn saturating(ms: i64) -> Timestamp {
        Timestamp(ms.clamp(Timestamp::MIN.0, Timestamp::MAX.0))
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; fractions beyond milliseconds are
    /// truncated, a leap second (`:60`) is read as the last millisecond of its minute.
    pub fn parse(s: &str) -> Result<Timestamp, TimestampError> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return Err(TimestampError("too short"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
            let mut n = 0i64;
            for &c in &b[range] {
                if !c.is_ascii_digit() {
                    return Err(TimestampError("expected a digit"));
                }
                n = n * 10 + i64::from(c - b'0');
            }
            Ok(n)
        };
        let sep = |i: usize, expected: &[u8], what: &'static str| {
            if expected.contains(&b[i]) {
                Ok(())
            } else {
                Err(TimestampError(what))
            }
        };
        let year = num(0..4)?;
        sep(4, b"-", "expected `-` after the year")?;
        let month = num(5..7)?;
        sep(7, b"-", "expected `-` after the month")?;
        let day = num(8..10)?;
        sep(10, b"Tt ", "expected `T` between date and time")?;
        let hour = num(11..13)?;
        sep(13, b":", "expected `:` after the hour")?;
        let minute = num(14..16)?;
        sep(16, b":", "expected `:` after the minute")?;
        let mut second = num(17..19)?;
        if !(1..=12).contains(&month) {
            return Err(TimestampError("month out of range"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(TimestampError("day out of range"));
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err(TimestampError("time of day out of range"));
        }
        let mut millis = 0i64;
        let mut i = 19;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    millis = millis * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return Err(TimestampError("expected digits after `.`"));
            }
            for _ in (i - start)..3 {
                millis *= 10;
            }
        }
        if second == 60 {
            second = 59;
            millis = 999;
        }
        let offset_minutes = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() => {
                sep(i + 3, b":", "expected `:` in the offset")?;
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return Err(TimestampError("offset out of range"));
                }
                let m = oh * 60 + om;
                if sign == b'-' { -m } else { m }
            }
            _ => {
                return Err(TimestampError(
                    "expected `Z` or an offset like `+01:00` at the end",
                ));
            }
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
        let ts = Timestamp(secs * 1000 + millis);
        if ts < Timestamp::MIN || ts > Timestamp::MAX {
            return Err(TimestampError("outside the years 0000 to 9999 once in UTC"));
        }
        Ok(ts)
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS[.mmm]Z`, with the fraction only when it is not zero. An
    /// instant outside the years 0000 to 9999 is written as the nearest one inside.
    // `push_str` of one-character strings: `String::push(char)` would link UTF-8 encoding,
    // which nothing else in the browser tracker needs.
    #[allow(clippy::single_char_add_str)]
    pub fn write_rfc3339(self, out: &mut String) {
        let ms = Timestamp::saturating(self.0).0;
        let millis = ms.rem_euclid(1000);
        let secs = ms.div_euclid(1000);
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        push_digits(out, y as u64, 4);
        out.push_str("-");
        push_digits(out, m as u64, 2);
        out.push_str("-");
        push_digits(out, d as u64, 2);
        out.push_str("T");
        push_digits(out, (sod / 3600) as u64, 2);
        out.push_str(":");
        push_digits(out, (sod / 60 % 60) as u64, 2);
        out.push_str(":");
        push_digits(out, (sod % 60) as u64, 2);
        if millis != 0 {
            out.push_str(".");
            push_digits(out, millis as u64, 3);
        }
        out.push_str("Z");
    }

    pub fn to_rfc3339(self) -> String {
        let mut s = String::with_capacity(24);
        self.write_rfc3339(&mut s);
        s
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// Reads what [`Timestamp`]'s `Serialize` writes: an RFC 3339 string.
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rfc3339;
        impl serde::de::Visitor<'_> for Rfc3339 {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Timestamp, E> {
                Timestamp::parse(text).map_err(E::custom)
            }
        }
        d.deserialize_str(Rfc3339)
    }
}

/// A decimal digit as a string: pushing one needs no UTF-8 encoding of a `char` (the browser
/// tracker carries this code).
fn digit(d: usize) -> &'static str {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    DIGITS[d % 10]
}

/// Writes `n` in decimal, zero-padded to `width` digits (the fields of a timestamp are never
/// negative: it is clamped to the years 0000 to 9999 first).
pub(crate) fn push_digits(out: &mut String, n: u64, width: u32) {
    let mut div = 10u64.pow(width - 1);
    // Years past 9999 keep all their digits rather than wrapping.
    while div <= n / 10 {
        div *= 10;
    }
    while div > 0 {
        out.push_str(digit((n / div % 10) as usize));
        div /= 10;
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, millis: i64, canonical: &str) {
        let ts = Timestamp::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(ts.0, millis, "{input}");
        assert_eq!(ts.to_rfc3339(), canonical);
        assert_eq!(Timestamp::parse(canonical), Ok(ts));
    }

    #[test]
    fn parses_and_formats() {
        check("1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00Z");
        check(
            "2025-01-06T12:00:00Z",
            1_736_164_800_000,
            "2025-01-06T12:00:00Z",
        );
        check(
            "2026-11-28T14:00:00.123Z",
            1_795_874_400_123,
            "2026-11-28T14:00:00.123Z",
        );
        check(
            "2026-11-28T15:00:00.1234567+01:00",
            1_795_874_400_123,
            "2026-11-28T14:00:00.123Z",
        );
        check(
            "2024-02-29t23:59:59.5z",
            1_709_251_199_500,
            "2024-02-29T23:59:59.500Z",
        );
        check("1969-12-31T23:59:59.999Z", -1, "1969-12-31T23:59:59.999Z");
        check(
            "2016-12-31T23:59:60Z",
            1_483_228_799_999,
            "2016-12-31T23:59:59.999Z",
        );
    }

    #[test]
    fn the_range_is_years_0000_to_9999() {
        check(
            "0000-01-01T00:00:00Z",
            Timestamp::MIN.0,
            "0000-01-01T00:00:00Z",
        );
        check(
            "9999-12-31T23:59:59.999Z",
            Timestamp::MAX.0,
            "9999-12-31T23:59:59.999Z",
        );
        assert!(Timestamp::parse("0000-01-01T00:00:00+01:00").is_err());
        assert!(Timestamp::parse("9999-12-31T23:59:59-01:00").is_err());
        assert_eq!(Timestamp(i64::MIN).to_rfc3339(), "0000-01-01T00:00:00Z");
        assert_eq!(Timestamp(i64::MAX).to_rfc3339(), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "2025-01-06",
            "2025-01-06T12:00:00",
            "2025-13-06T12:00:00Z",
            "2025-02-29T12:00:00Z",
            "2025-01-06T24:00:00Z",
            "2025-01-06T12:00:00.Z",
            "2025-01-06T12:00:00+0100",
            "2025-01-06T12:00:00Zjunk",
            "２025-01-06T12:00:00Z",
            "1736164800000",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
