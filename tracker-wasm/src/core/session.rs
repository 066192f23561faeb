//! Who is browsing: the anonymous visitor id, the session, and the customer's user id. All
//! tabs of a site share one [`Identity`] through storage, written as one short line.

use super::text::{parse_int, pieces, push_int};

/// A browsing session: one id until the visitor is idle for longer than the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub last_activity_ms: i64,
}

impl Session {
    pub fn new(id: String, now_ms: i64) -> Session {
        Session {
            id,
            last_activity_ms: now_ms,
        }
    }

    /// True when the session has been idle for at least `timeout_ms` at `now_ms`.
    pub fn expired(&self, now_ms: i64, timeout_ms: i64) -> bool {
        now_ms - self.last_activity_ms >= timeout_ms
    }

    /// Records activity at `now_ms`; returns true when the session had expired, in which
    /// case the caller gives it a new id with [`Session::restart`].
    pub fn touch(&mut self, now_ms: i64, timeout_ms: i64) -> bool {
        let expired = self.expired(now_ms, timeout_ms);
        self.last_activity_ms = self.last_activity_ms.max(now_ms);
        expired
    }

    pub fn restart(&mut self, id: String, now_ms: i64) {
        self.id = id;
        self.last_activity_ms = now_ms;
    }
}

/// The part of the tracker's state every tab shares, persisted between page loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Random, per browser profile (or per cookie jar); the user id of anonymous events.
    pub visitor_id: String,
    pub session: Session,
    pub client_ref: Option<String>,
}

/// First word of a stored identity; a later format gets a new one and old records are ignored.
const FORMAT: &str = "pf1";

impl Identity {
    /// One line, space-separated: ids never contain whitespace (the wire format forbids it).
    pub fn encode(&self, with_client_ref: bool) -> String {
        let mut out = [FORMAT, " ", &self.visitor_id, " ", &self.session.id, " "].concat();
        push_int(&mut out, self.session.last_activity_ms);
        if let Some(r) = self.client_ref.as_ref().filter(|_| with_client_ref) {
            out.push(' ');
            out.push_str(r);
        }
        out
    }

    /// Reads what [`Identity::encode`] wrote; `None` for anything else (another format, a
    /// value edited by hand), which the tracker then replaces.
    pub fn decode(s: &str) -> Option<Identity> {
        let mut parts = pieces(s, b' ');
        if parts.next()? != FORMAT {
            return None;
        }
        let visitor_id = parts.next().filter(|p| !p.is_empty())?.to_owned();
        let id = parts.next().filter(|p| !p.is_empty())?.to_owned();
        let last_activity_ms = parse_int(parts.next()?)?;
        let client_ref = parts.next().filter(|p| !p.is_empty()).map(str::to_owned);
        if parts.next().is_some() {
            return None;
        }
        Some(Identity {
            visitor_id,
            session: Session {
                id,
                last_activity_ms,
            },
            client_ref,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_rejects_other_text() {
        let mut id = Identity {
            visitor_id: "v-1".into(),
            session: Session::new("s-1".into(), 1_795_874_400_123),
            client_ref: Some("user-42".into()),
        };
        assert_eq!(id.encode(true), "pf1 v-1 s-1 1795874400123 user-42");
        assert_eq!(Identity::decode(&id.encode(true)), Some(id.clone()));
        assert_eq!(id.encode(false), "pf1 v-1 s-1 1795874400123");
        id.client_ref = None;
        assert_eq!(Identity::decode(&id.encode(true)), Some(id));
        for bad in [
            "",
            "pf0 v s 1",
            "pf1 v s",
            "pf1 v s x",
            "pf1  s 1",
            "pf1 v s 1 r extra",
        ] {
            assert_eq!(Identity::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expiry_is_measured_from_the_last_activity() {
        let mut s = Session::new("s".into(), 1_000);
        assert!(!s.touch(60_000, 60_000));
        assert!(!s.expired(119_999, 60_000));
        assert!(s.touch(120_000, 60_000));
        assert!(
            !s.touch(100_000, 60_000),
            "a clock step back is not activity"
        );
        assert_eq!(s.last_activity_ms, 120_000);
    }
}
