//! Having this node's checkpoints cosigned by its peers (`[ledger] witnesses`), and the
//! cosigned checkpoint `GET /api/v1/ledger/checkpoint` serves.
//!
//! A background task ([`run`]) wakes every `ledger.cosign_interval_ms`. When the tree grew,
//! or some witness has not cosigned the newest checkpoint yet, it takes the current signed
//! checkpoint and posts it to every such witness (`POST <url>/api/v1/ledger/witness/cosign`,
//! JSON `{"oldSize", "checkpoint", "consistencyProof"}`) with a consistency proof from the
//! size that witness last cosigned for this node. That size is kept in memory only: after a
//! restart it starts at 0, the witness answers `409 witness-conflict` with its
//! `witnessSize`, and the request is retried once with the proof from that size. The
//! returned cosignature line is checked against the configured witness key over exactly this
//! checkpoint; only then is it kept. Failures are logged (`WARN`, with the witness URL; a
//! failure repeating the previous one of the same witness is logged at most once a minute)
//! and counted in `civitas_ledger_cosign_failures_total`; they never stop the node.
//!
//! Which checkpoint is served ([`CosignedCheckpoints::serve`]): the newest checkpoint that
//! carries cosignatures, with every cosignature collected for it appended after the log's
//! own signature line, when it is the current checkpoint, or when it is older but its
//! cosignatures were collected less than two intervals ago (the next round is about to
//! catch up). Otherwise (witnesses down or slow, none configured) the fresh checkpoint,
//! signed by the log alone: clients always get a checkpoint at most ~2 intervals behind.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};
use tokio::sync::watch;

use civitas_ledger::{Ledger, NoteSignature, NoteSigner, NoteVerifier, SignedCheckpoint};

/// Timeout of one request to a witness.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A failure identical to the previous one of the same witness is logged at `WARN` at most
/// this often (at `DEBUG` otherwise).
const REPEAT_WARNING_EVERY: Duration = Duration::from_secs(60);

struct Latest {
    /// The log's checkpoint with the witnesses' cosignature lines appended.
    checkpoint: SignedCheckpoint,
    /// When a cosignature for it was last collected.
    at: Instant,
}

/// The newest cosigned checkpoint of this node's log, shared by the cosigning task and the
/// checkpoint route.
pub struct CosignedCheckpoints {
    latest: RwLock<Option<Latest>>,
    fresh_for: Duration,
}

impl std::fmt::Debug for CosignedCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CosignedCheckpoints").field("fresh_for", &self.fresh_for).finish_non_exhaustive()
    }
}

impl CosignedCheckpoints {
    /// Nothing cosigned yet; an older cosigned checkpoint is preferred over a newer
    /// uncosigned one for two `interval`s after its cosignatures were collected.
    pub fn new(interval: Duration) -> CosignedCheckpoints {
        CosignedCheckpoints { latest: RwLock::new(None), fresh_for: interval.saturating_mul(2) }
    }

    /// What to serve, given the log's `fresh` checkpoint (see the module docs).
    pub fn serve(&self, fresh: SignedCheckpoint) -> SignedCheckpoint {
        let latest = self.latest.read().expect("cosigned checkpoint lock poisoned");
        match latest.as_ref() {
            Some(l) if l.checkpoint.note().text() == fresh.note().text() => l.checkpoint.clone(),
            Some(l) if l.checkpoint.checkpoint().size < fresh.checkpoint().size && l.at.elapsed() <= self.fresh_for => {
                l.checkpoint.clone()
            }
            _ => fresh,
        }
    }

    /// The newest cosigned checkpoint, if any.
    pub fn latest(&self) -> Option<SignedCheckpoint> {
        self.latest.read().expect("cosigned checkpoint lock poisoned").as_ref().map(|l| l.checkpoint.clone())
    }

    /// Adds verified `cosignatures` of `checkpoint` (the log-signed one); a checkpoint of
    /// another text replaces the one held.
    fn record(&self, checkpoint: &SignedCheckpoint, cosignatures: Vec<NoteSignature>) {
        if cosignatures.is_empty() {
            return;
        }
        let mut latest = self.latest.write().expect("cosigned checkpoint lock poisoned");
        let mut base = match latest.take() {
            Some(l) if l.checkpoint.note().text() == checkpoint.note().text() => l.checkpoint,
            _ => checkpoint.clone(),
        };
        for c in cosignatures {
            base.add_cosignature(c);
        }
        *latest = Some(Latest { checkpoint: base, at: Instant::now() });
    }
}

/// One configured witness and what it did for us.
struct Peer {
    url: String,
    key: NoteVerifier,
    /// The tree size this witness last cosigned for us (0: none known, e.g. after a restart).
    cosigned_size: u64,
    /// The last failure logged at `WARN`, and when.
    last_warning: Option<(String, Instant)>,
}

