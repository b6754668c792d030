//! The one shape every aggregate has: a command is decided against the current state
//! into events (or a rejection), and events are folded into the state, one at a time.
//!
//! ```text
//! decide(Option<&State>, &Id, &Command, &Context) -> Result<Vec<Event>, Rejection>
//! evolve(Option<State>, &Event) -> Option<State>
//! ```
//!
//! `None` is "no such instance yet" (an unregistered SKU, an unclaimed GTIN, an order
//! not placed). The codec (`stockroom_topics::events`) and the command processor
//! handle every aggregate through this trait. Adding an aggregate is one module that
//! registers itself with `aggregate!` plus its line in the codec's `aggregates!`
//! list; the compiler then points at what must say what to do with it (the
//! processor's `Target`, and each fold of `LogEntry`).

use std::borrow::Cow;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::ids::{CommandId, Timestamp};
use crate::rejection::Rejection;

/// What every event of every aggregate carries besides its body.
pub trait DomainEvent {
    /// The CloudEvents `type` of this event.
    fn event_type(&self) -> &'static str;
    /// The aggregate state's version after this event (1 for the first, then +1 each).
    fn version(&self) -> u64;
    /// The command that caused it.
    fn command_id(&self) -> &CommandId;
    /// When the command that caused it was received.
    fn at(&self) -> Timestamp;
    /// The key of the instance it belongs to (see [`Aggregate::key`]).
    fn key(&self) -> Cow<'_, str>;
}

/// A consistency boundary: one instance per key, one writer per instance.
///
/// Implemented by the aggregate's state type.
pub trait Aggregate: Sized {
    /// What names an instance in a command (a SKU, a GTIN, an order id).
    type Id;
    type Command;
    type Event: DomainEvent + Serialize + DeserializeOwned;

    /// The prefix of its events' CloudEvents types (`stockroom.product.`).
    const EVENT_TYPE_PREFIX: &'static str;
    /// The collection its instances are subjects of (`products`, as in `products/KET-1`).
    const COLLECTION: &'static str;

    /// The key of an instance: its log record key, and where its state is stored.
    /// Two ids that name the same instance (two forms of one GTIN) have one key.
    fn key(id: &Self::Id) -> Cow<'_, str>;

    /// The version after the last folded event.
    fn version(&self) -> u64;

    /// Decides what `command` does to the instance `id` in `state`: the events to
    /// append, in order, versioned from the state's version + 1, or why it is refused.
    /// An empty list means "accepted, nothing changed".
    fn decide(
        state: Option<&Self>,
        id: &Self::Id,
        command: &Self::Command,
        ctx: &Context,
    ) -> Result<Vec<Self::Event>, Rejection>;

    /// Folds one event into the state. Callers check the version first
    /// ([`check_version`]); `evolve` trusts that the event is the next one.
    fn evolve(state: Option<Self>, event: &Self::Event) -> Option<Self>;
}

/// Where an event stands against the state a reader holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionCheck {
    /// `current + 1`: apply it.
    Next,
    /// At or below the current version: already applied, skip (idempotent replay).
    AlreadyApplied,
    /// Beyond `current + 1`: events are missing; every reader skips it and reports a gap.
    Gap,
}

/// The fold rule every reader shares: an event applies only at `current + 1`.
pub fn check_version<A: Aggregate>(current: Option<&A>, event: &A::Event) -> VersionCheck {
    let current = current.map_or(0, A::version);
    let version = event.version();
    if version == current + 1 {
        VersionCheck::Next
    } else if version <= current {
        VersionCheck::AlreadyApplied
    } else {
        VersionCheck::Gap
    }
}

/// Implements [`Aggregate`] for a state type with a `version` field, and
/// [`DomainEvent`] for its event type (a struct with `version`, `command_id` and `at`
/// fields and an inherent `event_type`). The aggregate's module has its decision
/// function, named `decide`, in scope:
///
/// ```ignore
/// aggregate! {
///     Order { id: OrderId, command: OrderCommand, event: OrderEvent, types: "stockroom.order.", collection: "orders" }
///     key: |order_id| order_id.as_str().into(), event_id: |event| &event.order_id,
///     evolve: |state, event| Some(evolve(state, event)),
/// }
/// ```
macro_rules! aggregate {
    (
        $state:ident { id: $id:ty, command: $command:ty, event: $event:ty, types: $prefix:literal, collection: $collection:literal }
        key: |$key_of:ident| $key:expr, event_id: |$event_of:ident| $event_id:expr,
        evolve: |$s:ident, $e:ident| $evolve:expr $(,)?
    ) => {
        impl $crate::aggregate::Aggregate for $state {
            type Id = $id;
            type Command = $command;
            type Event = $event;
            const EVENT_TYPE_PREFIX: &'static str = $prefix;
            const COLLECTION: &'static str = $collection;
            fn key($key_of: &$id) -> std::borrow::Cow<'_, str> {
                $key
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn decide(
                state: Option<&Self>,
                id: &$id,
                command: &$command,
                ctx: &$crate::Context,
            ) -> Result<Vec<$event>, $crate::Rejection> {
                decide(state, id, command, ctx)
            }
            fn evolve($s: Option<Self>, $e: &$event) -> Option<Self> {
                $evolve
            }
        }

        impl $crate::aggregate::DomainEvent for $event {
            fn event_type(&self) -> &'static str {
                <$event>::event_type(self)
            }
            fn version(&self) -> u64 {
                self.version
            }
            fn command_id(&self) -> &$crate::ids::CommandId {
                &self.command_id
            }
            fn at(&self) -> $crate::ids::Timestamp {
                self.at
            }
            fn key(&self) -> std::borrow::Cow<'_, str> {
                let $event_of = self;
                <$state as $crate::aggregate::Aggregate>::key($event_id)
            }
        }
    };
}
pub(crate) use aggregate;
