//! Operational endpoints shared by every node: health, the OpenAPI document and a
//! browsable page for it (rendered here, no external scripts: it works offline), and
//! the problem+json answer for unknown routes.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use stockroom_http::Problem;

/// A named readiness check.
pub type Check = (&'static str, Arc<dyn Fn() -> bool + Send + Sync>);

pub fn router(spec: utoipa::openapi::OpenApi, checks: Vec<Check>) -> Router {
    let mut spec = serde_json::to_value(&spec).unwrap_or_else(|_| json!({}));
    complete_errors(&mut spec);
    let spec = Arc::new(spec);
    let docs = Arc::new(render_docs(&spec));
    let checks = Arc::new(checks);
    Router::new()
        .route("/health/livez", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/health/readyz", get(move || readyz(checks.clone())))
        .route("/openapi.json", get(move || async move { axum::Json((*spec).clone()) }))
        .route("/docs", get(move || async move { Html((*docs).clone()) }))
}

/// Errors any operation may answer, whatever its handler: bad requests, access
/// control, body limits, overload and timeouts (see `auth.rs`, `limits.rs`).
const COMMON_ERRORS: [(&str, &str, Applies); 10] = [
    ("400", "malformed request, parameter or header", Applies::All),
    ("401", "no or unknown bearer token (when tokens are configured)", Applies::All),
    ("403", "the token's role does not allow this", Applies::All),
    ("404", "no such resource", Applies::All),
    ("409", "the write conflicts with the current state (see the problem type)", Applies::Writes),
    ("412", "If-Match does not name the current version", Applies::Writes),
    ("413", "body over 1 MiB", Applies::Body),
    ("415", "body is not application/json", Applies::Body),
    ("422", "validation (of the body or of an id in the path)", Applies::All),
    ("503", "overloaded, timed out, or the log or view is not available yet; retry", Applies::All),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Applies {
    All,
    Writes,
    Body,
}

/// Every error is a problem (`application/problem+json`, RFC 9457): says so for every
/// 4xx and 5xx of every operation, and documents the errors every operation may give.
fn complete_errors(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else { return };
    let problem = json!({"schema": {"$ref": "#/components/schemas/Problem"}});
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else { continue };
        for (method, op) in ops.iter_mut() {
            if !["get", "post", "put", "patch", "delete", "head"].contains(&method.as_str()) {
                continue;
            }
            let has_body = op.get("requestBody").is_some();
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                params.iter_mut().for_each(constrain);
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            let write = method != "get" && method != "head";
            for (code, description, applies) in COMMON_ERRORS {
                let relevant = match applies {
                    Applies::All => true,
                    Applies::Writes => write,
                    Applies::Body => has_body,
                };
                if relevant && !responses.contains_key(code) {
                    responses.insert(code.to_owned(), json!({"description": description}));
                }
            }
            for (code, response) in responses.iter_mut() {
                if !(code.starts_with('4') || code.starts_with('5')) {
                    continue;
                }
                let content = response.as_object_mut().map(|r| r.entry("content").or_insert_with(|| json!({})));
                if let Some(content) = content.and_then(Value::as_object_mut) {
                    let schema = content.remove("application/json").unwrap_or_else(|| problem.clone());
                    content.insert("application/problem+json".to_owned(), schema);
                }
            }
        }
    }
}

/// The constraints of the ids and headers every route shares, which the handlers'
/// annotations do not carry.
fn constrain(param: &mut Value) {
    let name = param.get("name").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let place = param.get("in").and_then(Value::as_str).unwrap_or_default();
    let schema = match (place, name.as_str()) {
        ("path", "sku" | "id") => json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}),
        ("header", "stockroom-min-position") => {
            json!({"type": "string", "pattern": "^([0-9]{1,10}:[0-9]{1,19}(,[0-9]{1,10}:[0-9]{1,19})*)?$"})
        }
        // What the server takes: `*`, an entity tag (`"3"`, `W/"3"`) or the bare version (`3`).
        ("header", "if-match") => {
            json!({"type": "string", "pattern": "^ *(\\*|(W/)?\"[0-9]{1,19}\"|(W/)?[0-9]{1,19}) *$"})
        }
        ("header", "idempotency-key") => json!({"type": "string", "pattern": "^[ -~]{1,255}$"}),
        _ => return,
    };
    if let Some(p) = param.as_object_mut() {
        p.insert("schema".to_owned(), schema);
    }
}