/// What the cosigning task needs.
pub struct Cosigner {
    /// This node's ledger.
    pub ledger: Arc<Ledger>,
    /// The log's signer.
    pub signer: NoteSigner,
    /// `(base URL, witness key)` of each witness.
    pub witnesses: Vec<(String, NoteVerifier)>,
    /// `ledger.cosign_interval_ms`.
    pub interval: Duration,
    /// Where collected cosignatures go.
    pub cosigned: Arc<CosignedCheckpoints>,
    /// `civitas_ledger_cosign_failures_total`.
    pub failures: Counter,
}

/// Runs the cosigning rounds until `shutdown` turns true. Returns at once when no witness
/// is configured.
pub async fn run(cosigner: Cosigner, mut shutdown: watch::Receiver<bool>) {
    if cosigner.witnesses.is_empty() {
        return;
    }
    let http = match reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("civitas-node/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the HTTP client for witnesses; checkpoints will not be cosigned");
            return;
        }
    };
    let mut peers: Vec<Peer> = cosigner
        .witnesses
        .iter()
        .map(|(url, key)| Peer { url: url.clone(), key: key.clone(), cosigned_size: 0, last_warning: None })
        .collect();
    // Which checkpoint text each witness cosigned last (index-aligned with `peers`).
    let mut cosigned_text: Vec<Option<String>> = vec![None; peers.len()];
    let mut ticker = tokio::time::interval(cosigner.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stopped = async move {
        let _ = shutdown.wait_for(|v| *v).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            _ = &mut stopped => break,
            _ = round(&cosigner, &http, &mut peers, &mut cosigned_text) => {}
        }
    }
    tracing::debug!("cosigning task stopped");
}

/// One round: offer the current checkpoint to every witness that has not cosigned it.
async fn round(c: &Cosigner, http: &reqwest::Client, peers: &mut [Peer], cosigned_text: &mut [Option<String>]) {
    let checkpoint = match c.ledger.checkpoint(&c.signer).await {
        Ok(checkpoint) => checkpoint,
        Err(e) => {
            tracing::warn!(error = %e, "cannot make a checkpoint to have cosigned");
            return;
        }
    };
    let text = checkpoint.note().text().to_string();
    let due: Vec<usize> = (0..peers.len()).filter(|&i| cosigned_text[i].as_deref() != Some(text.as_str())).collect();
    if due.is_empty() {
        return;
    }
    let requests = due.iter().map(|&i| {
        let peer = &peers[i];
        ask(c, http, &peer.url, &peer.key, peer.cosigned_size, &checkpoint)
    });
    let results = futures::future::join_all(requests).await;
    let mut collected = Vec::new();
    for (&i, result) in due.iter().zip(results) {
        let peer = &mut peers[i];
        match result {
            Ok(cosignature) => {
                tracing::debug!(witness = %peer.url, size = checkpoint.checkpoint().size, "checkpoint cosigned");
                peer.cosigned_size = checkpoint.checkpoint().size;
                peer.last_warning = None;
                cosigned_text[i] = Some(text.clone());
                collected.push(cosignature);
            }
            Err(problem) => {
                c.failures.inc();
                let repeated = peer
                    .last_warning
                    .as_ref()
                    .is_some_and(|(last, at)| *last == problem && at.elapsed() < REPEAT_WARNING_EVERY);
                if repeated {
                    tracing::debug!(witness = %peer.url, problem = %problem, "witness did not cosign (again)");
                } else {
                    tracing::warn!(
                        witness = %peer.url, size = checkpoint.checkpoint().size, problem = %problem,
                        "witness did not cosign this node's checkpoint"
                    );
                    peer.last_warning = Some((problem, Instant::now()));
                }
            }
        }
    }
    c.cosigned.record(&checkpoint, collected);
}

/// Asks one witness to cosign `checkpoint`, from `old_size`; on `409 witness-conflict`,
/// once more from the size the witness says it holds. The cosignature is verified.
async fn ask(
    c: &Cosigner,
    http: &reqwest::Client,
    url: &str,
    key: &NoteVerifier,
    old_size: u64,
    checkpoint: &SignedCheckpoint,
) -> Result<NoteSignature, String> {
    let size = checkpoint.checkpoint().size;
    let mut old = old_size;
    for attempt in 0..2 {
        if old > size {
            return Err(format!(
                "the witness last cosigned size {old} of this log, but the log has {size} entries: \
                 it saw a larger tree than this node holds"
            ));
        }
        let proof = if old == 0 {
            Vec::new()
        } else {
            c.ledger
                .consistency_proof(old, size)
                .map_err(|e| format!("cannot make the consistency proof from {old} to {size}: {e}"))?
                .hashes
        };
        let body = json!({"oldSize": old, "checkpoint": checkpoint.to_string(), "consistencyProof": proof});
        let response = http
            .post(format!("{url}/api/v1/ledger/witness/cosign"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| format!("reading the answer: {}", describe(&e)))?;
        if status.is_success() {
            let answer = std::str::from_utf8(&bytes).map_err(|_| "the answer is not UTF-8".to_string())?;
            return verify_cosignature(answer, key, checkpoint);
        }
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let kind = problem.get("type").and_then(Value::as_str).unwrap_or("").rsplit('/').next().unwrap_or("");
        let detail = problem
            .get("detail")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().chars().take(300).collect());
        if status == reqwest::StatusCode::CONFLICT
            && kind == "witness-conflict"
            && attempt == 0
            && let Some(witness_size) = problem.get("witnessSize").and_then(Value::as_u64)
        {
            old = witness_size;
            continue;
        }
        return Err(format!("HTTP {} {kind}: {detail}", status.as_u16()));
    }
    Err("the witness answered 409 witness-conflict twice".into())
}

