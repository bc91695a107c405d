//! Behaviour of the redb-backed `KvStore` against real database files.
//!
//! Waits are always on a condition (the next stream item, a line from a child
//! process) bounded by a deadline, never a sleep.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use civitas_catalog::kv::{
    Compare, KvError, KvEvent, KvStore, Op, RedbOptions, RedbStore, Revision, Txn, TxnOutcome, WatchStream,
};
use futures::StreamExt;
use tempfile::TempDir;

/// Upper bound for any single wait in these tests; only reached on failure.
const DEADLINE: Duration = Duration::from_secs(30);

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("catalog.redb")
}

fn open_with(dir: &TempDir, options: RedbOptions) -> RedbStore {
    RedbStore::open(&db_path(dir), options).expect("open store")
}

fn open(dir: &TempDir) -> RedbStore {
    open_with(dir, RedbOptions::default())
}

fn put_txn(key: &str, value: &str) -> Txn {
    Txn { compares: vec![], ops: vec![Op::Put(key.into(), value.into())] }
}

/// Starts a watch, failing the test on an error (the stream is not `Debug`).
async fn watch(store: &RedbStore, prefix: &str, from: Revision) -> WatchStream {
    match store.watch(prefix.as_bytes(), from).await {
        Ok(stream) => stream,
        Err(e) => panic!("watch({prefix:?}, {from}) failed: {e}"),
    }
}

/// Starts a watch that is expected to fail and returns the error.
async fn watch_err(store: &RedbStore, prefix: &str, from: Revision) -> KvError {
    match store.watch(prefix.as_bytes(), from).await {
        Ok(_) => panic!("watch({prefix:?}, {from}) unexpectedly succeeded"),
        Err(e) => e,
    }
}

/// The next stream item, or a test failure if none arrives in time.
async fn next_item(stream: &mut WatchStream) -> Option<Result<KvEvent, KvError>> {
    tokio::time::timeout(DEADLINE, stream.next()).await.expect("watch produced nothing before the deadline")
}

async fn next_event(stream: &mut WatchStream) -> KvEvent {
    match next_item(stream).await {
        Some(Ok(event)) => event,
        Some(Err(e)) => panic!("watch failed: {e}"),
        None => panic!("watch ended"),
    }
}

/// Collects events until one at revision `last` (inclusive) has been seen.
async fn events_through(stream: &mut WatchStream, last: Revision) -> Vec<KvEvent> {
    let mut events = Vec::new();
    loop {
        let event = next_event(stream).await;
        let revision = event.revision;
        assert!(revision <= last, "event at {revision} beyond the expected last revision {last}");
        events.push(event);
        if revision == last {
            return events;
        }
    }
}

/// Collects exactly `count` events (for revisions holding several changes).
async fn events_count(stream: &mut WatchStream, count: usize) -> Vec<KvEvent> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        events.push(next_event(stream).await);
    }
    events
}

fn event(revision: Revision, key: &str, value: Option<&str>) -> KvEvent {
    KvEvent { revision, key: key.into(), value: value.map(Into::into) }
}

// ---------------------------------------------------------------------------
// Basic reads and writes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn put_get_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    assert_eq!(store.current_revision().await.unwrap(), 0);
    assert_eq!(store.get(b"k").await.unwrap(), None);

    let rev = store.put(b"k", b"v1").await.unwrap();
    assert_eq!(rev, 1);
    let entry = store.get(b"k").await.unwrap().expect("present after put");
    assert_eq!(entry.value, b"v1");

    let deleted = store.delete(b"k").await.unwrap();
    assert_eq!(deleted, Some(2));
    assert_eq!(store.get(b"k").await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), 2);

    // Deleting an absent key is a no-op that spends no revision.
    assert_eq!(store.delete(b"k").await.unwrap(), None);
    assert_eq!(store.current_revision().await.unwrap(), 2);
}