async fn readyz(checks: Arc<Vec<Check>>) -> Response {
    let results: serde_json::Map<String, Value> =
        checks.iter().map(|(name, check)| ((*name).to_owned(), Value::Bool(check()))).collect();
    let ready = results.values().all(|v| v == &Value::Bool(true));
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(json!({"ready": ready, "checks": results}))).into_response()
}

/// Unknown routes get a problem, like every other error.
pub async fn not_found() -> Problem {
    Problem::not_found("no such route; see /docs")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn schema_name(schema: &Value) -> String {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    if let Some(items) = schema.get("items") {
        return format!("array of {}", schema_name(items));
    }
    esc(schema.get("type").map(|t| t.to_string().trim_matches('"').to_owned()).as_deref().unwrap_or("object"))
}

fn json_schema_of(v: &Value) -> Option<&Value> {
    v.get("content")?.as_object()?.values().next()?.get("schema")
}

/// The browsable page: every operation with its parameters, body and answers, then
/// every schema with its fields.
fn render_docs(spec: &Value) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Stockroom API</title><style>\
         body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}\
         .op{border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.5em 1em}\
         .m{font-weight:bold;text-transform:uppercase;display:inline-block;min-width:4.5em}\
         code{background:#f4f4f4;padding:0 .2em}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}\
         </style></head><body>",
    );
    let info = &spec["info"];
    out += &format!(
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {}).</p>",
        esc(info["title"].as_str().unwrap_or("API")),
        esc(info["description"].as_str().unwrap_or("")),
        esc(spec["openapi"].as_str().unwrap_or("3")),
    );
    out += "<h2>Operations</h2>";
    if let Some(paths) = spec["paths"].as_object() {
        for (path, item) in paths {
            let Some(methods) = item.as_object() else { continue };
            for (method, op) in methods {
                out +=
                    &format!("<div class=\"op\"><span class=\"m\">{}</span> <code>{}</code>", esc(method), esc(path));
                for key in ["summary", "description"] {
                    if let Some(text) = op[key].as_str() {
                        out += &format!("<p>{}</p>", esc(text));
                    }
                }
                if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                    out += "<table><tr><th>parameter</th><th>in</th><th>required</th><th>description</th></tr>";
                    for p in params {
                        out += &format!(
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            esc(p["name"].as_str().unwrap_or("")),
                            esc(p["in"].as_str().unwrap_or("")),
                            p["required"].as_bool().unwrap_or(false),
                            esc(p["description"].as_str().unwrap_or("")),
                        );
                    }
                    out += "</table>";
                }
                if let Some(schema) = json_schema_of(&op["requestBody"]) {
                    out += &format!("<p>Body: {}</p>", schema_name(schema));
                }
                if let Some(responses) = op["responses"].as_object() {
                    out += "<ul>";
                    for (code, r) in responses {
                        let body = json_schema_of(r).map(|s| format!(" — {}", schema_name(s))).unwrap_or_default();
                        out += &format!(
                            "<li><b>{}</b> {}{}</li>",
                            esc(code),
                            esc(r["description"].as_str().unwrap_or("")),
                            body
                        );
                    }
                    out += "</ul>";
                }
                out += "</div>";
            }
        }
    }
    out += "<h2>Schemas</h2>";
    if let Some(schemas) = spec["components"]["schemas"].as_object() {
        for (name, schema) in schemas {
            out += &format!("<h3 id=\"schema-{0}\">{0}</h3>", esc(name));
            let required: Vec<&str> =
                schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            if let Some(props) = schema["properties"].as_object() {
                out += "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>";
                for (field, p) in props {
                    out += &format!(
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(field),
                        schema_name(p),
                        required.contains(&field.as_str()),
                        esc(p["description"].as_str().unwrap_or("")),
                    );
                }
                out += "</table>";
            } else {
                out += &format!("<pre>{}</pre>", esc(&serde_json::to_string_pretty(schema).unwrap_or_default()));
            }
        }
    }
    out += "</body></html>";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_render_operations_and_schemas() {
        let spec = json!({
            "openapi": "3.1.0",
            "info": {"title": "T <x>", "description": "d"},
            "paths": {"/products": {"post": {"summary": "register",
                "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Body"}}}},
                "responses": {"201": {"description": "ok"}}}}},
            "components": {"schemas": {"Body": {"type": "object", "required": ["sku"],
                "properties": {"sku": {"type": "string", "description": "the key"}}}}}
        });
        let html = render_docs(&spec);
        assert!(html.contains("T &lt;x&gt;"));
        assert!(html.contains("<code>/products</code>"));
        assert!(html.contains("href=\"#schema-Body\""));
        assert!(html.contains("<code>sku</code></td><td>string</td><td>true</td><td>the key"));
    }
}