/// Picks the line of `key` in the witness's answer and checks it over `checkpoint`.
fn verify_cosignature(
    answer: &str,
    key: &NoteVerifier,
    checkpoint: &SignedCheckpoint,
) -> Result<NoteSignature, String> {
    let mut found = Vec::new();
    for line in answer.lines().filter(|l| !l.trim().is_empty()) {
        let signature =
            NoteSignature::parse_line(line).map_err(|e| format!("the answer is not a cosignature line: {e}"))?;
        if signature.name == key.name() && signature.key_id == key.key_id() {
            let mut with = checkpoint.clone();
            with.add_cosignature(signature.clone());
            with.note().verify(key).map_err(|e| format!("refused the witness's cosignature: {e}"))?;
            return Ok(signature);
        }
        found.push(format!("{} ({:08x})", signature.name, signature.key_id));
    }
    Err(format!(
        "refused the answer: no cosignature by the configured key {}+{:08x} (got: {})",
        key.name(),
        key.key_id(),
        if found.is_empty() { "nothing".to_string() } else { found.join(", ") }
    ))
}

fn describe(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_timeout() {
        format!("no answer within {REQUEST_TIMEOUT:?}")
    } else if e.is_connect() {
        format!("cannot connect: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civitas_ledger::{Checkpoint, NodeKey};

    fn signed(size: u64) -> (SignedCheckpoint, NoteSigner) {
        let signer = NodeKey::from_seed(&[7; 32]).log_signer("civitas.city/ledger/t").unwrap();
        let root = civitas_ledger::merkle::empty_root();
        (SignedCheckpoint::sign(Checkpoint::new("civitas.city/ledger/t", size, root), &signer).unwrap(), signer)
    }

    #[test]
    fn cosignatures_are_checked_against_the_configured_key_and_the_exact_checkpoint() {
        let (checkpoint, _) = signed(3);
        let witness = NodeKey::from_seed(&[8; 32]).witness_signer("civitas.city/witness/w").unwrap();
        let other = NodeKey::from_seed(&[9; 32]).witness_signer("civitas.city/witness/w").unwrap();
        let line = witness.cosign(checkpoint.note().text(), 1_700_000_000).unwrap().to_line();
        verify_cosignature(&line, &witness.verifier(), &checkpoint).unwrap();
        let e = verify_cosignature(&line, &other.verifier(), &checkpoint).unwrap_err();
        assert!(e.contains("no cosignature by the configured key"), "{e}");
        let (another, _) = signed(4);
        let e = verify_cosignature(&line, &witness.verifier(), &another).unwrap_err();
        assert!(e.contains("refused"), "{e}");
        assert!(verify_cosignature("garbage", &witness.verifier(), &checkpoint).is_err());
    }

    #[test]
    fn the_served_checkpoint_is_the_cosigned_one_while_it_is_current_or_recent() {
        let (old, _) = signed(3);
        let (new, _) = signed(4);
        let witness = NodeKey::from_seed(&[8; 32]).witness_signer("civitas.city/witness/w").unwrap();
        let cosigned = CosignedCheckpoints::new(Duration::from_secs(60));
        assert_eq!(cosigned.serve(old.clone()), old, "nothing cosigned yet");
        cosigned.record(&old, vec![witness.cosign(old.note().text(), 1).unwrap()]);
        let served = cosigned.serve(old.clone());
        assert_eq!(served.note().signatures().len(), 2);
        served.note().verify(&witness.verifier()).unwrap();
        assert_eq!(cosigned.serve(new.clone()).checkpoint().size, 3, "recent cosigned one preferred");
        let stale = CosignedCheckpoints::new(Duration::ZERO);
        stale.record(&old, vec![witness.cosign(old.note().text(), 1).unwrap()]);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(stale.serve(new.clone()), new, "stale cosigned one not preferred");
        assert_eq!(
            stale.serve(old.clone()).note().signatures().len(),
            2,
            "but the current one carries its cosignatures"
        );
    }
}