#[tokio::test]
async fn create_and_mod_revisions_follow_the_key_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    let r1 = store.put(b"k", b"v1").await.unwrap();
    let e = store.get(b"k").await.unwrap().unwrap();
    assert_eq!((e.create_revision, e.mod_revision), (r1, r1));

    let r2 = store.put(b"k", b"v2").await.unwrap();
    let e = store.get(b"k").await.unwrap().unwrap();
    assert_eq!((e.create_revision, e.mod_revision, e.value.as_slice()), (r1, r2, &b"v2"[..]));

    // A write to another key leaves this one untouched.
    store.put(b"other", b"x").await.unwrap();
    let e = store.get(b"k").await.unwrap().unwrap();
    assert_eq!((e.create_revision, e.mod_revision), (r1, r2));

    // Deleted and re-created: created anew.
    store.delete(b"k").await.unwrap().expect("key existed");
    let r5 = store.put(b"k", b"v3").await.unwrap();
    let e = store.get(b"k").await.unwrap().unwrap();
    assert_eq!((e.create_revision, e.mod_revision), (r5, r5));
}

#[tokio::test]
async fn revisions_strictly_increase() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut last = store.current_revision().await.unwrap();
    for i in 0..40 {
        let key = format!("key/{}", i % 7);
        let rev = if i % 5 == 4 {
            store.delete(key.as_bytes()).await.unwrap().unwrap_or(last)
        } else {
            store.put(key.as_bytes(), b"v").await.unwrap()
        };
        assert!(rev >= last, "revision went backwards: {rev} after {last}");
        if rev != last {
            assert_eq!(rev, last + 1, "a single-change txn spends exactly one revision");
        }
        last = rev;
    }
    assert_eq!(store.current_revision().await.unwrap(), last);
}

// ---------------------------------------------------------------------------
// Prefix scans
// ---------------------------------------------------------------------------

fn keys(entries: &[(Vec<u8>, civitas_catalog::kv::KvEntry)]) -> Vec<String> {
    entries.iter().map(|(k, _)| String::from_utf8(k.clone()).unwrap()).collect()
}

