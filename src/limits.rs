//! Limits every request meets before any handler: how many are served at once (more
//! are shed with 503 and `Retry-After`, not queued: a queue would only turn overload
//! into timeouts) and how long one may take. Body size (1 MiB) and query length
//! (the search grammar's 512 bytes) are limited where they are read.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stockroom_http::Problem;
use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Limits {
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl Limits {
    pub fn new(max_concurrent: usize, timeout: Duration) -> Limits {
        Limits { slots: Arc::new(Semaphore::new(max_concurrent.max(1))), timeout }
    }
}

pub async fn enforce(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let Ok(_slot) = limits.slots.clone().try_acquire_owned() else {
        return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "too many requests at once; retry")
            .retry_after(1)
            .into_response();
    };
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {:?}; a write may still be applied: retry it with its Idempotency-Key",
                limits.timeout
            ),
        )
        .retry_after(1)
        .into_response(),
    }
}
