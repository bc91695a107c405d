//! The node's ledger routes (`civitas_node::ledger_api`) served on a free port, and the
//! CLI's ledger verbs (this crate's `src/ledger.rs`, compiled here from its file) run
//! against them: appends, reads, checkpoints, proofs, tiles, witness cosigning, problem
//! documents, and the CLI round trip down to offline verification.

#[allow(dead_code)]
#[path = "../src/ledger.rs"]
mod ledger_cli;

use civitas_node::ledger_api;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use civitas_ledger::merkle::root_of;
use civitas_ledger::tiles::{TilePath, TileReader, verify_entries_bundle};
use civitas_ledger::{
    ConsistencyProof, Entry, EntryKind, InclusionProof, Ledger, LedgerOptions, NodeKey, NoteVerifier, SignedCheckpoint,
    Witness,
};
use ledger_cli::LedgerCommand;
use serde_json::{Value, json};

const ORIGIN: &str = "civitas.test/ledger/http";
const PEER: &str = "civitas.test/ledger/peer";
const DEADLINE: Duration = Duration::from_secs(30);

struct Node {
    url: String,
    dir: tempfile::TempDir,
    witness: Arc<Witness>,
    http: reqwest::Client,
}

async fn start() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path().join("ledger"), LedgerOptions::new(ORIGIN)).unwrap());
    let key = Arc::new(NodeKey::load_or_create(&dir.path().join("node.key")).unwrap());
    let witness = Arc::new(
        Witness::open(dir.path().join("witness.json"), key.witness_signer("civitas.test/witness/http").unwrap())
            .unwrap(),
    );
    // The peer log this node witnesses.
    witness.trust_log(peer_key().log_verifier(PEER).unwrap());
    let app: axum::Router = ledger_api::router(ledger, key, Arc::clone(&witness));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::builder().timeout(DEADLINE).build().unwrap();
    Node { url, dir, witness, http }
}

fn peer_key() -> NodeKey {
    NodeKey::from_seed(&[42; 32])
}

impl Node {
    fn at(&self, path: &str) -> String {
        if path.is_empty() {
            format!("{}/api/v1/ledger", self.url)
        } else {
            format!("{}/api/v1/ledger/{path}", self.url)
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.at(path)).send().await.unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.at(path)).json(body).send().await.unwrap()
    }

    async fn cli(&self, cmd: LedgerCommand) -> anyhow::Result<String> {
        let mut out = Vec::new();
        ledger_cli::run_to(&self.url, cmd, &mut out).await?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn file(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("https://civitas.city/problems/"), "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_checkpoints_proofs_and_tiles_over_http() {
    let node = start().await;
    let resp = node.post("entries", &json!({"kind": "note", "data": {"text": "first"}})).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["location"], "/api/v1/ledger/entries/0");
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"index": 0}));
    let many: Vec<Value> = (0..299).map(|i| json!({"kind": "deal", "data": {"deal": i}})).collect();
    let resp = node.post("entries", &Value::Array(many)).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"first": 1, "count": 299}));

    let resp = node.get("entries/0").await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.bytes().await.unwrap(), &br#"{"data":{"text":"first"},"kind":"note"}"#[..]);

    let key: NoteVerifier = node.get("pubkey").await.text().await.unwrap().trim().parse().unwrap();
    let resp = node.get("checkpoint").await;
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    let checkpoint = SignedCheckpoint::verify(&resp.text().await.unwrap(), &key).unwrap();
    let head = checkpoint.checkpoint().clone();
    assert_eq!((head.origin.as_str(), head.size), (ORIGIN, 300));

    let proof: InclusionProof = node.get("proof/inclusion?index=7").await.json().await.unwrap();
    assert_eq!(proof.tree_size, 300);
    let entry = node.get("entries/7").await.bytes().await.unwrap();
    civitas_ledger::verify_entry(&key, &checkpoint.to_string(), &proof, &entry).unwrap();
    let proof: ConsistencyProof = node.get("proof/consistency?old=10&new=300").await.json().await.unwrap();
    let old_root: InclusionProof = node.get("proof/inclusion?index=0&size=10").await.json().await.unwrap();
    let old_root = civitas_ledger::merkle::root_from_inclusion(&old_root.leaf_hash, 0, 10, &old_root.hashes).unwrap();
    proof.verify(&old_root, &head.root).unwrap();

    // The tlog-tiles read API, checked by a verifying tile reader.
    let tiles = fetch_tiles(&node, &["tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1"]).await;
    let reader = TileReader::new(300, head.root, |p: &TilePath| {
        tiles.get(&p.to_string()).cloned().ok_or_else(|| format!("{p} was not fetched"))
    });
    assert_eq!(root_of(&reader, 300).unwrap(), head.root);
    let bundle = node.get("tile/entries/001.p/44").await.bytes().await.unwrap();
    verify_entries_bundle(&bundle, &tiles["tile/0/001.p/44"]).unwrap();
    let resp = node.get("tile/0/000").await;
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert!(resp.headers()["cache-control"].to_str().unwrap().contains("immutable"));

    let summary: Value = node.get("").await.json().await.unwrap();
    assert_eq!(summary["size"], 300);
    assert_eq!(summary["verifierKey"], key.to_string());
}

