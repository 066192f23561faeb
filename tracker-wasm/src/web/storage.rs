//! Where identity and queue live between page loads, and how tabs share them.
//!
//! The identity line (visitor id, session, user id) is one key every tab of the site reads and
//! writes. Queues are per tab: `pf_<clientKey>_q_<tab>`, written only by the tab that holds the
//! Web Lock of the same name. A tab keeps its tab id in `sessionStorage`, so a reload finds its
//! own queue again. Every tab waits for the locks of the other tabs' queues it sees; a tab
//! that closes releases its lock, one waiting tab is granted it, adopts the queue left behind
//! and deletes it under that lock, so no two tabs ever send the same stored event. Without Web
//! Locks (an insecure context), each tab keeps to its own queue.

use std::cell::RefCell;

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::core::Storage;

/// The device storage chosen by `storage`, with this client key's names.
pub(crate) struct Store {
    kind: Storage,
    local: Option<web_sys::Storage>,
    identity_key: String,
    /// This tab's queue key, once its lock is held (or locks do not exist here).
    pub(crate) queue_key: Option<String>,
}

/// Cookie lifetime: 13 months, the longest most privacy regulators accept for analytics.
const COOKIE_MAX_AGE_S: &str = "33696000";

impl Store {
    pub(crate) fn open(kind: Storage, client_key: &str) -> Store {
        let local = match kind {
            Storage::LocalStorage => local_storage(),
            _ => None,
        };
        Store {
            kind,
            local,
            identity_key: ["pf_", client_key].concat(),
            queue_key: None,
        }
    }

    pub(crate) fn queue_prefix(client_key: &str) -> String {
        ["pf_", client_key, "_q_"].concat()
    }

    pub(crate) fn read_identity(&self) -> Option<String> {
        match self.kind {
            Storage::LocalStorage => self.local.as_ref()?.get_item(&self.identity_key).ok()?,
            Storage::Cookie => read_cookie(&self.identity_key),
            Storage::Memory => None,
        }
    }

    /// Writes the identity line; false when the browser refused (quota, blocked storage).
    pub(crate) fn write_identity(&self, record: &str) -> bool {
        match self.kind {
            Storage::LocalStorage => self
                .local
                .as_ref()
                .is_some_and(|l| l.set_item(&self.identity_key, record).is_ok()),
            Storage::Cookie => {
                let value = String::from(js_sys::encode_uri_component(record));
                write_cookie(&self.identity_key, &value, COOKIE_MAX_AGE_S)
            }
            Storage::Memory => true,
        }
    }

    /// Forgets everything this tracker stored on the device (consent denied).
    pub(crate) fn remove_all(&self) {
        match self.kind {
            Storage::LocalStorage => {
                if let Some(l) = &self.local {
                    let _ = l.remove_item(&self.identity_key);
                    if let Some(q) = &self.queue_key {
                        let _ = l.remove_item(q);
                    }
                }
            }
            Storage::Cookie => {
                write_cookie(&self.identity_key, "", "0");
            }
            Storage::Memory => {}
        }
    }

    /// This tab's stored queue, once it owns its key.
    pub(crate) fn read_queue(&self) -> Option<String> {
        let (Some(l), Some(key)) = (&self.local, &self.queue_key) else {
            return None;
        };
        l.get_item(key).ok().flatten()
    }

    pub(crate) fn write_queue(&self, record: &str) -> bool {
        let (Some(l), Some(key)) = (&self.local, &self.queue_key) else {
            return true;
        };
        if record.is_empty() {
            l.remove_item(key).is_ok()
        } else {
            l.set_item(key, record).is_ok()
        }
    }
}