#[tokio::test]
async fn scan_prefix_orders_paginates_limits_and_isolates_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Inserted out of order on purpose.
    for key in ["a/3", "ab/1", "a/1", "b/1", "a", "a/", "a/2", "a0"] {
        store.put(key.as_bytes(), format!("value of {key}").as_bytes()).await.unwrap();
    }

    let all_a = store.scan_prefix(b"a/", None, 100).await.unwrap();
    assert_eq!(keys(&all_a), ["a/", "a/1", "a/2", "a/3"]);
    for (key, entry) in &all_a {
        assert_eq!(entry.value, [b"value of ".as_slice(), key].concat());
        assert_eq!(store.get(key).await.unwrap().as_ref(), Some(entry));
    }
    assert_eq!(keys(&store.scan_prefix(b"ab/", None, 100).await.unwrap()), ["ab/1"]);
    assert_eq!(
        keys(&store.scan_prefix(b"", None, 100).await.unwrap()),
        ["a", "a/", "a/1", "a/2", "a/3", "a0", "ab/1", "b/1"]
    );

    // Pagination with start_after.
    let page1 = store.scan_prefix(b"a/", None, 2).await.unwrap();
    assert_eq!(keys(&page1), ["a/", "a/1"]);
    let page2 = store.scan_prefix(b"a/", Some(&page1[1].0), 2).await.unwrap();
    assert_eq!(keys(&page2), ["a/2", "a/3"]);
    let page3 = store.scan_prefix(b"a/", Some(&page2[1].0), 2).await.unwrap();
    assert!(page3.is_empty());
    // A cursor between keys, before the prefix, and past it.
    assert_eq!(keys(&store.scan_prefix(b"a/", Some(b"a/15"), 10).await.unwrap()), ["a/2", "a/3"]);
    assert_eq!(keys(&store.scan_prefix(b"a/", Some(b"0"), 10).await.unwrap()), ["a/", "a/1", "a/2", "a/3"]);
    assert!(store.scan_prefix(b"a/", Some(b"z"), 10).await.unwrap().is_empty());
    assert!(store.scan_prefix(b"a/", None, 0).await.unwrap().is_empty());
    assert!(store.scan_prefix(b"c/", None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn scan_prefix_handles_max_bytes_in_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for key in [vec![0xfe, 0xff], vec![0xff], vec![0xff, 0x00], vec![0xff, 0xff, 0x01]] {
        store.put(&key, b"v").await.unwrap();
    }
    let found: Vec<Vec<u8>> = store.scan_prefix(&[0xff], None, 10).await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(found, [vec![0xff], vec![0xff, 0x00], vec![0xff, 0xff, 0x01]]);
    let found: Vec<Vec<u8>> = store.scan_prefix(&[0xfe], None, 10).await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(found, [vec![0xfe, 0xff]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scan_prefix_pages_through_many_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writers: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    store.put(format!("many/{t:02}/{i:03}").as_bytes(), b"v").await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    store.put(b"manz", b"outside").await.unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = store.scan_prefix(b"many/", cursor.as_deref(), 37).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 37);
        cursor = Some(page.last().unwrap().0.clone());
        seen.extend(keys(&page));
    }
    let mut expected: Vec<String> = (0..16).flat_map(|t| (0..50).map(move |i| format!("many/{t:02}/{i:03}"))).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

// ---------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn compare_and_swap_succeeds_and_reports_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    // Create only if absent.
    let r1 = store.compare_and_swap(b"k", None, Some(b"v1")).await.unwrap().expect("absent key is created");
    // Absent compare on an existing key fails and returns the current entry.
    let conflict = store.compare_and_swap(b"k", None, Some(b"other")).await.unwrap().expect_err("key exists");
    let current = conflict.expect("conflict carries the current entry");
    assert_eq!((current.value.as_slice(), current.mod_revision), (&b"v1"[..], r1));

    let r2 = store.compare_and_swap(b"k", Some(r1), Some(b"v2")).await.unwrap().expect("revision matches");
    assert!(r2 > r1);

    // Stale revision: nothing written, the current entry comes back.
    let conflict = store.compare_and_swap(b"k", Some(r1), Some(b"v3")).await.unwrap().expect_err("stale");
    let current = conflict.expect("key still exists");
    assert_eq!((current.value.as_slice(), current.mod_revision, current.create_revision), (&b"v2"[..], r2, r1));
    assert_eq!(store.current_revision().await.unwrap(), r2, "a failed CAS spends no revision");
    assert_eq!(store.get(b"k").await.unwrap().unwrap().value, b"v2");

    // Delete by CAS, then a CAS against the deleted key reports it absent.
    let r3 = store.compare_and_swap(b"k", Some(r2), None).await.unwrap().expect("delete with matching revision");
    assert!(r3 > r2);
    assert_eq!(store.get(b"k").await.unwrap(), None);
    assert_eq!(store.compare_and_swap(b"k", Some(r2), Some(b"x")).await.unwrap(), Err(None));
    assert_eq!(store.get(b"k").await.unwrap(), None);
}

#[tokio::test]
async fn failed_txn_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let r1 = store.put(b"a", b"1").await.unwrap();

    let outcome = store
        .txn(Txn {
            compares: vec![Compare::Absent(b"x".to_vec()), Compare::ModRevision(b"a".to_vec(), r1 + 100)],
            ops: vec![Op::Put(b"x".to_vec(), b"new".to_vec()), Op::Delete(b"a".to_vec())],
        })
        .await
        .unwrap();
    assert_eq!(outcome, TxnOutcome::CompareFailed(1));
    assert_eq!(store.get(b"x").await.unwrap(), None);
    assert_eq!(store.get(b"a").await.unwrap().unwrap().value, b"1");
    assert_eq!(store.current_revision().await.unwrap(), r1);

    // ModRevision on an absent key fails too (index 0 this time).
    let outcome = store
        .txn(Txn { compares: vec![Compare::ModRevision(b"missing".to_vec(), 0)], ops: vec![Op::Delete(b"a".to_vec())] })
        .await
        .unwrap();
    assert_eq!(outcome, TxnOutcome::CompareFailed(0));
    assert!(store.get(b"a").await.unwrap().is_some());
    assert_eq!(store.current_revision().await.unwrap(), r1);
}

