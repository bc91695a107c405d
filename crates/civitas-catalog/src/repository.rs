//! Typed repositories over the KV store: versioned apply, get, list, delete with
//! referential integrity, all-or-nothing batches.
//!
//! Writes are optimistic, etcd style: read what a change depends on, then commit one
//! transaction that compares every key read; when a concurrent writer got there first
//! the whole operation is re-evaluated (a bounded number of times).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use civitas_model::{
    DataInstance, DataUnit, DeploymentInstance, Document, FieldError, Kind, Urn, ValidationErrors, compare_versions,
};

use crate::error::CatalogError;
use crate::keys;
use crate::kv::{Compare, KvEntry, KvStore, Op, Revision, Txn, TxnOutcome};

/// How often a write is re-evaluated after losing a race before giving up.
const MAX_ATTEMPTS: usize = 16;
/// A delete lock older than this is taken to be left over from a crashed delete.
const DELETE_LOCK_STALE_SECS: u64 = 60;

/// A document as stored, with its canonical bytes and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: Urn,
    /// Canonical JSON-LD bytes.
    pub json: Vec<u8>,
    /// Revision at which the name was created.
    pub create_revision: Revision,
    /// Revision of the last change to the name.
    pub mod_revision: Revision,
}

impl StoredDocument {
    /// The document's version (read from the bytes on demand: the read path serves
    /// the bytes as they are and never needs it).
    pub fn version(&self) -> Result<String, CatalogError> {
        #[derive(serde::Deserialize)]
        struct VersionOnly {
            version: String,
        }
        serde_json::from_slice::<VersionOnly>(&self.json).map(|v| v.version).map_err(|e| CatalogError::Corrupt {
            kind: self.kind,
            name: self.name.to_string(),
            detail: e.to_string(),
        })
    }

    /// Decodes the stored bytes into the model.
    pub fn document(&self) -> Result<Document, CatalogError> {
        decode_stored(self.kind, self.name.as_str(), &self.json)
    }
}

/// Options of [`Catalog::apply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ApplyOptions {
    /// Validate everything, store nothing.
    pub dry_run: bool,
    /// The documents came as a JSON array: prefix error pointers with their index (`/3/version`).
    pub indexed_pointers: bool,
}

/// What applying one document did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    /// The name did not exist.
    Created,
    /// A new version became current; older ones stay readable.
    Updated,
    /// The same version with the same content was already current.
    Unchanged,
}

/// One line of an [`ApplyReport`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApplyResult {
    /// `@type` of the document.
    #[serde(rename = "type", serialize_with = "ser_kind")]
    pub kind: Kind,
    /// Its name.
    pub name: Urn,
    /// Its version.
    pub version: String,
    /// What happened.
    pub outcome: ApplyOutcome,
}

/// The result of an apply: every document's outcome and the revision they landed at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    /// Revision of the commit (the current revision when nothing changed or on a dry run).
    pub revision: Revision,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// One entry per document, in input order.
    pub results: Vec<ApplyResult>,
}

/// The result of a delete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReport {
    /// Revision of the commit.
    pub revision: Revision,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Every document removed: the one asked for first, then what the cascade took.
    pub deleted: Vec<DeletedDocument>,
}

/// One document removed by a delete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeletedDocument {
    /// `@type` of the document.
    #[serde(rename = "type", serialize_with = "ser_kind")]
    pub kind: Kind,
    /// Its name.
    pub name: Urn,
}

pub(crate) fn ser_kind<S: serde::Serializer>(k: &Kind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.type_name())
}

/// The catalog: the paper's Repository Manager (and, in `tree`, its Dependency Manager).
#[derive(Clone)]
pub struct Catalog {
    pub(crate) store: Arc<dyn KvStore>,
    pub(crate) access: Arc<dyn crate::AccessCheck>,
    /// Versions kept per document (the oldest go first); 0: all.
    max_versions: usize,
}

/// Versions kept per document unless [`Catalog::with_max_versions`] says otherwise.
pub const DEFAULT_MAX_VERSIONS: usize = 100;

