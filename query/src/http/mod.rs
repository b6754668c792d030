//! The read API (API.md, "Reads"): products by SKU and search, with read-your-writes.
//!
//! A read may carry `Stockroom-Min-Position` (the token a write returned); the node
//! then waits — bounded — until its view has applied that position, else answers 503
//! with `Retry-After`. Every read answers with the view's own `Stockroom-Position`.

mod params;
mod read;

pub use params::QueryParams;
pub use read::{EveryRead, ReadAt, ReadView};

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use stockroom_http::Problem;
use stockroom_topics::Position;
use tokio::sync::watch;
use utoipa::{IntoParams, OpenApi};

use crate::catalog::{SearchError, SearchRequest, SearchResponse, Sort};
use crate::orders::{LineFailureView, OrderBook, OrderLineView, OrderView};
use crate::rebuild::CatalogSlot;
use crate::view::ProductView;

#[derive(Clone)]
pub struct QueryApi {
    /// The catalog served (replaced at once when a rebuild is swapped in).
    pub catalog: Arc<CatalogSlot>,
    pub orders: Arc<OrderBook>,
    pub applied: watch::Receiver<Position>,
    /// How long a read waits for `Stockroom-Min-Position`.
    pub read_timeout: Duration,
}

pub fn router(api: QueryApi) -> Router {
    Router::new()
        .route("/products/{sku}", get(get_product))
        .route("/search", get(search))
        .route("/orders/{id}", get(get_order))
        .with_state(api)
}

impl ReadView for QueryApi {
    fn applied(&self) -> &watch::Receiver<Position> {
        &self.applied
    }
    fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
}

/// Runs a view's blocking work off the async runtime; a task that panicked is a 500.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Problem> {
    tokio::task::spawn_blocking(work).await.map_err(Problem::internal)
}

/// The answer to a read of one thing: 200 with its JSON (and its version as `ETag`),
/// or a 404 or 500 problem.
pub(crate) fn one<T: serde::Serialize, E: std::fmt::Display>(
    found: Result<Option<T>, E>,
    version: impl Fn(&T) -> Option<u64>,
    what: &str,
) -> Result<Response, Problem> {
    let value = found.map_err(Problem::internal)?.ok_or_else(|| Problem::not_found(format!("no such {what}")))?;
    let etag = version(&value).and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok());
    let mut response = axum::Json(value).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/products/{sku}", tag = "catalog", params(("sku" = String, Path)),
    responses((status = 200, body = ProductView)))]
async fn get_product(State(api): State<QueryApi>, Path(sku): Path<String>, at: ReadAt) -> Result<Response, Problem> {
    let catalog = api.catalog.current();
    let found = blocking(move || catalog.get(&sku)).await?;
    Ok(at.answer(one(found, |v| Some(v.version), "product")?))
}

#[utoipa::path(get, path = "/orders/{id}", tag = "orders", params(("id" = String, Path)),
    responses((status = 200, body = OrderView)))]
async fn get_order(State(api): State<QueryApi>, Path(id): Path<String>, at: ReadAt) -> Result<Response, Problem> {
    let orders = api.orders.clone();
    let found = blocking(move || orders.get(&id).map(|o| o.as_ref().map(OrderView::from))).await?;
    Ok(at.answer(one(found, |v| Some(v.version), "order")?))
}

/// `GET /search`'s query string. The descriptions finish "`name` must be ...".
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// words (all must match), "quoted phrases", -excluded words
    q: Option<String>,
    /// a category
    category: Option<String>,
    /// a brand
    brand: Option<String>,
    /// an integer number of cents (inclusive)
    min_price: Option<i64>,
    /// an integer number of cents (inclusive)
    max_price: Option<i64>,
    /// true or false
    in_stock: Option<bool>,
    /// true or false (default false)
    include_discontinued: Option<bool>,
    /// relevance (default), price_asc, price_desc or name
    #[param(inline)]
    sort: Option<Sort>,
    /// a number from 1 to 100 (default 20)
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// the next_cursor of the previous page
    cursor: Option<String>,
}

impl From<SearchParams> for SearchRequest {
    fn from(p: SearchParams) -> SearchRequest {
        SearchRequest {
            q: p.q,
            category: p.category,
            brand: p.brand,
            min_price: p.min_price,
            max_price: p.max_price,
            in_stock: p.in_stock,
            include_discontinued: p.include_discontinued.unwrap_or(false),
            sort: p.sort.unwrap_or_default(),
            limit: p.limit.unwrap_or(20),
            cursor: p.cursor,
        }
    }
}

#[utoipa::path(get, path = "/search", tag = "catalog", params(SearchParams),
    responses((status = 200, body = SearchResponse), (status = 400, description = "bad query or parameter", body = Problem)))]
async fn search(
    State(api): State<QueryApi>,
    QueryParams(params): QueryParams<SearchParams>,
    at: ReadAt,
) -> Result<Response, Problem> {
    let request = SearchRequest::from(params);
    let catalog = api.catalog.current();
    let found = blocking(move || catalog.search(&request)).await??;
    Ok(at.answer(axum::Json(found)))
}

impl From<SearchError> for Problem {
    fn from(e: SearchError) -> Problem {
        match e {
            SearchError::BadQuery(m) => Problem::bad_parameter("q", m),
            SearchError::BadCursor => Problem::bad_parameter("cursor", "cursor is not a next_cursor of this search"),
            SearchError::BadParameter { name, message } => Problem::bad_parameter(&name, message),
            other => Problem::internal(other),
        }
    }
}

#[derive(OpenApi)]
#[openapi(paths(get_product, search, get_order),
    components(schemas(Problem, ProductView, SearchResponse, OrderView, OrderLineView, LineFailureView)),
    tags((name = "catalog", description = "the searchable product catalog, built from the event log"),
        (name = "orders", description = "orders as the log has them (the orders view)")),
    modifiers(&EveryRead))]
pub struct QueryApiDoc;