#[tokio::test]
async fn multi_op_txn_is_atomic_and_spends_one_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let r1 = store.put(b"c", b"old").await.unwrap();

    let outcome = store
        .txn(Txn {
            compares: vec![Compare::Absent(b"a".to_vec()), Compare::ModRevision(b"c".to_vec(), r1)],
            ops: vec![
                Op::Put(b"a".to_vec(), b"A".to_vec()),
                Op::Put(b"b".to_vec(), b"B".to_vec()),
                Op::Delete(b"c".to_vec()),
                Op::Delete(b"never-existed".to_vec()),
            ],
        })
        .await
        .unwrap();
    let r2 = r1 + 1;
    assert_eq!(outcome, TxnOutcome::Committed(r2));
    assert_eq!(store.current_revision().await.unwrap(), r2);
    for key in [b"a", b"b"] {
        let e = store.get(key).await.unwrap().unwrap();
        assert_eq!((e.create_revision, e.mod_revision), (r2, r2));
    }
    assert_eq!(store.get(b"c").await.unwrap(), None);

    // The change log holds the whole txn at one revision, in op order, and
    // nothing for the delete of an absent key.
    let mut stream = watch(&store, "", r2).await;
    assert_eq!(next_event(&mut stream).await, event(r2, "a", Some("A")));
    assert_eq!(next_event(&mut stream).await, event(r2, "b", Some("B")));
    assert_eq!(next_event(&mut stream).await, event(r2, "c", None));
    let r3 = store.put(b"d", b"D").await.unwrap();
    assert_eq!(next_event(&mut stream).await, event(r3, "d", Some("D")));
}

#[tokio::test]
async fn txns_that_change_nothing_spend_no_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    assert_eq!(store.txn(Txn::default()).await.unwrap(), TxnOutcome::Committed(0));
    let r1 = store.put(b"k", b"v").await.unwrap();
    assert_eq!(store.txn(Txn::default()).await.unwrap(), TxnOutcome::Committed(r1));
    // Compares only: evaluated, nothing written.
    let only_compare = Txn { compares: vec![Compare::ModRevision(b"k".to_vec(), r1)], ops: vec![] };
    assert_eq!(store.txn(only_compare).await.unwrap(), TxnOutcome::Committed(r1));
    let deletes_of_absent = Txn { compares: vec![], ops: vec![Op::Delete(b"x".to_vec()), Op::Delete(b"y".to_vec())] };
    assert_eq!(store.txn(deletes_of_absent).await.unwrap(), TxnOutcome::Committed(r1));
    assert_eq!(store.current_revision().await.unwrap(), r1);

    // And no events: the next event after r1 is the next real change.
    let mut stream = watch(&store, "", 1).await;
    assert_eq!(next_event(&mut stream).await, event(r1, "k", Some("v")));
    let r2 = store.put(b"k2", b"v2").await.unwrap();
    assert_eq!(r2, r1 + 1);
    assert_eq!(next_event(&mut stream).await, event(r2, "k2", Some("v2")));
}

