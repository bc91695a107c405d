//! The catalog's repository layer against a real redb store in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use civitas_catalog::kv::{RedbOptions, RedbStore};
use civitas_catalog::{ApplyOptions, ApplyOutcome, Catalog, CatalogError, Page, SearchQuery};
use civitas_model::{Document, Kind, Urn};
use futures::StreamExt;
use serde_json::{Value, json};

fn catalog() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("catalog.redb"), RedbOptions::default()).unwrap();
    (dir, Catalog::new(Arc::new(store)))
}

fn urn(s: &str) -> Urn {
    Urn::parse(s).unwrap()
}

fn doc(v: Value) -> Document {
    Document::decode(&v).unwrap_or_else(|e| panic!("fixture invalid: {e}"))
}

fn site(name: &str) -> Document {
    doc(json!({"@type": "Site", "name": name, "version": "1", "tier": "cloud", "region": "eu"}))
}

fn unit(name: &str, version: &str, views: &[&str]) -> Document {
    let views: Vec<Value> = views.iter().map(|v| json!({"name": v, "link": format!("/{v}")})).collect();
    doc(json!({"@type": "DataUnit", "name": name, "version": version,
               "metainformation": {"type": "rest"}, "views": views}))
}

fn instance(name: &str, unit: &str, site: &str, views: &[&str]) -> Document {
    doc(json!({"@type": "DataInstance", "name": name, "version": "1", "dataUnit": unit,
               "site": site, "views": views, "endpoint": "http://127.0.0.1:9000"}))
}

async fn apply(c: &Catalog, docs: Vec<Document>) -> Result<civitas_catalog::ApplyReport, CatalogError> {
    c.apply(docs, ApplyOptions { dry_run: false, indexed_pointers: true }).await
}

fn pointers(e: &CatalogError) -> Vec<String> {
    match e {
        CatalogError::Invalid(v) => v.0.iter().map(|f| f.pointer.clone()).collect(),
        other => panic!("expected a validation error, got {other}"),
    }
}

async fn count_all(c: &Catalog) -> usize {
    c.search(&SearchQuery::default(), &Page { after: None, limit: Some(1000) }).await.unwrap().items.len()
}

#[tokio::test]
async fn create_get_update_versions() {
    let (_d, c) = catalog();
    let r = apply(&c, vec![unit("urn:unit:a", "1.0", &["x"])]).await.unwrap();
    assert_eq!(r.results[0].outcome, ApplyOutcome::Created);

    let again = apply(&c, vec![unit("urn:unit:a", "1.0", &["x"])]).await.unwrap();
    assert_eq!(again.results[0].outcome, ApplyOutcome::Unchanged);
    assert_eq!(again.revision, r.revision, "an unchanged apply writes nothing");

    // Changed content under the same version: conflict, nothing stored.
    let e = apply(&c, vec![unit("urn:unit:a", "1.0", &["x", "y"])]).await.unwrap_err();
    assert!(matches!(&e, CatalogError::VersionConflict { pointer, .. } if pointer == "/0/version"), "{e}");

    let up = apply(&c, vec![unit("urn:unit:a", "1.1", &["x", "y"])]).await.unwrap();
    assert_eq!(up.results[0].outcome, ApplyOutcome::Updated);
    assert!(up.revision > r.revision);

    // Older versions stay readable; the current one is the newest.
    let cur = c.get(Kind::DataUnit, &urn("urn:unit:a"), None).await.unwrap();
    assert_eq!(cur.version().unwrap(), "1.1");
    let old = c.get(Kind::DataUnit, &urn("urn:unit:a"), Some("1.0")).await.unwrap();
    assert_eq!(old.version().unwrap(), "1.0");
    assert_eq!(old.document().unwrap(), unit("urn:unit:a", "1.0", &["x"]));
    assert_eq!(c.versions(Kind::DataUnit, &urn("urn:unit:a")).await.unwrap(), vec!["1.0", "1.1"]);

    // Going back to an older version is a conflict.
    let e = apply(&c, vec![unit("urn:unit:a", "1.0", &["x"])]).await.unwrap_err();
    assert!(matches!(e, CatalogError::VersionConflict { .. }), "{e}");
    let e = c.get(Kind::DataUnit, &urn("urn:unit:a"), Some("9")).await.unwrap_err();
    assert!(matches!(e, CatalogError::NotFound { .. }));
}