impl Catalog {
    /// A catalog over `store`, letting every caller resolve everything until the
    /// security layer plugs in its own [`crate::AccessCheck`].
    pub fn new(store: Arc<dyn KvStore>) -> Catalog {
        Catalog { store, access: Arc::new(crate::AllowAll), max_versions: DEFAULT_MAX_VERSIONS }
    }

    /// Keeps at most `n` versions per document (0: every version): when a new version
    /// lands, the oldest ones (by version order) beyond `n` are deleted in the same
    /// transaction. Documents rewritten often (a replica's instance, re-registered at every
    /// refresh) then do not grow the store without bound.
    pub fn with_max_versions(mut self, n: usize) -> Catalog {
        self.max_versions = n;
        self
    }

    /// Replaces the access check used by dependency resolution.
    pub fn with_access_check(mut self, access: Arc<dyn crate::AccessCheck>) -> Catalog {
        self.access = access;
        self
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.store
    }

    /// The revision of the last change.
    pub async fn revision(&self) -> Result<Revision, CatalogError> {
        Ok(self.store.current_revision().await?)
    }

    /// Reads the current version of a document, or the given `version`.
    pub async fn get(&self, kind: Kind, name: &Urn, version: Option<&str>) -> Result<StoredDocument, CatalogError> {
        let key = match version {
            None => keys::doc(kind, name),
            Some(v) => keys::version(kind, name, v),
        };
        let not_found = || CatalogError::NotFound { kind, name: name.clone(), version: version.map(str::to_string) };
        let entry = self.store.get(&key).await?.ok_or_else(not_found)?;
        stored(kind, name.clone(), entry)
    }

    /// Every version of a document still readable, oldest first.
    pub async fn versions(&self, kind: Kind, name: &Urn) -> Result<Vec<String>, CatalogError> {
        let prefix = keys::versions_prefix(kind, name);
        let entries = self.store.scan_prefix(&prefix, None, usize::MAX).await?;
        if entries.is_empty() {
            return Err(CatalogError::NotFound { kind, name: name.clone(), version: None });
        }
        let mut versions: Vec<String> = entries
            .iter()
            .filter_map(|(k, _)| std::str::from_utf8(&k[prefix.len()..]).ok().map(str::to_string))
            .collect();
        versions.sort_by(|a, b| compare_versions(a, b));
        Ok(versions)
    }

    /// Applies documents atomically: all of them land, or none does.
    ///
    /// Each document is created, becomes a new current version, or is left unchanged
    /// when the same version with the same content is already current. A changed
    /// document under the current version, or an older version, is a conflict. Every
    /// reference must name a document that exists or is part of the same batch.
    pub async fn apply(&self, docs: Vec<Document>, options: ApplyOptions) -> Result<ApplyReport, CatalogError> {
        if docs.is_empty() {
            return Err(ValidationErrors::single("", "nothing to apply: no document given").into());
        }
        for _ in 0..MAX_ATTEMPTS {
            if let Some(report) = self.try_apply(&docs, options).await? {
                return Ok(report);
            }
        }
        Err(CatalogError::Contention(MAX_ATTEMPTS))
    }

