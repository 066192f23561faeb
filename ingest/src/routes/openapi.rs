//! The OpenAPI 3.1 document of every route, served at `/openapi.json`. Written out by hand
//! (the API is small and its error codes matter more than generated schemas would show), and
//! checked against the router by the integration tests.

use axum::Json;
use serde_json::{Value, json};

fn error(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

pub(crate) fn document() -> Value {
    let limits = json!({
        "max_body_bytes": schema::limits::MAX_BODY_BYTES,
        "max_events_per_batch": schema::limits::MAX_EVENTS_PER_BATCH,
        "max_event_bytes": schema::limits::MAX_EVENT_BYTES,
    });
    json!({
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
                    { "name": "Origin", "in": "header", "required": false, "schema": { "type": "string" }, "description": "Must be one of the tenant's allowed origins, when it lists any." }
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
                    "200": { "description": "Erased", "content": { "application/json": { "schema": {
                        "type": "object", "required": ["events", "failed_events"],
                        "properties": { "events": { "type": "integer" }, "failed_events": { "type": "integer" } } } } } },
                    "401": error("Missing or unknown API key"),
                    "503": error("Store unavailable")
                }
            } },
            "/healthz": { "get": { "summary": "Liveness", "responses": { "200": { "description": "The process answers", "content": { "text/plain": {} } } } } },
            "/readyz": { "get": { "summary": "Readiness", "responses": {
                "200": { "description": "The store reads and its writer runs", "content": { "text/plain": {} } },
                "503": { "description": "Not ready", "content": { "text/plain": {} } } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics", "responses": { "200": { "description": "Text exposition format 0.0.4", "content": { "text/plain": {} } } } } },
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": {} } } } } }
        },
        "components": {
            "securitySchemes": { "apiKey": { "type": "http", "scheme": "bearer", "description": "The tenant's secret API key (sk_…), printed by `ingest tenant add`." } },
            "schemas": {
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
    })
}

pub(crate) async fn serve() -> Json<Value> {
    Json(document())
}
