//! The few string helpers the wasm needs, written so that it links neither `core::fmt` nor
//! the generic `str` parsing and pattern-searching code: each would cost every page that
//! loads the tracker more than these lines do. Separators are ASCII bytes, so cutting at one
//! always leaves valid UTF-8 on both sides.

/// Hex digits as strings: pushing one needs no UTF-8 encoding of a `char`.
const DIGITS: [&str; 16] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
];

/// Appends the hex digit `d` (0 to 15).
pub(super) fn push_digit(out: &mut String, d: u8) {
    out.push_str(DIGITS[usize::from(d & 0xf)]);
}

/// `s` cut at the first `sep`: what is before it and what is after it.
pub fn cut(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// The pieces of `s` between the `sep` bytes (`str::split` for an ASCII separator).
pub fn pieces(s: &str, sep: u8) -> Pieces<'_> {
    Pieces { rest: Some(s), sep }
}

pub struct Pieces<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match cut(s, self.sep) {
            Some((piece, rest)) => {
                self.rest = Some(rest);
                Some(piece)
            }
            None => {
                self.rest = None;
                Some(s)
            }
        }
    }
}

/// The first `N` fields of `line` between `sep` bytes, the last holding the rest of the
/// line; missing fields are empty.
pub fn fields<const N: usize>(line: &str, sep: u8) -> [&str; N] {
    let mut out = [""; N];
    let mut rest = Some(line);
    for (i, field) in out.iter_mut().enumerate() {
        let Some(s) = rest else { break };
        match cut(s, sep).filter(|_| i + 1 < N) {
            Some((head, tail)) => {
                *field = head;
                rest = Some(tail);
            }
            None => {
                *field = s;
                rest = None;
            }
        }
    }
    out
}

/// Reads a whole number (optionally negative, digits only) without `str::parse`, whose
/// generic code would cost the wasm more than this.
pub fn parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix("-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Some(if negative { -n } else { n })
}

/// Writes a whole number without `core::fmt`, which would cost the wasm kilobytes.
pub fn push_int(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        push_digit(out, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_and_fields_split_like_str_split() {
        for s in ["", "a", "a b", " a  b ", "été à", "a b c d e"] {
            let ours: Vec<_> = pieces(s, b' ').collect();
            let std: Vec<_> = s.split(' ').collect();
            assert_eq!(ours, std, "{s:?}");
            assert_eq!(cut(s, b' '), s.split_once(' '), "{s:?}");
        }
        assert_eq!(fields::<3>("a\x1fb", 0x1f), ["a", "b", ""]);
        assert_eq!(fields::<2>("a\nb\nc\nd", b'\n'), ["a", "b\nc\nd"]);
        assert_eq!(fields::<1>("", b'\n'), [""]);
    }

    #[test]
    fn integers_are_written_exactly() {
        for n in [0, 7, -7, 1_795_874_400_123, i64::MIN, i64::MAX] {
            let mut s = String::new();
            push_int(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn integers_are_read_exactly_or_not_at_all() {
        for n in [0, 7, -7, 1_795_874_400_123, 999_999_999_999_999_999] {
            assert_eq!(parse_int(&n.to_string()), Some(n));
        }
        for bad in [
            "",
            "-",
            "+1",
            "1.5",
            "1e3",
            " 1",
            "12a",
            "9999999999999999999",
        ] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }
}
