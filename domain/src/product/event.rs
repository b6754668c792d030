use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, OrderId, ReservationId, Sku, Timestamp};

use super::state::ProductDetails;
use crate::ingest::FeedOrigin;

/// One fact about one product. `version` is the product's version after this event
/// (1 for the registration, then +1 each), and `command_id` the command that caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductEvent {
    pub sku: Sku,
    pub version: u64,
    pub command_id: CommandId,
    /// When the command that caused the event was received.
    pub at: Timestamp,
    #[serde(flatten)]
    pub body: ProductEventBody,
}

impl ProductEvent {
    /// The CloudEvents `type` of this event.
    pub fn event_type(&self) -> &'static str {
        self.body.event_type()
    }
}

/// Why reserved units went back to available stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// A client asked for it.
    Released,
    /// Its deadline passed.
    Expired,
    /// The order it belonged to was cancelled or rejected.
    OrderCancelled,
}

/// Names of detail fields, as recorded in [`ProductEventBody::DetailsUpdated::changed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetailField {
    Name,
    Description,
    Brand,
    Category,
    Gtin,
    Price,
    Attributes,
}

/// Current (schema version [`crate::EVENT_SCHEMA_VERSION`]) event bodies.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", content = "data")]
#[strum(prefix = "stockroom.product.", serialize_all = "kebab-case")]
pub enum ProductEventBody {
    #[strum(serialize = "registered")]
    ProductRegistered {
        details: ProductDetails,
        /// Units on hand at registration. Named `initial_on_hand` on the wire since
        /// schema version 2 (version 1 said `initial_stock`, which left open whether
        /// it meant on hand or available); `stockroom_topics::upcast` renames it.
        #[serde(rename = "initial_on_hand")]
        initial_stock: u64,
        /// The feed row it came from, when ingestion registered it. Added without a
        /// schema version bump: absent (older events, the API) reads as `None`.
        #[serde(default)]
        origin: Option<FeedOrigin>,
    },
    /// Carries the full details after the change, so a reader needs no earlier state.
    DetailsUpdated {
        details: ProductDetails,
        changed: Vec<DetailField>,
        /// The feed row it came from; `None` for a change through the API, whose
        /// changed fields become manual amendments that feeds leave alone.
        #[serde(default)]
        origin: Option<FeedOrigin>,
    },
    #[strum(serialize = "discontinued")]
    ProductDiscontinued,
    StockReceived {
        quantity: u64,
        reference: Option<String>,
    },
    StockAdjusted {
        delta: i64,
        reason: String,
    },
    StockReserved {
        reservation_id: ReservationId,
        quantity: u64,
        expires_at: Option<Timestamp>,
        order_id: Option<OrderId>,
    },
    /// The reserved units shipped: on hand and reserved both drop.
    ReservationConfirmed {
        reservation_id: ReservationId,
        quantity: u64,
    },
    ReservationReleased {
        reservation_id: ReservationId,
        quantity: u64,
        reason: ReleaseReason,
    },
}

impl ProductEventBody {
    pub fn event_type(&self) -> &'static str {
        self.into()
    }
}
