//! The OpenAPI 3.1 document of every route, served at `/openapi.json`. Written out by hand
//! (the API is small and its error codes matter more than generated schemas would show), and
//! checked against the router by the integration tests.

use axum::Json;
use serde_json::{Value, json};

fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

fn param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": schema, "description": description })
}

/// An erasure's answer.
fn erased() -> Value {
    json!({ "description": "Erased", "content": { "application/json": { "schema": {
        "type": "object", "required": ["events", "failed_events"],
        "properties": { "events": { "type": "integer" }, "failed_events": { "type": "integer" } } } } } })
}

/// The `Client-Ref` header: a user named outside the URL.
fn client_ref_header(required: bool) -> Value {
    json!({ "name": "Client-Ref", "in": "header", "required": required, "schema": { "type": "string" },
            "description": "Your client_ref for the user, percent-encoded as in a path (plain ASCII is itself); pseudonymised, never returned, and out of every URL." })
}

/// A read-only query route of the datasets: secret key, JSON answer, problem details on
/// bad parameters.
fn query_route(summary: &str, description: &str, parameters: Vec<Value>) -> Value {
    let mut parameters = parameters;
    parameters.push(param(
        "as_of",
        json!({ "type": "string", "format": "date-time" }),
        "Answer as of this time; honoured only when the service runs with --test-mode.",
    ));
    json!({ "get": {
        "summary": summary,
        "description": description,
        "security": [ { "apiKey": [] } ],
        "parameters": parameters,
        "responses": {
            "200": { "description": "The answer", "content": { "application/json": {} } },
            "304": { "description": "Not modified (materialised lists, with If-None-Match)" },
            "400": problem("A parameter is unknown or malformed; `detail` names it"),
            "401": error("Missing or unknown API key"),
            "404": problem("No such impression"),
            "503": error("Store unavailable")
        }
    } })
}

