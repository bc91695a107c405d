//! The cost model: what a migration is worth per hour, and what it costs per hour.
//!
//! All money is in *cost units*: whatever currency the sites' prices are written in
//! (the model never converts currencies, so keep one currency per deployment).

use civitas_model::{Site, SiteLink, Urn, View};

/// Bytes in one gigabyte (decimal, as cloud providers bill).
pub const BYTES_PER_GB: f64 = 1e9;
/// Hours in a billing month (365.25 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.5;

/// The weights and defaults of the cost model; see `docs/migration.md` for the formula.
///
/// ```text
/// gain_ms          = round_trip_factor × (latency(client, origin) − latency(client, target))
///                    or, when the client-to-origin link is unknown,
///                    p50_ms − round_trip_factor × latency(client, target)
///                    (0 when below min_latency_gain_ms)
/// benefit_per_hour = gain_ms × rate_per_s × 3600 × value_per_ms
/// transfer_cost    = size_gb × egress_price(origin → target)
/// storage_per_month= size_gb × storage_price(target)
/// update_per_period= size_gb × fraction × times × egress_price(origin → target)
/// cost_per_hour    = transfer_cost / amortization_hours
///                    + storage_per_month / 730.5
///                    + update_per_period / period_hours
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CostModel {
    /// Value of one millisecond saved on one request, in cost units. Default 1e-6
    /// (a million request-milliseconds — 1000 request-seconds — are worth 1 unit).
    pub value_per_ms: f64,
    /// How many one-way link latencies one request pays (request + response). Default 2.
    pub round_trip_factor: f64,
    /// A gain below this many ms per request counts as none: users do not notice it and
    /// it is within measurement noise, so a fast view stays where it is. Default 10 ms.
    pub min_latency_gain_ms: f64,
    /// Hours over which the one-off transfer cost is spread. Default 24 h.
    pub amortization_hours: f64,
    /// Egress price per GB when neither the link nor the origin site names one. Default 0.09.
    pub default_egress_price_per_gb: f64,
    /// Storage price per GB and month when the target site names none. Default 0.023.
    pub default_storage_price_per_gb_month: f64,
    /// Bandwidth when the origin-to-target link names none, in Mbit/s. Default 100.
    pub default_bandwidth_mbps: f64,
    /// Share of the view one update changes when its update frequency names none, in
    /// percent. Default 100 (a full copy per update).
    pub default_update_fraction_percent: f64,
}

impl Default for CostModel {
    fn default() -> CostModel {
        CostModel {
            value_per_ms: 1e-6,
            round_trip_factor: 2.0,
            min_latency_gain_ms: 10.0,
            amortization_hours: 24.0,
            default_egress_price_per_gb: 0.09,
            default_storage_price_per_gb_month: 0.023,
            default_bandwidth_mbps: 100.0,
            default_update_fraction_percent: 100.0,
        }
    }
}

/// What the model computes for one view, origin and target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostEstimate {
    /// Bytes to copy to the target.
    pub transfer_bytes: u64,
    /// Expected copy time at the link's bandwidth, seconds.
    pub transfer_seconds: f64,
    /// One-off transfer cost, cost units.
    pub transfer_cost: f64,
    /// Storage at the target, cost units per month.
    pub storage_cost_per_month: f64,
    /// Keeping the replica fresh, cost units per update period of the view.
    pub update_cost_per_period: f64,
    /// Keeping the replica fresh, cost units per hour.
    pub update_cost_per_hour: f64,
    /// Expected saving per request, ms (never negative).
    pub expected_latency_gain_ms: f64,
    /// Value of the saved time, cost units per hour.
    pub benefit_per_hour: f64,
    /// Amortized transfer + storage + updates, cost units per hour.
    pub cost_per_hour: f64,
}

impl CostEstimate {
    /// `benefit_per_hour − cost_per_hour`.
    pub fn score(&self) -> f64 {
        self.benefit_per_hour - self.cost_per_hour
    }
}

/// The measured usage a cost estimate is based on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Requests per second from the client site.
    pub rate_per_s: f64,
    /// Measured median response time, ms (used when the client-to-origin link is unknown).
    pub p50_ms: Option<f64>,
}

/// One-way latency between two sites from the links (0 for the same site).
pub fn link_latency_ms(links: &[SiteLink], a: &Urn, b: &Urn) -> Option<f64> {
    if a == b {
        return Some(0.0);
    }
    link(links, a, b).map(|l| l.latency_ms)
}

