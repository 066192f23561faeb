//! User agents reduced to what analysis needs and no more: browser family, OS family and
//! device class. The full string, which helps fingerprint a person, is never stored.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Agent {
    // Fields in alphabetical order, as the log writes every object's keys.
    pub browser: &'static str,
    pub device: &'static str,
    pub os: &'static str,
}

pub fn reduce(ua: &str) -> Agent {
    let has = |needle: &str| ua.contains(needle);
    let lower = ua.to_ascii_lowercase();
    let bot = [
        "bot",
        "crawler",
        "spider",
        "slurp",
        "curl/",
        "wget/",
        "python-requests",
        "headlesschrome",
    ]
    .iter()
    .any(|b| lower.contains(b));
    let browser = if has("Edg/") || has("EdgA/") || has("EdgiOS/") {
        "Edge"
    } else if has("OPR/") || has("Opera") {
        "Opera"
    } else if has("SamsungBrowser/") {
        "Samsung Internet"
    } else if has("Firefox/") || has("FxiOS/") {
        "Firefox"
    } else if has("CriOS/") || has("Chrome/") || has("Chromium/") {
        "Chrome"
    } else if has("Safari/") && has("Version/") {
        "Safari"
    } else {
        "Other"
    };
    let os = if has("Windows") {
        "Windows"
    } else if has("iPhone") || has("iPad") || has("iPod") {
        "iOS"
    } else if has("Android") {
        "Android"
    } else if has("CrOS") {
        "ChromeOS"
    } else if has("Macintosh") || has("Mac OS X") {
        "macOS"
    } else if has("Linux") {
        "Linux"
    } else {
        "Other"
    };
    let device = if bot {
        "bot"
    } else if has("iPad") || has("Tablet") || (os == "Android" && !has("Mobile")) {
        "tablet"
    } else if has("Mobi") || has("iPhone") || os == "Android" {
        "mobile"
    } else if ua.is_empty() {
        "unknown"
    } else {
        "desktop"
    };
    Agent {
        browser,
        os,
        device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ua: &str, browser: &str, os: &str, device: &str) {
        assert_eq!(
            reduce(ua),
            Agent {
                browser: leak(browser),
                os: leak(os),
                device: leak(device)
            },
            "{ua}"
        );
    }

    fn leak(s: &str) -> &'static str {
        Box::leak(s.to_owned().into_boxed_str())
    }

    #[test]
    fn families_and_classes() {
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Chrome",
            "Windows",
            "desktop",
        );
        check(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
            "Edge",
            "Windows",
            "desktop",
        );
        check(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            "Safari",
            "macOS",
            "desktop",
        );
        check(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Safari",
            "iOS",
            "mobile",
        );
        check(
            "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0 Mobile/15E148 Safari/604.1",
            "Chrome",
            "iOS",
            "tablet",
        );
        check(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome",
            "Android",
            "mobile",
        );
        check(
            "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36",
            "Samsung Internet",
            "Android",
            "tablet",
        );
        check(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Firefox",
            "Linux",
            "desktop",
        );
        check(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Other",
            "Other",
            "bot",
        );
        check("", "Other", "Other", "unknown");
    }
}
