//! Prometheus counters of the Security Manager.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    source: &'static str,
    outcome: &'static str,
}

/// Counters shared by the authenticator, the policy engine and the audit log. Cloning
/// shares them.
#[derive(Clone, Debug, Default)]
pub struct SecurityMetrics {
    inner: Arc<Inner>,
}

/// The kinds of decision, as label values.
pub(crate) const KINDS: [&str; 4] = ["unit", "view", "migration", "admin"];

#[derive(Debug)]
struct Inner {
    decisions: Family<DecisionLabels, Counter>,
    // The family's children, fetched once: counting a decision takes no lock.
    by_kind: [[Counter; 2]; 4],
    authentications: Family<AuthLabels, Counter>,
    audit_dropped: Counter,
    audit_write_errors: Counter,
}

impl Default for Inner {
    fn default() -> Self {
        let decisions: Family<DecisionLabels, Counter> = Family::default();
        let by_kind = KINDS.map(|kind| {
            ["allow", "deny"].map(|decision| decisions.get_or_create(&DecisionLabels { decision, kind }).clone())
        });
        Inner {
            decisions,
            by_kind,
            authentications: Family::default(),
            audit_dropped: Counter::default(),
            audit_write_errors: Counter::default(),
        }
    }
}

fn kind_index(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

impl SecurityMetrics {
    /// Registers `civitas_security_decisions_total{decision,kind}`,
    /// `civitas_security_authentications_total{source,outcome}`,
    /// `civitas_security_audit_dropped_total` and `civitas_security_audit_write_errors_total`.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("civitas_security");
        sub.register("decisions", "Policy decisions by outcome and kind", self.inner.decisions.clone());
        sub.register(
            "authentications",
            "Authentications by source (or scheme when refused) and outcome",
            self.inner.authentications.clone(),
        );
        sub.register(
            "audit_dropped",
            "Audit records dropped because the writer's queue was full",
            self.inner.audit_dropped.clone(),
        );
        sub.register("audit_write_errors", "Audit records lost to write errors", self.inner.audit_write_errors.clone());
    }

    pub(crate) fn decision(&self, allowed: bool, kind: &'static str) {
        self.inner.by_kind[kind_index(kind)][usize::from(!allowed)].inc();
    }

    pub(crate) fn authentication(&self, source: &'static str, outcome: &'static str) {
        self.inner.authentications.get_or_create(&AuthLabels { source, outcome }).inc();
    }

    pub(crate) fn audit_dropped(&self) {
        self.inner.audit_dropped.inc();
    }

    pub(crate) fn audit_write_error(&self) {
        self.inner.audit_write_errors.inc();
    }

    /// Decisions counted so far with this outcome and kind (for tests and status pages).
    pub fn decisions(&self, allowed: bool, kind: &'static str) -> u64 {
        self.inner.by_kind[kind_index(kind)][usize::from(!allowed)].get()
    }

    /// Audit records dropped so far.
    pub fn audit_dropped_total(&self) -> u64 {
        self.inner.audit_dropped.get()
    }
}