// ---------------------------------------------------------------------------
// Concurrency (group commit)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_increments_are_exact() {
    const TASKS: u64 = 32;
    const INCREMENTS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    // Through the trait object, as the catalog holds it.
    let store: Arc<dyn KvStore> = Arc::new(open(&dir));
    store.put(b"counter", b"0").await.unwrap();

    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut current = store.get(b"counter").await.unwrap().unwrap();
                for _ in 0..INCREMENTS {
                    loop {
                        let n: u64 = std::str::from_utf8(&current.value).unwrap().parse().unwrap();
                        let next = (n + 1).to_string();
                        match store
                            .compare_and_swap(b"counter", Some(current.mod_revision), Some(next.as_bytes()))
                            .await
                            .unwrap()
                        {
                            Ok(revision) => {
                                current.value = next.into_bytes();
                                current.mod_revision = revision;
                                break;
                            }
                            Err(latest) => current = latest.expect("counter is never deleted"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let entry = store.get(b"counter").await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&entry.value).unwrap(), (TASKS * INCREMENTS).to_string());
    // Exactly one revision per successful increment (plus the initial put).
    assert_eq!(store.current_revision().await.unwrap(), 1 + TASKS * INCREMENTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_distinct_keys_all_land() {
    const TASKS: usize = 64;
    const PER_TASK: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);

    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut revisions = Vec::with_capacity(PER_TASK);
                for i in 0..PER_TASK {
                    let key = format!("doc/{t:02}/{i:02}");
                    let outcome = store.txn(put_txn(&key, &format!("{t}:{i}"))).await.unwrap();
                    let TxnOutcome::Committed(revision) = outcome else { panic!("unexpected {outcome:?}") };
                    revisions.push(revision);
                }
                revisions
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "one task's writes are ordered");
        revisions.extend(mine);
    }

    // Every write got its own revision and together they are 1..=N.
    revisions.sort_unstable();
    let total = (TASKS * PER_TASK) as u64;
    assert_eq!(revisions, (1..=total).collect::<Vec<_>>());
    assert_eq!(store.current_revision().await.unwrap(), total);

    let all = store.scan_prefix(b"doc/", None, usize::MAX).await.unwrap();
    assert_eq!(all.len(), TASKS * PER_TASK);
    for (key, entry) in all {
        let key = String::from_utf8(key).unwrap();
        let (t, i) = key["doc/".len()..].split_once('/').unwrap();
        let expected = format!("{}:{}", t.parse::<usize>().unwrap(), i.parse::<usize>().unwrap());
        assert_eq!(entry.value, expected.as_bytes(), "value of {key}");
    }
}

// ---------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_replays_history_then_live_without_gap_or_duplicate() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..30 {
        store.put(format!("w/pre/{i:02}").as_bytes(), b"pre").await.unwrap();
    }

    // Start the watch while writers are committing, so the switch from
    // history to live happens under load.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let mut started_tx = Some(started_tx);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let started = if w == 0 { started_tx.take() } else { None };
        writers.push(tokio::spawn(async move {
            let mut started = started;
            for i in 0..PER_WRITER {
                store.put(format!("w/live/{w}/{i:03}").as_bytes(), format!("{w}-{i}").as_bytes()).await.unwrap();
                if i == 10
                    && let Some(started) = started.take()
                {
                    let _ = started.send(());
                }
            }
        }));
    }
    tokio::time::timeout(DEADLINE, started_rx).await.unwrap().unwrap();
    let mut stream = watch(&store, "w/", 1).await;

    for writer in writers {
        writer.await.unwrap();
    }
    let last = store.current_revision().await.unwrap();
    let total = 30 + WRITERS * PER_WRITER;
    assert_eq!(last, total as u64);

    let events = events_through(&mut stream, last).await;
    let revisions: Vec<Revision> = events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (1..=last).collect::<Vec<_>>(), "every revision exactly once, in order");
    for e in &events {
        assert_eq!(store.get(&e.key).await.unwrap().unwrap().mod_revision, e.revision);
    }
    let distinct: HashSet<&Vec<u8>> = events.iter().map(|e| &e.key).collect();
    assert_eq!(distinct.len(), total);

    // Still following live changes afterwards.
    let next = store.put(b"w/after", b"x").await.unwrap();
    assert_eq!(next_event(&mut stream).await, event(next, "w/after", Some("x")));
}

#[tokio::test]
async fn watch_yields_only_keys_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let r1 = store.put(b"a/1", b"x").await.unwrap();
    store.put(b"b/1", b"y").await.unwrap();
    store.put(b"ab/1", b"z").await.unwrap();
    let r4 = store.delete(b"a/1").await.unwrap().unwrap();

    let mut stream = watch(&store, "a/", 0).await;
    assert_eq!(next_event(&mut stream).await, event(r1, "a/1", Some("x")));
    assert_eq!(next_event(&mut stream).await, event(r4, "a/1", None));

    store.put(b"b/2", b"-").await.unwrap();
    store.put(b"ab/2", b"-").await.unwrap();
    let r7 = store.put(b"a/2", b"live").await.unwrap();
    assert_eq!(next_event(&mut stream).await, event(r7, "a/2", Some("live")));
}