fn query_paths() -> Vec<(&'static str, Value)> {
    let limit = |max: u32| {
        param(
            "limit",
            json!({ "type": "integer", "minimum": 1, "maximum": max, "default": 20 }),
            "Most items to return",
        )
    };
    let mode = param(
        "mode",
        json!({ "enum": ["trending", "popular"], "default": "trending" }),
        "trending: immediately popular (fast vs slow decayed rate, z-score, k-anonymous); popular: slow decayed score",
    );
    let text =
        |name: &str, description: &str| param(name, json!({ "type": "string" }), description);
    // A user's preferences, beside the user.
    let preference_params = || {
        [
            text("entity_type", "Only this entity type"),
            limit(100),
            param(
                "include_negative",
                json!({ "type": "boolean", "default": false }),
                "Also return negative preferences",
            ),
        ]
    };
    let date = |name: &str| {
        param(
            name,
            json!({ "type": "string", "format": "date" }),
            "UTC date of first sight; default: the 30 days up to as_of",
        )
    };
    let filters = || {
        vec![
            text("recommender", "Only this recommender"),
            text("surface", "Only this surface"),
            date("from"),
            date("to"),
        ]
    };
    let trending = |what: &str| {
        query_route(
            &format!("Trending or popular {what}"),
            "A materialised list, served verbatim from the presentation store with an ETag.",
            vec![mode.clone(), limit(100)],
        )
    };
    let with = |mut v: Vec<Value>, extra: Vec<Value>| {
        v.extend(extra);
        v
    };
    vec![
        (
            "/v1/trending/entities",
            query_route(
                "Trending or popular entities",
                "A materialised list, served verbatim from the presentation store with an ETag.",
                vec![
                    text("entity_type", "Entity type (default ticker)"),
                    mode.clone(),
                    limit(100),
                ],
            ),
        ),
        ("/v1/trending/content", trending("content")),
        (
            "/v1/trending/searches",
            trending("searches (normalised queries)"),
        ),
        (
            "/v1/users/{client_ref}/preferences/entities",
            query_route(
                "A user's entity preferences",
                "The path carries your own client_ref; it is pseudonymised before the lookup and never returned. An unknown user gets an empty list.",
                vec![
                    json!({ "name": "client_ref", "in": "path", "required": true, "schema": { "type": "string" } }),
                ]
                .into_iter()
                .chain(preference_params())
                .collect(),
            ),
        ),
        (
            "/v1/preferences/entities",
            query_route(
                "A user's entity preferences, the user named in a header",
                "As /v1/users/{client_ref}/preferences/entities, with the client_ref in the Client-Ref header instead of the path, so that no access log on the way holds it.",
                vec![
                    client_ref_header(true),
                ]
                .into_iter()
                .chain(preference_params())
                .collect(),
            ),
        ),
        (
            "/v1/engagement/summary",
            query_route(
                "Recommendation engagement by recommender, surface or item",
                "CTR with its Wilson lower bound, conversions (direct and inferred), click positions, list CTR.",
                with(
                    filters(),
                    vec![param(
                        "group_by",
                        json!({ "enum": ["recommender", "surface", "item"], "default": "recommender" }),
                        "Grouping",
                    )],
                ),
            ),
        ),
        (
            "/v1/engagement/items",
            query_route(
                "Engagement per item",
                "Sorted by the chosen field, then impressions, then item.",
                with(
                    filters(),
                    vec![
                        param(
                            "sort",
                            json!({ "enum": crate::datasets::ITEM_SORTS, "default": "ctr_lower_bound" }),
                            "Sort field (descending)",
                        ),
                        limit(100),
                    ],
                ),
            ),
        ),
        (
            "/v1/engagement/click-positions",
            query_route(
                "First clicks by list position",
                "One click per clicked impression.",
                filters(),
            ),
        ),
        (
            "/v1/engagement/daily",
            query_route(
                "CTR per recommender and day",
                "What the dashboard charts.",
                filters(),
            ),
        ),
        (
            "/v1/engagement/impressions/{impression_id}",
            query_route(
                "One impression's record (debug)",
                "Its views, clicks and conversions as the engagement rules read them.",
                vec![
                    json!({ "name": "impression_id", "in": "path", "required": true, "schema": { "type": "string" } }),
                ],
            ),
        ),
        (
            "/v1/engagement/feedback",
            query_route(
                "Feedback for recommenders",
                "Finalised impressions (click window closed) with clicked/converted labels, oldest first; a later record with the same impression_id updates the labels. Pass next_cursor back as cursor.",
                vec![
                    text("recommender", "Only this recommender"),
                    text("cursor", "next_cursor of the previous page"),
                    limit(1000),
                ],
            ),
        ),
        (
            "/v1/recommendations",
            query_route(
                "Recommendations for a user",
                "Entities (preferences, trending, popular) or content, each with a fresh impression_id (fxcid for content) and the event_meta to send back with viewed/clicked events. Items shown repeatedly without a click are demoted.",
                vec![
                    json!({ "name": "user", "in": "query", "required": false, "schema": { "type": "string" }, "description": "Your client_ref for the user (pseudonymised, never returned); or send it in the Client-Ref header, which keeps it out of access logs. One of the two is required." }),
                    client_ref_header(false),
                    param(
                        "kind",
                        json!({ "enum": ["entities", "content"], "default": "entities" }),
                        "What to recommend",
                    ),
                    text("entity_type", "Entity type (default ticker)"),
                    text("surface", "Where the list is shown; echoed in event_meta"),
                    param(
                        "limit",
                        json!({ "type": "integer", "minimum": 1, "maximum": 50, "default": 10 }),
                        "Most items",
                    ),
                ],
            ),
        ),
    ]
}