    /// One optimistic attempt; `Ok(None)` when a concurrent writer invalidated what was read.
    async fn try_apply(&self, docs: &[Document], options: ApplyOptions) -> Result<Option<ApplyReport>, CatalogError> {
        let prefix = |i: usize| if options.indexed_pointers { format!("/{i}") } else { String::new() };
        let mut errors: Vec<FieldError> = Vec::new();
        let mut err = |pointer: String, detail: String| errors.push(FieldError { pointer, detail });

        // Which documents the batch defines, for references inside the batch.
        let mut batch: HashMap<(Kind, Urn), usize> = HashMap::new();
        for (i, d) in docs.iter().enumerate() {
            if let Some(j) = batch.insert((d.kind(), d.name().clone()), i) {
                err(format!("{}/name", prefix(i)), format!("{} {} is also given at /{j}", d.kind(), d.name()));
            }
        }

        let mut reads = Reads::new(self.store.as_ref());
        let mut txn = Txn::default();
        let mut results = Vec::with_capacity(docs.len());
        let mut changed = false;

        for (i, doc) in docs.iter().enumerate() {
            let p = prefix(i);
            let (kind, name) = (doc.kind(), doc.name());
            let key = keys::doc(kind, name);
            let canonical = doc.to_canonical_bytes();
            let existing = reads.get(&key).await?;
            let mut old_refs = BTreeSet::new();
            let outcome = match &existing {
                None => {
                    txn.compares.push(Compare::Absent(key.clone()));
                    ApplyOutcome::Created
                }
                Some(entry) => {
                    let old = decode_stored(kind, name.as_str(), &entry.value)?;
                    let current = old.version();
                    txn.compares.push(Compare::ModRevision(key.clone(), entry.mod_revision));
                    if current == doc.version() {
                        if entry.value != canonical {
                            return Err(CatalogError::VersionConflict {
                                kind,
                                name: name.clone(),
                                pointer: format!("{p}/version"),
                                detail: format!(
                                    "version {current} is already stored with different content; \
                                     give the changed document a new version"
                                ),
                            });
                        }
                        ApplyOutcome::Unchanged
                    } else if compare_versions(doc.version(), current) != std::cmp::Ordering::Greater {
                        return Err(CatalogError::VersionConflict {
                            kind,
                            name: name.clone(),
                            pointer: format!("{p}/version"),
                            detail: format!(
                                "version {} is not newer than the current version {current}",
                                doc.version()
                            ),
                        });
                    } else {
                        old_refs = old.references().into_iter().map(|r| (r.kind, r.name)).collect();
                        if let (Document::DataUnit(old_unit), Document::DataUnit(new_unit)) = (&old, doc) {
                            self.check_removed_views(old_unit, new_unit, docs, &mut reads, &p, &mut err).await?;
                        }
                        ApplyOutcome::Updated
                    }
                }
            };
            results.push(ApplyResult { kind, name: name.clone(), version: doc.version().to_string(), outcome });

            // References must resolve, to the batch or to the store.
            let refs = doc.references();
            for r in &refs {
                if batch.contains_key(&(r.kind, r.name.clone())) {
                    continue;
                }
                let target_key = keys::doc(r.kind, &r.name);
                match reads.get(&target_key).await? {
                    None => err(format!("{p}{}", r.pointer), format!("no {} named {} exists", r.kind, r.name)),
                    Some(e) => {
                        let c = Compare::ModRevision(target_key, e.mod_revision);
                        if !txn.compares.contains(&c) {
                            txn.compares.push(c);
                        }
                    }
                }
            }
            self.check_kind_rules(doc, docs, &batch, &mut reads, &p, &mut err).await?;

            if outcome == ApplyOutcome::Unchanged {
                continue;
            }
            changed = true;
            let new_refs: BTreeSet<(Kind, Urn)> = refs.iter().map(|r| (r.kind, r.name.clone())).collect();
            for (tk, tn) in old_refs.difference(&new_refs) {
                txn.ops.push(Op::Delete(keys::reference(*tk, tn, kind, name)));
            }
            for (tk, tn) in new_refs.difference(&old_refs) {
                txn.ops.push(Op::Put(keys::reference(*tk, tn, kind, name), Vec::new()));
                // A target that is being deleted must not gain a referrer (see `delete`).
                if !batch.contains_key(&(*tk, tn.clone())) {
                    let guard_key = keys::guard(*tk, tn);
                    match reads.get(&guard_key).await? {
                        None => txn.compares.push(Compare::Absent(guard_key)),
                        Some(g) if lock_is_stale(&g.value) => {
                            txn.compares.push(Compare::ModRevision(guard_key.clone(), g.mod_revision));
                            txn.ops.push(Op::Delete(guard_key));
                        }
                        Some(_) => {
                            return Err(CatalogError::VersionConflict {
                                kind: *tk,
                                name: tn.clone(),
                                pointer: p.clone(),
                                detail: "is being deleted right now; retry once the delete has finished".into(),
                            });
                        }
                    }
                }
            }
            txn.ops.push(Op::Put(keys::version(kind, name, doc.version()), canonical.clone()));
            txn.ops.push(Op::Put(key, canonical));
            if self.max_versions > 0 {
                let prefix = keys::versions_prefix(kind, name);
                let mut old: Vec<String> = self
                    .store
                    .scan_prefix(&prefix, None, usize::MAX)
                    .await?
                    .iter()
                    .filter_map(|(k, _)| std::str::from_utf8(&k[prefix.len()..]).ok().map(str::to_string))
                    .filter(|v| v != doc.version())
                    .collect();
                if old.len() + 1 > self.max_versions {
                    old.sort_by(|a, b| compare_versions(a, b));
                    for v in &old[..old.len() + 1 - self.max_versions] {
                        txn.ops.push(Op::Delete(keys::version(kind, name, v)));
                    }
                }
            }
        }

        if !errors.is_empty() {
            return Err(ValidationErrors(errors).into());
        }
        if options.dry_run || !changed {
            let revision = self.store.current_revision().await?;
            return Ok(Some(ApplyReport { revision, dry_run: options.dry_run, results }));
        }
        match self.store.txn(txn).await? {
            TxnOutcome::Committed(revision) => Ok(Some(ApplyReport { revision, dry_run: false, results })),
            TxnOutcome::CompareFailed(_) => Ok(None),
        }
    }

