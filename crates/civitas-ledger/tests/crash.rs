//! Crash safety: a child process appends from many tasks (single entries and batches) and
//! signs checkpoints, printing every acknowledged index; the parent SIGKILLs it mid-stream,
//! reopens the ledger, and checks that every acknowledged entry is there, intact, that the
//! tree matches the entries, and that the log still verifies against its last checkpoint.
//! Three rounds, so recovery itself is crashed into as well.
//!
//! Waits are always on a line from the child, bounded by a deadline, never a sleep.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use civitas_ledger::merkle::{MemoryTree, leaf_hash};
use civitas_ledger::{Entry, EntryKind, Ledger, LedgerOptions, NodeKey, SignedCheckpoint};
use serde_json::json;

const CHILD_ENV: &str = "CIVITAS_LEDGER_CRASH_CHILD";
const TEST_NAME: &str = "sigkill_loses_no_acknowledged_entry";
const ORIGIN: &str = "civitas.test/ledger/crash";
const ROUNDS: usize = 3;
/// Acknowledgements the parent waits for before the kill, by round: the kill lands at a
/// different point of the stream each time.
const ACKS_BEFORE_KILL: [usize; ROUNDS] = [1500, 2700, 700];

fn key() -> NodeKey {
    NodeKey::from_seed(&[7u8; 32])
}

fn crash_entry(round: u64, task: u64, i: u64) -> Entry {
    Entry::new(EntryKind::Task, json!({"round": round, "task": task, "i": i, "pad": "x".repeat((i % 97) as usize)}))
        .unwrap()
}

/// Child mode: append forever from several tasks, printing each index only after it was
/// acknowledged.
fn crash_child(dir: &Path, round: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        let ledger = std::sync::Arc::new(Ledger::open(dir, LedgerOptions::new(ORIGIN)).expect("child opens"));
        let give_up = Instant::now() + Duration::from_secs(120);
        let mut tasks = Vec::new();
        for task in 0..8u64 {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < give_up {
                    let acked: Vec<(u64, u64)> = if task % 4 == 3 {
                        // A batch of 1..40 entries.
                        let n = 1 + (i * 7 + task) % 40;
                        let entries = (i..i + n).map(|j| crash_entry(round, task, j)).collect();
                        let range = ledger.append_batch(entries).await.expect("child batch");
                        range.zip(i..i + n).collect()
                    } else {
                        vec![(ledger.append(crash_entry(round, task, i)).await.expect("child append"), i)]
                    };
                    let mut line = String::new();
                    for (index, j) in &acked {
                        line.push_str(&format!("ACK:{index}:{task}:{j}\n"));
                    }
                    // One write per batch of lines (under PIPE_BUF), so the parent never sees
                    // half an acknowledgement.
                    let mut out = std::io::stdout().lock();
                    out.write_all(line.as_bytes()).unwrap();
                    out.flush().unwrap();
                    i += acked.len() as u64;
                }
            }));
        }
        // Checkpoints while appending, so the kill can land during one.
        let signer = key().log_signer(ORIGIN).unwrap();
        let checkpointer = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                while Instant::now() < give_up {
                    ledger.checkpoint(&signer).await.expect("child checkpoint");
                    tokio::task::yield_now().await;
                }
            })
        };
        for t in tasks {
            t.await.unwrap();
        }
        checkpointer.await.unwrap();
    });
}

#[test]
fn sigkill_loses_no_acknowledged_entry() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let round = std::env::var("CIVITAS_LEDGER_CRASH_ROUND").unwrap().parse().unwrap();
        crash_child(Path::new(&dir), round);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // index -> (round, task, i) of every acknowledged entry, across rounds.
    let mut acked: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
    for round in 0..ROUNDS as u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env("CIVITAS_LEDGER_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    // Only complete lines count: a line cut by the kill acknowledges nothing.
                    Ok(_) if line.ends_with(b"\n") => {
                        if lines_tx.send(String::from_utf8_lossy(&line).trim_end().to_owned()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => break,
                }
            }
        });
        let parse = |line: &str| -> Option<(u64, (u64, u64, u64))> {
            let at = line.find("ACK:")?;
            let mut parts = line[at + 4..].split(':').map(|p| p.parse::<u64>().ok());
            Some((parts.next()??, (round, parts.next()??, parts.next()??)))
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut this_round = 0;
        while this_round < ACKS_BEFORE_KILL[round as usize] {
            match lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some((index, who)) = parse(&line) {
                        assert!(acked.insert(index, who).is_none(), "index {index} acknowledged twice");
                        this_round += 1;
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("round {round}: child stopped acknowledging after {this_round}: {e}");
                }
            }
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().unwrap();
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "child should die by SIGKILL, got {status:?}");
        }
        reader.join().unwrap();
        for line in lines_rx.try_iter() {
            if let Some((index, who)) = parse(&line) {
                assert!(acked.insert(index, who).is_none(), "index {index} acknowledged twice");
            }
        }
        verify_after_crash(dir.path(), &acked, round);
    }
}

fn verify_after_crash(dir: &Path, acked: &BTreeMap<u64, (u64, u64, u64)>, round: u64) {
    let ledger = Ledger::open(dir, LedgerOptions::new(ORIGIN))
        .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
    let size = ledger.size();
    // Every acknowledged entry is there, with its content.
    for (&index, &(r, task, i)) in acked {
        assert!(index < size, "round {round}: acknowledged entry {index} lost (size {size})");
        assert_eq!(ledger.get(index).unwrap(), crash_entry(r, task, i), "round {round}: entry {index} damaged");
    }
    // The tree matches the entries: recompute it from what get() returns.
    let tree = MemoryTree::from_leaf_hashes((0..size).map(|i| leaf_hash(&ledger.get_canonical(i).unwrap())));
    assert_eq!(ledger.root(size).unwrap(), tree.root(size).unwrap(), "round {round}: root differs from the entries");
    for index in (0..size).step_by(97) {
        let proof = ledger.inclusion_proof(index, size).unwrap();
        proof.verify(&leaf_hash(&ledger.get_canonical(index).unwrap()), &tree.root(size).unwrap()).unwrap();
    }
    // The last checkpoint the child signed is valid and consistent with the recovered log.
    let verifier = key().log_verifier(ORIGIN).unwrap();
    let latest = ledger.latest_checkpoint().expect("the child signed checkpoints");
    let checkpoint = SignedCheckpoint::verify(&latest.to_string(), &verifier).unwrap();
    let c = checkpoint.checkpoint();
    assert!(c.size <= size);
    assert_eq!(ledger.root(c.size).unwrap(), c.root, "round {round}: the recovered log contradicts its checkpoint");
    ledger.consistency_proof(c.size, size).unwrap().verify(&c.root, &ledger.root(size).unwrap()).unwrap();
    // And it keeps going.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let index = runtime.block_on(ledger.append(crash_entry(99, 99, round))).unwrap();
    assert_eq!(index, size);
}