pub(crate) fn document() -> Value {
    let limits = json!({
        "max_body_bytes": schema::limits::MAX_BODY_BYTES,
        "max_events_per_batch": schema::limits::MAX_EVENTS_PER_BATCH,
        "max_event_bytes": schema::limits::MAX_EVENT_BYTES,
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Personafin Capture ingest",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Takes tracker batches, validates and anonymises each event, and answers after they are durable.",
            "x-limits": limits,
        },
        "paths": {
            "/v1/events": { "post": {
                "summary": "Store a batch of events",
                "description": "Answers after the commit is on disk. Invalid events are rejected one by one (and kept as failed events); the valid ones are stored. Duplicate event_ids are stored once.",
                "parameters": [
                    { "name": "Content-Encoding", "in": "header", "required": false, "schema": { "enum": ["gzip", "identity"] } },
                    { "name": "Origin", "in": "header", "required": false, "schema": { "type": "string" }, "description": "Must be one of the tenant's allowed origins, when it lists any." },
                    { "name": "client_key", "in": "query", "required": false, "schema": { "type": "string" }, "description": "The batch's client key, for CORS preflights alone: with it, a preflight is answered for that tenant's origins; without it, for any tenant's." }
                ],
                "requestBody": { "required": true, "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/Batch" } },
                    "text/plain": { "schema": { "$ref": "#/components/schemas/Batch" } }
                } },
                "responses": {
                    "200": { "description": "Stored", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } } },
                    "400": error("Malformed body or batch envelope"),
                    "401": error("Unknown client_key"),
                    "403": error("Origin not allowed for the tenant"),
                    "408": error("Request took longer than the timeout"),
                    "413": error("Body over the limit, compressed or decompressed"),
                    "415": error("Content type or encoding not accepted"),
                    "429": error("Rate limited; see Retry-After"),
                    "503": error("Store unavailable or service overloaded; see Retry-After")
                }
            } },
            "/v1/users/{client_ref}": { "delete": {
                "summary": "Erase a user",
                "description": "Deletes every event and failed event of the user, under every pseudonymisation key version.",
                "security": [ { "apiKey": [] } ],
                "parameters": [ { "name": "client_ref", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": {
                    "200": erased(),
                    "401": error("Missing or unknown API key"),
                    "503": error("Store unavailable")
                }
            } },
            "/v1/users": { "delete": {
                "summary": "Erase a user named in a header",
                "description": "As DELETE /v1/users/{client_ref}, with the client_ref in the Client-Ref header, so that no access log on the way holds it.",
                "security": [ { "apiKey": [] } ],
                "parameters": [ client_ref_header(true) ],
                "responses": {
                    "200": erased(),
                    "400": error("No Client-Ref header, or one that is not visible ASCII"),
                    "401": error("Missing or unknown API key"),
                    "503": error("Store unavailable")
                }
            } },
            "/healthz": { "get": { "summary": "Liveness", "responses": { "200": { "description": "The process answers", "content": { "text/plain": {} } } } } },
            "/readyz": { "get": { "summary": "Readiness", "responses": {
                "200": { "description": "The store reads and its writer runs", "content": { "text/plain": {} } },
                "503": { "description": "Not ready", "content": { "text/plain": {} } } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "Text exposition format 0.0.4", "content": { "text/plain": {} } } } } },
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": {} } } } } },
            "/dashboard": { "get": { "summary": "The datasets dashboard", "description": "An HTML page charting trending entities and searches and CTR per recommender; it asks for the secret API key and keeps it in the tab's sessionStorage.", "responses": { "200": { "description": "HTML", "content": { "text/html": {} } } } } }
        },
        "components": {
            "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer", "description": "The tenant's secret API key (sk_…), printed by `ingest tenant add`." } },
            "schemas": {
                "Problem": { "type": "object", "required": ["type", "title", "status", "detail", "error"], "properties": {
                    "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" },
                    "detail": { "type": "string", "description": "What was wrong, naming the parameter" },
                    "error": { "type": "string", "description": "Stable machine-readable code" } } },
                "Error": { "type": "object", "required": ["error", "message"], "properties": {
                    "error": { "type": "string", "description": "Stable machine-readable code" },
                    "message": { "type": "string", "description": "What was wrong, naming the field or limit" } } },
                "Batch": { "type": "object", "required": ["events"], "additionalProperties": false, "properties": {
                    "sent_at": { "type": "string", "format": "date-time" },
                    "events": { "type": "array", "minItems": 1, "maxItems": schema::limits::MAX_EVENTS_PER_BATCH, "items": { "$ref": "#/components/schemas/Event" } } } },
                "Event": { "type": "object", "additionalProperties": false,
                    "required": ["client_key", "event_id", "created_at", "event_type", "action", "channel_meta"],
                    "properties": {
                        "client_key": { "type": "string", "maxLength": schema::limits::MAX_ID_LEN },
                        "event_id": { "type": "string", "maxLength": schema::limits::MAX_ID_LEN },
                        "created_at": { "type": "string", "format": "date-time" },
                        "event_type": { "type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": schema::limits::MAX_NAME_LEN },
                        "action": { "type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": schema::limits::MAX_NAME_LEN },
                        "event_meta": { "type": ["object", "null"] },
                        "related_entities": { "type": ["array", "null"], "maxItems": schema::limits::MAX_ENTITIES, "items": {
                            "type": "object", "required": ["type", "id"], "additionalProperties": false,
                            "properties": { "type": { "type": "string" }, "id": { "type": "string" } } } },
                        "channel_meta": { "type": "object", "required": ["session_id"], "additionalProperties": false, "properties": {
                            "session_id": { "type": "string" },
                            "client_ref": { "type": ["string", "null"] },
                            "anonymous_id": { "type": ["string", "null"] } } } } },
                "Accepted": { "type": "object", "required": ["accepted", "duplicates", "rejected"], "properties": {
                    "accepted": { "type": "integer" },
                    "duplicates": { "type": "integer" },
                    "rejected": { "type": "array", "items": { "type": "object", "required": ["index", "error", "message"], "properties": {
                        "index": { "type": "integer" },
                        "event_id": { "type": ["string", "null"] },
                        "error": { "type": "string" },
                        "message": { "type": "string" } } } } } }
            }
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in query_paths() {
            paths.insert(path.to_owned(), item);
        }
    }
    doc
}

pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}