fn local_storage() -> Option<web_sys::Storage> {
    // Throws in some privacy modes and sandboxed iframes: then there is none.
    web_sys::window()?.local_storage().ok().flatten()
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

fn document() -> Option<web_sys::HtmlDocument> {
    web_sys::window()?.document()?.dyn_into().ok()
}

fn read_cookie(name: &str) -> Option<String> {
    let cookies = document()?.cookie().ok()?;
    cookies.split("; ").find_map(|c| {
        let (k, v) = c.split_once('=')?;
        (k == name).then(|| js_sys::decode_uri_component(v).ok().map(String::from))?
    })
}

fn write_cookie(name: &str, value: &str, max_age: &str) -> bool {
    let Some(doc) = document() else {
        return false;
    };
    let secure = web_sys::window()
        .and_then(|w| w.location().protocol().ok())
        .is_some_and(|p| p == "https:");
    let cookie = [
        name,
        "=",
        value,
        "; path=/; max-age=",
        max_age,
        "; SameSite=Lax",
        if secure { "; Secure" } else { "" },
    ]
    .concat();
    doc.set_cookie(&cookie).is_ok()
}

/// The lock this page holds for its queue: the queue key, and the function that releases it.
struct Held {
    key: String,
    release: Function,
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
    /// Other tabs' queue keys whose lock this page is waiting for.
    static WAITING: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// `navigator.locks`, where the browser has it (secure contexts only).
fn locks() -> Option<JsValue> {
    let navigator = web_sys::window()?.navigator();
    let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
    (!locks.is_undefined()).then_some(locks)
}

/// Calls `navigator.locks.request(name, { ifAvailable }, callback)`; the callback gets the
/// lock, or (only with `if_available`) `null` when another page holds it. The lock is held
/// until the promise the callback returns settles.
fn request_lock(
    locks: &JsValue,
    name: &str,
    if_available: bool,
    callback: impl FnOnce(bool) -> JsValue + 'static,
) {
    let Ok(request) = Reflect::get(locks, &"request".into()) else {
        return;
    };
    let options = Object::new();
    let _ = Reflect::set(&options, &"ifAvailable".into(), &if_available.into());
    let callback = Closure::once_into_js(move |lock: JsValue| callback(!lock.is_null()));
    if let Ok(request) = request.dyn_into::<Function>() {
        let _ = request.call3(locks, &name.into(), &options, &callback);
    }
}

/// Makes this tab the owner of a queue key and calls `owned(key)` once it is: at once when
/// this page already holds it (a second `init()`) or the browser has no Web Locks, otherwise
/// when the lock is granted. A duplicated tab (same `sessionStorage`) gets a new tab id.
pub(crate) fn claim_queue(client_key: &str, owned: impl FnOnce(String) + 'static) {
    let prefix = Store::queue_prefix(client_key);
    let held = HELD.with(|h| {
        let mut h = h.borrow_mut();
        match h.as_ref() {
            Some(held) if held.key.starts_with(&prefix) => Some(held.key.clone()),
            Some(_) => {
                let _ = h.take().map(|old| old.release.call0(&JsValue::NULL));
                None
            }
            None => None,
        }
    });
    if let Some(key) = held {
        return owned(key);
    }
    let session = session_storage();
    let tab_slot = ["pf_tab_", client_key].concat();
    let remembered = session
        .as_ref()
        .and_then(|s| s.get_item(&tab_slot).ok().flatten());
    let Some(locks) = locks() else {
        let tab = remembered.unwrap_or_else(super::random_id);
        if let Some(s) = &session {
            let _ = s.set_item(&tab_slot, &tab);
        }
        return owned([prefix.as_str(), &tab].concat());
    };
    try_tab(locks, prefix, tab_slot, remembered, owned);
}

fn try_tab(
    locks: JsValue,
    prefix: String,
    tab_slot: String,
    tab: Option<String>,
    owned: impl FnOnce(String) + 'static,
) {
    let fresh = tab.is_none();
    let tab = tab.unwrap_or_else(super::random_id);
    let key = [prefix.as_str(), &tab].concat();
    let name = key.clone();
    let locks2 = locks.clone();
    request_lock(&locks, &name, true, move |granted| {
        if !granted {
            // Another page holds this tab id: a duplicated tab. A new random id is free.
            if !fresh {
                try_tab(locks2, prefix, tab_slot, None, owned);
            }
            return JsValue::UNDEFINED;
        }
        if let Some(s) = session_storage() {
            let _ = s.set_item(&tab_slot, &tab);
        }
        let mut release = None;
        let hold = Promise::new(&mut |resolve, _| release = Some(resolve));
        if let Some(release) = release {
            HELD.with(|h| {
                *h.borrow_mut() = Some(Held {
                    key: key.clone(),
                    release,
                })
            });
        }
        owned(key);
        hold.into()
    });
}

/// Takes over the queues of other tabs once they are gone. For every other tab's queue key in
/// storage, this page asks for that tab's lock and waits: the browser grants it at once if the
/// tab has closed, or the moment it closes. Then, under the lock, `adopt` takes the events (and
/// must store them before returning) and the key is deleted. Keys already waited on are
/// skipped, so this can run as often as storage changes.
pub(crate) fn adopt_orphans(client_key: &str, adopt: impl Fn(&str) + Clone + 'static) {
    let (Some(locks), Some(local)) = (locks(), local_storage()) else {
        return;
    };
    let prefix = Store::queue_prefix(client_key);
    let own = HELD.with(|h| h.borrow().as_ref().map(|h| h.key.clone()));
    if own.is_none() {
        return;
    }
    let len = local.length().unwrap_or(0);
    let keys: Vec<String> = (0..len)
        .filter_map(|i| local.key(i).ok().flatten())
        .filter(|k| k.starts_with(&prefix) && Some(k) != own.as_ref())
        .filter(|k| WAITING.with(|w| !w.borrow().contains(k)))
        .collect();
    for key in keys {
        WAITING.with(|w| w.borrow_mut().push(key.clone()));
        let adopt = adopt.clone();
        let name = key.clone();
        request_lock(&locks, &name, false, move |_| {
            WAITING.with(|w| w.borrow_mut().retain(|k| *k != key));
            if let Some(local) = local_storage() {
                if let Ok(Some(record)) = local.get_item(&key) {
                    adopt(&record);
                }
                let _ = local.remove_item(&key);
            }
            JsValue::UNDEFINED
        });
    }
}
