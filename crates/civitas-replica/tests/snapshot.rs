//! The HTTP view snapshot strategy and the replica store against a real HTTP origin and
//! real files in temp dirs. Waits are on conditions with deadlines, never sleeps.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use civitas_replica::{
    HttpSnapshot, ReplicaError, ReplicaId, ReplicaStore, ResourceKey, Revalidation, Seed, SnapshotConfig,
    SnapshotProgress, SnapshotRequest,
};
use http::{StatusCode, header};
use support::{LAST_MODIFIED, files_below, read_body, start_origin, view_body, wait_for};
use tokio::sync::watch;

fn request(id: &str, endpoint: String, variants: &[&str]) -> SnapshotRequest {
    SnapshotRequest {
        replica_id: ReplicaId::new(id).unwrap(),
        endpoint,
        variants: variants.iter().map(|v| v.to_string()).collect(),
        seeds: Vec::new(),
    }
}

async fn copier(root: &Path) -> HttpSnapshot {
    let store = ReplicaStore::open(root).await.unwrap();
    HttpSnapshot::new(store, SnapshotConfig { concurrency: 3, ..SnapshotConfig::default() }).unwrap()
}

fn header_str(headers: &http::HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_keeps_status_headers_and_bodies_byte_for_byte() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = copier(dir.path()).await;
    let variants = ["", "?line=U1", "?line=U2&format=csv", "?accepted=1&x=%2F..%2F", "?line=U1"];
    let (progress, progress_rx) = watch::channel(SnapshotProgress::default());
    let replica = snapshot.copy(&request("stations-1", origin.url("/api/view"), &variants), &progress).await.unwrap();

    // The duplicate variant is copied once; progress says everything was done.
    assert_eq!(replica.manifest.resources.len(), 4);
    let total: u64 = variants[..4].iter().map(|v| view_body(v.trim_start_matches('?')).len() as u64).sum();
    assert_eq!(
        *progress_rx.borrow(),
        SnapshotProgress { resources_total: 4, resources_done: 4, bytes_copied: total, bytes_seeded: 0 }
    );
    assert_eq!(replica.manifest.total_bytes, total);

    let store = snapshot.store();
    let id = ReplicaId::new("stations-1").unwrap();
    let reopened = store.open_complete(&id).await.unwrap().expect("complete replica");
    assert_eq!(reopened, replica);
    assert_eq!(store.list_complete().await.unwrap(), vec![id.clone()]);

    for variant in &variants[..4] {
        let query = variant.trim_start_matches('?');
        let stored = store.get(&id, &ResourceKey::for_variant(variant)).await.unwrap();
        let expected_status =
            if query.contains("accepted") { StatusCode::NON_AUTHORITATIVE_INFORMATION } else { StatusCode::OK };
        assert_eq!(stored.status, expected_status, "{variant}");
        let content_type = if query.contains("csv") { "text/csv; charset=utf-8" } else { "application/json" };
        assert_eq!(header_str(&stored.headers, header::CONTENT_TYPE), Some(content_type));
        assert_eq!(header_str(&stored.headers, header::ETAG), Some(format!("\"etag-{}\"", query.len()).as_str()));
        assert_eq!(header_str(&stored.headers, header::LAST_MODIFIED), Some(LAST_MODIFIED));
        let body = view_body(query);
        assert_eq!(header_str(&stored.headers, header::CONTENT_LENGTH), Some(body.len().to_string().as_str()));
        assert_eq!(stored.meta.source_url, origin.url(&format!("/api/view{variant}")));
        assert_eq!(read_body(stored.body).await, body, "body of {variant}");
    }
    // No temporary file survives a successful copy.
    assert!(files_below(dir.path()).iter().all(|f| !f.ends_with(".tmp")), "{:?}", files_below(dir.path()));

    // A second copy under the same id is refused: committed replicas are not overwritten.
    let again = snapshot.copy(&request("stations-1", origin.url("/api/view"), &[""]), &progress).await;
    assert!(matches!(again, Err(ReplicaError::AlreadyComplete { .. })), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_status_for_one_variant_leaves_no_replica() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = copier(dir.path()).await;
    let (progress, _rx) = watch::channel(SnapshotProgress::default());
    let req = request("r500", origin.url("/api"), &["/view?a=1", "/view?b=2", "/fail", "/view?c=3"]);
    let err = snapshot.copy(&req, &progress).await.unwrap_err();
    match &err {
        ReplicaError::Status { replica, url, status } => {
            assert_eq!((replica.as_str(), status), ("r500", &500));
            assert_eq!(url, &origin.url("/api/fail"));
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    let id = ReplicaId::new("r500").unwrap();
    assert!(snapshot.store().open_complete(&id).await.unwrap().is_none());
    assert!(matches!(
        snapshot.store().get(&id, &ResourceKey::for_variant("/view?a=1")).await,
        Err(ReplicaError::NotComplete { .. })
    ));
    assert_eq!(files_below(dir.path()), Vec::<String>::new(), "the failed copy cleaned up");
    let report = snapshot.store().recover().await.unwrap();
    assert!(report.complete.is_empty() && report.removed_incomplete.is_empty(), "{report:?}");
    assert_eq!(files_below(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_body_leaves_no_replica() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = copier(dir.path()).await;
    let (progress, rx) = watch::channel(SnapshotProgress::default());
    let req = request("rcut", origin.url("/api"), &["/view?a=1", "/cut"]);
    let err = snapshot.copy(&req, &progress).await.unwrap_err();
    assert!(
        matches!(&err, ReplicaError::Fetch { url, .. } | ReplicaError::LengthMismatch { url, .. } if url == &origin.url("/api/cut")),
        "{err:?}"
    );
    assert!(err.to_string().contains("rcut"), "the error names the replica: {err}");
    assert!(rx.borrow().bytes_copied > 0, "part of the body was received before the cut");
    assert!(snapshot.store().open_complete(&ReplicaId::new("rcut").unwrap()).await.unwrap().is_none());
    assert_eq!(files_below(dir.path()), Vec::<String>::new());
    snapshot.store().recover().await.unwrap();
    assert_eq!(files_below(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_interrupted_between_resources_is_never_complete_and_recover_removes_it() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let store = ReplicaStore::open(dir.path()).await.unwrap();
    let snapshot =
        HttpSnapshot::new(store.clone(), SnapshotConfig { concurrency: 1, ..SnapshotConfig::default() }).unwrap();
    // A complete replica next to it must survive recovery untouched.
    let (progress, _) = watch::channel(SnapshotProgress::default());
    snapshot.copy(&request("kept", origin.url("/api/view"), &["?k=1"]), &progress).await.unwrap();

    let (progress, mut rx) = watch::channel(SnapshotProgress::default());
    let req = request("crashed", origin.url("/api"), &["/view?a=1", "/view?b=2", "/hang"]);
    let copy = snapshot.copy(&req, &progress);
    tokio::select! {
        result = copy => panic!("the copy cannot finish while /hang hangs: {result:?}"),
        () = wait_for(&mut rx, Duration::from_secs(30), |p| p.resources_done == 2) => {}
    }
    // The copy future is dropped here, as a crash would stop it: its files stay behind.
    let id = ReplicaId::new("crashed").unwrap();
    let left = files_below(&dir.path().join("crashed"));
    assert!(left.iter().filter(|f| f.ends_with(".body")).count() == 2, "two bodies written: {left:?}");
    assert!(store.open_complete(&id).await.unwrap().is_none(), "no manifest, no replica");
    assert!(matches!(
        store.get(&id, &ResourceKey::for_variant("/view?a=1")).await,
        Err(ReplicaError::NotComplete { .. })
    ));
    assert_eq!(store.list_complete().await.unwrap(), vec![ReplicaId::new("kept").unwrap()]);

    let report = store.recover().await.unwrap();
    assert_eq!(report.removed_incomplete, vec!["crashed".to_owned()]);
    assert_eq!(report.complete, vec![ReplicaId::new("kept").unwrap()]);
    assert!(!dir.path().join("crashed").exists());
    let kept = store.get(&ReplicaId::new("kept").unwrap(), &ResourceKey::for_variant("?k=1")).await.unwrap();
    assert_eq!(read_body(kept.body).await, view_body("k=1"));
}

const CRASH_CHILD_ENV: &str = "CIVITAS_REPLICA_CRASH_CHILD";
const CRASH_TEST_NAME: &str = "sigkill_during_a_copy_leaves_no_complete_replica";

/// Child mode: an origin of its own, a copy that reaches `/hang` after two resources;
/// prints `DONE n` as resources are stored. The parent kills it with SIGKILL.
fn crash_child(root: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let origin = start_origin().await;
        let store = ReplicaStore::open(root).await.unwrap();
        let snapshot =
            HttpSnapshot::new(store, SnapshotConfig { concurrency: 1, ..SnapshotConfig::default() }).unwrap();
        let (progress, mut rx) = watch::channel(SnapshotProgress::default());
        let req = request("killed", origin.url("/api"), &["/view?a=1", "/view?b=2", "/hang"]);
        let printer = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let done = rx.borrow_and_update().resources_done;
                println!("DONE {done}");
            }
        });
        let _ = tokio::time::timeout(Duration::from_secs(120), snapshot.copy(&req, &progress)).await;
        printer.abort();
    });
}

#[test]
fn sigkill_during_a_copy_leaves_no_complete_replica() {
    if let Some(root) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_child(Path::new(&root));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CRASH_TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test process");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains("DONE 2") => break,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("child never stored two resources: {e}");
            }
        }
    }
    child.kill().expect("SIGKILL the child");
    child.wait().unwrap();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = ReplicaStore::open(dir.path()).await.unwrap();
        let id = ReplicaId::new("killed").unwrap();
        assert!(dir.path().join("killed").exists(), "the killed copy left its files");
        assert!(store.open_complete(&id).await.unwrap().is_none());
        let report = store.recover().await.unwrap();
        assert_eq!(report.removed_incomplete, vec!["killed".to_owned()]);
        assert!(report.complete.is_empty());
        assert_eq!(files_below(dir.path()), Vec::<String>::new());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_variants_and_ids_stay_inside_the_store() {
    let origin = start_origin().await;
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("replicas");
    let snapshot = copier(&root).await;
    let variants =
        ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/x", "?file=../../../../tmp/evil", "/a/..%2F..%2Fb\\c?x=/.."];
    let (progress, _) = watch::channel(SnapshotProgress::default());
    let replica = snapshot.copy(&request("trav", origin.url("/base"), &variants), &progress).await.unwrap();
    assert_eq!(replica.resources.len(), variants.len());

    // Everything is inside <root>/trav, under hashed names only.
    let outside: Vec<_> = files_below(outer.path()).into_iter().filter(|f| !f.starts_with("replicas/trav/")).collect();
    assert!(outside.is_empty(), "files outside the replica: {outside:?}");
    for file in files_below(&root.join("trav")) {
        assert!(!file.contains('/'), "nested file {file}");
        let stem = file.split('.').next().unwrap();
        assert!(file == "manifest.json" || ResourceKey::parse(stem).is_ok(), "unexpected name {file}");
    }
    for variant in variants {
        let stored =
            snapshot.store().get(&ReplicaId::new("trav").unwrap(), &ResourceKey::for_variant(variant)).await.unwrap();
        assert!(read_body(stored.body).await.starts_with(b"echo /"), "{variant}");
    }
    // Names from outside are refused before they reach the file system.
    assert!(matches!(ReplicaId::new("../trav"), Err(ReplicaError::InvalidReplicaId { .. })));
    assert!(matches!(ResourceKey::parse("../trav/manifest"), Err(ReplicaError::InvalidResourceKey { .. })));
    let bad = snapshot.copy(&request("bad", origin.url("/base"), &["@evil.example/x"]), &progress).await;
    assert!(matches!(bad, Err(ReplicaError::InvalidUrl { .. })), "{bad:?}");
    let none = snapshot.copy(&request("none", origin.url("/base"), &[]), &progress).await;
    assert!(matches!(none, Err(ReplicaError::InvalidUrl { .. })), "{none:?}");
    assert!(!root.join("bad").exists() && !root.join("none").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidation_keeps_the_body_on_304_and_replaces_it_atomically_on_200() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = copier(dir.path()).await;
    let (progress, _) = watch::channel(SnapshotProgress::default());
    snapshot.copy(&request("rev", origin.url("/api/rev"), &[""]), &progress).await.unwrap();
    let id = ReplicaId::new("rev").unwrap();
    let key = ResourceKey::for_variant("");
    let store = snapshot.store();
    let before = store.resource(&id, &key).await.unwrap();

    // Unchanged origin: 304, conditional headers sent, body kept.
    let outcome = snapshot.revalidate(&id, &key).await.unwrap();
    {
        let rev = origin.revisioned.lock().unwrap();
        assert_eq!(rev.last_if_none_match.as_deref(), Some("\"rev-1\""));
        assert_eq!(rev.last_if_modified_since.as_deref(), Some(LAST_MODIFIED));
    }
    let Revalidation::NotModified(meta) = outcome else { panic!("expected 304, got {outcome:?}") };
    assert_eq!((meta.sha256.as_str(), meta.fetched_at_unix_ms), (before.sha256.as_str(), before.fetched_at_unix_ms));
    assert!(meta.validated_at_unix_ms >= before.validated_at_unix_ms);
    assert_eq!(read_body(store.get(&id, &key).await.unwrap().body).await, b"first revision");

    // A reader that opened the old body keeps reading it whole across the replacement.
    let old_reader = store.get(&id, &key).await.unwrap();
    {
        let mut rev = origin.revisioned.lock().unwrap();
        rev.etag = "\"rev-2\"".into();
        rev.last_modified = "Wed, 04 Nov 2026 10:00:00 GMT".into();
        rev.body = b"second revision, longer than the first".to_vec();
    }
    let outcome = snapshot.revalidate(&id, &key).await.unwrap();
    let Revalidation::Replaced(meta) = outcome else { panic!("expected a replacement, got {outcome:?}") };
    assert_eq!(meta.etag.as_deref(), Some("\"rev-2\""));
    let now = store.get(&id, &key).await.unwrap();
    assert_eq!(header_str(&now.headers, header::ETAG), Some("\"rev-2\""));
    assert_eq!(header_str(&now.headers, header::LAST_MODIFIED), Some("Wed, 04 Nov 2026 10:00:00 GMT"));
    assert_eq!(read_body(now.body).await, b"second revision, longer than the first");
    assert_eq!(read_body(old_reader.body).await, b"first revision");
    // One body for the resource, no temporary files; the replica is still complete.
    let files = files_below(&dir.path().join("rev"));
    assert_eq!(files.iter().filter(|f| f.ends_with(".body")).count(), 1, "{files:?}");
    assert!(files.iter().all(|f| !f.ends_with(".tmp")), "{files:?}");
    assert!(store.open_complete(&id).await.unwrap().is_some());

    // An origin that fails keeps the stored resource.
    origin.revisioned.lock().unwrap().fail = true;
    let err = snapshot.revalidate(&id, &key).await.unwrap_err();
    assert!(matches!(err, ReplicaError::Status { status: 503, .. }), "{err:?}");
    assert_eq!(read_body(store.get(&id, &key).await.unwrap().body).await, b"second revision, longer than the first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_removes_leftovers_and_damaged_replicas() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = copier(dir.path()).await;
    let (progress, _) = watch::channel(SnapshotProgress::default());
    snapshot.copy(&request("tidy", origin.url("/api/view"), &["?a=1"]), &progress).await.unwrap();
    // What an interrupted revalidation leaves: a temporary body and a superseded body.
    let key = ResourceKey::for_variant("?a=1");
    std::fs::write(dir.path().join("tidy").join(format!("{key}.body.1-1.tmp")), b"partial").unwrap();
    std::fs::write(dir.path().join("tidy").join(format!("{key}.{}.body", "0".repeat(64))), b"old").unwrap();
    let report = snapshot.store().recover().await.unwrap();
    assert_eq!(report.removed_files, 2, "{report:?}");
    assert_eq!(report.complete, vec![ReplicaId::new("tidy").unwrap()]);
    let stored = snapshot.store().get(&ReplicaId::new("tidy").unwrap(), &key).await.unwrap();
    assert_eq!(read_body(stored.body).await, view_body("a=1"));
    assert_eq!(files_below(&dir.path().join("tidy")).len(), 3, "manifest, record, body");

    // A committed replica whose body lost bytes is not served, and recovery removes it.
    let body = files_below(&dir.path().join("tidy")).into_iter().find(|f| f.ends_with(".body")).unwrap();
    std::fs::write(dir.path().join("tidy").join(body), b"short").unwrap();
    let id = ReplicaId::new("tidy").unwrap();
    assert!(matches!(snapshot.store().open_complete(&id).await, Err(ReplicaError::Corrupt { .. })));
    let report = snapshot.store().recover().await.unwrap();
    assert_eq!(report.removed_damaged, vec!["tidy".to_owned()], "{report:?}");
    assert_eq!(files_below(dir.path()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_views_own_resource_is_fetched_at_the_endpoint_as_written() {
    // The origin answers `/api/view` only (a trailing slash would be a 404): the data
    // plane's `/` and `/?query` name the view's own resource, never `/api/view/…`.
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = copier(dir.path()).await;
    let (progress, _) = watch::channel(SnapshotProgress::default());
    let replica =
        snapshot.copy(&request("own-1", origin.url("/api/view"), &["/", "/?line=U1"]), &progress).await.unwrap();
    assert_eq!(replica.manifest.resources.len(), 2);
    let id = ReplicaId::new("own-1").unwrap();
    for (variant, query) in [("/", ""), ("/?line=U1", "line=U1")] {
        let stored = snapshot.store().get(&id, &ResourceKey::for_variant(variant)).await.unwrap();
        assert_eq!(stored.status, StatusCode::OK, "{variant}");
        assert_eq!(read_body(stored.body).await, view_body(query), "{variant}");
    }
}

#[tokio::test]
async fn a_seed_the_origin_confirms_is_stored_without_fetching_and_a_stale_one_is_fetched() {
    let origin = start_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = copier(dir.path()).await;
    let seed = |etag: &str| Seed {
        variant: String::new(),
        etag: etag.into(),
        content_type: Some("text/plain".into()),
        last_modified: None,
        // Not the origin's bytes: shows where the stored body came from. The contract is
        // the origin's `304`, which says the seed's representation is current.
        body: bytes::Bytes::from_static(b"kept by the data plane"),
    };

    let mut confirmed = request("seeded", origin.url("/api/rev"), &[""]);
    confirmed.seeds = vec![seed("\"rev-1\"")];
    let (progress, rx) = watch::channel(SnapshotProgress::default());
    let replica = snapshot.copy(&confirmed, &progress).await.unwrap();
    assert_eq!(origin.revisioned.lock().unwrap().last_if_none_match.as_deref(), Some("\"rev-1\""));
    let p = rx.borrow().clone();
    assert_eq!((p.bytes_copied, p.bytes_seeded, p.resources_done), (0, 22, 1), "{p:?}");
    assert_eq!(replica.manifest.total_bytes, 22);
    let id = ReplicaId::new("seeded").unwrap();
    let stored = snapshot.store().get(&id, &ResourceKey::for_variant("")).await.unwrap();
    assert_eq!(stored.status, 200);
    assert_eq!(header_str(&stored.headers, header::ETAG), Some("\"rev-1\""));
    assert_eq!(header_str(&stored.headers, header::CONTENT_TYPE), Some("text/plain"));
    assert_eq!(header_str(&stored.headers, header::LAST_MODIFIED), Some(LAST_MODIFIED), "the 304's validator");
    assert_eq!(read_body(stored.body).await, b"kept by the data plane");

    // A seed the origin no longer has: its 200 is copied as usual.
    let mut stale = request("stale", origin.url("/api/rev"), &[""]);
    stale.seeds = vec![seed("\"rev-0\"")];
    let (progress, rx) = watch::channel(SnapshotProgress::default());
    snapshot.copy(&stale, &progress).await.unwrap();
    assert_eq!(origin.revisioned.lock().unwrap().last_if_none_match.as_deref(), Some("\"rev-0\""));
    assert_eq!((rx.borrow().bytes_copied, rx.borrow().bytes_seeded), (14, 0));
    let id = ReplicaId::new("stale").unwrap();
    let stored = snapshot.store().get(&id, &ResourceKey::for_variant("")).await.unwrap();
    assert_eq!(read_body(stored.body).await, b"first revision");
}