/// Fetches tiles by path (relative to the ledger prefix).
async fn fetch_tiles(node: &Node, paths: &[&str]) -> std::collections::HashMap<String, Vec<u8>> {
    let mut tiles = std::collections::HashMap::new();
    for path in paths {
        let resp = node.get(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        tiles.insert(path.to_string(), resp.bytes().await.unwrap().to_vec());
    }
    tiles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_problem_documents() {
    let node = start().await;
    node.post("entries", &json!({"kind": "note", "data": {}})).await;
    let body = problem(node.post("entries", &json!({"kind": "bribe", "data": {}})).await, 400).await;
    assert_eq!(body["errors"][0]["pointer"], "/kind");
    let body = problem(node.post("entries", &json!([{"kind": "note", "data": {}}, {"kind": "note"}])).await, 400).await;
    assert_eq!(body["errors"][0]["pointer"], "/1/data");
    let body = problem(node.post("entries", &json!({"kind": "note", "data": [1]})).await, 400).await;
    assert_eq!(body["errors"][0]["pointer"], "/data");
    let resp = node.http.post(node.at("entries")).header("content-type", "text/plain").body("{}").send().await.unwrap();
    problem(resp, 415).await;
    let resp =
        node.http.post(node.at("entries")).header("content-type", "application/json").body("{").send().await.unwrap();
    problem(resp, 400).await;
    let big = json!({"kind": "note", "data": {"text": "x".repeat(70_000)}});
    problem(node.post("entries", &big).await, 400).await;

    problem(node.get("entries/5").await, 404).await;
    let body = problem(node.get("entries/abc").await, 400).await;
    assert_eq!(body["errors"][0]["parameter"], "index");
    problem(node.get("proof/inclusion?index=3").await, 400).await;
    problem(node.get("proof/inclusion?index=0&size=9").await, 400).await;
    problem(node.get("proof/inclusion?index=0&sise=1").await, 400).await;
    problem(node.get("proof/consistency?old=2&new=1").await, 400).await;
    problem(node.get("tile/0/x000/000").await, 400).await;
    problem(node.get("tile/0/000").await, 404).await;
    problem(node.get("tile/entries/000.p/2").await, 404).await;
}

/// Grows a peer log to `to` entries and returns its signed checkpoint.
async fn grow(ledger: &Ledger, to: u64, branch: &str) -> String {
    let entries: Vec<Entry> =
        (ledger.size()..to).map(|i| Entry::new(EntryKind::Task, json!({"i": i, "b": branch})).unwrap()).collect();
    ledger.append_batch(entries).await.unwrap();
    ledger.checkpoint(&peer_key().log_signer(PEER).unwrap()).await.unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_get_cosigned_and_a_fork_is_refused() {
    let node = start().await;
    // Two copies of the peer log with the same key: the second one is a fork.
    let (main_dir, fork_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let main = Ledger::open(main_dir.path(), LedgerOptions::new(PEER)).unwrap();
    let fork = Ledger::open(fork_dir.path(), LedgerOptions::new(PEER)).unwrap();
    // tlog-witness text body: old size, proof lines, blank line, checkpoint.
    let c10 = grow(&main, 10, "main").await;
    let resp = node.http.post(node.at("witness/cosign")).body(format!("old 0\n\n{c10}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let line = resp.text().await.unwrap();
    assert!(line.starts_with("— civitas.test/witness/http "), "{line}");
    let witness_key: NoteVerifier = node.get("witness/pubkey").await.text().await.unwrap().trim().parse().unwrap();
    let mut cosigned = SignedCheckpoint::parse_unverified(&c10).unwrap();
    cosigned.add_cosignature(civitas_ledger::NoteSignature::parse_line(&line).unwrap());
    cosigned.note().verify(&witness_key).unwrap();

    // JSON body, growing with a proof.
    let c25 = grow(&main, 25, "main").await;
    let proof = main.consistency_proof(10, 25).unwrap().hashes;
    let resp = node.post("witness/cosign", &json!({"oldSize": 10, "checkpoint": c25, "consistencyProof": proof})).await;
    assert_eq!(resp.status(), 200);

    // Stale old size: 409 telling the witness's size, no alarm.
    let body = problem(node.post("witness/cosign", &json!({"oldSize": 10, "checkpoint": c25})).await, 409).await;
    assert_eq!(body["witnessSize"], 25);
    assert_eq!(node.witness.alarms().total(), 0);

    // The fork at the same size: refused, alarm raised.
    let f25 = grow(&fork, 25, "fork").await;
    let body = problem(node.post("witness/cosign", &json!({"oldSize": 25, "checkpoint": f25})).await, 409).await;
    assert!(body["type"].as_str().unwrap().ends_with("/log-fork"), "{body}");
    assert_eq!(node.witness.alarms().forks, 1);
    // An unknown log and an unverifiable checkpoint.
    let own = node.get("checkpoint").await.text().await.unwrap();
    problem(node.post("witness/cosign", &json!({"oldSize": 0, "checkpoint": own})).await, 404).await;
    let forged = NodeKey::from_seed(&[1; 32])
        .log_signer(PEER)
        .unwrap()
        .sign_note("civitas.test/ledger/peer\n25\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
    problem(node.post("witness/cosign", &json!({"oldSize": 25, "checkpoint": forged.unwrap().to_string()})).await, 403)
        .await;
    problem(node.http.post(node.at("witness/cosign")).body("nonsense").send().await.unwrap(), 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_appends_proves_and_verifies_offline() {
    let node = start().await;
    let out = node
        .cli(LedgerCommand::Append { kind: EntryKind::Note, data: r#"{"text": "budget approved"}"#.into() })
        .await
        .unwrap();
    assert_eq!(out, "0\n");
    for i in 1..40 {
        let data = format!(r#"{{"deal": {i}, "price": {}}}"#, i * 10);
        assert_eq!(node.cli(LedgerCommand::Append { kind: EntryKind::Deal, data }).await.unwrap(), format!("{i}\n"));
    }
    let entry = node.cli(LedgerCommand::Get { index: 0 }).await.unwrap();
    assert_eq!(entry, "{\"data\":{\"text\":\"budget approved\"},\"kind\":\"note\"}\n");
    let checkpoint = node.cli(LedgerCommand::Checkpoint).await.unwrap();
    let pubkey = node.cli(LedgerCommand::Pubkey).await.unwrap();
    let entry_file = node.file("entry.json", entry.as_bytes());
    let checkpoint_file = node.file("checkpoint.txt", checkpoint.as_bytes());
    let pubkey_file = node.file("ledger.pub", pubkey.as_bytes());
    let proof = node.cli(LedgerCommand::Prove { index: 0, checkpoint: Some(checkpoint_file.clone()) }).await.unwrap();
    let proof_file = node.file("proof.json", proof.as_bytes());

    // More entries later do not matter: the proof is against the saved checkpoint.
    node.cli(LedgerCommand::Append { kind: EntryKind::Note, data: "{}".into() }).await.unwrap();

    let verify = |pubkey: &str, checkpoint: &Path, proof: Option<&Path>, entry: Option<&Path>| LedgerCommand::Verify {
        pubkey: pubkey.to_string(),
        checkpoint: checkpoint.to_path_buf(),
        proof: proof.map(Path::to_path_buf),
        entry: entry.map(Path::to_path_buf),
        witnesses: Vec::new(),
        min_witnesses: None,
    };
    // Offline: a server URL that nothing listens on.
    let offline = "http://127.0.0.1:9";
    let mut out = Vec::new();
    ledger_cli::run_to(
        offline,
        verify(pubkey.trim(), &checkpoint_file, Some(&proof_file), Some(&entry_file)),
        &mut out,
    )
    .await
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("checkpoint OK: civitas.test/ledger/http at size 40"), "{out}");
    assert!(out.contains("entry OK:") && out.contains("is entry 0 of civitas.test/ledger/http"), "{out}");
    // The key from a file works too; the checkpoint alone verifies.
    let key_path = pubkey_file.to_str().unwrap();
    ledger_cli::run_to(offline, verify(key_path, &checkpoint_file, None, None), &mut Vec::new()).await.unwrap();

    // Tampering: every case exits with an error.
    let flipped_entry = node.file("bad-entry.json", entry.replace("approved", "approveD").as_bytes());
    let other_key = NodeKey::from_seed(&[77; 32]).log_verifier(ORIGIN).unwrap().to_string();
    let newer = node.file("newer.txt", node.cli(LedgerCommand::Checkpoint).await.unwrap().as_bytes());
    let bad_checkpoint = node.file("bad-checkpoint.txt", checkpoint.replacen("40", "41", 1).as_bytes());
    let cases: Vec<(&str, LedgerCommand)> = vec![
        ("flipped entry", verify(pubkey.trim(), &checkpoint_file, Some(&proof_file), Some(&flipped_entry))),
        ("other key", verify(&other_key, &checkpoint_file, Some(&proof_file), Some(&entry_file))),
        ("proof for another tree size", verify(pubkey.trim(), &newer, Some(&proof_file), Some(&entry_file))),
        ("altered checkpoint", verify(pubkey.trim(), &bad_checkpoint, None, None)),
        ("not a key", verify("nonsense", &checkpoint_file, None, None)),
    ];
    for (what, cmd) in cases {
        let result = ledger_cli::run_to(offline, cmd, &mut Vec::new()).await;
        assert!(result.is_err(), "{what} was accepted");
    }

    // Online errors show the node's problem; an unreachable node says so.
    let err = node.cli(LedgerCommand::Get { index: 999 }).await.unwrap_err().to_string();
    assert!(err.contains("(404)") && err.contains("entry 999 does not exist"), "{err}");
    let err = ledger_cli::run_to(offline, LedgerCommand::Pubkey, &mut Vec::new()).await.unwrap_err().to_string();
    assert!(err.contains("cannot reach the Civitas node"), "{err}");
    let err = node.cli(LedgerCommand::Append { kind: EntryKind::Note, data: "[1]".into() }).await.unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
}

#[test]
fn every_ledger_verb_has_help_with_examples() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: LedgerCommand,
    }
    Cli::command().debug_assert();
    let mut cmd = Cli::command();
    for sub in cmd.get_subcommands_mut() {
        let help = sub.render_long_help().to_string();
        assert!(help.contains("Examples:"), "`civitas ledger {}` has no examples", sub.get_name());
    }
    assert!(Cli::try_parse_from(["x", "append", "--kind", "bribe", "--data", "{}"]).is_err());
    assert!(Cli::try_parse_from(["x", "verify", "--pubkey", "k", "--checkpoint", "c", "--proof", "p"]).is_err());
}
