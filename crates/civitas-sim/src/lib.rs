//! Civitas evaluation harness: everything needed to re-run the *Smart Distributed Datasets*
//! paper's evaluation on one machine, with real sockets and real HTTP.
//!
//! - [`wan`]: a userspace TCP relay emulating a long-haul link per direction (latency,
//!   jitter, bandwidth cap, stalls, dropped connections), with byte counters; its figures
//!   come from catalogued [`civitas_model::SiteLink`]s.
//! - [`urbem`]: synthetic URBEM data services (buildings, blocks, networks, mobility and the
//!   six context services of the paper's ten), deterministic, generated once per process.
//! - [`clients`]: clients replaying the paper's request types with think times, every
//!   sample recorded; summaries per request type and phase; a CSV writer.
//! - [`chart`]: an SVG chart like the paper's Fig. 6.
//! - [`scenario`]: descriptions of scenario one (Vienna ↔ Melbourne) and two (Berkeley,
//!   Vienna, Hong Kong) and the catalog documents a runner applies to the nodes.
//! - [`deployment`]: starts a scenario's services, links and relays; endpoints and bytes
//!   sent per city.
//! - [`scale`]: the documented factors that shrink a scenario to minutes.
//!
//! What it is not: it does not start Civitas nodes, activate the SDD or migrate anything —
//! the runner in the `civitas` binary wires these pieces to nodes. It never touches a
//! catalog or store directly, and no production code path depends on it.
//!
//! Invariants: everything is deterministic for a given seed and scale (data bodies, jitter,
//! stall and drop draws, think times); listeners bind only the address they are given
//! (tests use `127.0.0.1:0`); every queue is bounded; no task outlives the handle that
//! started it (relays, services and client runs stop when stopped or dropped).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chart;
pub mod clients;
pub mod deployment;
mod error;
pub mod scale;
pub mod scenario;
pub mod urbem;
pub mod wan;

pub use clients::{ClientPlan, ClientRun, Phase, RequestType, RequestTypeReport, Sample, Summary};
pub use deployment::{DeployedRelay, Deployment};
pub use error::{Result, SimError};
pub use scale::Scale;
pub use scenario::{Scenario, ServiceEndpoints};
pub use urbem::{DataService, SERVICES, ServiceConfig, ServiceSpec, ServiceWork};
pub use wan::{DirectionProfile, LinkProfile, Relay, RelayStats, Side, Stalls, WanLink};
