//! Free text scrubbed of personal data: what looks like an email, a payment card (Luhn-valid),
//! an IBAN (mod-97-valid), an IPv4 address, a phone number or a secret token becomes a typed placeholder such
//! as `[email]`, so the rest of the text stays useful.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex, RegexSet};

struct Rule {
    pattern: Regex,
    placeholder: &'static str,
    /// A checksum the match must pass, where one exists, so order ids and prices survive.
    valid: fn(&str) -> bool,
    /// Applied to the platform's own ids too. Digit-run rules (cards, phones, IPs) and the
    /// random-token rule are not: an impression id such as `req-1764344400123-2` is a long
    /// digit run that passes Luhn one time in ten, and scrubbing it would break attribution.
    on_ids: bool,
}

fn always(_: &str) -> bool {
    true
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |pattern: &str, placeholder, valid| Rule {
        pattern: Regex::new(pattern).expect("the PII patterns are valid"),
        placeholder,
        valid,
        on_ids: true,
    };
    let not_on_ids = |rule: Rule| Rule {
        on_ids: false,
        ..rule
    };
    vec![
        rule(
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            "[email]",
            always,
        ),
        rule(
            r"\b(?:eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abpors]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})\b",
            "[secret]",
            always,
        ),
        rule(
            r"\b(?:Bearer|bearer|token|password|passwd|pwd)[=: ]+[^\s&]{6,}",
            "[secret]",
            always,
        ),
        not_on_ids(rule(r"\b\d(?:[ -]?\d){12,18}\b", "[card]", luhn)),
        rule(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", "[iban]", iban),
        not_on_ids(rule(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[ip]", ipv4)),
        not_on_ids(rule(
            r"\+\d[\d ().-]{7,17}\d\b|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b",
            "[phone]",
            always,
        )),
        not_on_ids(rule(
            r"\b[A-Za-z0-9_+/-]{32,}={0,2}",
            "[secret]",
            looks_random,
        )),
    ]
});

/// `text` with every personal-data match replaced; borrowed when there was none.
pub fn scrub(text: &str) -> Cow<'_, str> {
    scrub_with(text, true)
}

/// [`scrub`] for an identifier the platform minted or the UI echoes (impression, request and
/// content ids): emails, recognisable secrets and IBANs only (see `Rule::on_ids`).
pub fn scrub_id(text: &str) -> Cow<'_, str> {
    scrub_with(text, false)
}

/// All rules' patterns in one automaton: most text holds no personal data, and one scan
/// that says so is far cheaper than one scan per rule.
static ANY: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(RULES.iter().map(|r| r.pattern.as_str())).expect("the PII patterns are valid")
});

fn scrub_with(text: &str, free_text: bool) -> Cow<'_, str> {
    let out = scrub_plain(text, free_text);
    if !out.contains('%') {
        return out;
    }
    // Personal data percent-encoded, as an email in a URL's path (`/u/jane%40x.com`), is
    // found in the decoded text, which is then what is kept, scrubbed.
    let decoded = percent_decoded(&out);
    match scrub_plain(&decoded, free_text) {
        Cow::Owned(scrubbed) if scrubbed != decoded => Cow::Owned(scrubbed),
        _ => out,
    }
}

/// `text` with every `%XX` escape decoded (bytes that are not UTF-8 become U+FFFD).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if let (b'%', Some(hi), Some(lo)) = (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn scrub_plain(text: &str, free_text: bool) -> Cow<'_, str> {
    let hits = ANY.matches(text);
    let mut out = Cow::Borrowed(text);
    for (i, rule) in RULES.iter().enumerate() {
        if !hits.matched(i) || !(free_text || rule.on_ids) {
            continue;
        }
        let replaced = rule.pattern.replace_all(&out, |c: &Captures<'_>| {
            let m = &c[0];
            if (rule.valid)(m) {
                rule.placeholder.to_owned()
            } else {
                m.to_owned()
            }
        });
        if let Cow::Owned(s) = replaced {
            out = Cow::Owned(s);
        }
    }
    out
}

/// True when [`scrub`] would change `text`.
pub fn contains_pii(text: &str) -> bool {
    matches!(scrub(text), Cow::Owned(ref s) if s != text)
}

