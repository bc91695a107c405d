//! Migration candidates and the bus that carries them to the migration manager.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use civitas_model::Urn;
use tokio::sync::mpsc;

use crate::ConfidenceInterval;

/// A view that a trigger says should move closer to its consumers: the paper's
/// "request including the results of its analysis" handed to the Migration Manager.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationCandidate {
    /// The data unit.
    pub unit: Urn,
    /// The view, inside the unit.
    pub view: Urn,
    /// Where its consumers are, when the data plane knew; `None` means unknown sites.
    pub client_site: Option<Urn>,
    /// The trigger that fired, as written.
    pub trigger: String,
    /// The trigger's value when it fired (in the field's base unit).
    pub value: f64,
    /// Every field of the view and client site when it fired (`response_time.p50`…,
    /// plus `cost` for a cost-function trigger).
    pub analysis: BTreeMap<String, f64>,
    /// When it fired, milliseconds since the Unix epoch.
    pub fired_at_unix_ms: u64,
    /// The activation's confidence interval, for the migration manager's escalation.
    pub confidence: ConfidenceInterval,
    /// The view's most requested resources, relative to its link (`/` is the view's own
    /// resource, `/district/3?year=2017` one below it with a query), most requested first
    /// (ties by text), counted across client sites; at most
    /// [`MAX_VARIANTS_PER_VIEW`](crate::MAX_VARIANTS_PER_VIEW). Empty when the data plane
    /// reported none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<String>,
}

/// Where fired triggers go. Implementations must not block: `publish` is called from
/// the analyzer loop (outside its lock, but the loop waits for it).
pub trait CandidateBus: Send + Sync + 'static {
    /// Hands one candidate on.
    fn publish(&self, candidate: MigrationCandidate);
}

/// The embedded bus: a bounded in-process channel to the migration manager.
///
/// When the channel is full (or its receiver gone) the candidate is dropped and
/// counted: the analyzers must never wait on migrations, and nothing is lost for good —
/// a trigger whose condition persists fires again after its cooldown.
#[derive(Debug)]
pub struct ChannelBus {
    sender: mpsc::Sender<MigrationCandidate>,
    dropped: AtomicU64,
}

impl ChannelBus {
    /// A bus holding at most `capacity` undelivered candidates (at least 1), and its receiver.
    pub fn new(capacity: usize) -> (ChannelBus, mpsc::Receiver<MigrationCandidate>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (ChannelBus { sender, dropped: AtomicU64::new(0) }, receiver)
    }

    /// Candidates dropped so far because the channel was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl CandidateBus for ChannelBus {
    fn publish(&self, candidate: MigrationCandidate) {
        if let Err(error) = self.sender.try_send(candidate) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let (reason, candidate) = match &error {
                mpsc::error::TrySendError::Full(c) => ("full", c),
                mpsc::error::TrySendError::Closed(c) => ("closed", c),
            };
            tracing::warn!(
                unit = %candidate.unit,
                view = %candidate.view,
                trigger = %candidate.trigger,
                reason,
                dropped = self.dropped(),
                "migration candidate dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(n: u64) -> MigrationCandidate {
        MigrationCandidate {
            unit: Urn::parse("urn:city:mobility").unwrap(),
            view: Urn::parse("urn:city:mobility:stops").unwrap(),
            client_site: None,
            trigger: "samples > 1".into(),
            value: n as f64,
            analysis: BTreeMap::new(),
            fired_at_unix_ms: n,
            variants: Vec::new(),
            confidence: ConfidenceInterval { low: 0.8, high: 1.0 },
        }
    }

    #[test]
    fn drops_and_counts_when_full_then_delivers_again() {
        let (bus, mut rx) = ChannelBus::new(2);
        for n in 0..5 {
            bus.publish(candidate(n));
        }
        assert_eq!(bus.dropped(), 3);
        assert_eq!(rx.try_recv().unwrap().fired_at_unix_ms, 0);
        assert_eq!(rx.try_recv().unwrap().fired_at_unix_ms, 1);
        assert!(rx.try_recv().is_err());
        bus.publish(candidate(9));
        assert_eq!(rx.try_recv().unwrap().fired_at_unix_ms, 9);
        assert_eq!(bus.dropped(), 3);
    }

    #[test]
    fn drops_and_counts_when_nobody_listens() {
        let (bus, rx) = ChannelBus::new(0);
        drop(rx);
        bus.publish(candidate(1));
        assert_eq!(bus.dropped(), 1);
    }

    #[test]
    fn serializes_in_camel_case() {
        let json = serde_json::to_value(candidate(7)).unwrap();
        assert_eq!(json["firedAtUnixMs"], 7);
        assert_eq!(json["clientSite"], serde_json::Value::Null);
        assert_eq!(json["confidence"]["low"], 0.8);
    }
}