    /// Rules beyond "the reference exists" that depend on the referenced documents.
    async fn check_kind_rules(
        &self,
        doc: &Document,
        docs: &[Document],
        batch: &HashMap<(Kind, Urn), usize>,
        reads: &mut Reads<'_>,
        p: &str,
        err: &mut impl FnMut(String, String),
    ) -> Result<(), CatalogError> {
        match doc {
            Document::DataInstance(inst) => {
                if inst.site.is_none() && inst.deployment_instance.is_none() {
                    err(format!("{p}/site"), "an instance needs a `site` or a `deploymentInstance`".into());
                }
                if let Some(Document::DataUnit(unit)) =
                    lookup(Kind::DataUnit, &inst.data_unit, docs, batch, reads).await?
                {
                    for (j, v) in inst.views.iter().enumerate() {
                        if !unit.views.iter().any(|uv| &uv.name == v) {
                            err(format!("{p}/views/{j}"), format!("unit {} has no view {v}", unit.header.name));
                        }
                    }
                }
                if let Some(di) = &inst.deployment_instance {
                    match Urn::parse(di) {
                        Err(_) => err(
                            format!("{p}/deploymentInstance"),
                            format!("{di:?} must name a DeploymentInstance by its URN"),
                        ),
                        Ok(di_name) => {
                            if let Some(Document::DeploymentInstance(d)) =
                                lookup(Kind::DeploymentInstance, &di_name, docs, batch, reads).await?
                                && let Some(site) = &inst.site
                                && site != &d.site
                            {
                                err(
                                    format!("{p}/site"),
                                    format!("the instance says {site} but its deployment instance runs at {}", d.site),
                                );
                            }
                        }
                    }
                }
            }
            Document::DataUnit(unit) => {
                for (vi, view) in unit.views.iter().enumerate() {
                    for (j, inst_name) in view.data_instances.iter().enumerate() {
                        let at = format!("{p}/views/{vi}/dataInstances/{j}");
                        match lookup(Kind::DataInstance, inst_name, docs, batch, reads).await? {
                            None => err(at, format!("no DataInstance named {inst_name} exists")),
                            Some(Document::DataInstance(i)) if i.data_unit != unit.header.name => {
                                err(at, format!("instance {inst_name} deploys {}, not this unit", i.data_unit))
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
            Document::DeploymentInstance(DeploymentInstance { deployment_unit, site, .. }) => {
                if let Some(Document::DeploymentUnit(du)) =
                    lookup(Kind::DeploymentUnit, deployment_unit, docs, batch, reads).await?
                    && !du.sites.contains(site)
                {
                    err(format!("{p}/site"), format!("deployment unit {deployment_unit} cannot deploy on {site}"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A new unit version must keep every view that an instance explicitly serves.
    async fn check_removed_views(
        &self,
        old: &DataUnit,
        new: &DataUnit,
        docs: &[Document],
        reads: &mut Reads<'_>,
        p: &str,
        err: &mut impl FnMut(String, String),
    ) -> Result<(), CatalogError> {
        let removed: Vec<&Urn> =
            old.views.iter().map(|v| &v.name).filter(|n| !new.views.iter().any(|v| &v.name == *n)).collect();
        if removed.is_empty() {
            return Ok(());
        }
        for (kind, name) in self.referrers(Kind::DataUnit, &new.header.name).await? {
            if kind != Kind::DataInstance {
                continue;
            }
            // The batch's version of the instance wins over the stored one.
            let inst: DataInstance = match docs.iter().find(|d| d.kind() == kind && d.name() == &name) {
                Some(Document::DataInstance(i)) => i.clone(),
                _ => match reads.get(&keys::doc(kind, &name)).await? {
                    Some(e) => match decode_stored(kind, name.as_str(), &e.value)? {
                        Document::DataInstance(i) => i,
                        _ => continue,
                    },
                    None => continue,
                },
            };
            if inst.data_unit != new.header.name {
                continue;
            }
            for v in &removed {
                if inst.views.contains(v) {
                    err(format!("{p}/views"), format!("view {v} is removed but instance {name} still serves it"));
                }
            }
        }
        Ok(())
    }

    /// Everything that refers to a document.
    pub async fn referrers(&self, kind: Kind, name: &Urn) -> Result<Vec<(Kind, Urn)>, CatalogError> {
        let prefix = keys::referrers_prefix(kind, name);
        let entries = self.store.scan_prefix(&prefix, None, usize::MAX).await?;
        Ok(entries.iter().filter_map(|(k, _)| keys::parse_referrer(k, &prefix)).collect())
    }

    /// Deletes a document and all its versions. Refused while other documents refer to
    /// it, unless `cascade`, which deletes them (and what refers to them) too.
    pub async fn delete(
        &self,
        kind: Kind,
        name: &Urn,
        cascade: bool,
        dry_run: bool,
    ) -> Result<DeleteReport, CatalogError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut locks = Vec::new();
            let outcome = self.try_delete(kind, name, cascade, dry_run, &mut locks).await;
            if !matches!(outcome, Ok(Some(_))) {
                // Release the delete locks this attempt took; the commit removed them on success.
                for (key, rev) in locks {
                    let _ = self.store.compare_and_swap(&key, Some(rev), None).await;
                }
            }
            if let Some(report) = outcome? {
                return Ok(report);
            }
        }
        Err(CatalogError::Contention(MAX_ATTEMPTS))
    }

    /// One attempt: lock the document (no new referrer can appear after that), find
    /// its referrers, lock those too when cascading, then remove everything at once.
    async fn try_delete(
        &self,
        kind: Kind,
        name: &Urn,
        cascade: bool,
        dry_run: bool,
        locks: &mut Vec<(Vec<u8>, Revision)>,
    ) -> Result<Option<DeleteReport>, CatalogError> {
        let mut order: Vec<(Kind, Urn, KvEntry)> = Vec::new();
        let mut seen: BTreeSet<(Kind, Urn)> = BTreeSet::new();
        let Some(root) = self.store.get(&keys::doc(kind, name)).await? else {
            return Err(CatalogError::NotFound { kind, name: name.clone(), version: None });
        };
        let mut frontier = vec![(kind, name.clone(), root)];
        while let Some((k, n, entry)) = frontier.pop() {
            if !seen.insert((k, n.clone())) {
                continue;
            }
            if !dry_run {
                match self.lock_for_delete(k, &n).await? {
                    Some(lock) => locks.push(lock),
                    None => return Ok(None),
                }
            }
            let referrers = self.referrers(k, &n).await?;
            if !referrers.is_empty() && !cascade {
                return Err(CatalogError::Referenced { kind: k, name: n, referrers });
            }
            for (rk, rn) in referrers {
                if seen.contains(&(rk, rn.clone())) {
                    continue;
                }
                match self.store.get(&keys::doc(rk, &rn)).await? {
                    Some(e) => frontier.push((rk, rn, e)),
                    None => return Ok(None), // the index moved under us: start over
                }
            }
            order.push((k, n, entry));
        }

        let deleted = order.iter().map(|(k, n, _)| DeletedDocument { kind: *k, name: n.clone() }).collect();
        if dry_run {
            let revision = self.store.current_revision().await?;
            return Ok(Some(DeleteReport { revision, dry_run, deleted }));
        }
        let mut txn = Txn::default();
        for (k, n, entry) in &order {
            txn.compares.push(Compare::ModRevision(keys::doc(*k, n), entry.mod_revision));
            let doc = decode_stored(*k, n.as_str(), &entry.value)?;
            for r in doc.references() {
                txn.ops.push(Op::Delete(keys::reference(r.kind, &r.name, *k, n)));
            }
            for (vk, _) in self.store.scan_prefix(&keys::versions_prefix(*k, n), None, usize::MAX).await? {
                txn.ops.push(Op::Delete(vk));
            }
            txn.ops.push(Op::Delete(keys::doc(*k, n)));
            txn.ops.push(Op::Delete(keys::guard(*k, n)));
        }
        for (key, rev) in locks.iter() {
            txn.compares.push(Compare::ModRevision(key.clone(), *rev));
        }
        match self.store.txn(txn).await? {
            TxnOutcome::Committed(revision) => Ok(Some(DeleteReport { revision, dry_run, deleted })),
            TxnOutcome::CompareFailed(_) => Ok(None),
        }
    }

    /// Takes the delete lock of a document; `None` when another delete holds it.
    async fn lock_for_delete(&self, kind: Kind, name: &Urn) -> Result<Option<(Vec<u8>, Revision)>, CatalogError> {
        let key = keys::guard(kind, name);
        let expected = match self.store.get(&key).await? {
            None => None,
            Some(g) if lock_is_stale(&g.value) => Some(g.mod_revision),
            Some(_) => return Ok(None),
        };
        let value = now_secs().to_string();
        Ok(self.store.compare_and_swap(&key, expected, Some(value.as_bytes())).await?.ok().map(|rev| (key, rev)))
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn lock_is_stale(value: &[u8]) -> bool {
    let since = std::str::from_utf8(value).ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    now_secs().saturating_sub(since) > DELETE_LOCK_STALE_SECS
}

/// Finds a document in the batch, else in the store.
async fn lookup(
    kind: Kind,
    name: &Urn,
    docs: &[Document],
    batch: &HashMap<(Kind, Urn), usize>,
    reads: &mut Reads<'_>,
) -> Result<Option<Document>, CatalogError> {
    if let Some(i) = batch.get(&(kind, name.clone())) {
        return Ok(Some(docs[*i].clone()));
    }
    match reads.get(&keys::doc(kind, name)).await? {
        None => Ok(None),
        Some(e) => decode_stored(kind, name.as_str(), &e.value).map(Some),
    }
}

/// Reads memoised for the length of one attempt, so every compare uses the revision
/// that the decision was based on.
struct Reads<'a> {
    store: &'a dyn KvStore,
    cache: HashMap<Vec<u8>, Option<KvEntry>>,
}

impl<'a> Reads<'a> {
    fn new(store: &'a dyn KvStore) -> Self {
        Reads { store, cache: HashMap::new() }
    }

    async fn get(&mut self, key: &[u8]) -> Result<Option<KvEntry>, CatalogError> {
        if let Some(e) = self.cache.get(key) {
            return Ok(e.clone());
        }
        let e = self.store.get(key).await?;
        self.cache.insert(key.to_vec(), e.clone());
        Ok(e)
    }
}

pub(crate) fn decode_stored(kind: Kind, name: &str, bytes: &[u8]) -> Result<Document, CatalogError> {
    let corrupt = |detail: String| CatalogError::Corrupt { kind, name: name.to_string(), detail };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    Document::decode_as(&value, kind).map_err(|e| corrupt(e.to_string()))
}

pub(crate) fn stored(kind: Kind, name: Urn, entry: KvEntry) -> Result<StoredDocument, CatalogError> {
    Ok(StoredDocument {
        kind,
        name,
        json: entry.value,
        create_revision: entry.create_revision,
        mod_revision: entry.mod_revision,
    })
}
