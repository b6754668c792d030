//! The GTIN claim aggregate: which product holds a GTIN (barcode).
//!
//! A GTIN is unique across products, but products are partitioned by SKU, so the
//! check cannot run where the product lives. Claims are therefore an aggregate of
//! their own, one per GTIN (keyed by [`Gtin::canonical`]), and a command that gives a
//! product a GTIN is first decided here, where the GTIN's data lives (DESIGN.md,
//! "Uniqueness"):
//!
//! 1. `Claim` — the GTIN is free, or already held by the same product: the claim is
//!    recorded as *pending* with the product command it is for. Otherwise the
//!    command is refused with `GtinTaken`.
//! 2. The product command then runs on the product (by SKU). Whatever it decides,
//!    `Settle` reports back whether the product now holds the GTIN *through this
//!    claim*: yes confirms the claim; no abandons it (a compensating step), which
//!    frees the GTIN again, or leaves the previous holding of the same product.
//! 3. `Release` — a product that dropped the GTIN (changed or cleared it) gives it up.
//!    A release names the claim it ends, so a late release never frees a GTIN that
//!    was claimed again in between.
//!
//! Rules: a discontinued product **keeps** its GTIN (a barcode printed on goods
//! still in the world must not come to mean another article); only changing or
//! clearing the GTIN releases it. A pending claim blocks every other claim of the
//! GTIN until it is settled.

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::ids::{CommandId, Gtin, Sku, Timestamp};
use crate::product::ProductCommand;
use crate::rejection::Rejection;

/// What the claim aggregate is asked to do. The command id of a `Claim` is the id
/// of the product command it is for, and names the claim.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(prefix = "gtin_", serialize_all = "snake_case")]
pub enum GtinCommand {
    Claim {
        sku: Sku,
        /// The product command that gives the product this GTIN.
        command: ProductCommand,
        expected_version: Option<u64>,
    },
    Settle {
        claim: CommandId,
        /// Whether the product now holds the GTIN through this claim.
        holds: bool,
    },
    Release {
        sku: Sku,
        claim: CommandId,
    },
}

impl GtinCommand {
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

/// A product's confirmed holding of a GTIN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub sku: Sku,
    pub claim: CommandId,
}

/// A claim waiting for its product command's outcome.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingClaim {
    pub sku: Sku,
    pub claim: CommandId,
    pub command: ProductCommand,
    pub expected_version: Option<u64>,
    /// When the claim was made (the product command is decided with this time).
    pub since: Timestamp,
}

/// The claim state of one GTIN. It stays after a release (with nothing held) so that
/// its version keeps counting.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtinClaim {
    pub gtin: Gtin,
    pub held: Option<Holding>,
    /// At most one; when `held` is also set, both are the same product's (a re-claim).
    pub pending: Option<PendingClaim>,
    pub version: u64,
}