#[tokio::test]
async fn references_must_resolve_and_nothing_is_stored_otherwise() {
    let (_d, c) = catalog();
    apply(&c, vec![site("urn:site:vienna"), unit("urn:unit:a", "1", &["x"])]).await.unwrap();
    let before = c.revision().await.unwrap();

    let e = apply(
        &c,
        vec![
            site("urn:site:new"),
            instance("urn:inst:1", "urn:unit:missing", "urn:site:vienna", &[]),
            instance("urn:inst:2", "urn:unit:a", "urn:site:nowhere", &["x", "nope"]),
        ],
    )
    .await
    .unwrap_err();
    let mut p = pointers(&e);
    p.sort();
    assert_eq!(p, vec!["/1/dataUnit", "/2/site", "/2/views/1"]);
    assert_eq!(c.revision().await.unwrap(), before, "a failed batch stores nothing");
    assert!(c.get(Kind::Site, &urn("urn:site:new"), None).await.is_err());

    // References inside the same batch resolve, whatever their order.
    apply(
        &c,
        vec![
            instance("urn:inst:1", "urn:unit:b", "urn:site:b", &["y"]),
            unit("urn:unit:b", "1", &["y"]),
            site("urn:site:b"),
        ],
    )
    .await
    .unwrap();
    let tree = c.tree(&urn("urn:unit:b")).await.unwrap();
    assert_eq!(tree.views[0].instances[0].name, urn("urn:inst:1"));
    assert_eq!(tree.views[0].instances[0].site.as_ref().unwrap().name, urn("urn:site:b"));
}

#[tokio::test]
async fn instances_need_a_site_or_deployment_and_links_need_sites() {
    let (_d, c) = catalog();
    apply(&c, vec![unit("urn:unit:a", "1", &["x"])]).await.unwrap();
    let no_site = doc(json!({"@type": "DataInstance", "name": "urn:inst:1", "version": "1", "dataUnit": "urn:unit:a"}));
    assert_eq!(pointers(&apply(&c, vec![no_site]).await.unwrap_err()), vec!["/0/site"]);
    let link = doc(json!({"@type": "SiteLink", "name": "urn:link:a-b", "version": "1",
                          "from": "urn:site:a", "to": "urn:site:b", "latencyMs": 10}));
    assert_eq!(pointers(&apply(&c, vec![link]).await.unwrap_err()), vec!["/0/from", "/0/to"]);
}

#[tokio::test]
async fn delete_refuses_referenced_documents_unless_cascading() {
    let (_d, c) = catalog();
    apply(
        &c,
        vec![
            site("urn:site:a"),
            unit("urn:unit:a", "1", &["x"]),
            instance("urn:inst:1", "urn:unit:a", "urn:site:a", &[]),
        ],
    )
    .await
    .unwrap();

    let e = c.delete(Kind::DataUnit, &urn("urn:unit:a"), false, false).await.unwrap_err();
    match &e {
        CatalogError::Referenced { referrers, .. } => {
            assert_eq!(referrers, &vec![(Kind::DataInstance, urn("urn:inst:1"))])
        }
        other => panic!("{other}"),
    }
    // The refusal released its lock: the unit can still gain referrers.
    apply(&c, vec![instance("urn:inst:2", "urn:unit:a", "urn:site:a", &["x"])]).await.unwrap();

    let dry = c.delete(Kind::Site, &urn("urn:site:a"), true, true).await.unwrap();
    assert_eq!(dry.deleted.len(), 3);
    assert_eq!(count_all(&c).await, 4, "a dry run deletes nothing");

    let r = c.delete(Kind::DataUnit, &urn("urn:unit:a"), true, false).await.unwrap();
    let mut names: Vec<_> = r.deleted.iter().map(|d| d.name.to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["urn:inst:1", "urn:inst:2", "urn:unit:a"]);
    assert_eq!(count_all(&c).await, 1);
    assert!(c.versions(Kind::DataUnit, &urn("urn:unit:a")).await.is_err(), "versions go with the document");
    // The site lost its referrers with the instances.
    c.delete(Kind::Site, &urn("urn:site:a"), false, false).await.unwrap();
    assert_eq!(count_all(&c).await, 0);
}

