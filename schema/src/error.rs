//! Typed errors: one variant per rule, each naming the field (as a path such as
//! `related_entities[2].id`) and the limit it broke.

/// Why one event was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    NotAnObject,
    TooLarge {
        size: usize,
        limit: usize,
    },
    Missing {
        field: String,
    },
    WrongType {
        field: String,
        expected: &'static str,
    },
    UnknownField {
        field: String,
    },
    /// A name or id, or a key or string of `event_meta`, breaks one of [`FieldError`]'s rules.
    Field(FieldError),
    InvalidTimestamp {
        field: String,
        reason: String,
    },
    TooDeep {
        field: String,
        limit: usize,
    },
    TooManyKeys {
        limit: usize,
    },
    TooManyEntities {
        count: usize,
        limit: usize,
    },
    ClientKeyMismatch,
}

impl EventError {
    /// What is wrong, in words, written without `core::fmt` so the browser tracker can use
    /// it without linking the formatting machinery (the `Display` text is the same).
    pub fn message(&self) -> String {
        let n = |v: &usize| decimal(*v);
        match self {
            EventError::NotAnObject => "event must be a JSON object".into(),
            EventError::TooLarge { size, limit } => [
                "event is ",
                &n(size),
                " bytes, over the limit of ",
                &n(limit),
                " bytes",
            ]
            .concat(),
            EventError::Missing { field } => ["missing required field `", field, "`"].concat(),
            EventError::WrongType { field, expected } => {
                ["field `", field, "` must be ", expected].concat()
            }
            EventError::UnknownField { field } => ["unknown field `", field, "`"].concat(),
            EventError::Field(e) => e.message(),
            EventError::InvalidTimestamp { field, reason } => {
                ["field `", field, "` is not an RFC 3339 timestamp: ", reason].concat()
            }
            EventError::TooDeep { field, limit } => [
                "field `",
                field,
                "` nests deeper than the limit of ",
                &n(limit),
                " levels",
            ]
            .concat(),
            EventError::TooManyKeys { limit } => [
                "`event_meta` has more than the limit of ",
                &n(limit),
                " keys",
            ]
            .concat(),
            EventError::TooManyEntities { count, limit } => [
                "`related_entities` has ",
                &n(count),
                " entries, over the limit of ",
                &n(limit),
            ]
            .concat(),
            EventError::ClientKeyMismatch => {
                "`client_key` differs from the batch's client_key; a batch carries one client_key"
                    .into()
            }
        }
    }
    /// The stable machine-readable code of the rule, as ingest reports it.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::NotAnObject => "not_an_object",
            EventError::TooLarge { .. } => "event_too_large",
            EventError::Missing { .. } => "missing_field",
            EventError::WrongType { .. } => "wrong_type",
            EventError::UnknownField { .. } => "unknown_field",
            EventError::Field(e) => e.code(),
            EventError::InvalidTimestamp { .. } => "invalid_timestamp",
            EventError::TooDeep { .. } => "too_deep",
            EventError::TooManyKeys { .. } => "too_many_keys",
            EventError::TooManyEntities { .. } => "too_many_entities",
            EventError::ClientKeyMismatch => "client_key_mismatch",
        }
    }
}

/// What is wrong with one field: the rules of [`check_name`](crate::check_name) and
/// [`check_id`](crate::check_id), which the browser tracker applies too, and the lengths of
/// `event_meta`'s keys and strings. A type of its own so that the tracker links the words of
/// these four rules only, not every rule's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Empty {
        field: String,
    },
    TooLong {
        field: String,
        len: usize,
        limit: usize,
    },
    NotSnakeCase {
        field: String,
    },
    InvalidCharacters {
        field: String,
    },
}

impl FieldError {
    /// The same error named for `field` (a nested field's path is written only once it fails).
    pub fn at(mut self, field: String) -> FieldError {
        match &mut self {
            FieldError::Empty { field: f }
            | FieldError::TooLong { field: f, .. }
            | FieldError::NotSnakeCase { field: f }
            | FieldError::InvalidCharacters { field: f } => *f = field,
        }
        self
    }

    /// What is wrong, in words, without `core::fmt` (as [`EventError::message`]).
    pub fn message(&self) -> String {
        match self {
            FieldError::Empty { field } => ["field `", field, "` must not be empty"].concat(),
            FieldError::TooLong { field, len, limit } => [
                "field `",
                field,
                "` is ",
                &decimal(*len),
                " characters long, over the limit of ",
                &decimal(*limit),
            ]
            .concat(),
            FieldError::NotSnakeCase { field } => [
                "field `",
                field,
                "` must be lower_snake_case: a-z first, then a-z, 0-9 or _",
            ]
            .concat(),
            FieldError::InvalidCharacters { field } => [
                "field `",
                field,
                "` must not contain whitespace or control characters",
            ]
            .concat(),
        }
    }

    /// The stable machine-readable code of the rule, as ingest reports it.
    pub fn code(&self) -> &'static str {
        match self {
            FieldError::Empty { .. } => "empty",
            FieldError::TooLong { .. } => "too_long",
            FieldError::NotSnakeCase { .. } => "not_snake_case",
            FieldError::InvalidCharacters { .. } => "invalid_characters",
        }
    }
}

impl From<FieldError> for EventError {
    fn from(e: FieldError) -> EventError {
        EventError::Field(e)
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for FieldError {}

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for EventError {}

/// Decimal digits of a count, without `core::fmt`.
fn decimal(v: usize) -> String {
    let mut out = String::new();
    crate::time::push_digits(&mut out, v as u64, 1);
    out
}

/// Why a whole batch was refused: nothing in it can be read as events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("body is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not a valid batch: {reason}")]
    Malformed { reason: String },
    #[error("batch has no events")]
    NoEvents,
    #[error("batch has {count} events, over the limit of {limit}")]
    TooManyEvents { count: usize, limit: usize },
    #[error("field `sent_at` is not an RFC 3339 timestamp: {reason}")]
    InvalidSentAt { reason: String },
    #[error("no event in the batch has a string `client_key`")]
    NoClientKey,
}

impl BatchError {
    pub fn code(&self) -> &'static str {
        match self {
            BatchError::TooLarge { .. } => "body_too_large",
            BatchError::Malformed { .. } => "malformed_body",
            BatchError::NoEvents => "no_events",
            BatchError::TooManyEvents { .. } => "too_many_events",
            BatchError::InvalidSentAt { .. } => "invalid_sent_at",
            BatchError::NoClientKey => "missing_client_key",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_error_says_what_its_event_error_says() {
        let field = || "action".to_owned();
        for e in [
            FieldError::Empty { field: field() },
            FieldError::TooLong {
                field: field(),
                len: 129,
                limit: 128,
            },
            FieldError::NotSnakeCase { field: field() },
            FieldError::InvalidCharacters { field: field() },
        ] {
            let event = EventError::from(e.clone());
            assert_eq!(e.message(), event.message());
            assert_eq!(e.to_string(), event.to_string());
            assert!(e.message().contains("`action`"), "{e}");
        }
    }

    #[test]
    fn messages_write_numbers_as_decimal() {
        for v in [0, 7, 10, 32_768, usize::MAX] {
            assert_eq!(decimal(v), v.to_string());
        }
        let e = EventError::from(FieldError::TooLong {
            field: "action".into(),
            len: 129,
            limit: 128,
        });
        assert_eq!(
            e.to_string(),
            "field `action` is 129 characters long, over the limit of 128"
        );
    }
}
