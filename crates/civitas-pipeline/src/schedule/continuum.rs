//! The computing continuum as the scheduler sees it: sites, shortest-path latency and
//! transfer price between every pair of sites, where the instances of each view are, and
//! the capacity other placed pipelines already use.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use civitas_model::{DataInstance, Document, Site, SiteLink, Urn};

use super::{Plan, ScheduleError};

/// Price per GB assumed on a link (and a site) that names none, so that moving data
/// between sites is never free.
pub const DEFAULT_EGRESS_PER_GB: f64 = 0.02;

/// Sites, the network between them, view locations and used capacity.
///
/// Building it computes all-pairs shortest paths (one Dijkstra per site, by latency),
/// so build it once per catalog change and reuse it for every plan.
#[derive(Debug, Clone)]
pub struct Continuum {
    pub(crate) sites: Vec<Site>,
    index: HashMap<Urn, usize>,
    /// Row-major `n × n`: one-way latency in ms along the fastest path (∞ when unreachable).
    latency: Vec<f32>,
    /// Row-major `n × n`: price per GB sent along that path.
    egress: Vec<f32>,
    /// View → indices of the sites holding an instance of it.
    views: HashMap<Urn, Vec<usize>>,
    pub(crate) used_cpu: Vec<f64>,
    pub(crate) used_memory: Vec<f64>,
}

impl Continuum {
    /// Builds the continuum from sites, links and data instances (for data gravity:
    /// an instance serves the views it lists, or every view of its unit when it lists none).
    pub fn new(sites: Vec<Site>, links: &[SiteLink], instances: &[DataInstance]) -> Result<Continuum, ScheduleError> {
        let n = sites.len();
        let mut index = HashMap::with_capacity(n);
        for (i, s) in sites.iter().enumerate() {
            if index.insert(s.header.name.clone(), i).is_some() {
                return Err(ScheduleError::Catalog(format!("site {} is given twice", s.header.name)));
            }
        }
        let mut adjacency: Vec<Vec<(usize, f32, f32)>> = vec![Vec::new(); n];
        for l in links {
            let (Some(&a), Some(&b)) = (index.get(&l.from), index.get(&l.to)) else {
                return Err(ScheduleError::Catalog(format!(
                    "link {} joins a site that is not in the catalog",
                    l.header.name
                )));
            };
            let price = |from: usize| {
                l.egress_price_per_gb.or(sites[from].prices.egress_gb).unwrap_or(DEFAULT_EGRESS_PER_GB) as f32
            };
            adjacency[a].push((b, l.latency_ms as f32, price(a)));
            if l.bidirectional {
                adjacency[b].push((a, l.latency_ms as f32, price(b)));
            }
        }
        let mut latency = vec![f32::INFINITY; n * n];
        let mut egress = vec![f32::INFINITY; n * n];
        let mut heap = BinaryHeap::new();
        for src in 0..n {
            let row = src * n;
            latency[row + src] = 0.0;
            egress[row + src] = 0.0;
            heap.clear();
            heap.push(Reverse((0u32, src)));
            while let Some(Reverse((bits, u))) = heap.pop() {
                let d = f32::from_bits(bits);
                if d > latency[row + u] {
                    continue;
                }
                for &(v, w, p) in &adjacency[u] {
                    let nd = d + w;
                    let np = egress[row + u] + p;
                    // Ties in latency go to the cheaper path.
                    if nd < latency[row + v] || (nd == latency[row + v] && np < egress[row + v]) {
                        latency[row + v] = nd;
                        egress[row + v] = np;
                        // Non-negative floats order like their bit patterns.
                        heap.push(Reverse((nd.to_bits(), v)));
                    }
                }
            }
        }
        let mut views: HashMap<Urn, Vec<usize>> = HashMap::new();
        for inst in instances {
            let Some(site) = inst.site.as_ref().and_then(|s| index.get(s)) else { continue };
            let served: Vec<Urn> =
                if inst.views.is_empty() { vec![inst.data_unit.clone()] } else { inst.views.clone() };
            for v in served {
                let e = views.entry(v).or_default();
                if !e.contains(site) {
                    e.push(*site);
                }
            }
        }
        Ok(Continuum { used_cpu: vec![0.0; n], used_memory: vec![0.0; n], sites, index, latency, egress, views })
    }

    /// Builds the continuum from catalog documents (sites, site links and data instances;
    /// other kinds are ignored).
    pub fn from_documents(docs: &[Document]) -> Result<Continuum, ScheduleError> {
        let (mut sites, mut links, mut instances) = (Vec::new(), Vec::new(), Vec::new());
        for d in docs {
            match d {
                Document::Site(s) => sites.push(s.clone()),
                Document::SiteLink(l) => links.push(l.clone()),
                Document::DataInstance(i) => instances.push(i.clone()),
                _ => {}
            }
        }
        Continuum::new(sites, &links, &instances)
    }

    /// The sites, in catalog order.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// A site's index by name.
    pub fn site_index(&self, name: &Urn) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// One-way latency in ms between two sites along the fastest path (∞ when unreachable).
    pub fn latency_ms(&self, a: usize, b: usize) -> f64 {
        self.latency[a * self.sites.len() + b] as f64
    }

    /// Price per GB sent from `a` to `b` along the fastest path.
    pub fn egress_per_gb(&self, a: usize, b: usize) -> f64 {
        self.egress[a * self.sites.len() + b] as f64
    }

    /// The sites holding an instance of `view` (or of its unit, for instances that serve every view).
    pub fn view_sites(&self, view: &Urn) -> Vec<usize> {
        if let Some(s) = self.views.get(view) {
            return s.clone();
        }
        // An instance that lists no view serves all of its unit's: `urn:u:unit:view` → `urn:u:unit`.
        match view.as_str().rsplit_once(':').and_then(|(unit, _)| Urn::parse(unit).ok()) {
            Some(unit) => self.views.get(&unit).cloned().unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Free CPU cores of a site (∞ when its capacity is not given).
    pub fn free_cpu(&self, site: usize) -> f64 {
        self.sites[site].capacity.cpu_cores.map_or(f64::INFINITY, |c| c - self.used_cpu[site])
    }

    /// Free memory of a site in bytes (∞ when its capacity is not given).
    pub fn free_memory(&self, site: usize) -> f64 {
        self.sites[site].capacity.memory_bytes.map_or(f64::INFINITY, |m| m as f64 - self.used_memory[site])
    }

    /// Counts a placed plan's resources as used, so later plans see less free capacity.
    pub fn reserve(&mut self, plan: &Plan) {
        self.adjust(plan, 1.0);
    }

    /// Gives back what [`Continuum::reserve`] took (a pipeline deleted or re-planned).
    pub fn release(&mut self, plan: &Plan) {
        self.adjust(plan, -1.0);
    }

    fn adjust(&mut self, plan: &Plan, sign: f64) {
        for p in &plan.placements {
            if let Some(i) = Urn::parse(&p.site).ok().and_then(|s| self.site_index(&s)) {
                self.used_cpu[i] = (self.used_cpu[i] + sign * p.cpu_cores).max(0.0);
                self.used_memory[i] = (self.used_memory[i] + sign * p.memory_bytes as f64).max(0.0);
            }
        }
    }
}
