//! The OpenAPI 3.1 document of every route, served at `/openapi.json`. The query API's routes
//! are written from its table (`datasets::ROUTES`), which the router and the parser read too;
//! the others by hand (their error codes matter more than generated schemas would show). The
//! integration tests check it against the router.

use axum::Json;
use serde_json::{Value, json};

use crate::datasets::{ROUTES, Route, Shape, User};

fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
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

/// A query parameter's schema, from the values it takes.
fn schema_of(shape: Shape) -> Value {
    match shape {
        Shape::Text | Shape::Cursor => json!({ "type": "string" }),
        Shape::Integer { min, max, default } => {
            json!({ "type": "integer", "minimum": min, "maximum": max, "default": default })
        }
        Shape::Boolean => json!({ "type": "boolean", "default": false }),
        Shape::OneOf { values, default } => json!({ "enum": values, "default": default }),
        Shape::Date => json!({ "type": "string", "format": "date" }),
        Shape::Time => json!({ "type": "string", "format": "date-time" }),
    }
}

/// A read-only route of the query API, from its row of the table: secret key, JSON answer,
/// problem details on bad parameters.
fn query_route(route: &Route) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    match route.user {
        User::InHeader => parameters.push(client_ref_header(true)),
        User::InParameterOrHeader => parameters.push(client_ref_header(false)),
        User::Nobody | User::InPath => {}
    }
    parameters.extend(route.all_parameters().map(|p| {
        json!({ "name": p.name, "in": "query", "required": false, "schema": schema_of(p.shape), "description": p.description })
    }));
    json!({ "get": {
        "summary": route.summary,
        "description": route.description,
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
        for route in ROUTES {
            paths.insert(route.path.to_owned(), query_route(route));
        }
    }
    doc
}

pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}
