//! Helpers shared by the integration tests: a fake clock and observations.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use civitas_model::{Observation, Urn};
use civitas_placement::{ActivationRequest, AnalyzerConfig, AnalyzerManager, ChannelBus, MigrationCandidate};
use tokio::sync::mpsc::Receiver;

/// The fake clock's origin.
pub const T0_MS: u64 = 1_700_000_000_000;

/// `T0 + ms`.
pub fn t(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(T0_MS + ms)
}

pub fn urn(s: &str) -> Urn {
    Urn::parse(s).unwrap()
}

/// An observation of `urn:city:mobility:<view>` from `site` (if any), arriving at
/// `at` and answered 200 in `total_ms` with `bytes_out`.
pub fn obs(view: &str, site: Option<&str>, at: SystemTime, total_ms: u64, bytes_out: u64) -> Observation {
    Observation {
        time: at,
        unit: Arc::new(urn("urn:city:mobility")),
        view: Arc::new(urn(&format!("urn:city:mobility:{view}"))),
        variant: None,
        instance: None,
        client_site: site.map(|s| Arc::new(urn(s))),
        client_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        status: 200,
        bytes_in: 0,
        bytes_out,
        time_to_first_byte: Duration::from_millis(total_ms),
        total_time: Duration::from_millis(total_ms),
    }
}

/// A manager on a bus of `capacity`, with the bus kept for its drop counter.
pub fn manager_with(
    config: AnalyzerConfig,
    capacity: usize,
) -> (AnalyzerManager, Arc<ChannelBus>, Receiver<MigrationCandidate>) {
    let (bus, rx) = ChannelBus::new(capacity);
    let bus = Arc::new(bus);
    (AnalyzerManager::new(config, bus.clone()), bus, rx)
}

pub fn manager() -> (AnalyzerManager, Arc<ChannelBus>, Receiver<MigrationCandidate>) {
    manager_with(AnalyzerConfig::default(), 64)
}

pub fn request(triggers: &[&str], confidence: &str) -> ActivationRequest {
    ActivationRequest { triggers: triggers.iter().map(|s| s.to_string()).collect(), confidence: confidence.into() }
}

/// Everything waiting on the bus.
pub fn drain(rx: &mut Receiver<MigrationCandidate>) -> Vec<MigrationCandidate> {
    let mut out = Vec::new();
    while let Ok(c) = rx.try_recv() {
        out.push(c);
    }
    out
}
