//! Two real nodes witnessing each other's ledger: node A (the log) is configured with node
//! B as its witness, B with A's log key. A's served checkpoint carries B's cosignature,
//! `civitas ledger verify --witness` checks it offline, B follows A's growth with
//! consistency proofs (also across a restart of A), and B refuses a fork of A's log.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use civitas_ledger::{Entry, EntryKind, Ledger, LedgerOptions, NodeKey, NoteVerifier, SignedCheckpoint};
use common::{Server, civitas_command, run, write_file};
use serde_json::{Value, json};

/// How long a condition may take to hold.
const DEADLINE: Duration = Duration::from_secs(20);

fn start(data_dir: &Path, log_dir: &Path, config: Option<&Path>) -> Server {
    Server::start_in(data_dir, log_dir, |cmd, addr| {
        cmd.arg("--listen").arg(addr.to_string());
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
    })
}

async fn get_text(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.unwrap()
}

fn append(server: &Server, text: &str) -> u64 {
    let data = json!({"text": text}).to_string();
    server.civitas(&["ledger", "append", "--kind", "note", "--data", &data]).ok().trim().parse().unwrap()
}

/// Polls A's checkpoint until it has at least `min_size` entries and a valid cosignature by
/// `witness`; returns its text.
async fn cosigned_checkpoint(http: &reqwest::Client, a: &Server, witness: &NoteVerifier, min_size: u64) -> String {
    let url = format!("{}/api/v1/ledger/checkpoint", a.url);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = get_text(http, &url).await;
        let signed = SignedCheckpoint::parse_unverified(&text).expect("a checkpoint");
        if signed.checkpoint().size >= min_size && signed.note().verify(witness).is_ok() {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "A's checkpoint was not cosigned by B at size >= {min_size} within {DEADLINE:?}; last:\n{text}\nA's log:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn verify(pubkey: &str, checkpoint: &Path, extra: &[&str]) -> common::Run {
    let mut cmd = civitas_command();
    cmd.args(["ledger", "verify", "--pubkey", pubkey, "--checkpoint"]).arg(checkpoint).args(extra);
    run(cmd)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cosigns_the_log_follows_its_growth_and_refuses_a_fork() {
    let temp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (temp.path().join("a"), temp.path().join("b"));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // A alone first, to learn its log key (and its own witness key, which is NOT B's).
    let mut a = start(&a_dir, temp.path(), None);
    let a_log_key = a.civitas(&["ledger", "pubkey"]).ok().trim().to_string();
    let a_witness_key = get_text(&http, &format!("{}/api/v1/ledger/witness/pubkey", a.url)).await.trim().to_string();
    assert!(a.terminate(Duration::from_secs(15)).success());

    // B witnesses A's log.
    let b_config = write_file(temp.path(), "b.toml", &format!("[ledger]\nwitnessed_logs = [\"{a_log_key}\"]\n"));
    let b = start(&b_dir, temp.path(), Some(&b_config));
    let b_witness_key = get_text(&http, &format!("{}/api/v1/ledger/witness/pubkey", b.url)).await.trim().to_string();
    let b_key: NoteVerifier = b_witness_key.parse().unwrap();

    // A again, on the same data, asking B to cosign.
    let a_config = write_file(
        temp.path(),
        "a.toml",
        &format!(
            "[ledger]\ncosign_interval_ms = 200\n\n[[ledger.witnesses]]\nurl = \"{}\"\nkey = \"{b_witness_key}\"\n",
            b.url
        ),
    );
    let mut a = start(&a_dir, temp.path(), Some(&a_config));
    assert_eq!(a.civitas(&["ledger", "pubkey"]).ok().trim(), a_log_key, "same data dir, same log");
    for i in 0..3 {
        assert_eq!(append(&a, &format!("entry {i}")), i);
    }

    // Within the deadline A serves a checkpoint of 3 entries cosigned by B.
    let text = cosigned_checkpoint(&http, &a, &b_key, 3).await;
    let signed = SignedCheckpoint::parse_unverified(&text).unwrap();
    assert_eq!(signed.checkpoint().size, 3);
    assert_eq!(signed.note().signatures().len(), 2, "the log's line, then B's:\n{text}");
    assert_eq!(signed.note().signatures()[1].name, b_key.name());
    let file = write_file(temp.path(), "checkpoint-3.txt", &text);

    // Offline verification with B's key passes, with another witness key it fails.
    let out = verify(&a_log_key, &file, &["--witness", &b_witness_key]);
    let stdout = out.ok();
    assert!(stdout.contains("checkpoint OK") && stdout.contains("cosignature OK"), "{stdout}");
    let stderr = verify(&a_log_key, &file, &["--witness", &a_witness_key]).fails_with(1).to_string();
    assert!(stderr.contains("0 valid cosignature") && stderr.contains("1 required"), "{stderr}");
    let stderr = verify(&a_log_key, &file, &["--witness", &b_witness_key, "--witness", &a_witness_key])
        .fails_with(1)
        .to_string();
    assert!(stderr.contains("1 valid cosignature") && stderr.contains("2 required"), "{stderr}");
    verify(&a_log_key, &file, &["--witness", &b_witness_key, "--witness", &a_witness_key, "--min-witnesses", "1"]).ok();
    let stderr = verify(&a_log_key, &file, &["--witness", &a_log_key]).fails_with(1).to_string();
    assert!(stderr.contains("not a witness key"), "{stderr}");

    // The extra line does not disturb proofs: prove and verify entry 1 against it.
    let proof = a.civitas(&["ledger", "prove", "1", "--checkpoint", file.to_str().unwrap()]).ok().to_string();
    let proof_file = write_file(temp.path(), "proof.json", &proof);
    let entry_file = write_file(temp.path(), "entry.json", a.civitas(&["ledger", "get", "1"]).ok());
    let out = verify(
        &a_log_key,
        &file,
        &[
            "--witness",
            &b_witness_key,
            "--proof",
            proof_file.to_str().unwrap(),
            "--entry",
            entry_file.to_str().unwrap(),
        ],
    );
    assert!(out.ok().contains("entry OK"), "{}", out.stdout);

    // More entries: B cosigns the larger tree, having checked it extends size 3.
    for i in 3..5 {
        append(&a, &format!("entry {i}"));
    }
    let text = cosigned_checkpoint(&http, &a, &b_key, 5).await;
    let file5 = write_file(temp.path(), "checkpoint-5.txt", &text);
    verify(&a_log_key, &file5, &["--witness", &b_witness_key]).ok();

    // A restarts (it forgets what B cosigned): B answers 409 witness-conflict with its size,
    // A retries with the proof from 5, and B cosigns size 6; no failure is counted.
    assert!(a.terminate(Duration::from_secs(15)).success());
    let a = start(&a_dir, temp.path(), Some(&a_config));
    append(&a, "entry 5");
    let text = cosigned_checkpoint(&http, &a, &b_key, 6).await;
    let size = SignedCheckpoint::parse_unverified(&text).unwrap().checkpoint().size;
    assert_eq!(size, 6);
    let metrics = get_text(&http, &format!("{}/metrics", a.url)).await;
    assert!(metrics.contains("civitas_ledger_cosign_failures_total 0"), "{metrics}");

    // A fork: the same key and origin, 6 different entries. B refuses it and raises an alarm.
    let origin = text.lines().next().unwrap().to_string();
    let fork_dir = temp.path().join("fork");
    std::fs::create_dir_all(&fork_dir).unwrap();
    std::fs::copy(a_dir.join("node.key"), fork_dir.join("node.key")).unwrap();
    let key = NodeKey::load(&fork_dir.join("node.key")).unwrap();
    let signer = key.log_signer(&origin).unwrap();
    let fork = Ledger::open(fork_dir.join("ledger"), LedgerOptions::new(origin.clone())).unwrap();
    let entries = (0..size).map(|i| Entry::new(EntryKind::Note, json!({"text": format!("forged {i}")})).unwrap());
    fork.append_batch(entries.collect()).await.unwrap();
    let forged = fork.checkpoint(&signer).await.unwrap();
    assert_eq!(forged.checkpoint().size, size);
    fork.close().await;
    let response = http
        .post(format!("{}/api/v1/ledger/witness/cosign", b.url))
        .json(&json!({"oldSize": size, "checkpoint": forged.to_string(), "consistencyProof": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("/log-fork"), "{problem}");
    let metrics = get_text(&http, &format!("{}/metrics", b.url)).await;
    assert!(metrics.contains("civitas_ledger_witness_alarms{kind=\"fork\"} 1"), "{metrics}");
    // A's genuine checkpoint is still the one B holds: nothing else changed.
    assert_eq!(cosigned_checkpoint(&http, &a, &b_key, 6).await, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_witness_is_counted_and_the_log_keeps_serving() {
    let temp = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    // A witness key of a node that does not run; its URL points at a closed port.
    let witness = NodeKey::from_seed(&[3; 32]).witness_signer("civitas.city/witness/gone").unwrap().verifier();
    let port = common::free_port();
    let config = write_file(
        temp.path(),
        "a.toml",
        &format!(
            "[ledger]\ncosign_interval_ms = 100\n\n[[ledger.witnesses]]\nurl = \"http://127.0.0.1:{port}\"\nkey = \"{witness}\"\n"
        ),
    );
    let a = start(&temp.path().join("a"), temp.path(), Some(&config));
    append(&a, "alone");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metrics = get_text(&http, &format!("{}/metrics", a.url)).await;
        let failures = metrics
            .lines()
            .find_map(|l| l.strip_prefix("civitas_ledger_cosign_failures_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if failures >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no cosign failure counted within {DEADLINE:?}:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.log().contains("witness did not cosign"), "{}", a.log());
    // The log still serves its own checkpoint, signed by itself alone.
    let text = get_text(&http, &format!("{}/api/v1/ledger/checkpoint", a.url)).await;
    let signed = SignedCheckpoint::parse_unverified(&text).unwrap();
    assert_eq!(signed.checkpoint().size, 1);
    assert_eq!(signed.note().signatures().len(), 1);
}
