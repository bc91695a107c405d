//! The dependency tree (the paper's Dependency Manager): a unit → its views → the
//! instances serving each → their deployments → sites, filtered by an access check.

use std::sync::Arc;

use civitas_model::{DataInstance, Document, Kind, Site, Urn};

use crate::error::CatalogError;
use crate::repository::Catalog;

/// Decides what a dependency resolution may include. The security layer implements
/// it per caller; until then [`AllowAll`] is used.
pub trait AccessCheck: Send + Sync + 'static {
    /// Whether `document` may appear in a resolution. A unit that may not is reported
    /// as not found; an instance, deployment or site that may not is left out.
    fn may_resolve(&self, document: &Document) -> bool;
}

/// Lets everything through.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl AccessCheck for AllowAll {
    fn may_resolve(&self, _document: &Document) -> bool {
        true
    }
}

/// A resolved unit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyTree {
    /// The unit's name.
    pub unit: Urn,
    /// Its current version.
    pub version: String,
    /// Its source type.
    pub source_type: String,
    /// Its views with what serves them.
    pub views: Vec<ViewNode>,
}

/// A view in the tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewNode {
    /// Full view name.
    pub name: Urn,
    /// Its link.
    pub link: String,
    /// Instances serving it.
    pub instances: Vec<InstanceNode>,
}

/// An instance in the tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceNode {
    /// Instance name.
    pub name: Urn,
    /// Its version.
    pub version: String,
    /// `origin` or `replica`.
    pub role: &'static str,
    /// Where its views are served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The deployment it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentNode>,
    /// The site it runs at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteNode>,
}

/// A deployment instance in the tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentNode {
    /// Deployment instance name.
    pub name: Urn,
    /// Its deployment unit.
    pub deployment_unit: Urn,
    /// Its site.
    pub site: Urn,
}

/// A site in the tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteNode {
    /// Site name.
    pub name: Urn,
    /// Edge, fog or cloud.
    pub tier: &'static str,
    /// Its region.
    pub region: String,
}

impl Catalog {
    /// Resolves a unit's dependency tree with the catalog's access check.
    pub async fn tree(&self, unit: &Urn) -> Result<DependencyTree, CatalogError> {
        let access = Arc::clone(&self.access);
        self.tree_with(unit, access.as_ref()).await
    }

    /// Resolves a unit's dependency tree with a caller-specific access check.
    pub async fn tree_with(&self, unit: &Urn, access: &dyn AccessCheck) -> Result<DependencyTree, CatalogError> {
        let not_found = || CatalogError::NotFound { kind: Kind::DataUnit, name: unit.clone(), version: None };
        let doc = match self.get(Kind::DataUnit, unit, None).await {
            Err(CatalogError::NotFound { .. }) => return Err(not_found()),
            other => other?.document()?,
        };
        if !access.may_resolve(&doc) {
            return Err(not_found());
        }
        let Document::DataUnit(u) = doc else { return Err(not_found()) };

        let mut instances: Vec<(DataInstance, InstanceNode)> = Vec::new();
        for (kind, name) in self.referrers(Kind::DataUnit, unit).await? {
            if kind != Kind::DataInstance {
                continue;
            }
            let Some(doc) = self.get_optional(kind, &name).await? else { continue };
            if !access.may_resolve(&doc) {
                continue;
            }
            let Document::DataInstance(inst) = doc else { continue };
            let node = self.instance_node(&inst, access).await?;
            instances.push((inst, node));
        }
        instances.sort_by(|a, b| a.1.name.cmp(&b.1.name));

        let views = u
            .views
            .iter()
            .map(|v| ViewNode {
                name: v.name.clone(),
                link: v.link.clone(),
                instances: instances.iter().filter(|(i, _)| i.serves(&v.name)).map(|(_, n)| n.clone()).collect(),
            })
            .collect();
        Ok(DependencyTree {
            unit: u.header.name.clone(),
            version: u.header.version.clone(),
            source_type: u.metainformation.source_type.clone(),
            views,
        })
    }

    async fn instance_node(&self, inst: &DataInstance, access: &dyn AccessCheck) -> Result<InstanceNode, CatalogError> {
        let mut deployment = None;
        let mut site_name = inst.site.clone();
        if let Some(Ok(di_name)) = inst.deployment_instance.as_deref().map(Urn::parse)
            && let Some(doc) = self.get_optional(Kind::DeploymentInstance, &di_name).await?
            && access.may_resolve(&doc)
            && let Document::DeploymentInstance(di) = doc
        {
            site_name = site_name.or(Some(di.site.clone()));
            deployment = Some(DeploymentNode {
                name: di_name,
                deployment_unit: di.deployment_unit.clone(),
                site: di.site.clone(),
            });
        }
        let mut site = None;
        if let Some(s) = site_name
            && let Some(doc) = self.get_optional(Kind::Site, &s).await?
            && access.may_resolve(&doc)
            && let Document::Site(Site { header, tier, region, .. }) = doc
        {
            site = Some(SiteNode { name: header.name, tier: tier.as_str(), region });
        }
        Ok(InstanceNode {
            name: inst.header.name.clone(),
            version: inst.header.version.clone(),
            role: inst.role.as_str(),
            endpoint: inst.endpoint.clone(),
            deployment,
            site,
        })
    }

    async fn get_optional(&self, kind: Kind, name: &Urn) -> Result<Option<Document>, CatalogError> {
        match self.get(kind, name, None).await {
            Ok(s) => s.document().map(Some),
            Err(CatalogError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