impl GtinClaim {
    /// The product the GTIN belongs to or is being claimed for, if any.
    pub fn holder(&self) -> Option<&Sku> {
        self.pending.as_ref().map(|p| &p.sku).or(self.held.as_ref().map(|h| &h.sku))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtinEvent {
    pub gtin: Gtin,
    /// The claim state's version after this event.
    pub version: u64,
    pub command_id: CommandId,
    pub at: Timestamp,
    #[serde(flatten)]
    pub body: GtinEventBody,
}

#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(tag = "type", content = "data")]
#[strum(prefix = "stockroom.gtin.")]
pub enum GtinEventBody {
    GtinClaimed {
        sku: Sku,
        claim: CommandId,
        command: Box<ProductCommand>,
        expected_version: Option<u64>,
    },
    GtinClaimConfirmed {
        claim: CommandId,
    },
    /// The product command failed or did not set the GTIN: the pending claim goes.
    GtinClaimAbandoned {
        claim: CommandId,
    },
    GtinReleased {
        sku: Sku,
        claim: CommandId,
    },
}

impl GtinEvent {
    pub fn event_type(&self) -> &'static str {
        (&self.body).into()
    }
}

/// Decides a claim command. An empty list means "nothing to do" (a duplicate or a
/// settle/release that no longer matches anything).
pub fn decide(
    state: Option<&GtinClaim>,
    gtin: &Gtin,
    command: &GtinCommand,
    ctx: &Context,
) -> Result<Vec<GtinEvent>, Rejection> {
    let pending = state.and_then(|s| s.pending.as_ref());
    let held = state.and_then(|s| s.held.as_ref());
    let body = match command {
        GtinCommand::Claim { sku, command, expected_version } => {
            if let Some(p) = pending {
                if p.claim == ctx.command_id {
                    return Ok(Vec::new());
                }
                return Err(Rejection::GtinTaken { gtin: gtin.as_str().to_owned(), holder: p.sku.clone() });
            }
            if let Some(h) = held
                && h.sku != *sku
            {
                return Err(Rejection::GtinTaken { gtin: gtin.as_str().to_owned(), holder: h.sku.clone() });
            }
            GtinEventBody::GtinClaimed {
                sku: sku.clone(),
                claim: ctx.command_id.clone(),
                command: Box::new(command.clone()),
                expected_version: *expected_version,
            }
        }
        GtinCommand::Settle { claim, holds } => match pending {
            Some(p) if p.claim == *claim => {
                if *holds {
                    GtinEventBody::GtinClaimConfirmed { claim: claim.clone() }
                } else {
                    GtinEventBody::GtinClaimAbandoned { claim: claim.clone() }
                }
            }
            _ => return Ok(Vec::new()),
        },
        GtinCommand::Release { sku, claim } => {
            let matches = |c: &CommandId, s: &Sku| c == claim && s == sku;
            if held.is_some_and(|h| matches(&h.claim, &h.sku)) || pending.is_some_and(|p| matches(&p.claim, &p.sku)) {
                GtinEventBody::GtinReleased { sku: sku.clone(), claim: claim.clone() }
            } else {
                return Ok(Vec::new());
            }
        }
    };
    Ok(vec![GtinEvent {
        gtin: gtin.clone(),
        version: state.map_or(0, |s| s.version) + 1,
        command_id: ctx.command_id.clone(),
        at: ctx.now,
        body,
    }])
}

/// Folds one event (the caller checked it is the next version).
pub fn evolve(state: Option<GtinClaim>, event: &GtinEvent) -> GtinClaim {
    let mut s = state.unwrap_or_else(|| GtinClaim { gtin: event.gtin.clone(), held: None, pending: None, version: 0 });
    s.version = event.version;
    match &event.body {
        GtinEventBody::GtinClaimed { sku, claim, command, expected_version } => {
            s.pending = Some(PendingClaim {
                sku: sku.clone(),
                claim: claim.clone(),
                command: (**command).clone(),
                expected_version: *expected_version,
                since: event.at,
            });
        }
        GtinEventBody::GtinClaimConfirmed { claim } => {
            if let Some(p) = s.pending.take_if(|p| p.claim == *claim) {
                s.held = Some(Holding { sku: p.sku, claim: p.claim });
            }
        }
        GtinEventBody::GtinClaimAbandoned { claim } => {
            s.pending.take_if(|p| p.claim == *claim);
        }
        GtinEventBody::GtinReleased { claim, .. } => {
            s.held.take_if(|h| h.claim == *claim);
            s.pending.take_if(|p| p.claim == *claim);
        }
    }
    s
}

// The canonical (14-digit) GTIN is the key, so every form of one GTIN meets in one place.
crate::aggregate::aggregate! {
    GtinClaim { id: Gtin, command: GtinCommand, event: GtinEvent, types: "stockroom.gtin.", collection: "gtins" }
    key: |gtin| gtin.canonical().into(), event_id: |event| &event.gtin,
    evolve: |state, event| Some(evolve(state, event)),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Event types are stored in the log: they must not follow a renamed variant.
    #[test]
    fn event_types_and_kinds_are_stable() {
        let body = GtinEventBody::GtinClaimAbandoned { claim: CommandId::parse("c-1").unwrap() };
        assert_eq!(<&str>::from(&body), "stockroom.gtin.GtinClaimAbandoned");
        let release = GtinCommand::Release { sku: Sku::parse("A-1").unwrap(), claim: CommandId::parse("c-1").unwrap() };
        assert_eq!(release.kind(), "gtin_release");
    }
    use crate::testsuite::{self, register};

    fn gtin() -> Gtin {
        Gtin::parse("4006381333931").unwrap()
    }

    fn ctx(id: &str) -> Context {
        Context::new(CommandId::parse(id).unwrap(), Timestamp(1))
    }

    fn sku(s: &str) -> Sku {
        Sku::parse(s).unwrap()
    }

    fn claim(s: &str) -> GtinCommand {
        GtinCommand::Claim { sku: sku(s), command: register("x", 0), expected_version: None }
    }

    fn run(state: Option<GtinClaim>, cmd: GtinCommand, id: &str) -> Result<Option<GtinClaim>, Rejection> {
        Ok(testsuite::run(state, &gtin(), &cmd, &ctx(id))?.0)
    }

    fn settle(id: &str, holds: bool) -> GtinCommand {
        GtinCommand::Settle { claim: CommandId::parse(id).unwrap(), holds }
    }

    #[test]
    fn a_claim_blocks_others_until_abandoned() {
        let s = run(None, claim("A"), "c1").unwrap();
        assert_eq!(run(s.clone(), claim("B"), "c2").unwrap_err().kind(), "gtin-taken");
        // The same claim again (a retry) is a no-op.
        assert_eq!(run(s.clone(), claim("A"), "c1").unwrap(), s);
        let s = run(s, settle("c1", false), "s1").unwrap();
        assert_eq!(s.as_ref().and_then(|s| s.holder()), None);
        let s = run(s, claim("B"), "c2").unwrap();
        assert_eq!(s.as_ref().and_then(|s| s.holder()), Some(&sku("B")));
    }

    #[test]
    fn a_confirmed_claim_holds_until_released_by_that_claim() {
        let s = run(None, claim("A"), "c1").unwrap();
        let s = run(s, settle("c1", true), "s1").unwrap();
        assert_eq!(run(s.clone(), claim("B"), "c2").unwrap_err().kind(), "gtin-taken");
        // A stale release (another claim id) changes nothing.
        let stale = GtinCommand::Release { sku: sku("A"), claim: CommandId::parse("c0").unwrap() };
        assert_eq!(run(s.clone(), stale, "r0").unwrap(), s);
        let release = GtinCommand::Release { sku: sku("A"), claim: CommandId::parse("c1").unwrap() };
        let s = run(s, release, "r1").unwrap();
        assert_eq!(s.as_ref().and_then(|s| s.holder()), None);
        assert_eq!(s.map(|s| s.version), Some(3));
    }

    #[test]
    fn a_failed_reclaim_by_the_holder_keeps_its_holding() {
        let s = run(None, claim("A"), "c1").unwrap();
        let s = run(s, settle("c1", true), "s1").unwrap();
        let s = run(s, claim("A"), "c2").unwrap();
        let s = run(s, settle("c2", false), "s2").unwrap().unwrap();
        assert_eq!(s.held.map(|h| h.claim.to_string()), Some("c1".to_owned()));
    }

    #[test]
    fn releasing_the_old_holding_during_a_reclaim_leaves_only_the_reclaim() {
        let s = run(None, claim("A"), "c1").unwrap();
        let s = run(s, settle("c1", true), "s1").unwrap();
        let s = run(s, claim("A"), "c2").unwrap();
        let release = GtinCommand::Release { sku: sku("A"), claim: CommandId::parse("c1").unwrap() };
        let s = run(s, release, "r1").unwrap();
        let s = run(s, settle("c2", false), "s2").unwrap().unwrap();
        assert_eq!(s.holder(), None);
    }
}