fn luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban(candidate: &str) -> bool {
    let compact: Vec<char> = candidate.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut remainder = 0u32;
    for c in rearranged {
        let value = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        remainder = if value < 10 {
            (remainder * 10 + value) % 97
        } else {
            (remainder * 100 + value) % 97
        };
    }
    remainder == 1
}

fn ipv4(candidate: &str) -> bool {
    candidate
        .split('.')
        .all(|octet| octet.parse::<u8>().is_ok())
}

/// A long token mixing upper case, lower case and digits: an API key or a session secret,
/// not a word, a hex digest or a UUID.
fn looks_random(candidate: &str) -> bool {
    candidate.chars().any(|c| c.is_ascii_uppercase())
        && candidate.chars().any(|c| c.is_ascii_lowercase())
        && candidate.chars().any(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(scrub(input), expected, "{input}");
    }

    #[test]
    fn replaces_each_kind_with_its_placeholder() {
        check("mail jane.doe+x@example.co.uk now", "mail [email] now");
        check("card 4111 1111 1111 1111 ok", "card [card] ok");
        check("card 4111-1111-1111-1111", "card [card]");
        check(
            "iban GB82 WEST 1234 5698 7654 32 thanks",
            "iban [iban] thanks",
        );
        check("iban DE89370400440532013000", "iban [iban]");
        check("call +44 20 7946 0958 today", "call [phone] today");
        check("call (555) 123-4567", "call [phone]");
        check("key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "key [secret]");
        check(
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt [secret]",
        );
        check("token=abcdef123456&x=1", "[secret]&x=1");
        check("AKIAIOSFODNN7EXAMPLE", "[secret]");
        check("from 203.0.113.7 via 10.0.0.1", "from [ip] via [ip]");
        check("s=Xq9vLm2PzR8tYw4KjH6nBc3DfG5sAe7U", "s=[secret]");
    }

    #[test]
    fn leaves_look_alikes_that_fail_their_checks() {
        for text in [
            "order 4111 1111 1111 1112",
            "GB82 WEST 1234 5698 7654 33",
            "price 1234567.89 USD",
            "version 1.2.300.4",
            "AAPL rose 3.4% to 231.40",
            "0192f3a0-7c1e-4b7a-9c2e-1f2a3b4c5d6e",
            "8fe33e6858db92e69b3e49e77775f3a4",
            "tesla earnings q3 2026",
            "/stocks/AAPL",
        ] {
            check(text, text);
        }
    }

    #[test]
    fn platform_ids_are_not_taken_for_secrets() {
        let id = "Xq9vLm2PzR8tYw4KjH6nBc3DfG5sAe7U";
        assert_eq!(scrub_id(id), id);
        assert_eq!(scrub_id("imp-1 a@b.co"), "imp-1 [email]");
        // A timestamp-based id whose digits happen to pass Luhn, as a card number would.
        let digits = "req-4111111111111111";
        assert_eq!(
            scrub(digits),
            "req-[card]",
            "in free text it is taken for a card"
        );
        assert_eq!(scrub_id(digits), digits, "as an id it is left alone");
        assert_eq!(
            scrub_id("req-1.2.3.4-+44 20 7946 0958"),
            "req-1.2.3.4-+44 20 7946 0958"
        );
    }

    #[test]
    fn finds_what_percent_encoding_hides() {
        check(
            "/users/jane%40example.com/profile",
            "/users/[email]/profile",
        );
        check("/u/jane%2Edoe%40example%2Ecom", "/u/[email]");
        assert_eq!(scrub_id("imp-7%40x"), "imp-7%40x", "no domain: no email");
        assert_eq!(scrub_id("imp%2D1%20jane%40x.co"), "imp-1 [email]");
        // Escapes that hide nothing stay as they were sent.
        for text in ["/search?q=50%25%20off", "100%", "%zz", "%E2%82%AC 5"] {
            check(text, text);
        }
    }

    #[test]
    fn detects_without_changing() {
        assert!(contains_pii("write to a@b.co"));
        assert!(!contains_pii("nvidia"));
    }
}
