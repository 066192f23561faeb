//! Typed errors: one variant per rule, each naming the field (as a path such as
//! `related_entities[2].id`) and the limit it broke.

/// Why one event was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("event must be a JSON object")]
    NotAnObject,
    #[error("event is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("missing required field `{field}`")]
    Missing { field: String },
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("unknown field `{field}`")]
    UnknownField { field: String },
    #[error("field `{field}` must not be empty")]
    Empty { field: String },
    #[error("field `{field}` is {len} characters long, over the limit of {limit}")]
    TooLong {
        field: String,
        len: usize,
        limit: usize,
    },
    #[error("field `{field}` must be lower_snake_case: a-z first, then a-z, 0-9 or _")]
    NotSnakeCase { field: String },
    #[error("field `{field}` must not contain whitespace or control characters")]
    InvalidCharacters { field: String },
    #[error("field `{field}` is not an RFC 3339 timestamp: {reason}")]
    InvalidTimestamp { field: String, reason: String },
    #[error("field `{field}` nests deeper than the limit of {limit} levels")]
    TooDeep { field: String, limit: usize },
    #[error("`event_meta` has more than the limit of {limit} keys")]
    TooManyKeys { limit: usize },
    #[error("`related_entities` has {count} entries, over the limit of {limit}")]
    TooManyEntities { count: usize, limit: usize },
    #[error("`client_key` differs from the batch's client_key; a batch carries one client_key")]
    ClientKeyMismatch,
}

impl EventError {
    /// The stable machine-readable code of the rule, as ingest reports it.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::NotAnObject => "not_an_object",
            EventError::TooLarge { .. } => "event_too_large",
            EventError::Missing { .. } => "missing_field",
            EventError::WrongType { .. } => "wrong_type",
            EventError::UnknownField { .. } => "unknown_field",
            EventError::Empty { .. } => "empty",
            EventError::TooLong { .. } => "too_long",
            EventError::NotSnakeCase { .. } => "not_snake_case",
            EventError::InvalidCharacters { .. } => "invalid_characters",
            EventError::InvalidTimestamp { .. } => "invalid_timestamp",
            EventError::TooDeep { .. } => "too_deep",
            EventError::TooManyKeys { .. } => "too_many_keys",
            EventError::TooManyEntities { .. } => "too_many_entities",
            EventError::ClientKeyMismatch => "client_key_mismatch",
        }
    }
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
