//! The command HTTP API: the write half of API.md. Handlers parse and validate the
//! request, turn it into a command for the partition that owns its product, and
//! answer with the outcome the processor publishes.

mod extract;
mod orders;
mod products;
mod send;
mod write;

pub use extract::{JsonBody, MAX_BODY_BYTES, WriteRequest, parse_json};
pub use send::CommandApi;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Serialize;
use stockroom_domain::CommandId;
use stockroom_http::Problem;
use utoipa::OpenApi;

use crate::protocol::Outcome;

/// The command API's routes. Every body is limited to [`MAX_BODY_BYTES`].
pub fn router(api: CommandApi) -> Router {
    Router::new()
        .route("/products", post(products::register))
        .route("/products/{sku}", patch(products::update).delete(products::discontinue))
        .route("/products/{sku}/stock/receipts", post(products::receive))
        .route("/products/{sku}/stock/adjustments", post(products::adjust))
        .route("/products/{sku}/reservations", post(products::reserve))
        .route("/products/{sku}/reservations/{id}/confirm", post(products::confirm))
        .route("/products/{sku}/reservations/{id}/release", post(products::release))
        .route("/orders", post(orders::place))
        .route("/orders/{id}/confirm", post(orders::confirm))
        .route("/orders/{id}/cancel", post(orders::cancel))
        .route("/commands/{id}", get(command_status))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

/// `GET /commands/{id}`: a command's outcome, as remembered by this node.
#[serde_with::skip_serializing_none]
#[derive(Serialize, utoipa::ToSchema)]
pub struct CommandStatus {
    pub command_id: String,
    /// `accepted`, `rejected`, `conflict`, `failed` or `unavailable`
    pub status: &'static str,
    pub version: Option<u64>,
    pub position: Option<String>,
    /// Why it was not accepted, as the write itself would have answered.
    pub problem: Option<Problem>,
}

#[utoipa::path(get, path = "/commands/{id}", tag = "commands", params(("id" = String, Path)),
    responses((status = 200, body = CommandStatus), (status = 404, description = "unknown to this node", body = Problem)))]
async fn command_status(State(api): State<CommandApi>, Path(id): Path<String>) -> Result<Json<CommandStatus>, Problem> {
    let unknown = || {
        Problem::not_found(
            "no outcome is known for this command on this node; retry the write with its Idempotency-Key to learn it",
        )
    };
    let id = CommandId::parse(id).map_err(|_| unknown())?;
    let outcome = api.client.outcome(&id).ok_or_else(unknown)?;
    let mut status =
        CommandStatus { command_id: id.to_string(), status: "accepted", version: None, position: None, problem: None };
    match outcome {
        Outcome::Accepted { version, position } => {
            status.version = Some(version);
            status.position = Some(position);
        }
        Outcome::Rejected { rejection } => {
            status.status = "rejected";
            status.problem = Some(Problem::from_rejection(&rejection));
        }
        Outcome::IdempotencyConflict => status.status = "conflict",
        Outcome::Failed { reason } => {
            status.status = "failed";
            status.problem = Some(Problem::internal(reason));
        }
        Outcome::Unavailable { reason } => {
            status.status = "unavailable";
            status.problem = Some(Problem::unavailable(reason));
        }
    }
    Ok(Json(status))
}

/// The OpenAPI description of the command API.
#[derive(OpenApi)]
#[openapi(
    paths(products::register, products::update, products::discontinue, products::receive, products::adjust,
        products::reserve, products::confirm, products::release, orders::place, orders::confirm, orders::cancel,
        command_status),
    components(schemas(Problem, send::Accepted, send::PendingCommand, CommandStatus, products::RegisterBody,
        products::PatchBody, products::ReceiptBody, products::AdjustmentBody, products::ReservationBody, orders::OrderBody,
        orders::OrderLineBody)),
    tags((name = "products", description = "register, update and discontinue products"),
        (name = "stock", description = "receipts, adjustments and reservations"),
        (name = "orders", description = "orders over several products: every line reserved or none (a saga)"),
        (name = "commands", description = "outcomes of writes answered 202")),
    modifiers(&EveryWrite)
)]
pub struct CommandApiDoc;

/// Documents what every write shares once, rather than on each handler: the
/// `Idempotency-Key` and `X-Request-Id` headers, `If-Match` on a product that
/// exists, and the 202 of an outcome that takes longer than the write timeout.
struct EveryWrite;

impl utoipa::Modify for EveryWrite {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, Required, ResponseBuilder, Type};

        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build()
        };
        let pending = ResponseBuilder::new()
            .description("outcome not known yet; see Location")
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("PendingCommand"))).build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let on_product = path.starts_with("/products/{sku}");
            for op in [&mut item.post, &mut item.patch, &mut item.delete].into_iter().flatten() {
                let params = op.parameters.get_or_insert_with(Vec::new);
                params.push(header("Idempotency-Key", "retries with the same key get the original answer"));
                params.push(header("X-Request-Id", "the command's correlation id in logs (up to 128 characters)"));
                if on_product {
                    params.push(header("If-Match", "the product version the write expects, e.g. \"3\""));
                }
                op.responses.responses.entry("202".to_owned()).or_insert_with(|| pending.clone().into());
            }
        }
    }
}
