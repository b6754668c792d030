//! Given/when/then for the product aggregate, shared with other crates' tests through
//! the `testsuite` feature:
//!
//! ```ignore
//! given(vec![registered("Hammer", 5)])
//!     .when(reserve("r1", 7))
//!     .then_reject("insufficient-stock");
//! ```

use crate::aggregate::Aggregate;
use crate::context::Context;
use crate::ids::{CommandId, ReservationId, Sku, Timestamp};
use crate::product::{
    Money, NewProduct, Product, ProductCommand, ProductDetails, ProductEvent, ProductEventBody, decide, evolve,
};
use crate::rejection::Rejection;
use crate::validation::{Currency, Quantity};

/// The SKU every scenario is about.
pub fn test_sku() -> Sku {
    Sku::parse("TEST-1").expect("valid test sku")
}

/// Minimal valid details with this name.
pub fn details(name: &str) -> ProductDetails {
    ProductDetails {
        name: name.to_owned(),
        description: None,
        brand: None,
        category: None,
        gtin: None,
        price: Money { cents: 999, currency: Currency::default() },
        attributes: Default::default(),
    }
}

pub fn registered(name: &str, initial_stock: u64) -> ProductEventBody {
    ProductEventBody::ProductRegistered { details: details(name), initial_stock, origin: None }
}

pub fn register(name: &str, initial_stock: u64) -> ProductCommand {
    ProductCommand::Register(NewProduct { details: details(name), initial_stock, origin: None })
}

pub fn receive(quantity: u64) -> ProductCommand {
    ProductCommand::ReceiveStock { quantity: Quantity::new(quantity).expect("positive test quantity"), reference: None }
}

pub fn reserve(id: &str, quantity: u64) -> ProductCommand {
    ProductCommand::Reserve {
        reservation_id: ReservationId::parse(id).expect("valid test reservation id"),
        quantity: Quantity::new(quantity).expect("positive test quantity"),
        expires_at: None,
        order_id: None,
    }
}

pub fn reserved(id: &str, quantity: u64) -> ProductEventBody {
    ProductEventBody::StockReserved {
        reservation_id: ReservationId::parse(id).expect("valid test reservation id"),
        quantity,
        expires_at: None,
        order_id: None,
    }
}

/// Folds `bodies` into a product, versioning them 1, 2, 3...
pub fn fold(bodies: &[ProductEventBody]) -> Option<Product> {
    bodies.iter().enumerate().fold(None, |state, (i, body)| {
        let event = ProductEvent {
            sku: test_sku(),
            version: i as u64 + 1,
            command_id: CommandId::parse(format!("given-{i}")).expect("valid id"),
            at: Timestamp(0),
            body: body.clone(),
        };
        evolve(state, &event)
    })
}

pub struct Given {
    state: Option<Product>,
    ctx: Context,
}

pub fn given(bodies: Vec<ProductEventBody>) -> Given {
    Given {
        state: fold(&bodies),
        ctx: Context::new(CommandId::parse("cmd-under-test").expect("valid id"), Timestamp(1_000_000)),
    }
}

impl Given {
    pub fn at(mut self, now: Timestamp) -> Self {
        self.ctx.now = now;
        self
    }

    pub fn expecting_version(mut self, version: u64) -> Self {
        self.ctx.expected_version = Some(version);
        self
    }

    pub fn when(self, command: ProductCommand) -> Then {
        let outcome = decide(self.state.as_ref(), &test_sku(), &command, &self.ctx);
        Then { state: self.state, outcome }
    }
}

pub struct Then {
    state: Option<Product>,
    outcome: Result<Vec<ProductEvent>, Rejection>,
}

impl Then {
    /// Asserts the command produced exactly these event bodies; returns the state after them.
    #[track_caller]
    pub fn then_expect(self, expected: Vec<ProductEventBody>) -> Option<Product> {
        let events = match self.outcome {
            Ok(events) => events,
            Err(rejection) => panic!("expected events {expected:?}, got rejection {rejection:?}"),
        };
        let bodies: Vec<_> = events.iter().map(|e| e.body.clone()).collect();
        assert_eq!(bodies, expected);
        let base = self.state.as_ref().map_or(0, |p| p.version);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.version, base + 1 + i as u64, "versions must continue the product's");
        }
        events.iter().fold(self.state, evolve)
    }

    /// Asserts the command was rejected with this kind; returns the rejection.
    #[track_caller]
    pub fn then_reject(self, kind: &str) -> Rejection {
        match self.outcome {
            Ok(events) => panic!("expected rejection {kind}, got events {events:?}"),
            Err(rejection) => {
                assert_eq!(rejection.kind(), kind, "rejection was {rejection:?}");
                rejection
            }
        }
    }
}

/// Decides `command` on any aggregate and folds what it decided: the state after
/// it and the events, or the rejection.
pub fn run<A: Aggregate>(
    state: Option<A>,
    id: &A::Id,
    command: &A::Command,
    ctx: &Context,
) -> Result<(Option<A>, Vec<A::Event>), Rejection> {
    let events = A::decide(state.as_ref(), id, command, ctx)?;
    let next = events.iter().fold(state, A::evolve);
    Ok((next, events))
}