/// The link from `a` to `b` (or a bidirectional one between them).
pub fn link<'a>(links: &'a [SiteLink], a: &Urn, b: &Urn) -> Option<&'a SiteLink> {
    links.iter().find(|l| l.connects(a, b))
}

impl CostModel {
    /// Checks the weights; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            ("value_per_ms", self.value_per_ms, false),
            ("round_trip_factor", self.round_trip_factor, false),
            ("min_latency_gain_ms", self.min_latency_gain_ms, false),
            ("amortization_hours", self.amortization_hours, true),
            ("default_egress_price_per_gb", self.default_egress_price_per_gb, false),
            ("default_storage_price_per_gb_month", self.default_storage_price_per_gb_month, false),
            ("default_bandwidth_mbps", self.default_bandwidth_mbps, true),
            ("default_update_fraction_percent", self.default_update_fraction_percent, false),
        ];
        for (name, value, positive) in checks {
            if !value.is_finite() || value < 0.0 || (positive && value == 0.0) {
                let need = if positive { "greater than 0" } else { "at least 0" };
                return Err(format!("{name} must be a finite number {need}, found {value}"));
            }
        }
        if self.default_update_fraction_percent > 100.0 {
            return Err(format!(
                "default_update_fraction_percent must be at most 100, found {}",
                self.default_update_fraction_percent
            ));
        }
        Ok(())
    }

    /// The egress price per GB from `origin` to `target`: the link's, else the origin
    /// site's, else the default.
    pub fn egress_price_per_gb(&self, origin: &Site, target: &Urn, links: &[SiteLink]) -> f64 {
        link(links, &origin.header.name, target)
            .and_then(|l| l.egress_price_per_gb)
            .or(origin.prices.egress_gb)
            .unwrap_or(self.default_egress_price_per_gb)
    }

    /// Estimates moving a view of `size_bytes` from `origin` to `target` for consumers
    /// at `client_site`. `None` when the latency gain cannot be estimated (no link from
    /// the client site to the target, or neither a client-to-origin link nor a measured p50).
    #[allow(clippy::too_many_arguments)]
    pub fn estimate(
        &self,
        view: &View,
        size_bytes: u64,
        usage: Usage,
        client_site: &Urn,
        origin: &Site,
        target: &Site,
        links: &[SiteLink],
    ) -> Option<CostEstimate> {
        let to_target = link_latency_ms(links, client_site, &target.header.name)?;
        let gain_ms = match link_latency_ms(links, client_site, &origin.header.name) {
            Some(to_origin) => self.round_trip_factor * (to_origin - to_target),
            None => usage.p50_ms? - self.round_trip_factor * to_target,
        }
        .max(0.0);
        let gain_ms = if gain_ms < self.min_latency_gain_ms { 0.0 } else { gain_ms };
        let benefit_per_hour = gain_ms * usage.rate_per_s.max(0.0) * 3600.0 * self.value_per_ms;

        let size_gb = size_bytes as f64 / BYTES_PER_GB;
        let egress = self.egress_price_per_gb(origin, &target.header.name, links);
        let bandwidth_mbps = link(links, &origin.header.name, &target.header.name)
            .and_then(|l| l.bandwidth_mbps)
            .filter(|b| *b > 0.0)
            .unwrap_or(self.default_bandwidth_mbps);
        let transfer_seconds = size_bytes as f64 * 8.0 / (bandwidth_mbps * 1e6);
        let transfer_cost = size_gb * egress;
        let storage_price = target.prices.storage_gb_month.unwrap_or(self.default_storage_price_per_gb_month);
        let storage_cost_per_month = size_gb * storage_price;

        let (update_cost_per_period, update_cost_per_hour) = match &view.update_frequency {
            None => (0.0, 0.0),
            Some(frequency) => {
                let fraction =
                    frequency.fraction_percent.unwrap_or(self.default_update_fraction_percent).clamp(0.0, 100.0)
                        / 100.0;
                let per_period = size_gb * fraction * f64::from(frequency.times) * egress;
                let period_hours = frequency.period.seconds() / 3600.0;
                (per_period, per_period / period_hours)
            }
        };
        let cost_per_hour =
            transfer_cost / self.amortization_hours + storage_cost_per_month / HOURS_PER_MONTH + update_cost_per_hour;
        Some(CostEstimate {
            transfer_bytes: size_bytes,
            transfer_seconds,
            transfer_cost,
            storage_cost_per_month,
            update_cost_per_period,
            update_cost_per_hour,
            expected_latency_gain_ms: gain_ms,
            benefit_per_hour,
            cost_per_hour,
        })
    }
}
