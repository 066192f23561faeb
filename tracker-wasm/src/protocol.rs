//! The string protocol between `js/host.js` and the Rust side (`web/`), defined once. Values
//! cross the boundary as numbers and strings: what `dispatch(kind, number, text)` reports, the
//! separators inside those strings, the storage kinds, a batch's outcome, and the mark of a
//! refused call. `host.js` carries the same constants in a block generated from [`javascript`]
//! (`cargo xtask gen-types` writes it); a test fails when that block is stale.

/// What `host.js` reports through `dispatch(kind, number, text)`.
pub mod report {
    /// A timer set by `timer(tag, ms)` fired; the number is its tag.
    pub const TIMER: u32 = 0;
    /// A flush asks for its next batch; the number is 1 for its first.
    pub const NEXT: u32 = 1;
    /// Ingest answered a batch (the number is its id): `generation`, `status`,
    /// `retry-after`, `body`, in fields.
    pub const ANSWER: u32 = 2;
    /// A flush ended: schedule the next one.
    pub const SCHEDULE: u32 = 3;
    /// The page is going away or to the background.
    pub const HIDE: u32 = 4;
    /// The browser is back online.
    pub const ONLINE: u32 = 5;
    /// The URL changed (`pushState`, `replaceState`, `popstate`, `hashchange`).
    pub const ROUTE: u32 = 6;
    /// A declared element was clicked or an impression viewed: `declared GROUP impression`.
    pub const ELEMENT: u32 = 7;
    /// An iframe component greeted this page; the text is its origin.
    pub const HELLO: u32 = 8;
    /// The host page told this iframe its identity: `origin`, `visitor`, `session`,
    /// `client_ref`, in fields.
    pub const HOST: u32 = 9;
    /// This tab holds its queue's lock; the text is what it stored there before.
    pub const CLAIMED: u32 = 10;
    /// Another tab's queue, left behind, to take over.
    pub const ADOPT: u32 = 11;
}

/// Separates the fields of a line.
pub const FIELD: u8 = 0x1f;
/// Separates records (the entities of an event).
pub const RECORD: u8 = 0x1e;
/// Separates groups (the options of `init()`; the two events of an element).
pub const GROUP: u8 = 0x1d;
/// Separates the items of a list (an entity's type and id; a list option's values).
pub const ITEM: u8 = 0x1c;

/// Where `host.js` keeps a configuration's state, and the tab's id.
pub mod storage {
    pub const LOCAL_STORAGE: u32 = 0;
    pub const COOKIE: u32 = 1;
    /// Nothing kept on the device.
    pub const MEMORY: u32 = 2;
    /// `sessionStorage`: the tab's own id, never a configuration's state.
    pub const SESSION_STORAGE: u32 = 3;
}

/// What became of a batch, as `dispatch(ANSWER, …)` answers.
pub mod outcome {
    pub const DELIVERED: &str = "0";
    pub const RETRY: &str = "1";
    pub const DROP: &str = "2";
}

/// Starts a line that is a refusal, what is wrong following it (an invalid `track()` call or
/// declared element).
pub const INVALID: &str = "!";

/// Starts a line the page's `beforeSend` dropped: alone when it returned `null`, followed by
/// what went wrong when it threw or returned something that is not an event.
pub const DROPPED: &str = "-";

/// Starts a line the page's `beforeSend` returned: its validation failures are `beforeSend`'s.
pub const SCREENED: &str = "~";

/// The first line of the block `host.js` carries.
pub const BEGIN: &str =
    "// The protocol with `src/web/`, generated from src/protocol.rs by `cargo xtask gen-types`.";
/// The last line of that block.
pub const END: &str = "// End of the generated protocol.";

/// The block of `host.js` that defines the protocol's constants, [`BEGIN`] to [`END`].
pub fn javascript() -> String {
    use report::*;
    use storage::*;
    let char = |c: u8| format!("\"\\x{c:02x}\"");
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(BEGIN.to_owned());
    let reports = [
        ("TIMER", TIMER),
        ("NEXT", NEXT),
        ("ANSWER", ANSWER),
        ("SCHEDULE", SCHEDULE),
        ("HIDE", HIDE),
        ("ONLINE", ONLINE),
        ("ROUTE", ROUTE),
        ("ELEMENT", ELEMENT),
        ("HELLO", HELLO),
        ("HOST", HOST),
        ("CLAIMED", CLAIMED),
        ("ADOPT", ADOPT),
    ];
    for (name, n) in reports {
        line(format!("const {name} = {n};"));
    }
    for (name, c) in [
        ("FIELD", FIELD),
        ("RECORD", RECORD),
        ("GROUP", GROUP),
        ("ITEM", ITEM),
    ] {
        line(format!("const {name} = {};", char(c)));
    }
    line(format!(
        "const SEPARATORS = /[{}-{}]/g;",
        &char(ITEM)[1..5],
        &char(FIELD)[1..5]
    ));
    for (name, n) in [
        ("LOCAL_STORAGE", LOCAL_STORAGE),
        ("COOKIE", COOKIE),
        ("MEMORY", MEMORY),
        ("SESSION_STORAGE", SESSION_STORAGE),
    ] {
        line(format!("const {name} = {n};"));
    }
    for (name, s) in [
        ("DELIVERED", outcome::DELIVERED),
        ("RETRY", outcome::RETRY),
        ("DROP", outcome::DROP),
        ("INVALID", INVALID),
        ("DROPPED", DROPPED),
        ("SCREENED", SCREENED),
    ] {
        line(format!("const {name} = \"{s}\";"));
    }
    line(END.to_owned());
    out
}

/// `host` with its protocol block replaced by [`javascript`]'s; `None` when it has no block.
pub fn with_fresh_block(host: &str) -> Option<String> {
    let start = host.find(BEGIN)?;
    let end = host[start..].find(END)? + start + END.len() + 1;
    Some([&host[..start], &javascript(), host.get(end..).unwrap_or("")].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_js_carries_the_protocol_as_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/js/host.js");
        let host = std::fs::read_to_string(path).unwrap();
        assert_eq!(
            with_fresh_block(&host).as_deref(),
            Some(host.as_str()),
            "{path} is stale: run `cargo xtask gen-types`"
        );
    }

    #[test]
    fn the_separators_are_distinct_and_in_one_range() {
        let mut all = [FIELD, RECORD, GROUP, ITEM];
        all.sort_unstable();
        assert_eq!(all, [0x1c, 0x1d, 0x1e, 0x1f]);
        assert!(javascript().contains("const SEPARATORS = /[\\x1c-\\x1f]/g;"));
    }

    #[test]
    fn a_stale_block_is_replaced_and_the_rest_kept() {
        let stale = format!("before\n{BEGIN}\nconst TIMER = 9;\n{END}\nafter\n");
        let fresh = with_fresh_block(&stale).unwrap();
        assert_eq!(fresh, format!("before\n{}after\n", javascript()));
        assert_eq!(with_fresh_block("no block"), None);
    }
}
