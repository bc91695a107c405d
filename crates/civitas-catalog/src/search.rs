//! Listing and searching: by kind, name prefix, source type, site, view, unit and free text.
//!
//! Searches scan the current documents of the kinds asked for and filter them;
//! name prefixes narrow the scan itself. This is sized for catalogs of up to a few
//! hundred thousand documents; a secondary index is the next step past that.

use civitas_model::{Document, Kind, Urn};

use crate::error::CatalogError;
use crate::keys;
use crate::repository::{Catalog, StoredDocument, decode_stored, stored};

/// Most documents one page returns.
pub const MAX_PAGE: usize = 1000;
/// Documents a page returns when the caller does not say.
pub const DEFAULT_PAGE: usize = 100;
/// How many keys one store read fetches while searching.
const SCAN_CHUNK: usize = 512;

/// What to look for; every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Only this kind (`@type`).
    pub kind: Option<Kind>,
    /// Names starting with this text.
    pub name_prefix: Option<String>,
    /// Units whose `metainformation.type` equals this (case-insensitive).
    pub source_type: Option<String>,
    /// Documents at or about this site: instances and deployments at it, links touching it,
    /// deployment units able to deploy on it, the site itself.
    pub site: Option<Urn>,
    /// Units with this view, instances serving it (full name or last segment).
    pub view: Option<String>,
    /// Instances of this unit.
    pub unit: Option<Urn>,
    /// Every whitespace-separated word occurs in the document's names (case-insensitive).
    pub text: Option<String>,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Page length (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
    pub limit: Option<usize>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Matching documents, ordered by kind collection then name.
    pub items: Vec<StoredDocument>,
    /// Cursor for the next page, when there may be more.
    pub next: Option<String>,
}

impl SearchQuery {
    /// Whether the query needs the decoded document (anything beyond kind and name prefix).
    fn needs_document(&self) -> bool {
        self.source_type.is_some()
            || self.site.is_some()
            || self.view.is_some()
            || self.unit.is_some()
            || self.text.is_some()
    }

    fn matches(&self, doc: &Document) -> bool {
        if let Some(t) = &self.source_type {
            match doc {
                Document::DataUnit(u) if u.metainformation.source_type.eq_ignore_ascii_case(t) => {}
                _ => return false,
            }
        }
        if let Some(site) = &self.site {
            let hit = match doc {
                Document::DataInstance(i) => i.site.as_ref() == Some(site),
                Document::DeploymentInstance(d) => &d.site == site,
                Document::DeploymentUnit(d) => d.sites.contains(site),
                Document::SiteLink(l) => &l.from == site || &l.to == site,
                Document::Site(s) => &s.header.name == site,
                _ => false,
            };
            if !hit {
                return false;
            }
        }
        if let Some(view) = &self.view {
            let is = |n: &Urn| n.as_str() == view || n.local_name() == view;
            let hit = match doc {
                Document::DataUnit(u) => u.views.iter().any(|v| is(&v.name)),
                Document::DataInstance(i) => i.views.iter().any(is),
                _ => false,
            };
            if !hit {
                return false;
            }
        }
        if let Some(unit) = &self.unit {
            match doc {
                Document::DataInstance(i) if &i.data_unit == unit => {}
                _ => return false,
            }
        }
        if let Some(text) = &self.text {
            let haystack = doc.search_text();
            if !text.split_whitespace().all(|w| haystack.contains(&w.to_ascii_lowercase())) {
                return false;
            }
        }
        true
    }
}

impl Catalog {
    /// Lists or searches documents, a page at a time.
    pub async fn search(&self, query: &SearchQuery, page: &Page) -> Result<SearchPage, CatalogError> {
        let limit = page.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let name_prefix = query.name_prefix.clone().unwrap_or_default();
        let prefix = match query.kind {
            Some(k) => [keys::doc_prefix(k), name_prefix.as_bytes().to_vec()].concat(),
            None => keys::DOC_PREFIX.as_bytes().to_vec(),
        };
        let mut cursor: Option<Vec<u8>> = page.after.as_ref().map(|a| format!("{}{a}", keys::DOC_PREFIX).into_bytes());
        let mut items = Vec::new();
        loop {
            let chunk = self.store.scan_prefix(&prefix, cursor.as_deref(), SCAN_CHUNK).await?;
            let exhausted = chunk.len() < SCAN_CHUNK;
            for (key, entry) in chunk {
                cursor = Some(key.clone());
                let Some((kind, name)) = keys::parse_doc_key(&key) else { continue };
                if query.kind.is_none() && !name.as_str().starts_with(&name_prefix) {
                    continue;
                }
                if query.needs_document() {
                    let doc = decode_stored(kind, name.as_str(), &entry.value)?;
                    if !query.matches(&doc) {
                        continue;
                    }
                }
                items.push(stored(kind, name, entry)?);
                if items.len() == limit {
                    let next =
                        cursor.as_ref().map(|c| String::from_utf8_lossy(&c[keys::DOC_PREFIX.len()..]).into_owned());
                    return Ok(SearchPage { items, next });
                }
            }
            if exhausted {
                return Ok(SearchPage { items, next: None });
            }
        }
    }
}
