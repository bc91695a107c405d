//! Anti-flapping: operator pins, a per-view cooldown and a minimum residence time.
//! (Hysteresis is a rule on plans and lives in the [`MigrationDecider`](super::MigrationDecider).)

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use civitas_model::Urn;

use super::decision::HoldReason;
use crate::{duration_ms, unix_ms};

/// An operator's pin on a view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "pin", content = "site")]
pub enum Pin {
    /// Never move this view.
    Never,
    /// Keep this view at this site: only plans targeting it may run.
    KeepAt(Urn),
}

/// Where a view's replica was last placed, and when.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// The site.
    pub site: Urn,
    /// When, ms since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Per-view anti-flapping state: pins, last migration decisions, placements.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlappingGuard {
    /// After a migration of a view is decided (executed, escalated or approved), further
    /// candidates for it wait this long.
    pub cooldown: Duration,
    /// A replica stays at least this long where it was placed before it may move again.
    pub min_residence: Duration,
    pins: BTreeMap<Urn, Pin>,
    last_decision_unix_ms: BTreeMap<Urn, u64>,
    placements: BTreeMap<Urn, Placement>,
}

impl FlappingGuard {
    /// A guard with these times and no pins.
    pub fn new(cooldown: Duration, min_residence: Duration) -> FlappingGuard {
        FlappingGuard { cooldown, min_residence, ..FlappingGuard::default() }
    }

    /// Pins a view (replacing any pin it had).
    pub fn pin(&mut self, view: Urn, pin: Pin) {
        self.pins.insert(view, pin);
    }

    /// Removes a view's pin; the pin it had.
    pub fn unpin(&mut self, view: &Urn) -> Option<Pin> {
        self.pins.remove(view)
    }

    /// A view's pin.
    pub fn pin_of(&self, view: &Urn) -> Option<&Pin> {
        self.pins.get(view)
    }

    /// Every pin.
    pub fn pins(&self) -> &BTreeMap<Urn, Pin> {
        &self.pins
    }

    /// Where a view's replica was last placed.
    pub fn placement(&self, view: &Urn) -> Option<&Placement> {
        self.placements.get(view)
    }

    /// Notes that a migration of `view` was decided at `now` (starts its cooldown).
    pub fn note_decision(&mut self, view: &Urn, now: SystemTime) {
        self.last_decision_unix_ms.insert(view.clone(), unix_ms(now));
    }

    /// Notes that `view` now has a replica at `site` (starts its cooldown and residence).
    pub fn note_placement(&mut self, view: &Urn, site: &Urn, now: SystemTime) {
        let at_unix_ms = unix_ms(now);
        self.last_decision_unix_ms.insert(view.clone(), at_unix_ms);
        self.placements.insert(view.clone(), Placement { site: site.clone(), at_unix_ms });
    }

    /// Why a candidate for `view` must wait at `now`, checking in order: a `Never` pin,
    /// the cooldown, the minimum residence. (A `KeepAt` pin is checked against plans.)
    pub fn check(&self, view: &Urn, now: SystemTime) -> Option<HoldReason> {
        if self.pins.get(view) == Some(&Pin::Never) {
            return Some(HoldReason::PinnedNever);
        }
        let now_ms = unix_ms(now);
        if let Some(last) = self.last_decision_unix_ms.get(view) {
            let ends = last.saturating_add(duration_ms(self.cooldown));
            if now_ms < ends {
                return Some(HoldReason::Cooldown { remaining_ms: ends - now_ms });
            }
        }
        if let Some(placement) = self.placements.get(view) {
            let ends = placement.at_unix_ms.saturating_add(duration_ms(self.min_residence));
            if now_ms < ends {
                return Some(HoldReason::MinResidence { site: placement.site.clone(), remaining_ms: ends - now_ms });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn a_never_pin_comes_before_the_cooldown_and_the_residence() {
        let view = Urn::parse("urn:city:u:v").unwrap();
        let site = Urn::parse("urn:city:site:edge").unwrap();
        let mut guard = FlappingGuard::new(Duration::from_secs(10), Duration::from_secs(100));
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(guard.check(&view, at(0)), None);
        guard.note_placement(&view, &site, at(0));
        assert_eq!(guard.check(&view, at(5)), Some(HoldReason::Cooldown { remaining_ms: 5000 }));
        assert_eq!(guard.check(&view, at(10)), Some(HoldReason::MinResidence { site, remaining_ms: 90_000 }));
        assert_eq!(guard.check(&view, at(100)), None);
        guard.pin(view.clone(), Pin::Never);
        assert_eq!(guard.check(&view, at(1)), Some(HoldReason::PinnedNever));
        let json = serde_json::to_value(guard.pins()).unwrap();
        assert_eq!(json["urn:city:u:v"]["pin"], "never");
    }
}
