//! URLs stripped of what identifies a person: the fragment always, and every query parameter
//! except campaign tags (`utm_*`), which analysis needs and which name no one.

use std::borrow::Cow;

/// Query parameters kept, by prefix.
const KEPT_QUERY_PREFIXES: [&str; 1] = ["utm_"];

/// True for values treated as URLs: absolute http(s) URLs and site paths.
fn is_url(s: &str) -> bool {
    s.starts_with("https://")
        || s.starts_with("http://")
        || (s.starts_with('/') && !s.starts_with("//"))
}

/// `s` without its fragment and non-allowlisted query parameters, if it is a URL.
pub fn strip(s: &str) -> Cow<'_, str> {
    if !is_url(s) || !(s.contains('?') || s.contains('#')) {
        return Cow::Borrowed(s);
    }
    let without_fragment = s.split('#').next().unwrap_or(s);
    let (base, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    let mut out = String::with_capacity(without_fragment.len());
    out.push_str(base);
    let kept = query
        .split('&')
        .filter(|pair| KEPT_QUERY_PREFIXES.iter().any(|p| pair.starts_with(p)));
    for (i, pair) in kept.enumerate() {
        out.push_str(if i == 0 { "?" } else { "&" });
        out.push_str(pair);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_campaign_tags_only() {
        for (input, expected) in [
            (
                "https://app.example.com/stocks/AAPL?acct=12345&utm_source=news&session=abc#top",
                "https://app.example.com/stocks/AAPL?utm_source=news",
            ),
            ("/search?q=jane%40example.com", "/search"),
            ("/stocks/AAPL#chart", "/stocks/AAPL"),
            ("/stocks/AAPL", "/stocks/AAPL"),
            ("/x?utm_a=1&b=2&utm_c=3#f", "/x?utm_a=1&utm_c=3"),
            ("what? no#", "what? no#"),
            ("//cdn.example.com/x?y=1", "//cdn.example.com/x?y=1"),
        ] {
            assert_eq!(strip(input), expected, "{input}");
        }
    }
}
