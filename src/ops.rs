//! Operational endpoints shared by every node: health, the OpenAPI document and a
//! browsable page for it (rendered here, no external scripts: it works offline), and
//! the problem+json answer for unknown routes.

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// A named readiness check.
pub type Check = (&'static str, Arc<dyn Fn() -> bool + Send + Sync>);

pub fn router(spec: utoipa::openapi::OpenApi, checks: Vec<Check>) -> Router {
    let spec = Arc::new(serde_json::to_value(&spec).unwrap_or_else(|_| json!({})));
    let docs = Arc::new(render_docs(&spec));
    let checks = Arc::new(checks);
    Router::new()
        .route("/health/livez", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .route("/health/readyz", get(move || readyz(checks.clone())))
        .route("/openapi.json", get(move || async move { axum::Json((*spec).clone()) }))
        .route("/docs", get(move || async move { Html((*docs).clone()) }))
}

async fn readyz(checks: Arc<Vec<Check>>) -> Response {
    let results: serde_json::Map<String, Value> =
        checks.iter().map(|(name, check)| ((*name).to_owned(), Value::Bool(check()))).collect();
    let ready = results.values().all(|v| v == &Value::Bool(true));
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(json!({"ready": ready, "checks": results}))).into_response()
}

/// Unknown routes get a problem, like every other error.
pub async fn not_found() -> Response {
    let body = json!({
        "type": format!("{}not-found", stockroom_command::http::PROBLEM_TYPE_BASE),
        "title": "Not Found",
        "status": 404,
        "detail": "no such route; see /docs",
    });
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
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