#[tokio::test]
async fn watch_from_next_revision_yields_only_new_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for i in 0..5 {
        store.put(format!("k/{i}").as_bytes(), b"old").await.unwrap();
    }
    let current = store.current_revision().await.unwrap();
    let mut stream = watch(&store, "k/", current + 1).await;
    let new = store.put(b"k/0", b"new").await.unwrap();
    assert_eq!(new, current + 1);
    assert_eq!(next_event(&mut stream).await, event(new, "k/0", Some("new")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_replays_history_longer_than_one_page() {
    // 1,200 revisions of two keys each: the log holds 2,400 entries, more
    // than one history page, and page ends must fall between revisions.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let writers: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..75 {
                    let ops = vec![
                        Op::Put(format!("p/{t:02}/{i:02}").into_bytes(), b"p".to_vec()),
                        Op::Put(format!("q/{t:02}/{i:02}").into_bytes(), b"q".to_vec()),
                    ];
                    store.txn(Txn { compares: vec![], ops }).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let last = store.current_revision().await.unwrap();
    assert_eq!(last, 1200);

    let mut only_p = watch(&store, "p/", 1).await;
    let events = events_through(&mut only_p, last).await;
    assert_eq!(events.iter().map(|e| e.revision).collect::<Vec<_>>(), (1..=last).collect::<Vec<_>>());
    assert!(events.iter().all(|e| e.key.starts_with(b"p/")));

    let mut everything = watch(&store, "", 1).await;
    let events = events_count(&mut everything, 2400).await;
    for (pair, revision) in events.chunks(2).zip(1..) {
        assert_eq!((pair[0].revision, pair[1].revision), (revision, revision));
        assert!(pair[0].key.starts_with(b"p/") && pair[1].key.starts_with(b"q/"), "op order within a revision");
    }
    // Nothing beyond the last revision is pending: the next event is new.
    let next = store.put(b"q/after", b"q").await.unwrap();
    assert_eq!(next_event(&mut everything).await, event(next, "q/after", Some("q")));
}

#[tokio::test]
async fn watch_from_compacted_revision_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, RedbOptions { history_revisions: 5, ..RedbOptions::default() });
    for i in 0..20 {
        store.put(format!("c/{i:02}").as_bytes(), b"v").await.unwrap();
    }
    // Revisions 16..=20 are kept.
    match watch_err(&store, "c/", 2).await {
        KvError::Compacted { requested, oldest } => assert_eq!((requested, oldest), (2, 16)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    match watch_err(&store, "", 15).await {
        KvError::Compacted { requested, oldest } => assert_eq!((requested, oldest), (15, 16)),
        other => panic!("expected Compacted, got {other:?}"),
    }

    let mut oldest_kept = watch(&store, "c/", 16).await;
    let events = events_through(&mut oldest_kept, 20).await;
    assert_eq!(events.iter().map(|e| e.revision).collect::<Vec<_>>(), [16, 17, 18, 19, 20]);

    // 0 means "everything still kept".
    let mut from_start = watch(&store, "c/", 0).await;
    assert_eq!(next_event(&mut from_start).await, event(16, "c/15", Some("v")));

    // Compaction keeps moving with new writes.
    for i in 0..5 {
        store.put(format!("c/more/{i}").as_bytes(), b"v").await.unwrap();
    }
    match watch_err(&store, "c/", 16).await {
        KvError::Compacted { requested, oldest } => assert_eq!((requested, oldest), (16, 21)),
        other => panic!("expected Compacted, got {other:?}"),
    }
}

#[tokio::test]
async fn lagging_watch_reports_where_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, RedbOptions { watch_buffer: 4, ..RedbOptions::default() });
    store.put(b"x/0", b"v").await.unwrap();
    let mut stream = watch(&store, "x/", 2).await;

    // The watcher does not poll while 20 revisions are committed.
    for i in 1..=20 {
        store.put(format!("x/{i:02}").as_bytes(), b"v").await.unwrap();
    }
    match next_item(&mut stream).await {
        Some(Err(KvError::Lagged { resume_from })) => assert_eq!(resume_from, 2),
        other => panic!("expected Lagged, got {other:?}"),
    }
    assert!(next_item(&mut stream).await.is_none(), "a lagged watch ends");

    // Resuming from the reported revision loses nothing.
    let mut resumed = watch(&store, "x/", 2).await;
    let events = events_through(&mut resumed, 21).await;
    assert_eq!(events.iter().map(|e| e.revision).collect::<Vec<_>>(), (2..=21).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// Lifecycle and durability
// ---------------------------------------------------------------------------

#[tokio::test]
async fn data_survives_reopen_and_revisions_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (r_keep, r_last) = {
        let store = open(&dir);
        let r_keep = store.put(b"keep", b"1").await.unwrap();
        store.put(b"gone", b"2").await.unwrap();
        let r_last = store.delete(b"gone").await.unwrap().unwrap();
        (r_keep, r_last)
    };
    // Dropping the last handle unlocks the file at once.
    let store = open(&dir);
    assert_eq!(store.current_revision().await.unwrap(), r_last);
    let entry = store.get(b"keep").await.unwrap().unwrap();
    assert_eq!((entry.value.as_slice(), entry.mod_revision), (&b"1"[..], r_keep));
    assert_eq!(store.get(b"gone").await.unwrap(), None);
    let next = store.put(b"new", b"3").await.unwrap();
    assert_eq!(next, r_last + 1);

    // History survives too.
    let mut stream = watch(&store, "", 1).await;
    let events = events_through(&mut stream, next).await;
    assert_eq!(
        events,
        [event(1, "keep", Some("1")), event(2, "gone", Some("2")), event(3, "gone", None), event(4, "new", Some("3"))]
    );
}

#[tokio::test]
async fn close_refuses_new_work_and_ends_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let other_handle = store.clone();
    let mut stream = watch(&store, "", 1).await;
    let r1 = store.put(b"a", b"1").await.unwrap();

    store.close().await;
    assert!(matches!(other_handle.put(b"b", b"2").await, Err(KvError::Closed)));
    assert!(matches!(other_handle.get(b"a").await, Err(KvError::Closed)));
    assert!(matches!(other_handle.scan_prefix(b"", None, 10).await, Err(KvError::Closed)));
    assert!(matches!(other_handle.current_revision().await, Err(KvError::Closed)));
    assert!(matches!(watch_err(&other_handle, "", 1).await, KvError::Closed));
    store.close().await; // idempotent

    // The watch delivers what was committed, then ends.
    assert_eq!(next_event(&mut stream).await, event(r1, "a", Some("1")));
    assert!(next_item(&mut stream).await.is_none());

    drop((store, other_handle));
    let reopened = open(&dir);
    assert_eq!(reopened.get(b"a").await.unwrap().unwrap().value, b"1");
    assert_eq!(reopened.get(b"b").await.unwrap(), None);
}

