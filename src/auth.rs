//! Access control: bearer tokens with roles.
//!
//! Tokens come from `--tokens-file FILE` (one `role token` pair per line, `#`
//! comments) and/or `STOCKROOM_TOKENS` (`role:token,role:token`). Roles are ordered:
//! a `writer` may also read, an `admin` may also write. What a request needs:
//!
//! | request                                            | role     |
//! |----------------------------------------------------|----------|
//! | `/health/*`, `/openapi.json`, `/docs`              | none     |
//! | `GET`/`HEAD` of `/` and `/console/*` (the console) | none     |
//! | `/admin/*`                                         | `admin`  |
//! | any other `GET`/`HEAD` (incl. `/metrics`)          | `reader` |
//! | any other method (the writes)                      | `writer` |
//!
//! No token, or one that is not known: 401 with `WWW-Authenticate: Bearer`. A known
//! token without the role: 403. Tokens are compared by their SHA-256 digests, every
//! configured token each time and without an early exit, so the time taken does not
//! tell how much of a guess was right.
//!
//! With no tokens configured every request is allowed; `serve` then refuses to listen
//! on anything but loopback unless `--insecure` says that is intended.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use stockroom_http::Problem;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Writer,
    Admin,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reader" => Some(Role::Reader),
            "writer" => Some(Role::Writer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }
}

/// The shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_CHARS: usize = 16;

/// The configured tokens, as digests.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Arc<Vec<([u8; 32], Role)>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads `--tokens-file` and `STOCKROOM_TOKENS`.
    pub fn load(file: Option<&Path>, env: Option<&str>) -> anyhow::Result<Tokens> {
        let mut entries = Vec::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the tokens file {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let (role, token) = line
                    .split_once(char::is_whitespace)
                    .with_context(|| format!("{}:{}: expected `role token`", path.display(), n + 1))?;
                entries.push(entry(role, token.trim()).with_context(|| format!("{}:{}", path.display(), n + 1))?);
            }
        }
        if let Some(list) = env {
            for (n, item) in list.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
                let (role, token) = item
                    .split_once(':')
                    .with_context(|| format!("STOCKROOM_TOKENS entry {}: expected `role:token`", n + 1))?;
                entries.push(entry(role, token).with_context(|| format!("STOCKROOM_TOKENS entry {}", n + 1))?);
            }
        }
        Ok(Tokens { entries: Arc::new(entries) })
    }

    /// The role of `token`, comparing against every configured token.
    fn role_of(&self, token: &str) -> Option<Role> {
        let presented = digest(token);
        let mut found = None;
        for (known, role) in self.entries.iter() {
            let diff = known.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

fn entry(role: &str, token: &str) -> anyhow::Result<([u8; 32], Role)> {
    let role = Role::parse(role).with_context(|| format!("unknown role {role:?} (reader, writer or admin)"))?;
    anyhow::ensure!(
        token.chars().count() >= MIN_TOKEN_CHARS && token.chars().all(|c| c.is_ascii_graphic()),
        "a token must be at least {MIN_TOKEN_CHARS} visible ASCII characters"
    );
    Ok((digest(token), role))
}

/// Refuses an open door: no tokens and a listener others can reach.
pub fn check_exposure(tokens: &Tokens, listen: SocketAddr, insecure: bool) -> anyhow::Result<()> {
    if tokens.is_empty() && !listen.ip().is_loopback() && !insecure {
        anyhow::bail!(
            "refusing to listen on {listen} without access control: configure tokens (--tokens-file or \
             STOCKROOM_TOKENS), listen on loopback, or pass --insecure if this network is trusted"
        );
    }
    Ok(())
}

/// What a request needs, by method and path (the table in the module doc).
fn required(method: &Method, path: &str) -> Option<Role> {
    // The console's page and assets carry no data; the page sends a token with
    // every request it makes to the API.
    let read = method == Method::GET || method == Method::HEAD;
    let console = read && (path == "/" || path.starts_with("/console/"));
    if path.starts_with("/health/") || path == "/openapi.json" || path == "/docs" || console {
        None
    } else if path == "/admin" || path.starts_with("/admin/") {
        Some(Role::Admin)
    } else if read {
        Some(Role::Reader)
    } else {
        Some(Role::Writer)
    }
}

/// The middleware.
pub async fn authorize(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let Some(needed) = required(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(token) = presented else {
        return unauthorized("this endpoint needs a bearer token (Authorization: Bearer <token>)");
    };
    match tokens.role_of(token) {
        None => unauthorized("the bearer token is not valid"),
        Some(role) if role < needed => Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {} role; the token has {}", needed.as_str(), role.as_str()),
        )
        .into_response(),
        Some(_) => next.run(request).await,
    }
}

fn unauthorized(detail: &str) -> Response {
    let mut response = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"stockroom\""));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_load_from_a_file_and_the_environment() {
        let dir = std::env::temp_dir().join(format!("stockroom-tokens-{}", std::process::id()));
        std::fs::write(&dir, "# who may do what\nreader rrrrrrrrrrrrrrrr\n\nadmin  aaaaaaaaaaaaaaaa\n").unwrap();
        let t = Tokens::load(Some(&dir), Some("writer:wwwwwwwwwwwwwwww")).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(t.role_of("rrrrrrrrrrrrrrrr"), Some(Role::Reader));
        assert_eq!(t.role_of("wwwwwwwwwwwwwwww"), Some(Role::Writer));
        assert_eq!(t.role_of("aaaaaaaaaaaaaaaa"), Some(Role::Admin));
        assert_eq!(t.role_of("aaaaaaaaaaaaaaab"), None);
        assert_eq!(t.role_of(""), None);
    }

    #[test]
    fn bad_token_configuration_is_refused() {
        assert!(Tokens::load(None, Some("writer:short")).is_err());
        assert!(Tokens::load(None, Some("owner:aaaaaaaaaaaaaaaa")).is_err());
        assert!(Tokens::load(None, Some("aaaaaaaaaaaaaaaa")).is_err());
    }

    #[test]
    fn what_each_request_needs() {
        assert_eq!(required(&Method::GET, "/health/readyz"), None);
        assert_eq!(required(&Method::GET, "/"), None);
        assert_eq!(required(&Method::GET, "/console/console.js"), None);
        assert_eq!(required(&Method::POST, "/"), Some(Role::Writer));
        assert_eq!(required(&Method::GET, "/products/A"), Some(Role::Reader));
        assert_eq!(required(&Method::POST, "/products"), Some(Role::Writer));
        assert_eq!(required(&Method::DELETE, "/products/A"), Some(Role::Writer));
        assert_eq!(required(&Method::GET, "/admin/views"), Some(Role::Admin));
        assert_eq!(required(&Method::POST, "/admin/replay"), Some(Role::Admin));
    }

    #[test]
    fn an_open_door_needs_saying_so() {
        let none = Tokens::default();
        assert!(check_exposure(&none, "127.0.0.1:8080".parse().unwrap(), false).is_ok());
        assert!(check_exposure(&none, "0.0.0.0:8080".parse().unwrap(), false).is_err());
        assert!(check_exposure(&none, "0.0.0.0:8080".parse().unwrap(), true).is_ok());
        let some = Tokens::load(None, Some("admin:aaaaaaaaaaaaaaaa")).unwrap();
        assert!(check_exposure(&some, "0.0.0.0:8080".parse().unwrap(), false).is_ok());
    }
}