#[tokio::test]
async fn a_unit_cannot_drop_a_view_an_instance_serves() {
    let (_d, c) = catalog();
    apply(
        &c,
        vec![
            site("urn:site:a"),
            unit("urn:unit:a", "1", &["x", "y"]),
            instance("urn:inst:1", "urn:unit:a", "urn:site:a", &["x"]),
        ],
    )
    .await
    .unwrap();
    let e = apply(&c, vec![unit("urn:unit:a", "2", &["y"])]).await.unwrap_err();
    assert_eq!(pointers(&e), vec!["/0/views"]);
    // Dropping a view nobody serves explicitly is fine.
    apply(&c, vec![unit("urn:unit:a", "2", &["x"])]).await.unwrap();
}

#[tokio::test]
async fn search_filters_and_pagination() {
    let (_d, c) = catalog();
    let mut docs = vec![site("urn:site:a"), site("urn:site:b")];
    for i in 0..25 {
        docs.push(unit(&format!("urn:unit:n{i:02}"), "1", &["view"]));
    }
    docs.push(doc(json!({"@type": "DataUnit", "name": "urn:buildings:vienna", "version": "1",
                         "metainformation": {"type": "nosql:mongodb"},
                         "views": [{"name": "blocks", "link": "/blocks"}]})));
    docs.push(instance("urn:inst:v", "urn:buildings:vienna", "urn:site:b", &["blocks"]));
    apply(&c, docs).await.unwrap();

    // Pagination walks every unit exactly once.
    let q = SearchQuery { kind: Some(Kind::DataUnit), ..Default::default() };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = c.search(&q, &Page { after: after.clone(), limit: Some(7) }).await.unwrap();
        seen.extend(page.items.iter().map(|d| d.name.to_string()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26);
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup, seen);

    let c = &c;
    let page = |q: SearchQuery| async move {
        c.search(&q, &Page::default()).await.unwrap().items.into_iter().map(|d| d.name.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        page(SearchQuery { source_type: Some("NoSQL:MongoDB".into()), ..Default::default() }).await,
        vec!["urn:buildings:vienna"]
    );
    assert_eq!(
        page(SearchQuery { kind: Some(Kind::DataUnit), name_prefix: Some("urn:unit:n1".into()), ..Default::default() })
            .await
            .len(),
        10
    );
    assert_eq!(
        page(SearchQuery { name_prefix: Some("urn:site:".into()), ..Default::default() }).await,
        vec!["urn:site:a", "urn:site:b"]
    );
    assert_eq!(
        page(SearchQuery { site: Some(urn("urn:site:b")), ..Default::default() }).await,
        vec!["urn:inst:v", "urn:site:b"]
    );
    assert_eq!(
        page(SearchQuery { view: Some("blocks".into()), ..Default::default() }).await,
        vec!["urn:inst:v", "urn:buildings:vienna"]
    );
    assert_eq!(
        page(SearchQuery { unit: Some(urn("urn:buildings:vienna")), ..Default::default() }).await,
        vec!["urn:inst:v"]
    );
    assert_eq!(
        page(SearchQuery { text: Some("VIENNA blocks".into()), ..Default::default() }).await,
        vec!["urn:buildings:vienna"]
    );
    assert!(page(SearchQuery { text: Some("melbourne".into()), ..Default::default() }).await.is_empty());
}

#[tokio::test]
async fn watch_replays_from_a_revision_then_follows() {
    let (_d, c) = catalog();
    let r1 = apply(&c, vec![site("urn:site:a")]).await.unwrap().revision;
    let r2 = apply(&c, vec![unit("urn:unit:a", "1", &["x"])]).await.unwrap().revision;
    let mut w = Box::pin(c.watch(Some(r1)).await.unwrap());
    macro_rules! next {
        ($w:expr) => {
            tokio::time::timeout(Duration::from_secs(10), $w.next()).await.expect("event within deadline")
        };
    }
    let e1: civitas_catalog::CatalogEvent = next!(w).unwrap().unwrap();
    assert_eq!((e1.revision, e1.kind, e1.name.to_string()), (r1, Kind::Site, "urn:site:a".into()));
    let e2: civitas_catalog::CatalogEvent = next!(w).unwrap().unwrap();
    assert_eq!((e2.revision, e2.kind), (r2, Kind::DataUnit));
    assert!(e2.document.is_some());

    let r3 = c.delete(Kind::DataUnit, &urn("urn:unit:a"), false, false).await.unwrap().revision;
    let e3: civitas_catalog::CatalogEvent = next!(w).unwrap().unwrap();
    assert_eq!((e3.revision, e3.kind, e3.document), (r3, Kind::DataUnit, None));
}

#[tokio::test]
async fn concurrent_instances_on_one_unit_all_land() {
    let (_d, c) = catalog();
    apply(&c, vec![site("urn:site:a"), unit("urn:unit:a", "1", &["x"])]).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            apply(&c, vec![instance(&format!("urn:inst:{i}"), "urn:unit:a", "urn:site:a", &["x"])]).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(c.tree(&urn("urn:unit:a")).await.unwrap().views[0].instances.len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deletes_and_applies_never_leave_dangling_references() {
    for round in 0..10 {
        let (_d, c) = catalog();
        apply(&c, vec![site("urn:site:a"), unit("urn:unit:a", "1", &["x"])]).await.unwrap();
        let deleter = {
            let c = c.clone();
            tokio::spawn(async move { c.delete(Kind::DataUnit, &urn("urn:unit:a"), false, false).await })
        };
        let mut appliers = Vec::new();
        for i in 0..8 {
            let c = c.clone();
            appliers.push(tokio::spawn(async move {
                apply(&c, vec![instance(&format!("urn:inst:{i}"), "urn:unit:a", "urn:site:a", &[])]).await
            }));
        }
        let deleted = deleter.await.unwrap();
        let landed = {
            let mut n = 0;
            for a in appliers {
                if a.await.unwrap().is_ok() {
                    n += 1;
                }
            }
            n
        };
        let unit_exists = c.get(Kind::DataUnit, &urn("urn:unit:a"), None).await.is_ok();
        let instances = c
            .search(&SearchQuery { kind: Some(Kind::DataInstance), ..Default::default() }, &Page::default())
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(instances, landed, "round {round}");
        if deleted.is_ok() {
            assert!(!unit_exists);
            assert_eq!(instances, 0, "round {round}: an instance survived its unit's delete");
        } else {
            assert!(unit_exists, "round {round}");
        }
    }
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.redb");
    {
        let store = RedbStore::open(&path, RedbOptions::default()).unwrap();
        let c = Catalog::new(Arc::new(store));
        apply(&c, vec![site("urn:site:a"), unit("urn:unit:a", "1", &["x"])]).await.unwrap();
    }
    let store = RedbStore::open(&path, RedbOptions::default()).unwrap();
    let c = Catalog::new(Arc::new(store));
    assert_eq!(c.get(Kind::DataUnit, &urn("urn:unit:a"), None).await.unwrap().version().unwrap(), "1");
}

#[tokio::test]
async fn only_the_newest_versions_are_kept() {
    let (_dir, catalog) = catalog();
    let catalog = catalog.with_max_versions(3);
    for v in ["1", "2", "9", "10", "11"] {
        catalog.apply(vec![unit("urn:city:a", v, &["x"])], ApplyOptions::default()).await.unwrap();
    }
    // Version order, not text order: 9 < 10 < 11.
    assert_eq!(catalog.versions(Kind::DataUnit, &urn("urn:city:a")).await.unwrap(), vec!["9", "10", "11"]);
    assert!(matches!(
        catalog.get(Kind::DataUnit, &urn("urn:city:a"), Some("2")).await,
        Err(CatalogError::NotFound { .. })
    ));
    assert_eq!(
        catalog.get(Kind::DataUnit, &urn("urn:city:a"), None).await.unwrap().document().unwrap().version(),
        "11"
    );
    // Re-applying the current version changes nothing.
    catalog.apply(vec![unit("urn:city:a", "11", &["x"])], ApplyOptions::default()).await.unwrap();
    assert_eq!(catalog.versions(Kind::DataUnit, &urn("urn:city:a")).await.unwrap().len(), 3);
}