#[tokio::test]
async fn dropping_the_last_handle_ends_watches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut stream = watch(&store, "", 1).await;
    drop(store);
    assert!(next_item(&mut stream).await.is_none());
    // And the file is free again.
    drop(open(&dir));
}

#[tokio::test]
async fn open_failures_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let shown = path.display().to_string();

    // Locked by a live store.
    let store = open(&dir);
    let error = RedbStore::open(&path, RedbOptions::default()).expect_err("second open of a locked file");
    let message = error.to_string();
    assert!(message.contains(&shown) && message.contains("locked"), "{message}");
    drop(store);

    // Not a redb file.
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0xa5; 64 * 1024]).unwrap();
    let error = RedbStore::open(&garbage, RedbOptions::default()).expect_err("garbage file");
    assert!(error.to_string().contains(&garbage.display().to_string()), "{error}");

    // Missing directory.
    let missing = dir.path().join("no-such-dir").join("catalog.redb");
    let error = RedbStore::open(&missing, RedbOptions::default()).expect_err("missing directory");
    assert!(error.to_string().contains(&missing.display().to_string()), "{error}");

    // Unusable options.
    let error =
        RedbStore::open(&path, RedbOptions { max_batch: 0, ..RedbOptions::default() }).expect_err("bad options");
    assert!(error.to_string().contains("max_batch"), "{error}");
}

// ---------------------------------------------------------------------------
// Crash safety: SIGKILL must not lose an acknowledged write
// ---------------------------------------------------------------------------

