//! Where identity and queue live between page loads, and how tabs share them.
//!
//! The identity line (visitor id, session, user id) is one key every tab of the site reads and
//! writes. Queues are per tab: `pf_<clientKey>_q_<tab>`, written only by the tab that holds the
//! Web Lock of the same name. A tab keeps its tab id in `sessionStorage`, so a reload finds its
//! own queue again. Every tab waits for the locks of the other tabs' queues it sees; a tab
//! that closes releases its lock, one waiting tab is granted it, adopts the queue left behind
//! and deletes it under that lock, so no two tabs ever send the same stored event. Without Web
//! Locks (an insecure context), each tab keeps to its own queue. The locking itself is in
//! `host.js` (`claim`, `adopt`).

use super::host::{self, COOKIE, LOCAL};
use crate::core::Storage;

/// The device storage chosen by `storage`, with this client key's names.
pub(crate) struct Store {
    kind: Storage,
    identity_key: String,
    /// This tab's queue key, once its lock is held (or locks do not exist here).
    pub(crate) queue_key: Option<String>,
}

impl Store {
    pub(crate) fn open(kind: Storage, client_key: &str) -> Store {
        Store {
            kind,
            identity_key: ["pf_", client_key].concat(),
            queue_key: None,
        }
    }

    pub(crate) fn queue_prefix(client_key: &str) -> String {
        ["pf_", client_key, "_q_"].concat()
    }

    /// Where the identity goes: `localStorage`, a cookie, or nowhere.
    fn identity_kind(&self) -> Option<u32> {
        match self.kind {
            Storage::LocalStorage => Some(LOCAL),
            Storage::Cookie => Some(COOKIE),
            Storage::Memory => None,
        }
    }

    pub(crate) fn read_identity(&self) -> Option<String> {
        host::get(self.identity_kind()?, &self.identity_key)
    }

    /// Writes the identity line; false when the browser refused (quota, blocked storage).
    pub(crate) fn write_identity(&self, record: &str) -> bool {
        self.identity_kind()
            .is_none_or(|kind| host::set(kind, &self.identity_key, record))
    }

    /// Forgets everything this tracker stored on the device (consent denied).
    pub(crate) fn remove_all(&self) {
        if let Some(kind) = self.identity_kind() {
            host::set(kind, &self.identity_key, "");
        }
        if let Some(q) = &self.queue_key {
            host::set(LOCAL, q, "");
        }
    }

    /// This tab's stored queue, once it owns its key.
    pub(crate) fn read_queue(&self) -> Option<String> {
        host::get(LOCAL, self.queue_key.as_ref()?)
    }

    /// Writes this tab's queue ("" removes it); false when the browser refused.
    pub(crate) fn write_queue(&self, record: &str) -> bool {
        self.queue_key
            .as_ref()
            .is_none_or(|key| host::set(LOCAL, key, record))
    }
}
