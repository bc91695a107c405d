//! Tells the data plane which views are being copied to this node, so that their reads
//! may wait for the replica rather than cross the link the copy is using (the data
//! plane's `hold.rs` decides whether and how long). A copy is on the board from before its
//! first byte until its replica is registered (then for the route table's grace) or it
//! fails.

use civitas_dataplane::{CopyBoard, CopyTicket};
use civitas_placement::migration::MigrationPlan;

use super::Relocation;

/// A copy on the data plane's board, for as long as it runs.
pub(super) struct WatchedCopy(Option<CopyTicket>);

impl WatchedCopy {
    fn begin(board: &CopyBoard, plan: &MigrationPlan, own_site: Option<&civitas_model::Urn>) -> WatchedCopy {
        WatchedCopy((own_site == Some(&plan.target_site)).then(|| board.begin(plan.view.clone())))
    }

    /// The copy ended: with its replica registered in the catalog (`true`), or not.
    pub(super) fn settle(self, registered: bool) {
        if let Some(ticket) = self.0
            && registered
        {
            ticket.registered();
        }
    }
}

impl Relocation {
    /// Puts the copy of `plan`'s view on the data plane's board when it targets this node.
    pub(super) fn watch_copy(&self, plan: &MigrationPlan) -> WatchedCopy {
        let deps = &self.inner.deps;
        WatchedCopy::begin(&deps.copies, plan, deps.own_site.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use civitas_model::Urn;

    use super::*;

    fn plan(target: &str) -> MigrationPlan {
        MigrationPlan {
            strategy: "http-snapshot".into(),
            unit: Urn::parse("urn:urbem:buildings").unwrap(),
            view: Urn::parse("urn:urbem:buildings:blocks").unwrap(),
            origin_site: Urn::parse("urn:site:melbourne").unwrap(),
            target_site: Urn::parse(target).unwrap(),
            transfer_bytes: 0,
            transfer_seconds: 0.0,
            transfer_cost: 0.0,
            storage_cost_per_month: 0.0,
            update_cost_per_period: 0.0,
            expected_latency_gain_ms: 0.0,
            benefit_per_hour: 0.0,
            cost_per_hour: 0.0,
            score: 0.0,
            confidence: 1.0,
            explanation: Vec::new(),
        }
    }

    #[tokio::test]
    async fn copies_to_this_site_are_on_the_board_until_they_fail_or_register() {
        let board = CopyBoard::new();
        let here = Urn::parse("urn:site:vienna").unwrap();
        let other = WatchedCopy::begin(&board, &plan("urn:site:berlin"), Some(&here));
        assert!(board.is_empty(), "a copy to another site is not this node's");
        other.settle(true);
        let failed = WatchedCopy::begin(&board, &plan("urn:site:vienna"), Some(&here));
        assert_eq!(board.len(), 1);
        failed.settle(false);
        assert!(board.is_empty(), "a failed copy releases its reads at once");
        let done = WatchedCopy::begin(&board, &plan("urn:site:vienna"), Some(&here));
        done.settle(true);
        assert_eq!(board.len(), 1, "a registered copy stays while the route table catches up");
    }
}