/// Set in the child process to the database path it should write to.
const CRASH_CHILD_ENV: &str = "CIVITAS_KV_CRASH_CHILD_DB";
const CRASH_TEST_NAME: &str = "sigkill_loses_no_acknowledged_write";
/// Acknowledgements the parent waits for before killing the child.
const ACKS_BEFORE_KILL: usize = 400;

fn crash_value(key: &str) -> String {
    format!("value-of-{key}")
}

/// Child mode: write forever from several tasks, printing each key only after
/// its write was acknowledged. The parent kills the process mid-stream.
fn crash_child(path: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let store = RedbStore::open(path, RedbOptions::default()).expect("child opens the store");
        // A guard against running forever if the parent vanished.
        let give_up = Instant::now() + Duration::from_secs(120);
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while Instant::now() < give_up {
                        let key = format!("crash/{t}/{i:08}");
                        store.put(key.as_bytes(), crash_value(&key).as_bytes()).await.expect("child write");
                        // One write call per line (well under PIPE_BUF), so
                        // the parent never sees half of an acknowledgement.
                        let mut out = std::io::stdout().lock();
                        out.write_all(format!("ACK:{key}\n").as_bytes()).unwrap();
                        out.flush().unwrap();
                        i += 1;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    if let Some(path) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_child(Path::new(&path));
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CRASH_TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test process");

    // Read the child's stdout on a thread so the wait can have a deadline.
    // Only complete lines count: a line cut short by the kill was never
    // fully written, so it acknowledges nothing.
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.ends_with(b"\n") => {
                    if lines_tx.send(String::from_utf8_lossy(&line).trim_end().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });
    // libtest may print its own text before ours on the same line.
    let ack = |line: &str| line.find("ACK:").map(|at| line[at + "ACK:".len()..].to_owned());

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = Vec::new();
    while acked.len() < ACKS_BEFORE_KILL {
        match lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => acked.extend(ack(&line)),
            Err(e) => {
                let _ = child.kill();
                panic!("child stopped acknowledging after {} writes: {e}", acked.len());
            }
        }
    }
    // Mid-stream: the child's writers are busy committing right now.
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "child should die by SIGKILL, got {status:?}");
    }
    // Acknowledgements printed before the kill count too.
    reader.join().unwrap();
    acked.extend(lines_rx.try_iter().filter_map(|line| ack(&line)));

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store = RedbStore::open(&path, RedbOptions::default()).expect("reopen after SIGKILL");
        let stored: BTreeMap<Vec<u8>, Vec<u8>> = store
            .scan_prefix(b"crash/", None, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, e)| (k, e.value))
            .collect();
        for key in &acked {
            assert_eq!(
                stored.get(key.as_bytes()).map(Vec::as_slice),
                Some(crash_value(key).as_bytes()),
                "acknowledged key {key} lost or damaged ({} acknowledged, {} stored)",
                acked.len(),
                stored.len()
            );
        }
        // Whatever else survived is a complete write too, and revisions still advance.
        for (key, value) in &stored {
            assert_eq!(value, crash_value(std::str::from_utf8(key).unwrap()).as_bytes());
        }
        let revision = store.current_revision().await.unwrap();
        assert_eq!(revision, stored.len() as u64, "one revision per surviving write");
        assert_eq!(store.put(b"after-crash", b"ok").await.unwrap(), revision + 1);
    });
}

// ---------------------------------------------------------------------------
// Throughput (run explicitly: `cargo test --release -- --ignored throughput`)
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing-dependent; run explicitly on the target hardware"]
async fn throughput_single_document_writes() {
    const CLIENTS: usize = 256;
    const RUN_FOR: Duration = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                let doc = vec![b'x'; 512];
                while start.elapsed() < RUN_FOR {
                    store
                        .txn(put_txn(&format!("bench/{c:03}/{n:08}"), std::str::from_utf8(&doc).unwrap()))
                        .await
                        .unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    eprintln!("{total} single-document txns, {rate:.0}/s");
    assert!(rate >= 5000.0, "only {rate:.0} writes/s");
}
