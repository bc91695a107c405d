//! Starting a scenario's simulated world: every city's ten data services, one [`WanLink`]
//! per link, and in each reading city a relay per remote service it reads.
//!
//! Addresses: city `i` binds everything on its own loopback address (`127.0.0.x`, port 0).
//! A service of Melbourne listens on `127.0.0.12:p`; Vienna reaches it through a relay on
//! `127.0.0.11:q` that crosses the Vienna–Melbourne link. [`Deployment::endpoints`] gives,
//! for every (city, service), the URL other cities use — the relay's, for services read
//! remotely; the service's own otherwise — which is what goes into the catalog's
//! `DataInstance.endpoint` and the clients' URLs. Node-to-node traffic (federation, replica
//! copies) crosses the same links through relays from [`Deployment::relay`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::error::{Result, SimError};
use crate::scenario::{Scenario, ServiceEndpoints};
use crate::urbem::{DataService, SERVICES, ServiceConfig};
use crate::wan::{LinkProfile, Relay, Side, WanLink};

/// A relay started by a deployment, and what it is for.
#[derive(Debug)]
pub struct DeployedRelay {
    /// City of the relay's clients (where it listens).
    pub client_city: String,
    /// City of its target.
    pub target_city: String,
    /// What it carries, e.g. `service buildings` or `node api`.
    pub purpose: String,
    /// The relay.
    pub relay: Relay,
}

/// A running scenario world. Dropping it stops everything; [`Deployment::shutdown`] waits.
#[derive(Debug)]
pub struct Deployment {
    scenario: Scenario,
    services: BTreeMap<(String, String), DataService>,
    links: Vec<(String, String, WanLink)>,
    relays: Vec<DeployedRelay>,
    endpoints: ServiceEndpoints,
}

impl Deployment {
    /// Starts the services of every city, the links and the relays readers use.
    /// Refuses a scenario where one city's services are read from two cities (the catalog
    /// has one endpoint per instance; see docs/simulation.md).
    pub async fn start(scenario: &Scenario) -> Result<Deployment> {
        let mut services = BTreeMap::new();
        for city in &scenario.cities {
            for spec in &SERVICES {
                let mut config = ServiceConfig::for_city(&city.name, scenario.scale);
                config.work = scenario.service_work;
                let service = DataService::start(SocketAddr::new(IpAddr::V4(city.address), 0), spec, config).await?;
                services.insert((city.name.clone(), spec.name.to_owned()), service);
            }
        }
        let mut links = Vec::new();
        for spec in &scenario.links {
            let link = scenario.site_link(&spec.a, &spec.b).ok_or_else(|| invalid(scenario, "a link is invalid"))?;
            links.push((
                spec.a.clone(),
                spec.b.clone(),
                WanLink::new(LinkProfile::from_site_link(&link, &scenario.scale))?,
            ));
        }
        let mut deployment = Deployment {
            scenario: scenario.clone(),
            services,
            links,
            relays: Vec::new(),
            endpoints: ServiceEndpoints::new(),
        };
        let mut read_from: BTreeMap<&str, &str> = BTreeMap::new();
        for r in &scenario.reads {
            if let Some(other) = read_from.insert(&r.origin_city, &r.client_city) {
                return Err(invalid(
                    scenario,
                    &format!("{} is read from both {other} and {}", r.origin_city, r.client_city),
                ));
            }
            for spec in &SERVICES {
                let target = deployment.services[&(r.origin_city.clone(), spec.name.to_owned())].local_addr();
                let addr =
                    deployment.relay(&r.client_city, &r.origin_city, target, &format!("service {}", spec.name)).await?;
                deployment.endpoints.insert((r.origin_city.clone(), spec.name.to_owned()), format!("http://{addr}"));
            }
        }
        for ((city, service), s) in &deployment.services {
            deployment.endpoints.entry((city.clone(), service.clone())).or_insert_with(|| s.base_url());
        }
        Ok(deployment)
    }

    /// The scenario it runs.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The URL other cities use for each (city, service): the catalog's instance endpoints.
    pub fn endpoints(&self) -> &ServiceEndpoints {
        &self.endpoints
    }

    /// Each service's own address, bypassing every link (a local origin, for comparison).
    pub fn direct_endpoints(&self) -> ServiceEndpoints {
        self.services.iter().map(|(k, s)| (k.clone(), s.base_url())).collect()
    }

    /// A running service.
    pub fn service(&self, city: &str, service: &str) -> Option<&DataService> {
        self.services.get(&(city.to_owned(), service.to_owned()))
    }

    /// The link between two cities.
    pub fn link(&self, a: &str, b: &str) -> Option<&WanLink> {
        self.links.iter().find(|(x, y, _)| (x == a && y == b) || (x == b && y == a)).map(|(_, _, l)| l)
    }

    /// The relays started so far.
    pub fn relays(&self) -> &[DeployedRelay] {
        &self.relays
    }

    /// Starts a relay for clients in `client_city` towards `target` in `target_city`, across
    /// their link, listening on `client_city`'s address; returns its address. Use it for a
    /// node's API or data plane reached from another city.
    pub async fn relay(
        &mut self,
        client_city: &str,
        target_city: &str,
        target: SocketAddr,
        purpose: &str,
    ) -> Result<SocketAddr> {
        let (a, _, link) = self
            .links
            .iter()
            .find(|(x, y, _)| (x == client_city && y == target_city) || (x == target_city && y == client_city))
            .ok_or_else(|| invalid(&self.scenario, &format!("no link between {client_city} and {target_city}")))?;
        let side = if a == client_city { Side::A } else { Side::B };
        let address = self
            .scenario
            .city(client_city)
            .ok_or_else(|| invalid(&self.scenario, &format!("no city {client_city}")))?
            .address;
        let relay = link.relay_from(side, SocketAddr::new(IpAddr::V4(address), 0), target).await?;
        let addr = relay.local_addr();
        self.relays.push(DeployedRelay {
            client_city: client_city.to_owned(),
            target_city: target_city.to_owned(),
            purpose: purpose.to_owned(),
            relay,
        });
        Ok(addr)
    }

    /// Bytes that left `city` over all its links so far (the paper's "bytes sent" of a site).
    pub fn bytes_sent_from(&self, city: &str) -> u64 {
        self.links
            .iter()
            .map(|(a, b, link)| {
                let stats = link.stats();
                if a == city {
                    stats.upstream_bytes
                } else if b == city {
                    stats.downstream_bytes
                } else {
                    0
                }
            })
            .sum()
    }

    /// Stops relays first (no new traffic), then services, and waits for all of them.
    pub async fn shutdown(self) {
        for r in self.relays {
            r.relay.shutdown().await;
        }
        for (_, s) in self.services {
            s.shutdown().await;
        }
    }
}

fn invalid(scenario: &Scenario, reason: &str) -> SimError {
    SimError::Invalid { what: format!("scenario {}", scenario.name), reason: reason.to_owned() }
}
