//! The web console at `/`: a page for people, on every node that serves reads.
//!
//! The page is plain HTML, CSS and JavaScript committed under `query/console/` and
//! compiled into the binary with `include_str!`: no front-end build, no CDN, nothing
//! fetched from the internet at build or run time. It is a client of the same HTTP
//! API as everyone else (`/search`, `/products/{sku}`, `/products/{sku}/history`,
//! `/admin/views`, `/admin/replay`, `/metrics`), on the same origin, so it needs no
//! CORS and works on any node that runs the read side (`serve`, `query`).
//!
//! The assets carry no data, so the access policy leaves `/` and `/console/*` open
//! (`src/auth.rs`); the page asks for a token when the API answers 401 and keeps it
//! in the tab's `sessionStorage` only. A Content-Security-Policy of `'self'` keeps the
//! page from loading or sending anything elsewhere.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Every asset: its path, its content type and its text.
const ASSETS: [(&str, &str, &str); 5] = [
    ("/", "text/html; charset=utf-8", include_str!("../console/index.html")),
    ("/console/console.css", "text/css; charset=utf-8", include_str!("../console/console.css")),
    ("/console/console.js", "text/javascript; charset=utf-8", include_str!("../console/console.js")),
    ("/console/metrics.js", "text/javascript; charset=utf-8", include_str!("../console/metrics.js")),
    ("/console/charts.js", "text/javascript; charset=utf-8", include_str!("../console/charts.js")),
];

/// Same origin only: scripts, styles, images (inline SVG) and requests.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub fn router() -> Router {
    ASSETS.iter().fold(Router::new(), |router, &(path, content_type, body)| {
        router.route(path, get(move || async move { asset(content_type, body) }))
    })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The assets change with the binary: revalidate rather than keep an old page.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = router().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        assert!(response.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_page_and_every_asset_it_names_are_served() {
        let (status, content_type, page) = get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"));
        // Every local asset the page links is one the router serves, and nothing
        // comes from elsewhere.
        for (path, _, _) in &ASSETS[1..] {
            assert!(page.contains(&format!("\"{path}\"")), "the page links {path}");
        }
        assert!(!page.contains("http://") && !page.contains("https://"), "the page links nothing off the node");
        for (path, expected, _) in &ASSETS[1..] {
            let (status, content_type, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(&content_type, expected, "{path}");
            assert!(!body.is_empty(), "{path}");
        }
    }
}
