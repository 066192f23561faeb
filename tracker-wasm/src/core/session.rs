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

    /// Records activity at `now_ms`; returns true when the session had expired, in which
    /// case the caller gives it a new id with [`Session::restart`].
    pub fn touch(&mut self, now_ms: i64, timeout_ms: i64) -> bool {
        let expired = now_ms - self.last_activity_ms >= timeout_ms;
        self.last_activity_ms = self.last_activity_ms.max(now_ms);
        expired
    }

    pub fn restart(&mut self, id: String, now_ms: i64) {
        self.id = id;
        self.last_activity_ms = now_ms;
    }
}
